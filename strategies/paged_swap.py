"""Swap preemption for the paged family: a request's blocks out of the pool and back.

As vLLM v0's block manager swapped a sequence group: every block holding the group's tokens is
copied to the swap space once (blocks its sequences share by copy-on-write count once), the
group's tables are dropped, and on resume fresh pool blocks receive the copies and the tables are
rebuilt with the same sharing, lengths and reservations, so the memory breakdown is what it was.
What happens to the released blocks is the strategy's `free` (a prefix cache keeps them cached).
"""

from __future__ import annotations

from collections.abc import Callable

from kvbench.strategies.base import SwappedKV, SwappedSeq, ceil_div
from kvbench.strategies.paged_tables import PagedTables, SeqBlocks


def _token_blocks(tables: PagedTables, seq_id: int, num_computed_tokens: int) -> list:
    return tables.seqs[seq_id].blocks[: ceil_div(num_computed_tokens, tables.block_size)]


def num_swap_blocks(tables: PagedTables, seqs: list[tuple[int, int]]) -> int:
    return len({block.block_id for seq_id, n in seqs for block in _token_blocks(tables, seq_id, n)})


def swap_out(tables: PagedTables, seqs: list[tuple[int, int]], free: Callable[[int, int], bool]) -> SwappedKV:
    """Describe the group's token-holding blocks, then release each sequence with `free`.

    Each copy's fill is what the group itself holds there, as the invariant checker counts it: a
    block one of its sequences writes holds that writer's tokens and reserves up to its final
    length; a block it only inherited (a prefix hit whose writer may still be computing it, a
    fork's shared prefix) holds the inherited tokens, the writer's progress being no concern of
    the copy.
    """
    bs = tables.block_size
    index: dict[int, int] = {}  # block id -> its position in the swapped blocks
    fills: list[list] = []  # per swapped block: [num_tokens, reserve_end, written by the group]
    swapped: dict[int, SwappedSeq] = {}
    for seq_id, num_computed_tokens in seqs:
        state = tables.seqs[seq_id]
        tables.sync(state, num_computed_tokens)  # as free will
        num_inherited = min(state.num_inherited_tokens, num_computed_tokens)
        indices = []
        for i, block in enumerate(_token_blocks(tables, seq_id, num_computed_tokens)):
            j = index.setdefault(block.block_id, len(index))
            if j == len(fills):
                fills.append([0, 0, False])
            fill = fills[j]
            if i >= num_inherited // bs:
                num_tokens, reserve_end = _clamp(num_computed_tokens - i * bs, bs), _clamp(state.final_num_kv_tokens - i * bs, bs)
                if fill[2]:
                    num_tokens, reserve_end = max(fill[0], num_tokens), max(fill[1], reserve_end)
                fills[j] = [num_tokens, max(reserve_end, num_tokens), True]
            elif not fill[2]:
                fill[0] = fill[1] = max(fill[0], _clamp(num_inherited - i * bs, bs))
            indices.append(j)
        swapped[seq_id] = SwappedSeq(indices, num_computed_tokens, num_inherited, state.final_num_kv_tokens, state.stream)
    for seq_id, num_computed_tokens in seqs:
        free(seq_id, num_computed_tokens)
    return SwappedKV(list(index), [(num_tokens, reserve_end) for num_tokens, reserve_end, _ in fills], swapped)


def _clamp(num_tokens: int, block_size: int) -> int:
    return min(block_size, max(0, num_tokens))


def swap_in(tables: PagedTables, swapped: SwappedKV) -> list[int] | None:
    """Rebuild the group's tables over fresh blocks, returning their ids (in the order of
    `swapped.src_block_ids`); None (nothing changed) without room for the blocks plus one per sequence."""
    pool = tables.pool
    if swapped.num_blocks + len(swapped.seqs) > pool.num_free_blocks:
        return None
    blocks = pool.take_new(swapped.num_blocks)  # each with one reference
    for block, (num_tokens, reserve_end) in zip(blocks, swapped.block_fills):
        pool.set_fill(block, num_tokens, reserve_end)
    referenced = [False] * len(blocks)
    for seq_id, seq in swapped.seqs.items():
        table = []
        for i in seq.block_indices:
            if referenced[i]:
                pool.touch(blocks[i])
            referenced[i] = True
            table.append(blocks[i])
        state = SeqBlocks(table, seq.num_tokens, seq.final_num_kv_tokens, seq.stream)
        state.num_inherited_tokens = seq.num_inherited_tokens
        tables.seqs[seq_id] = state
        tables.num_logical_blocks += len(table)
    return [block.block_id for block in blocks]
