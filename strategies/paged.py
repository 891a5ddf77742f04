"""`paged`: vLLM's PagedAttention. A sequence gets a block when it crosses a block boundary.

Nothing is shared: a fork (parallel sampling, beam search) copies every block of the parent at
once, and the copies are counted (`fork_copied_blocks`). `paged_cow` shares instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kvbench.strategies import paged_swap
from kvbench.strategies.base import (
    KVCacheStrategy, PoolSnapshot, PoolUsage, SeqView, StrategyConfig, SwappedKV,
)
from kvbench.strategies.block_pool import BlockPool
from kvbench.strategies.group_tables import GroupedTables, make_tables
from kvbench.strategies.registry import register

if TYPE_CHECKING:
    from kvbench.model_spec import KVGroup


@dataclass
class PagedConfig(StrategyConfig):
    name: str = "paged"
    # Sliding-window models: "shared" pool of uniform pages, or "static" equal pools per layer group
    # (group_tables.py, GROUP_POOLS); nothing changes for other models.
    group_pools: str = "shared"


@register("paged", PagedConfig)
class PagedStrategy(KVCacheStrategy):
    supports_swap = True
    window_aware = True

    def __init__(self, config: StrategyConfig, num_blocks: int, max_model_len: int, kv_groups: list[KVGroup] | None = None):
        super().__init__(config, num_blocks, max_model_len)
        self.pool = BlockPool(num_blocks, self.block_size)
        self.tables = make_tables(
            self.pool, self.counters, self._log_copies, kv_groups, getattr(config, "group_pools", "shared"),
        )
        self.grouped = isinstance(self.tables, GroupedTables)
        # Plain paged shares no block (forks copy, nothing is cached), so a sequence's blocks are
        # its own and `free` releases them by what the sequence knows (PagedTables.free_sole). A
        # subclass may share (paged_cow), so it takes the general path unless it says otherwise.
        self._sole_owners = type(self) is PagedStrategy and not self.grouped
        if self.grouped:
            self.num_kv_groups = self.tables.num_groups
            self.supports_swap = False
            self.swap_unsupported = "its sliding-window layer groups keep one block table each (swap moves one)"

    def release_out_of_window(self, seq_id: int, num_computed_tokens: int) -> bool:
        return self.grouped and self.tables.release_out_of_window(self.tables.seqs[seq_id], num_computed_tokens)

    def prefix_cache_version(self) -> int:
        # Blocks leaving a sliding window make room without a free: a refused admission retries then.
        return self.tables.num_dropped_blocks if self.grouped else 0

    def allocate(self, seq: SeqView, num_computed_tokens: int, num_new_tokens: int) -> int | None:
        tables = self.tables
        state = tables.seqs.get(seq.seq_id)
        if state is None:
            if num_computed_tokens:
                raise ValueError(
                    f"seq {seq.seq_id}: {self.config.name} caches no prefix, got num_computed_tokens={num_computed_tokens}"
                )
            state = tables.admit(seq, [], num_new_tokens)
            if state is None:
                return None
        elif num_new_tokens == 1:
            return tables.grow_one(state, num_computed_tokens)
        elif not tables.grow(state, num_computed_tokens, num_new_tokens):
            return None
        return tables.headroom(state)

    def allocate_decodes(self, batch: list[tuple[SeqView, int]]) -> list[int]:
        # The tables answer the batch in one loop, unless each sequence must take `allocate`: with a
        # table per layer group, or in a subclass that changes what `allocate` does.
        if self.grouped or type(self).allocate is not PagedStrategy.allocate:
            return super().allocate_decodes(batch)
        return self.tables.grow_decodes(batch)

    def can_hold(self, seq: SeqView, num_computed_tokens: int, num_tokens: int) -> bool:
        if self.grouped:
            return self.tables.fits_whole_prompt(num_tokens, self.max_num_batched_tokens, self.max_model_len)
        return self.tables.fits([], num_tokens)

    def headroom(self, seq_id: int) -> int:
        return self.tables.headroom(self.tables.seqs[seq_id])

    def fork(self, parent_id: int, child: SeqView, num_computed_tokens: int) -> bool:
        return self.tables.fork_copied(parent_id, child, num_computed_tokens) is not None

    def free(self, seq_id: int, num_computed_tokens: int) -> bool:
        if self._sole_owners:
            return self.tables.free_sole(seq_id, num_computed_tokens)
        return self.tables.release(self.tables.drop(seq_id, num_computed_tokens))

    def num_swap_blocks(self, seqs: list[tuple[int, int]]) -> int:
        return paged_swap.num_swap_blocks(self.tables, seqs)

    def swap_out(self, seqs: list[tuple[int, int]]) -> SwappedKV:
        return paged_swap.swap_out(self.tables, seqs, self.free)

    def swap_in(self, swapped: SwappedKV) -> list[int] | None:
        return paged_swap.swap_in(self.tables, swapped)

    def block_table(self, seq_id: int) -> list[int]:
        return self.tables.block_table(seq_id)

    def usage(self) -> PoolUsage:
        return self.tables.usage()

    def max_seq_kv_tokens(self) -> int:
        return self.num_blocks // self.num_kv_groups * self.block_size

    def snapshot(self) -> PoolSnapshot:
        return self.tables.snapshot()
