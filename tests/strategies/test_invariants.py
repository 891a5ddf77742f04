"""The shared invariant checker catches the corruptions it exists for."""

import pytest

from kvbench.strategies.invariants import InvariantError, check


def _paged_with_one_sequence(strategy_factory, seq_factory, name="paged_cow"):
    st = strategy_factory(name, num_blocks=6, block_size=4)
    assert st.allocate(seq_factory(0, prompt=6, final=8), 0, 6)
    assert st.allocate(seq_factory(0, prompt=6, final=8), 6, 1)
    check(st)
    return st


def test_a_wrong_ref_count_is_caught(strategy_factory, seq_factory):
    st = _paged_with_one_sequence(strategy_factory, seq_factory)
    st.pool.blocks[0].ref_cnt += 1
    with pytest.raises(InvariantError, match="ref_cnt"):
        check(st)


def test_a_leaked_block_is_caught(strategy_factory, seq_factory):
    st = _paged_with_one_sequence(strategy_factory, seq_factory)
    st.pool.free_queue.pop()  # gone from the queue, in no table
    with pytest.raises(InvariantError, match="free queue"):
        check(st)


def test_wrong_accounting_is_caught(strategy_factory, seq_factory):
    st = _paged_with_one_sequence(strategy_factory, seq_factory)
    st.pool.token_slots += 1
    with pytest.raises(InvariantError, match="token_slots"):
        check(st)


def test_a_double_booked_run_is_caught(strategy_factory, seq_factory):
    st = strategy_factory("contiguous", num_blocks=8, block_size=4, max_model_len=16)
    assert st.allocate(seq_factory(0, prompt=4, final=8), 0, 4)
    st.allocator.free(0, 4)  # the allocator forgets a run a sequence still holds
    with pytest.raises(InvariantError):
        check(st)
