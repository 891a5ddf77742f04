"""`paged` and `paged_cow`: exact block ids on tiny pools, with the invariant checker after every call."""

from kvbench.strategies.invariants import check


def test_a_block_when_a_sequence_crosses_a_block_boundary(strategy_factory, seq_factory):
    st = strategy_factory("paged", num_blocks=8, block_size=4)
    a = seq_factory(0, prompt=6, final=10)
    assert st.allocate(a, 0, 6)
    assert st.block_table(0) == [0, 1]
    check(st)
    assert st.allocate(a, 6, 1) and st.block_table(0) == [0, 1]  # position 6 is in block 1
    assert st.allocate(a, 7, 1) and st.block_table(0) == [0, 1]
    assert st.allocate(a, 8, 1) and st.block_table(0) == [0, 1, 2]  # position 8 starts block 2
    check(st)
    b = seq_factory(1, prompt=4, final=5)
    assert st.allocate(b, 0, 4) and st.block_table(1) == [3]
    st.free(0, 9)
    check(st)
    # Without prefix caching nothing freed can serve a hit: the freed blocks are reused first,
    # most recently used first (vLLM's LIFO for blocks without a hash).
    assert st.snapshot().free_queue == [2, 1, 0, 4, 5, 6, 7]
    assert st.allocate(seq_factory(2, prompt=13, final=13), 0, 13)
    assert st.block_table(2) == [2, 1, 0, 4]


def test_breakdown_splits_held_slots_into_tokens_reservation_and_internal_fragmentation(strategy_factory, seq_factory):
    st = strategy_factory("paged", num_blocks=8, block_size=4)
    a = seq_factory(0, prompt=5, final=6)  # will hold 6 tokens: 2 blocks, the last 2 slots never written
    assert st.allocate(a, 0, 5)
    assert st.allocate(a, 5, 1)  # syncs the 5 prompt tokens
    usage = st.usage()
    assert (usage.token_slots, usage.reserved_slots, usage.internal_frag_slots) == (5, 1, 2)
    assert usage.free_slots == 24 and usage.with_unsynced(1).token_slots == 6
    check(st)


def test_a_failed_allocation_changes_nothing(strategy_factory, seq_factory):
    st = strategy_factory("paged", num_blocks=3, block_size=4)
    a = seq_factory(0, prompt=8, final=20)
    assert st.allocate(a, 0, 8)
    before = st.snapshot()
    assert not st.allocate(seq_factory(1, prompt=8, final=8), 0, 8)  # needs 2, 1 free
    assert not st.allocate(a, 8, 5)  # needs 2 more blocks
    assert st.snapshot() == before
    assert st.allocate(a, 8, 4) and st.block_table(0) == [0, 1, 2]
    check(st)


def test_headroom_is_the_rest_of_the_last_block(strategy_factory, seq_factory):
    st = strategy_factory("paged", num_blocks=4, block_size=4)
    a = seq_factory(0, prompt=5, final=12)
    assert st.allocate(a, 0, 5)
    assert st.headroom(0) == 8  # synced at 0; 8 slots held
    assert st.allocate(a, 5, 1)
    assert st.headroom(0) == 3  # positions 5, 6, 7


def test_plain_paged_fork_copies_every_block(strategy_factory, seq_factory):
    st = strategy_factory("paged", num_blocks=8, block_size=4)
    st.record_block_copies = True  # as for the device executor, which must copy the K/V
    a = seq_factory(0, prompt=6, final=9)
    assert st.allocate(a, 0, 6)
    child = seq_factory(1, prompt=a.stream.truncate(6), final=9)
    assert st.fork(0, child, 6)
    assert st.block_table(1) == [2, 3]
    assert st.pop_block_copies() == [(0, 2), (1, 3)]
    assert st.counters["fork_copied_blocks"] == 2 and st.usage().shared_saved_slots == 0
    check(st)


def test_block_copies_are_logged_only_for_an_executor_that_moves_kv(strategy_factory, seq_factory):
    st = strategy_factory("paged", num_blocks=8, block_size=4)
    a = seq_factory(0, prompt=6, final=9)
    assert st.allocate(a, 0, 6)
    assert st.fork(0, seq_factory(1, prompt=a.stream.truncate(6), final=9), 6)
    assert st.counters["fork_copied_blocks"] == 2 and st.pop_block_copies() == []


