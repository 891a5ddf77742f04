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


def test_two_writers_of_one_block_are_caught_with_consistent_ref_counts(strategy_factory, seq_factory):
    st = strategy_factory("paged", num_blocks=6, block_size=4)
    assert st.allocate(seq_factory(0, prompt=4, final=8), 0, 4)
    assert st.allocate(seq_factory(1, prompt=4, final=8), 0, 4)
    st.free(0, 4), st.free(1, 4)
    for seq_id in (2, 3):
        seq = seq_factory(seq_id, prompt=4, final=8)
        assert st.allocate(seq, 0, 4) and st.allocate(seq, 4, 1)  # the second call syncs the 4 written
    check(st)
    # Plant: seq 3's table points at seq 2's block, references moved so every count still agrees.
    mine, theirs = st.tables.seqs[3].blocks[0], st.tables.seqs[2].blocks[0]
    st.tables.seqs[3].blocks[0] = theirs
    st.pool.touch(theirs)
    st.pool.set_fill(mine, 0, 0)
    st.pool.release([mine])
    with pytest.raises(InvariantError, match="both wrote slot 0"):
        check(st)


def test_a_cache_key_that_does_not_match_the_content_is_caught(strategy_factory, seq_factory):
    st = strategy_factory("paged_prefix", num_blocks=8, block_size=4)
    assert st.allocate(seq_factory(0, prompt=9, final=10), 0, 9)
    assert st.allocate(seq_factory(1, prompt=9, final=10), 0, 9)
    for seq_id in (0, 1):  # registered, but filed only when reached (prefix_index.PendingRun): file them
        st.index.flush(st.tables.seqs[seq_id].run)
    check(st)
    # Plant: seq 1's first block answers for seq 0's first block's content.
    first_of_0, first_of_1 = st.tables.seqs[0].blocks[0], st.tables.seqs[1].blocks[0]
    key = first_of_0.cache_key
    st.pool.uncache(first_of_0)
    st.pool.uncache(first_of_1)
    st.pool.cache(first_of_1, key)
    with pytest.raises(InvariantError, match="does not match its content"):
        check(st)
