"""Block tables per layer group, for models with sliding-window layers (vLLM's hybrid KV cache manager).

A model's attention layers are split into groups of equal size (`kvbench.model_spec.kv_groups`):
every group's block (page) holds `block_size` tokens of the same number of layers, so all groups
draw from one BlockPool. A sequence has one block table per group. A full-attention group keeps
every block; a sliding-window group of window W releases the blocks that lie wholly before the
window of the next token to compute: with `c` tokens computed, the first `max(0, c - W + 1)`
tokens are never read again, so their whole blocks go back to the pool (vLLM 0.33.0's
`SlidingWindowManager.get_num_skipped_tokens` / `remove_skipped_blocks`). A released block's place
in the table is taken by NULL_BLOCK (id -1), as vLLM pads with its null block.

A growth first releases what left the window (even when it is then refused, as vLLM does: see
`GroupedTables.grow`), then needs the sum of every group's new blocks; nothing else changes when
they do not fit.

A sequence's headroom ends where a sliding group's next block falls out of the window, so the
scheduler calls `allocate` at that step and the block is released when vLLM releases it (vLLM
drops skipped blocks at every step's `allocate_slots`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from kvbench.strategies.base import PoolSnapshot, PoolUsage, SeqView, ceil_div
from kvbench.strategies.block_pool import Block, BlockPool
from kvbench.strategies.paged_tables import PagedTables, SeqBlocks

if TYPE_CHECKING:
    from kvbench.model_spec import KVGroup

# How the groups share the pool: "shared" (any group takes any free block: vLLM's hybrid
# allocator, and Jenga's when pages are of one size) or "static" (each group a fixed equal share,
# set at startup: the per-type partition Jenga compares against).
GROUP_POOLS = ("shared", "static")
NULL_BLOCK_ID = -1
NULL_BLOCK = Block(NULL_BLOCK_ID)  # stands in a table for a block released out of the window


class WindowTables(PagedTables):
    """One sliding-window group's tables: PagedTables that release blocks out of the window."""

    def __init__(self, pool: BlockPool, counters: dict[str, int], log_copies, sliding_window: int):
        super().__init__(pool, counters, log_copies)
        self.sliding_window = sliding_window
        self.num_skipped: dict[int, int] = {}  # seq_id -> leading blocks released (NULL_BLOCK)

    def skippable_blocks(self, num_computed_tokens: int) -> int:
        """Leading whole blocks no later token attends to, once `num_computed_tokens` are computed."""
        return max(0, num_computed_tokens - self.sliding_window + 1) // self.block_size

    def drop_skipped(self, seq_id: int, state: SeqBlocks, num_computed_tokens: int) -> bool:
        """Release the blocks out of the window (the state is synced to `num_computed_tokens`).
        Whether a block became free."""
        start = self.num_skipped.get(seq_id, 0)
        end = min(self.skippable_blocks(num_computed_tokens), len(state.blocks))
        if end <= start:
            return False
        dropped = state.blocks[start:end]
        state.blocks[start:end] = [NULL_BLOCK] * (end - start)
        self.num_skipped[seq_id] = end
        self.num_logical_blocks -= len(dropped)
        return self.pool.release(reversed(dropped))

    def next_drop_tokens(self, seq_id: int) -> int:
        """The computed length at which the next block falls out of the window."""
        return (self.num_skipped.get(seq_id, 0) + 1) * self.block_size + self.sliding_window - 1

    def headroom(self, state: SeqBlocks, seq_id: int | None = None) -> int:
        headroom = super().headroom(state)
        if seq_id is None:
            return headroom
        until_drop = self.next_drop_tokens(seq_id) - state.num_tokens
        return min(headroom, max(until_drop, state.num_scheduled_tokens - state.num_tokens, 1))

    def fork_copied(self, parent_id: int, child: SeqView, num_computed_tokens: int) -> SeqBlocks | None:
        parent = self.seqs[parent_id]
        num_skipped = self.num_skipped.get(parent_id, 0)
        num_blocks = ceil_div(num_computed_tokens, self.block_size) - num_skipped
        if num_blocks > self.pool.num_free_blocks:
            return None
        self.sync(parent, num_computed_tokens)
        state = SeqBlocks([NULL_BLOCK] * num_skipped, num_skipped * self.block_size, child.final_num_kv_tokens, child.stream)
        self.seqs[child.seq_id] = state
        self.num_skipped[child.seq_id] = num_skipped
        self._append_blocks(state, num_blocks)
        self.sync(state, num_computed_tokens)  # the copies hold the parent's tokens
        pairs = [(src.block_id, dst.block_id) for src, dst in zip(parent.blocks[num_skipped:], state.blocks[num_skipped:])]
        self._log_copies(pairs)
        self._counters["fork_copied_blocks"] += num_blocks
        return state

    def fork_shared(self, parent_id: int, child: SeqView, num_computed_tokens: int) -> SeqBlocks:
        parent = self.seqs[parent_id]
        self.sync(parent, num_computed_tokens)
        num_skipped = self.num_skipped.get(parent_id, 0)
        shared = parent.blocks[: ceil_div(num_computed_tokens, self.block_size)]
        for block in shared[num_skipped:]:
            self.pool.touch(block)
        state = SeqBlocks(list(shared), num_computed_tokens, child.final_num_kv_tokens, child.stream)
        state.num_cached_blocks = parent.num_cached_blocks  # registered blocks are full, so shared
        self.seqs[child.seq_id] = state
        self.num_skipped[child.seq_id] = num_skipped
        self.num_logical_blocks += len(shared) - num_skipped
        return state

    def drop(self, seq_id: int, num_computed_tokens: int) -> SeqBlocks:
        state = super().drop(seq_id, num_computed_tokens)
        self.num_skipped.pop(seq_id, None)
        return state

    def release(self, state: SeqBlocks) -> bool:
        held = [block for block in state.blocks if block.block_id != NULL_BLOCK_ID]
        self.num_logical_blocks -= len(held)
        return self.pool.release(reversed(held))


