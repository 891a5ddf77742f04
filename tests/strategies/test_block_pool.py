"""The free queue and block pool mechanics behind every paged strategy."""

from kvbench.strategies.block_pool import BlockPool


def test_free_queue_pops_in_order_and_uncached_blocks_are_reused_first():
    pool = BlockPool(num_blocks=6, block_size=4)
    taken = pool.take_new(3)
    assert [b.block_id for b in taken] == [0, 1, 2]
    assert pool.free_queue.block_ids() == [3, 4, 5]
    # No cache entry, so they can never serve a hit: vLLM puts them at the head, tail first.
    assert pool.release(reversed(taken))
    assert pool.free_queue.block_ids() == [2, 1, 0, 3, 4, 5]
    assert pool.num_free_blocks == 6 and pool.num_held_blocks == 0


def test_freed_cached_blocks_join_the_tail_and_uncached_ones_the_head():
    pool = BlockPool(num_blocks=6, block_size=2)
    taken = pool.take_new(4)  # one sequence's blocks 0-3; blocks 0 and 1 are full and cached
    for block in taken[:2]:
        pool.set_fill(block, 2, 2)
        block.cache_key = ("k", block.block_id)
        pool.cached[block.cache_key] = block
    assert pool.release(reversed(taken))
    # As vLLM 0.33.0's BlockPool.free_blocks: [3, 2] prepended, [1, 0] appended.
    assert pool.free_queue.block_ids() == [3, 2, 4, 5, 1, 0]
    assert pool.num_cached_free_blocks == 2
    assert [b.block_id for b in pool.take_new(4)] == [3, 2, 4, 5]
    assert pool.num_evicted_blocks == 0


def test_touch_revives_a_cached_block_out_of_the_middle_of_the_queue():
    pool = BlockPool(num_blocks=4, block_size=2)
    (block,) = pool.take_new(1)
    pool.set_fill(block, 2, 2)
    block.cache_key = "k"
    pool.cached["k"] = block
    pool.release([block])
    assert pool.free_queue.block_ids() == [1, 2, 3, 0]
    assert pool.num_cached_free_blocks == 1
    pool.touch(block)
    assert pool.free_queue.block_ids() == [1, 2, 3]
    assert (block.ref_cnt, pool.num_cached_free_blocks, pool.token_slots) == (1, 0, 2)


def test_popping_a_cached_block_evicts_its_entry():
    pool = BlockPool(num_blocks=2, block_size=2)
    first, second = pool.take_new(2)
    pool.set_fill(first, 2, 2)
    first.cache_key = "k"
    pool.cached["k"] = first
    pool.release([first])
    assert pool.free_queue.block_ids() == [0]
    (reused,) = pool.take_new(1)
    assert reused is first and first.cache_key is None and "k" not in pool.cached
    assert pool.num_evicted_blocks == 1 and pool.num_cached_free_blocks == 0
