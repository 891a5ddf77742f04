"""The free queue (LRU eviction policy) and block pool mechanics behind every paged strategy."""

from hypothesis import example, given
from hypothesis import strategies as st

from kvbench.strategies.block_pool import BlockPool
from kvbench.strategies.eviction import Block, LRUFreeQueue


def test_free_queue_pops_in_order_and_uncached_blocks_are_reused_first():
    pool = BlockPool(num_blocks=6, block_size=4)
    taken = pool.take_new(3)
    assert [b.block_id for b in taken] == [0, 1, 2]
    assert pool.free_block_ids() == [3, 4, 5]
    # No cache entry, so they can never serve a hit: vLLM puts them at the head, tail first.
    assert pool.release(reversed(taken))
    assert pool.free_block_ids() == [2, 1, 0, 3, 4, 5]
    assert pool.num_free_blocks == 6 and pool.num_held_blocks == 0


def test_freed_cached_blocks_join_the_tail_and_uncached_ones_the_head():
    pool = BlockPool(num_blocks=6, block_size=2)
    taken = pool.take_new(4)  # one sequence's blocks 0-3; blocks 0 and 1 are full and cached
    for block in taken[:2]:
        pool.set_fill(block, 2, 2)
        pool.cache(block, ("k", block.block_id))
    assert pool.release(reversed(taken))
    # As vLLM 0.33.0's BlockPool.free_blocks: [3, 2] prepended, [1, 0] appended.
    assert pool.free_block_ids() == [3, 2, 4, 5, 1, 0]
    assert pool.num_cached_free_blocks == 2
    assert [b.block_id for b in pool.take_new(4)] == [3, 2, 4, 5]
    assert pool.num_evicted_blocks == 0


def test_touch_revives_a_cached_block_out_of_the_middle_of_the_queue():
    pool = BlockPool(num_blocks=4, block_size=2)
    (block,) = pool.take_new(1)
    pool.set_fill(block, 2, 2)
    pool.cache(block, "k")
    pool.release([block])
    assert pool.free_block_ids() == [1, 2, 3, 0]
    assert pool.num_cached_free_blocks == 1
    pool.touch(block)
    assert pool.free_block_ids() == [1, 2, 3]
    assert (block.ref_cnt, pool.num_cached_free_blocks, pool.token_slots) == (1, 0, 2)


def test_popping_a_cached_block_evicts_its_entry():
    pool = BlockPool(num_blocks=2, block_size=2)
    first, second = pool.take_new(2)
    pool.set_fill(first, 2, 2)
    pool.cache(first, "k")
    pool.release([first])
    assert pool.free_block_ids() == [0]
    (reused,) = pool.take_new(1)
    assert reused is first and first.cache_key is None and pool.lookup("k") is None and not pool.cached
    assert pool.num_evicted_blocks == 1 and pool.num_cached_free_blocks == 0


@given(st.lists(st.lists(st.integers(0, 7), max_size=4), max_size=8), st.integers(0, 6))
def test_pushing_blocks_at_once_queues_them_as_pushing_each(batches, num_removed):
    """`LRUFreeQueue.push_all` (a release's cached blocks) leaves the order and counts of a
    `push` per block, also after blocks are taken out of the middle and popped again."""
    queues = [LRUFreeQueue(0, Block) for _ in range(2)]
    blocks = [[Block(i) for i in range(8)] for _ in queues]  # each queue its own objects
    free = set()
    for batch in batches:
        batch = [i for i in dict.fromkeys(batch) if i not in free]
        queues[0].push_all([blocks[0][i] for i in batch])
        for i in batch:
            queues[1].push(blocks[1][i])
        free.update(batch)
    for i in sorted(free)[:num_removed]:
        for queue, own in zip(queues, blocks):
            queue.remove(own[i])
    assert queues[0].block_ids() == queues[1].block_ids()
    assert queues[0].num_blocks == queues[1].num_blocks == len(free) - min(num_removed, len(free))
    for _ in range(queues[1].num_blocks):
        assert queues[0].pop().block_id == queues[1].pop().block_id


@given(st.lists(st.tuples(st.sampled_from(["push", "remove", "pop"]), st.integers(0, 2)), max_size=60),
       st.integers(0, 3), st.integers(0, 4))
@example([("push", 0), ("remove", 0), ("push", 0), ("push", 1), ("remove", 0), ("push", 0)], 0, 0)
def test_the_free_queue_is_a_list_of_free_blocks_in_the_order_freed(ops, num_never_used, min_stale_to_compact):
    """`LRUFreeQueue` (a deque with stale entries left by `remove`, skipped and compacted away)
    behaves as the plain list vLLM's linked list is: ids never used first, then freed blocks in
    the order freed, a removed block taken out of the middle, a re-freed one at the tail, also
    when blocks are freed, revived and freed again many times and the deque is compacted."""

    class Queue(LRUFreeQueue):
        _MIN_STALE_TO_COMPACT = min_stale_to_compact

    made: dict[int, Block] = {}
    queue = Queue(num_never_used, lambda block_id: made.setdefault(block_id, Block(block_id)))
    expected = list(range(num_never_used))  # the free block ids, in the order they are handed out
    own = {i: Block(i) for i in range(num_never_used, num_never_used + 3)}  # blocks freed again and again
    for op, i in ops:
        block = own[num_never_used + i]
        if op == "push" and block.block_id not in expected:
            queue.push(block)
            expected.append(block.block_id)
        elif op == "remove" and block.block_id in expected:
            queue.remove(block)
            expected.remove(block.block_id)
        elif op == "pop" and expected:
            assert queue.pop().block_id == expected.pop(0)
        assert queue.block_ids() == expected and queue.num_blocks == len(expected)
    freed = queue.freed_once_all_used
    assert (freed is None) == any(i < num_never_used for i in expected)
    while expected:
        assert queue.pop().block_id == expected.pop(0)


