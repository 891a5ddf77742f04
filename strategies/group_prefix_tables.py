"""Prefix caching over a block table per layer group (vLLM 0.33.0's hybrid KV cache coordinator
with prefix caching on).

Every group registers its full blocks under its own key, (group index, the block's chain key from
prefix_index.py): a block holds one group's layers, so the same tokens are cached once per group.
A sliding-window group's blocks that leave the window are released as in group_tables.py and,
being registered, stay cached and evictable (least recently freed first) like any freed block
with content.

A hit follows each group's rules, and is what every group agrees on:
- a full-attention group needs every block of the prefix: its hit is the leading run of cached
  blocks (`FullAttentionManager.find_longest_cache_hit`);
- a sliding-window group of window W needs only what the next token attends to, the last
  ceil((W - 1) / block_size) blocks before the hit's end: it scans from the longest candidate
  down and ends its hit at the first place preceded by that many cached blocks (or, finding none,
  takes its leading run of cached blocks, shorter than that); the blocks before them are
  NULL_BLOCK (`SlidingWindowManager.find_longest_cache_hit`);
- groups of one kind (full, or one window) are looked up together: a block counts as cached when
  every one of them has it. Full groups go first; each kind may shorten the candidate, and the
  lookup repeats until no kind shortens it; with one full kind and one other, one pass decides
  (`HybridKVCacheCoordinator.find_longest_cache_hit`).

An admission revives every group's hits before any group takes new blocks, so one group's new
blocks never evict another group's hits (vLLM's two-phase `allocate_new_computed_blocks`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from kvbench.strategies.base import SeqView, ceil_div
from kvbench.strategies.block_pool import Block, BlockPool
from kvbench.strategies.group_tables import NULL_BLOCK, GroupedSeq, GroupedTables, WindowTables
from kvbench.strategies.paged_tables import PagedTables, SeqBlocks
from kvbench.strategies.prefix_index import KeyChain

if TYPE_CHECKING:
    from kvbench.model_spec import KVGroup


class GroupedPrefixTables(GroupedTables):
    """GroupedTables whose full blocks are cached per group, and whose admissions take hits."""

    def __init__(
        self, pool: BlockPool, counters: dict[str, int], log_copies: Callable[[Iterable[tuple[int, int]]], None],
        groups: list[KVGroup],
    ):
        super().__init__(pool, counters, log_copies, groups)
        kinds: dict[int, list[int]] = {}  # window (0: full) -> its groups, in order of first appearance
        for g, group in enumerate(groups):
            kinds.setdefault(group.sliding_window, []).append(g)
        self.kinds = sorted(kinds.items(), key=lambda kind: kind[0] != 0)  # full first, else as found
        self.one_pass = len(self.kinds) == 2 and self.kinds[0][0] == 0

    # -- hits --------------------------------------------------------------------------------------

    def lookup(self, chain: KeyChain, max_num_blocks: int) -> list[list[Block]]:
        """Every group's hit for the stream of `chain`, at most `max_num_blocks` (the same number
        of blocks in every group; NULL_BLOCK before a sliding group's window)."""
        hits: list[list[Block] | None] = [None] * self.num_groups
        num_blocks = max_num_blocks
        while True:
            candidate = num_blocks
            for window, group_ids in self.kinds:
                if window == 0 and hits[group_ids[0]] is not None:
                    candidate = min(candidate, len(hits[group_ids[0]]))  # a full hit is downward-closed
                    continue
                found = (
                    self._window_hit(chain, group_ids, window, candidate) if window
                    else self._full_hit(chain, group_ids, candidate)
                )
                for g, group_hits in zip(group_ids, found):
                    hits[g] = group_hits
                candidate = len(found[0])
            shortened = candidate < num_blocks
            num_blocks = candidate
            if not shortened or self.one_pass:
                break
        for window, group_ids in self.kinds:
            if window == 0:
                for g in group_ids:
                    del hits[g][num_blocks:]
        return hits

    def _cached(self, key: object, group_ids: list[int]) -> list[Block] | None:
        """The block holding `key` in each of the groups, or None when one of them lacks it."""
        blocks = []
        for g in group_ids:
            block = self.pool.lookup((g, key))
            if block is None:
                return None
            blocks.append(block)
        return blocks

    def _full_hit(self, chain: KeyChain, group_ids: list[int], max_num_blocks: int) -> list[list[Block]]:
        hits: list[list[Block]] = [[] for _ in group_ids]
        for i in range(max_num_blocks):
            cached = self._cached(chain.key(i), group_ids)
            if cached is None:
                break
            for group_hits, block in zip(hits, cached):
                group_hits.append(block)
        return hits

    def _window_hit(self, chain: KeyChain, group_ids: list[int], window: int, max_num_blocks: int) -> list[list[Block]]:
        num_needed = ceil_div(window - 1, self.block_size)  # blocks the token after the hit attends to
        hits = [[NULL_BLOCK] * max_num_blocks for _ in group_ids]
        num_run = 0  # cached blocks from i up
        end = None
        for i in range(max_num_blocks - 1, -1, -1):
            cached = self._cached(chain.key(i), group_ids)
            if cached is None:
                num_run = 0
                continue
            for group_hits, block in zip(hits, cached):
                group_hits[i] = block
            num_run += 1
            if num_run >= num_needed:
                end = i + num_run
                break
        if end is None:  # no run long enough: the leading cached blocks are still a hit
            end = num_run
        for group_hits in hits:
            del group_hits[end:]
        return hits

    # -- admission and registration ------------------------------------------------------------

    def admit(self, seq: SeqView, hits: list[list[Block]], num_total_tokens: int) -> GroupedSeq | None:
        """A new sequence holding every group's `hits` (from `lookup`), with room up to `num_total_tokens`."""
        if not self.fits(hits, num_total_tokens):
            return None
        hits = hits or [[]] * self.num_groups
        num_hit_tokens = len(hits[0]) * self.block_size
        states = GroupedSeq(seq.seq_id, (  # every group's hits revived first
            self._in_group(g, self._revive, tables, seq, group_hits, num_hit_tokens)
            for g, (tables, group_hits) in enumerate(zip(self.groups, hits))
        ))
        num_blocks = ceil_div(num_total_tokens, self.block_size)
        for g, (tables, state) in enumerate(zip(self.groups, states)):
            self._in_group(g, tables._append_blocks, state, num_blocks - len(state.blocks))
            state.num_scheduled_tokens = num_total_tokens
        self.seqs[seq.seq_id] = states
        return states

    def _revive(self, tables: PagedTables, seq: SeqView, hits: list[Block], num_hit_tokens: int) -> SeqBlocks:
        """A new sequence's state in one group, holding its hits (NULL_BLOCK before the window)."""
        num_skipped = tables.skippable_blocks(num_hit_tokens) if isinstance(tables, WindowTables) else 0
        held = hits[num_skipped:]
        for block in held:
            self.pool.touch(block)
        state = SeqBlocks([NULL_BLOCK] * num_skipped + held, num_hit_tokens, seq.final_num_kv_tokens, seq.stream)
        state.num_cached_blocks = len(state.blocks)
        tables.seqs[seq.seq_id] = state
        tables.num_logical_blocks += len(held)
        if num_skipped:
            tables.num_skipped[seq.seq_id] = num_skipped
        return state

    def register(self, states: GroupedSeq, chain: KeyChain, num_tokens: int) -> None:
        """Make every group's blocks that `num_tokens` tokens fill findable by content (blocks
        already released out of a window hold nothing to find)."""
        num_full_blocks = num_tokens // self.block_size
        keys = chain.extend(num_full_blocks)  # in one pass, rather than a chain step per block
        for g, state in enumerate(states):
            end = min(num_full_blocks, len(state.blocks))
            for i in range(state.num_cached_blocks, end):
                block = state.blocks[i]
                if block is not NULL_BLOCK:
                    self.pool.cache(block, (g, keys[i]))
            if end > state.num_cached_blocks:
                state.num_cached_blocks = end

    def key_checks(self) -> list[tuple[int, object, object]]:
        """(block id, its key, the key re-derived from a holder's content) for every registered
        block a live sequence holds, in every group (see PrefixIndex.key_checks)."""
        checks = []
        for g, tables in enumerate(self.groups):
            for state in tables.seqs.values():
                fresh = KeyChain(state.stream, self.block_size)
                for i, block in enumerate(state.blocks):
                    if block.cache_key is not None:
                        checks.append((block.block_id, block.cache_key, (g, fresh.key(i))))
        return checks