class GroupedSeq(list):
    """A sequence's SeqBlocks in every group, in group order."""

    __slots__ = ("seq_id",)

    def __init__(self, seq_id: int, states: Iterable[SeqBlocks]):
        super().__init__(states)
        self.seq_id = seq_id


class GroupedTables:
    """A sequence's block tables in every layer group, over one shared pool.

    The same calls as PagedTables (what paged and paged_cow use), where a sequence's state is the
    list of its per-group SeqBlocks. The first group's table is the sequence's `block_table`.
    """

    def __init__(
        self, pool: BlockPool, counters: dict[str, int], log_copies: Callable[[Iterable[tuple[int, int]]], None],
        groups: list[KVGroup], group_pools: str = "shared",
    ):
        self.pool = pool
        self.block_size = pool.block_size
        self.groups = [
            WindowTables(pool, counters, log_copies, g.sliding_window) if g.is_sliding else PagedTables(pool, counters, log_copies)
            for g in groups
        ]
        self.seqs: dict[int, GroupedSeq] = {}
        self.num_dropped_blocks = 0  # released out of a window: room made without a free
        # Per group: the blocks its tables hold (each block belongs to one group) and the K/V
        # token slots written in them, kept by `_in_group` around every call that changes them.
        self.group_held_blocks = [0] * len(groups)
        self.group_token_slots = [0] * len(groups)
        # Static pools: each group may hold at most its equal share of the pool (None: shared).
        self.group_pool_blocks = pool.num_blocks // len(groups) if group_pools == "static" else None

    @property
    def num_groups(self) -> int:
        return len(self.groups)

    def _fits(self, num_needed: list[int]) -> bool:
        """Whether each group can take its `num_needed` free blocks now: from the shared pool, and
        with static pools also within the group's own share."""
        if sum(num_needed) > self.pool.num_free_blocks:
            return False
        if self.group_pool_blocks is None:
            return True
        return all(held + n <= self.group_pool_blocks for held, n in zip(self.group_held_blocks, num_needed))

    def _in_group(self, g: int, call: Callable, *args):
        """`call(*args)`, a call on group g's tables: what it changes in the pool's held blocks and
        token slots is group g's (a call on one group's tables touches only that group's blocks)."""
        pool = self.pool
        num_free_blocks, token_slots = pool.num_free_blocks, pool.token_slots
        result = call(*args)
        self.group_held_blocks[g] += num_free_blocks - pool.num_free_blocks
        self.group_token_slots[g] += pool.token_slots - token_slots
        return result

    def fits(self, hits: list[list[Block]] | list[Block], num_total_tokens: int) -> bool:
        """Whether a new sequence with room up to `num_total_tokens` fits now, holding `hits`: each
        group's cached blocks (NULL_BLOCK before a sliding group's window), or none."""
        hits = hits or [[]] * self.num_groups
        return self._fits([self._num_admission_blocks(t, h, num_total_tokens) for t, h in zip(self.groups, hits)])

    def fits_whole_prompt(
        self, num_tokens: int, max_num_batched_tokens: int | None, max_model_len: int,
        hits: list[list[Block]] | None = None,
    ) -> bool:
        """Whether a new sequence of `num_tokens` fits, prefilled chunk by chunk: a sliding group
        never holds more than its window plus the tokens in flight, as vLLM 0.33.0 caps admission
        (`SlidingWindowSpec.max_admission_blocks_per_request`). vLLM counts two steps' token
        budgets in flight (`max_concurrent_batches` is 2 under its default async scheduling)."""
        hits = hits or [[]] * self.num_groups
        num_needed = []
        for tables, group_hits in zip(self.groups, hits):
            cap_blocks = None
            if isinstance(tables, WindowTables) and max_num_batched_tokens is not None:
                max_in_flight_tokens = 2 * max_num_batched_tokens
                cap_tokens = min(tables.sliding_window - 1 + max_in_flight_tokens, max_model_len)
                cap_blocks = ceil_div(cap_tokens, self.block_size) + 1
            num_needed.append(self._num_admission_blocks(tables, group_hits, num_tokens, cap_blocks))
        return self._fits(num_needed)

    def _num_admission_blocks(
        self, tables: PagedTables, hits: list[Block], num_tokens: int, cap_blocks: int | None = None,
    ) -> int:
        """Free blocks one group of a new sequence takes (vLLM 0.33.0's
        `SingleTypeKVCacheManager.get_num_blocks_to_allocate`): its blocks up to `num_tokens` (at
        most `cap_blocks`) beyond its cached `hits`, plus each hit that is free now (reviving it
        takes it out of the free blocks). A sliding group holds no hit before the window."""
        num_blocks = ceil_div(num_tokens, self.block_size)
        if cap_blocks is not None:
            num_blocks = min(num_blocks, cap_blocks)
        num_skipped = tables.skippable_blocks(len(hits) * self.block_size) if isinstance(tables, WindowTables) else 0
        num_reviving = sum(1 for block in hits[num_skipped:] if block.ref_cnt == 0)
        return max(num_blocks - max(num_skipped, len(hits)), 0) + num_reviving

    def admit(self, seq: SeqView, hits: list[Block], num_total_tokens: int) -> GroupedSeq | None:
        if hits:
            raise ValueError("grouped tables cache no prefix")
        if not self.fits(hits, num_total_tokens):
            return None
        states = GroupedSeq(seq.seq_id, (
            self._in_group(g, tables.admit, seq, [], num_total_tokens) for g, tables in enumerate(self.groups)
        ))
        self.seqs[seq.seq_id] = states
        return states

    def release_out_of_window(self, states: GroupedSeq, num_computed_tokens: int) -> bool:
        """Release every sliding group's blocks that `num_computed_tokens` leave behind the window.
        Whether a block became free."""
        free_before = self.pool.num_free_blocks
        for g, (tables, state) in enumerate(zip(self.groups, states)):
            if isinstance(tables, WindowTables):
                if num_computed_tokens != state.num_tokens:
                    self._in_group(g, tables.sync, state, num_computed_tokens)
                self._in_group(g, tables.drop_skipped, states.seq_id, state, num_computed_tokens)
        num_freed = self.pool.num_free_blocks - free_before
        self.num_dropped_blocks += num_freed
        return num_freed > 0

    def grow_one(self, states: GroupedSeq, num_computed_tokens: int) -> int | None:
        """`grow(states, num_computed_tokens, 1)` then `headroom(states)` (None when refused), the
        call PagedTables answers in one step; grouped tables take the general path."""
        return self.headroom(states) if self.grow(states, num_computed_tokens, 1) else None

    def grow(self, states: GroupedSeq, num_computed_tokens: int, num_new_tokens: int) -> bool:
        """Release what left the window, then room in every group for the new tokens, or False.

        The release happens even when the growth is refused, as vLLM 0.33.0's `allocate_slots`
        removes skipped blocks before it counts: the preemption that follows a refusal then frees
        its victim's blocks in front of them, and the order blocks are handed out in stays vLLM's.
        """
        bs = self.block_size
        self.release_out_of_window(states, num_computed_tokens)
        num_total_tokens = num_computed_tokens + num_new_tokens
        num_needed = []
        for state in states:
            idx = num_computed_tokens // bs
            copy_on_write = (
                num_new_tokens > 0 and num_computed_tokens % bs != 0 and idx < len(state.blocks)
                and state.blocks[idx].ref_cnt > 1
            )
            num_needed.append(max(0, ceil_div(num_total_tokens, bs) - len(state.blocks)) + copy_on_write)
        if not self._fits(num_needed):
            return False
        for g, (tables, state) in enumerate(zip(self.groups, states)):
            grown = self._in_group(g, tables.grow, state, num_computed_tokens, num_new_tokens)
            assert grown, "a group's growth was counted but did not fit"
        return True

    def headroom(self, states: GroupedSeq) -> int:
        seq_id = states.seq_id
        return min(
            tables.headroom(state, seq_id) if isinstance(tables, WindowTables) else tables.headroom(state)
            for tables, state in zip(self.groups, states)
        )

    def fork_copied(self, parent_id: int, child: SeqView, num_computed_tokens: int) -> GroupedSeq | None:
        parents = self.seqs[parent_id]
        num_needed = []
        for tables, parent in zip(self.groups, parents):
            skipped = tables.num_skipped.get(parent_id, 0) if isinstance(tables, WindowTables) else 0
            num_needed.append(ceil_div(num_computed_tokens, self.block_size) - skipped)
        if not self._fits(num_needed):
            return None
        states = GroupedSeq(child.seq_id, (
            self._in_group(g, tables.fork_copied, parent_id, child, num_computed_tokens)
            for g, tables in enumerate(self.groups)
        ))
        self.seqs[child.seq_id] = states
        return states

    def fork_shared(self, parent_id: int, child: SeqView, num_computed_tokens: int) -> GroupedSeq:
        states = GroupedSeq(child.seq_id, (
            self._in_group(g, tables.fork_shared, parent_id, child, num_computed_tokens)
            for g, tables in enumerate(self.groups)
        ))
        self.seqs[child.seq_id] = states
        return states

    def drop(self, seq_id: int, num_computed_tokens: int) -> GroupedSeq:
        del self.seqs[seq_id]
        return GroupedSeq(seq_id, (
            self._in_group(g, tables.drop, seq_id, num_computed_tokens) for g, tables in enumerate(self.groups)
        ))

    def release(self, states: GroupedSeq) -> bool:
        freed = False
        for g, (tables, state) in enumerate(zip(self.groups, states)):
            freed |= self._in_group(g, tables.release, state)
        return freed

    def block_table(self, seq_id: int) -> list[int]:
        return self.groups[0].block_table(seq_id)

    def group_block_tables(self, seq_id: int) -> list[list[int]]:
        """The sequence's table in every group (NULL_BLOCK_ID where a block left the window)."""
        return [tables.block_table(seq_id) for tables in self.groups]

    def usage(self) -> PoolUsage:
        bs = self.block_size
        usage = self.groups[0].usage()
        usage.logical_slots = sum(tables.num_logical_blocks for tables in self.groups) * bs
        usage.group_held_slots = tuple(num_blocks * bs for num_blocks in self.group_held_blocks)
        usage.group_token_slots = tuple(self.group_token_slots)
        return usage

    def snapshot(self) -> PoolSnapshot:
        """Every group's tables in one snapshot, each keyed (seq_id, group index), so the invariant
        checker sees every reference to the shared pool; NULL_BLOCK_ID entries hold nothing."""
        snap = self.groups[0].snapshot()
        for key in ("tables", "num_tokens", "final_num_kv_tokens", "num_inherited_tokens"):
            setattr(snap, key, {})
        for g, tables in enumerate(self.groups):
            for seq_id, s in tables.seqs.items():
                snap.tables[seq_id, g] = [b.block_id for b in s.blocks]
                snap.num_tokens[seq_id, g] = s.num_tokens
                snap.final_num_kv_tokens[seq_id, g] = s.final_num_kv_tokens
                snap.num_inherited_tokens[seq_id, g] = s.num_inherited_tokens
        return snap


def make_tables(
    pool: BlockPool, counters: dict[str, int], log_copies: Callable[[Iterable[tuple[int, int]]], None],
    kv_groups: list[KVGroup] | None, group_pools: str = "shared",
) -> PagedTables | GroupedTables:
    """The tables a paged strategy needs: PagedTables when every attention layer is full (one
    group, exactly what it has always used), GroupedTables when some layer has a window."""
    if group_pools not in GROUP_POOLS:
        raise ValueError(f"strategy.group_pools={group_pools!r}: one of {', '.join(GROUP_POOLS)}")
    if not kv_groups or not any(g.is_sliding for g in kv_groups):
        return PagedTables(pool, counters, log_copies)
    return GroupedTables(pool, counters, log_copies, kv_groups, group_pools)
