"""Swap out / swap in on tiny pools, with exact block ids (strategies/paged_swap.py)."""

from __future__ import annotations

import pytest

from kvbench.strategies.invariants import check, check_swap


@pytest.mark.parametrize("name", ["paged_cow", "paged_prefix"])
def test_a_forked_pair_swaps_its_shared_blocks_once_and_comes_back_sharing(name, strategy_factory, seq_factory):
    strategy = strategy_factory(name, num_blocks=8, block_size=4)
    parent = seq_factory(0, 6, final=12)
    assert strategy.allocate(parent, 0, 6) is not None  # blocks 0, 1
    child = seq_factory(1, parent.stream.truncate(6), final=12, gen="child")
    assert strategy.fork(0, child, 6)
    assert strategy.allocate(child, 6, 1) is not None  # copy-on-write of block 1 into block 2
    assert strategy.block_table(0) == [0, 1] and strategy.block_table(1) == [0, 2]

    assert strategy.num_swap_blocks([(0, 6), (1, 7)]) == 3
    kv = strategy.swap_out([(0, 6), (1, 7)])
    assert kv.src_block_ids == [0, 1, 2]  # block 0 once, though both tables hold it
    assert [kv.seqs[0].block_indices, kv.seqs[1].block_indices] == [[0, 1], [0, 2]]
    assert kv.block_fills == [(4, 4), (2, 4), (3, 4)]
    assert strategy.usage().token_slots == 0
    check(strategy)
    check_swap(strategy, [(kv, [5, 6, 7])], 8, [0, 1, 2, 3, 4])

    block_ids = strategy.swap_in(kv)
    assert len(set(block_ids)) == 3
    assert strategy.block_table(0) == [block_ids[0], block_ids[1]]
    assert strategy.block_table(1) == [block_ids[0], block_ids[2]]  # sharing restored
    assert strategy.usage().token_slots == 4 + 2 + 3
    check(strategy)
    # It goes on as before: the child's next token lands in its own block, no copy needed.
    assert strategy.allocate(child, 7, 1) is not None
    assert strategy.block_table(1) == [block_ids[0], block_ids[2]]
    check(strategy)


def test_swap_in_is_refused_unchanged_without_a_spare_block_per_sequence(strategy_factory, seq_factory):
    strategy = strategy_factory("paged", num_blocks=4, block_size=4)
    seq = seq_factory(0, 8, final=16)
    strategy.allocate(seq, 0, 8)  # blocks 0, 1
    kv = strategy.swap_out([(0, 8)])
    other = seq_factory(1, 5, final=8)
    strategy.allocate(other, 0, 5)  # two of the four blocks again
    before = strategy.snapshot()
    assert strategy.swap_in(kv) is None  # 2 blocks + 1 spare > 2 free
    assert strategy.snapshot() == before
    strategy.free(1, 5)
    assert strategy.swap_in(kv) is not None
    check(strategy)


def test_a_block_shared_outside_the_request_is_copied_and_stays(strategy_factory, seq_factory, shared_prompt):
    """Two requests share a cached prefix block; swapping one out copies it, the other keeps it."""
    strategy = strategy_factory("paged_prefix", num_blocks=8, block_size=4)
    first = seq_factory(0, shared_prompt(4, 2, "a"), final=10)
    strategy.allocate(first, 0, 6)  # blocks 0, 1; block 0 cached
    second = seq_factory(1, shared_prompt(4, 2, "b"), final=10)
    hit = strategy.cached_prefix_tokens(second, 6)
    assert hit == 4
    strategy.allocate(second, hit, 2)  # hits block 0, adds block 2
    kv = strategy.swap_out([(1, 6)])
    assert kv.src_block_ids == [0, 2]
    assert strategy.block_table(0) == [0, 1]  # still there: the swapped block 0 is a copy
    check(strategy)
    block_ids = strategy.swap_in(kv)
    assert 0 not in block_ids and strategy.block_table(1) == block_ids
    check(strategy)