def test_cow_fork_shares_and_the_first_write_into_a_shared_block_copies_it(strategy_factory, seq_factory):
    st = strategy_factory("paged_cow", num_blocks=8, block_size=4)
    st.record_block_copies = True
    a = seq_factory(0, prompt=6, final=9)
    assert st.allocate(a, 0, 6)
    child = seq_factory(1, prompt=a.stream.truncate(6), final=9)
    assert st.fork(0, child, 6)
    assert st.block_table(1) == [0, 1]
    assert st.snapshot().ref_cnt[:2] == [2, 2]
    assert st.usage().shared_saved_slots == 8
    assert st.headroom(0) == 0 and st.headroom(1) == 0  # block 1 is shared and not full
    check(st)
    assert st.allocate(child, 6, 1)  # the child writes position 6: copy block 1
    assert st.block_table(1) == [0, 2]
    assert st.pop_block_copies() == [(1, 2)]
    assert st.counters["cow_copies"] == 1
    check(st)
    assert st.allocate(a, 6, 1)  # the parent is now block 1's only holder: no copy
    assert st.block_table(0) == [0, 1] and st.counters["cow_copies"] == 1
    assert st.headroom(0) == 2
    check(st)
    st.free(1, 7)
    st.free(0, 7)
    check(st)
    assert st.snapshot().free_queue == [1, 0, 2, 3, 4, 5, 6, 7]  # each free puts its blocks at the head


def test_a_fork_at_a_block_boundary_copies_nothing(strategy_factory, seq_factory):
    st = strategy_factory("paged_cow", num_blocks=8, block_size=4)
    a = seq_factory(0, prompt=8, final=12)
    assert st.allocate(a, 0, 8)
    child = seq_factory(1, prompt=a.stream.truncate(8), final=12)
    assert st.fork(0, child, 8)
    assert st.allocate(child, 8, 1) and st.allocate(a, 8, 1)
    assert st.block_table(0) == [0, 1, 3] and st.block_table(1) == [0, 1, 2]
    assert st.counters["cow_copies"] == 0
    check(st)


def test_plain_paged_frees_by_what_the_sequence_knows_exactly_as_block_by_block(strategy_factory, seq_factory):
    """Plain paged frees a sequence's blocks by its synced and final lengths (PagedTables.free_sole);
    the general path (sync, then release block by block) must leave the same pool: frees at a block
    boundary, mid-block, mid-prefill (a preemption), unsynced, after a fork's copy and a swap."""
    fast = strategy_factory("paged", num_blocks=24, block_size=4)
    slow = strategy_factory("paged", num_blocks=24, block_size=4)
    slow._sole_owners = False  # the general path, as paged_cow takes it
    assert fast._sole_owners
    for st in (fast, slow):
        a, b, c = seq_factory(0, prompt=6, final=13), seq_factory(1, prompt=9, final=9), seq_factory(2, prompt=3, final=7)
        assert st.allocate(a, 0, 6) and st.allocate(b, 0, 9) and st.allocate(c, 0, 3)  # b: 12 slots, 9 to write
        for n in range(6, 11):  # decodes into a third block, the last tokens unsynced
            assert st.allocate(a, n, 1)
        assert st.fork(2, seq_factory(3, prompt=c.stream.truncate(3), final=7), 3)
        assert st.allocate(c, 3, 1)
        kv = st.swap_out([(2, 4)])  # frees c through `free`, then back in over fresh blocks
        assert st.swap_in(kv) is not None
    for seq_id, num_computed in ((1, 5), (0, 12), (2, 4), (3, 3)):  # mid-prefill, unsynced, swapped in, forked
        assert fast.free(seq_id, num_computed) == slow.free(seq_id, num_computed)
        assert fast.usage() == slow.usage() and fast.snapshot() == slow.snapshot()
        check(fast)
    assert fast.usage().free_slots == 24 * 4 and fast.snapshot().free_queue == slow.snapshot().free_queue
