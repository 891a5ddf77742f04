"""`contiguous`: reservation policies over real allocators."""

import pytest

from kvbench.strategies.invariants import check


@pytest.mark.parametrize(
    ("reservation", "num_blocks_reserved"),
    [("max", 16), ("pow2", 4), ("oracle", 3)],  # final length 11 tokens, block_size 4, max_model_len 64
)
def test_reservation_policies(strategy_factory, seq_factory, reservation, num_blocks_reserved):
    st = strategy_factory("contiguous", num_blocks=32, block_size=4, max_model_len=64, reservation=reservation)
    a = seq_factory(0, prompt=5, final=11)
    assert st.allocate(a, 0, 5)
    assert st.block_table(0) == list(range(num_blocks_reserved))
    assert st.allocate(a, 5, 1)
    usage = st.usage()
    assert usage.token_slots == 5
    assert usage.reserved_slots == 11 - 5  # the rest of the true final length
    assert usage.internal_frag_slots == num_blocks_reserved * 4 - 11  # held beyond it
    assert st.headroom(0) == num_blocks_reserved * 4 - 5
    check(st)


def test_buddy_surplus_is_internal_fragmentation(strategy_factory, seq_factory):
    st = strategy_factory("contiguous", num_blocks=32, block_size=1, max_model_len=64, reservation="oracle", allocator="buddy")
    assert st.allocate(seq_factory(0, prompt=4, final=11), 0, 4)
    assert st.block_table(0) == list(range(11))  # the policy asked for 11 slots...
    assert st.snapshot().extra_held[0] == list(range(11, 16))  # ...the buddy holds 16
    assert st.usage().internal_frag_slots == 5
    check(st)


def test_external_fragmentation_is_the_free_space_in_holes_too_small(strategy_factory, seq_factory):
    st = strategy_factory("contiguous", num_blocks=10, block_size=4, max_model_len=64, reservation="oracle")
    seqs = [seq_factory(i, prompt=4, final=12) for i in range(3)]  # 3 blocks each
    for seq in seqs:
        assert st.allocate(seq, 0, 4)
    st.free(1, 4)  # a hole of 3 blocks at 3, and 1 block at 9
    big = seq_factory(9, prompt=4, final=16)  # needs 4 blocks
    assert not st.allocate(big, 0, 4)
    assert st.external_frag_slots(big, 4) == (3 + 1) * 4
    usage = st.usage().with_external_frag(st.external_frag_slots(big, 4))
    assert usage.free_slots == 0 and usage.external_frag_slots == 16
    small = seq_factory(8, prompt=4, final=8)  # 2 blocks fit in the first hole
    assert st.external_frag_slots(small, 4) == 4
    check(st)


def test_fork_reserves_a_second_run_and_copies(strategy_factory, seq_factory):
    st = strategy_factory("contiguous", num_blocks=16, block_size=4, max_model_len=64, reservation="oracle")
    st.record_block_copies = True
    a = seq_factory(0, prompt=6, final=10)
    assert st.allocate(a, 0, 6)
    child = seq_factory(1, a.stream.truncate(6), final=10)
    assert st.fork(0, child, 6)
    assert st.block_table(1) == [3, 4, 5]
    assert st.pop_block_copies() == [(0, 3), (1, 4)]
    assert st.counters["fork_copied_blocks"] == 2
    assert st.usage().token_slots == 12  # each copy holds the 6 tokens
    check(st)
    assert not st.fork(0, seq_factory(2, a.stream.truncate(6), final=60), 6)  # 15 blocks do not fit


def test_max_policy_cannot_hold_a_sequence_when_the_pool_is_smaller_than_max_model_len(strategy_factory):
    assert strategy_factory("contiguous", num_blocks=8, block_size=4, max_model_len=64).max_seq_kv_tokens() == 0
    assert strategy_factory("contiguous", num_blocks=16, block_size=4, max_model_len=64).max_seq_kv_tokens() == 64
