"""`paged_prefix`: paged + copy-on-write + automatic prefix caching, with vLLM v1's rules.

Composed of the block pool (which caches, uncaches and evicts: LRU, least recently freed first,
and a sequence's blocks are freed tail first, so its tail is evicted before its head), the block
tables (forks share, copy-on-write) and the prefix index (keys, lookups; see prefix_index.py).

- Blocks are registered as soon as the tokens scheduled into them fill them, so requests admitted
  in the same step already share.
- A hit is a run of leading full blocks, capped below the sequence's known length: the last token
  is always computed, since its logits give the next token.
- Blocks registered for tokens that were never computed (a sequence preempted before its step
  ran) are forgotten when it is freed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from kvbench.strategies.base import KVCacheStrategy, PoolSnapshot, PoolUsage, SeqView, StrategyConfig
from kvbench.strategies.block_pool import BlockPool
from kvbench.strategies.eviction import EvictionPolicy, LRUFreeQueue
from kvbench.strategies.paged_tables import PagedTables
from kvbench.strategies.prefix_index import PrefixIndex
from kvbench.strategies.registry import register


@dataclass
class PagedPrefixConfig(StrategyConfig):
    name: str = "paged_prefix"


@register("paged_prefix", PagedPrefixConfig)
class PagedPrefixStrategy(KVCacheStrategy):
    counted_events = ("evicted_blocks",)
    # Which cached block dies first; a plugin swaps it (examples/kvbench-prefix-mru).
    eviction_policy: ClassVar[type[EvictionPolicy]] = LRUFreeQueue

    def __init__(self, config: StrategyConfig, num_blocks: int, max_model_len: int):
        super().__init__(config, num_blocks, max_model_len)
        self.pool = BlockPool(num_blocks, self.block_size, self.eviction_policy, counters=self.counters)
        self.tables = PagedTables(self.pool, self.counters, self._log_copies)
        self.index = PrefixIndex(self.pool)

    def cached_prefix_tokens(self, seq: SeqView, num_tokens: int) -> int:
        max_num_blocks = (num_tokens - 1) // self.block_size
        return len(self.index.lookup(seq.seq_id, seq.stream, max_num_blocks)) * self.block_size

    def prefix_cache_version(self) -> int:
        return self.pool.lookup_version

    def can_hold(self, seq: SeqView, num_computed_tokens: int, num_tokens: int) -> bool:
        hits = self.index.lookup(seq.seq_id, seq.stream, num_computed_tokens // self.block_size)
        return self.tables.fits(hits, num_tokens)

    def allocate(self, seq: SeqView, num_computed_tokens: int, num_new_tokens: int) -> int | None:
        bs = self.block_size
        num_total_tokens = num_computed_tokens + num_new_tokens
        state = self.tables.seqs.get(seq.seq_id)
        if state is None:
            hits = self.index.lookup(seq.seq_id, seq.stream, num_computed_tokens // bs)
            if len(hits) * bs != num_computed_tokens:
                raise ValueError(
                    f"seq {seq.seq_id}: num_computed_tokens={num_computed_tokens} is not its cached prefix "
                    f"({len(hits) * bs} tokens)"
                )
            state = self.tables.admit(seq, hits, num_total_tokens)
            if state is None:
                return None
        elif num_new_tokens == 1:
            if self.tables.grow_one(state, num_computed_tokens) is None:
                return None
        elif not self.tables.grow(state, num_computed_tokens, num_new_tokens):
            return None
        if num_total_tokens // bs > state.num_cached_blocks:  # a block filled (the table covers the tokens)
            self.index.register(seq.seq_id, state, num_total_tokens)
        return self._headroom(state)

    def headroom(self, seq_id: int) -> int:
        return self._headroom(self.tables.seqs[seq_id])

    def _headroom(self, state) -> int:
        """Stop also at the write that fills a block not registered yet, so it is registered then."""
        headroom = self.tables.headroom(state)
        bs = self.block_size
        first_unregistered = state.num_scheduled_tokens // bs
        if first_unregistered < state.num_cached_blocks:
            first_unregistered = state.num_cached_blocks
        until_registration = (first_unregistered + 1) * bs - 1 - state.num_tokens
        return headroom if headroom < until_registration else until_registration

    def fork(self, parent_id: int, child: SeqView, num_computed_tokens: int) -> bool:
        self.tables.fork_shared(parent_id, child, num_computed_tokens)
        self.index.share_chain(parent_id, child.seq_id, child.stream, num_computed_tokens)
        return True

    def free(self, seq_id: int, num_computed_tokens: int) -> bool:
        self.index.unregister_uncomputed(self.tables.seqs[seq_id], num_computed_tokens)
        state = self.tables.drop(seq_id, num_computed_tokens)
        self.index.register(seq_id, state, num_computed_tokens)
        freed = self.tables.release(state)
        self.index.forget(seq_id)
        return freed

    def block_table(self, seq_id: int) -> list[int]:
        return self.tables.block_table(seq_id)

    def usage(self) -> PoolUsage:
        return self.tables.usage()

    def max_seq_kv_tokens(self) -> int:
        return self.pool_slots

    def snapshot(self) -> PoolSnapshot:
        snap = self.tables.snapshot()
        snap.cache_key_checks = self.index.key_checks(self.tables.seqs)
        return snap