def test_a_pool_of_a_trillion_blocks_builds_only_what_it_hands_out():
    pool = BlockPool(num_blocks=10**12, block_size=16)
    assert [b.block_id for b in pool.take_new(3)] == [0, 1, 2]
    assert len(pool.blocks) == 3 and pool.num_free_blocks == 10**12 - 3 and pool.num_held_blocks == 3


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 3)), max_size=40), st.integers(1, 12))
def test_lazy_blocks_come_out_in_the_order_of_a_queue_that_started_full(ops, num_blocks):
    """The order of an eager vLLM free queue: every id queued up front, and freed blocks (nothing is
    cached here) put back at its head in release order, ahead of the ids never used."""
    pool = BlockPool(num_blocks=num_blocks, block_size=1)
    eager = list(range(num_blocks))
    held = []
    for take, count in ops:
        if take:
            count = min(count, pool.num_free_blocks)
            got = [b.block_id for b in pool.take_new(count)]
            assert got == eager[:count]
            del eager[:count]
            held.extend(pool.blocks[i] for i in got)
        elif held:
            released, held = held[:count], held[count:]
            pool.release(released)
            eager[:0] = [b.block_id for b in released]
        assert pool.free_block_ids() == eager


# CPython hashes -1 and -2 alike, so these two keys of different content share one hash.
COLLIDING_KEYS = ((None, ((1, (-1,) * 2),)), (None, ((1, (-2,) * 2),)))


def test_a_key_sharing_another_ones_hash_is_never_a_hit():
    key_a, key_b = COLLIDING_KEYS
    assert hash(key_a) == hash(key_b) and key_a != key_b
    pool = BlockPool(num_blocks=4, block_size=2)
    a, b, twin = pool.take_new(3)
    pool.cache(a, key_a)
    assert pool.lookup(key_b) is None and pool.lookup(key_b, hash(key_b)) is None
    # Both registered: the map files entries by their full keys from then on, each found exactly.
    pool.cache(b, key_b)
    pool.cache(twin, key_a)
    assert pool.lookup(key_a) is a and pool.lookup(key_b) is b
    assert sorted(blk.block_id for blk in pool.cached_blocks()) == [0, 1, 2]
    pool.uncache(a)  # its twin takes its place; the other content is untouched
    assert pool.lookup(key_a) is twin and pool.lookup(key_b) is b
    pool.release([b])
    pool.take_new(2)  # the one never used, then b: evicted
    assert pool.lookup(key_b) is None and pool.lookup(key_a) is twin


def test_a_caller_files_blocks_itself_only_where_caching_is_the_maps_alone():
    """`filing()` hands out the map's setdefault (PrefixIndex.register_fills files decode-filled
    blocks with it) while entries are filed by hash and no subclass adds to `cache`; after a
    collision refiles the map by full keys, or in a pool whose `cache` also writes to tiers, None."""
    pool = BlockPool(num_blocks=4, block_size=2)
    assert pool.filing() == pool.cached.setdefault
    a, b = pool.take_new(2)
    for block, key in zip((a, b), COLLIDING_KEYS):
        pool.cache(block, key)
    assert pool.filing() is None

    class WritingThrough(BlockPool):
        def cache(self, block, key, key_hash=None):
            super().cache(block, key, key_hash)

    assert WritingThrough(num_blocks=4, block_size=2).filing() is None


@given(st.integers(0, 6), st.data())
def test_releasing_a_sequences_own_blocks_by_its_lengths_equals_releasing_each(num_blocks, data):
    """`BlockPool.release_sole` with cached blocks (a paged_prefix sequence nobody shares: its
    registered blocks first, its slots known from its lengths) leaves the free order, counts, slot
    sums and block fields that `release` of the same blocks, tail first, does."""
    num_cached = data.draw(st.integers(0, num_blocks))
    num_tokens = data.draw(st.integers(num_cached * 4, num_blocks * 4))
    final_num_tokens = data.draw(st.integers(num_tokens, num_blocks * 4 + 8))
    pools = [BlockPool(num_blocks=8, block_size=4) for _ in range(2)]
    for pool in pools:
        pool.release(pool.take_new(2))  # blocks freed before: reused after these
        blocks = pool.take_reserved(num_blocks, final_num_tokens)
        for i, block in enumerate(blocks):
            pool.set_fill(block, min(4, max(0, num_tokens - 4 * i)), block.reserve_end)
            if i < num_cached:
                pool.cache(block, ("k", i))
        if pool is pools[0]:
            num_reserve_end_slots = min(num_blocks * 4, final_num_tokens)
            pool.release_sole(blocks, num_tokens, num_reserve_end_slots - num_tokens, num_cached)
        else:
            pool.release(reversed(blocks))
    fields = ["num_free_blocks", "num_cached_free_blocks", "token_slots", "reserved_slots"]
    assert [getattr(pools[0], name) for name in fields] == [getattr(pools[1], name) for name in fields]
    assert pools[0].free_block_ids() == pools[1].free_block_ids()
    assert [(b.ref_cnt, b.num_tokens, b.reserve_end) for b in pools[0].blocks] == \
        [(b.ref_cnt, b.num_tokens, b.reserve_end) for b in pools[1].blocks]
