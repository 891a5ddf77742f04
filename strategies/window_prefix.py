"""`paged_prefix` on a model with sliding-window layers: a table per layer group, each group's hit
rules (group_prefix_tables.py), blocks released as they leave a window (group_tables.py).

`PagedPrefixStrategy` builds this class when its layer groups include a sliding window, so the
registry name stays `paged_prefix` and every other model gets exactly the strategy it always had.
The rules are paged_prefix's otherwise: blocks registered as soon as scheduled tokens fill them,
a hit capped below the known length, blocks registered for tokens never computed forgotten when
the sequence is freed, forks share. Not here: tiers below the pool and swap preemption (a
request's K/V would move per group).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvbench.strategies.base import KVCacheStrategy, PoolSnapshot, PoolUsage, SeqView, StrategyConfig
from kvbench.strategies.block_pool import BlockPool
from kvbench.strategies.eviction import EvictionPolicy
from kvbench.strategies.group_prefix_tables import GroupedPrefixTables
from kvbench.strategies.group_tables import GroupedSeq
from kvbench.strategies.prefix_index import KeyChain, PrefixIndex
from kvbench.strategies.tiers import enabled_tiers
from kvbench.tokens import TokenSequence

if TYPE_CHECKING:
    from kvbench.model_spec import KVGroup


class WindowPrefixStrategy(KVCacheStrategy):
    """paged_prefix over per-group block tables (built by PagedPrefixStrategy, not registered)."""

    counted_events = ("evicted_blocks",)
    window_aware = True
    grouped = True
    swap_unsupported = "its sliding-window layer groups keep one block table each (swap moves one)"

    def __init__(
        self, config: StrategyConfig, num_blocks: int, max_model_len: int, kv_groups: list[KVGroup],
        eviction_policy: type[EvictionPolicy],
    ):
        super().__init__(config, num_blocks, max_model_len)
        if enabled_tiers(getattr(config, "tiers", None)):
            raise ValueError(
                "strategy.tiers: tiers below the pool keep one block per key, not one per layer group; "
                "they are not modelled for sliding-window models (leave the tiers' capacities at 0)"
            )
        self.pool = BlockPool(num_blocks, self.block_size, eviction_policy, counters=self.counters)
        self.tables = GroupedPrefixTables(self.pool, self.counters, self._log_copies, kv_groups)
        self.index = PrefixIndex(self.pool)  # each sequence's key chain, one for every group
        self.num_kv_groups = self.tables.num_groups

    def _hits(self, seq: SeqView, max_num_blocks: int):
        return self.tables.lookup(self.index.chain(seq.seq_id, seq.stream), max_num_blocks)

    def cached_prefix_tokens(self, seq: SeqView, num_tokens: int) -> int:
        return len(self._hits(seq, (num_tokens - 1) // self.block_size)[0]) * self.block_size

    def probe_prefix_tokens(self, stream: TokenSequence, num_tokens: int, memo: dict) -> int:
        chain = memo.get(("paged_prefix", self.block_size))  # the same chain keys as paged_prefix's
        if chain is None:
            chain = memo[("paged_prefix", self.block_size)] = KeyChain(stream, self.block_size)
        return len(self.tables.lookup(chain, (num_tokens - 1) // self.block_size)[0]) * self.block_size

    def prefix_cache_version(self) -> int:
        # Content becoming findable, or room made by blocks leaving a window (without a free).
        return self.pool.lookup_version + self.tables.num_dropped_blocks

    def release_out_of_window(self, seq_id: int, num_computed_tokens: int) -> bool:
        return self.tables.release_out_of_window(self.tables.seqs[seq_id], num_computed_tokens)

    def can_hold(self, seq: SeqView, num_computed_tokens: int, num_tokens: int) -> bool:
        hits = self._hits(seq, num_computed_tokens // self.block_size)
        return self.tables.fits_whole_prompt(num_tokens, self.max_num_batched_tokens, self.max_model_len, hits)

    def allocate(self, seq: SeqView, num_computed_tokens: int, num_new_tokens: int) -> int | None:
        bs = self.block_size
        num_total_tokens = num_computed_tokens + num_new_tokens
        states = self.tables.seqs.get(seq.seq_id)
        if states is None:
            hits = self._hits(seq, num_computed_tokens // bs)
            if len(hits[0]) * bs != num_computed_tokens:
                raise ValueError(
                    f"seq {seq.seq_id}: num_computed_tokens={num_computed_tokens} is not its cached prefix "
                    f"({len(hits[0]) * bs} tokens)"
                )
            states = self.tables.admit(seq, hits, num_total_tokens)
            if states is None:
                return None
        elif not self.tables.grow(states, num_computed_tokens, num_new_tokens):
            return None
        if num_total_tokens // bs > states[0].num_cached_blocks:  # a block filled
            self.tables.register(states, self.index.chain(seq.seq_id, seq.stream), num_total_tokens)
        return self._headroom(states)

    def headroom(self, seq_id: int) -> int:
        return self._headroom(self.tables.seqs[seq_id])

    def _headroom(self, states: GroupedSeq) -> int:
        """Stop also at the write that fills a block not registered yet (every group registers
        the same blocks), so it is registered then."""
        headroom = self.tables.headroom(states)
        state = states[0]
        first_unregistered = max(state.num_scheduled_tokens // self.block_size, state.num_cached_blocks)
        until_registration = (first_unregistered + 1) * self.block_size - 1 - state.num_tokens
        return min(headroom, until_registration)

    def fork(self, parent_id: int, child: SeqView, num_computed_tokens: int) -> bool:
        self.tables.fork_shared(parent_id, child, num_computed_tokens)
        self.index.share_chain(parent_id, child.seq_id, child.stream, num_computed_tokens)
        return True

    def free(self, seq_id: int, num_computed_tokens: int) -> bool:
        for state in self.tables.seqs[seq_id]:
            self.index.unregister_uncomputed(state, num_computed_tokens)
        states = self.tables.drop(seq_id, num_computed_tokens)
        self.tables.register(states, self.index.chain(seq_id, states[0].stream), num_computed_tokens)
        freed = self.tables.release(states)
        self.index.forget(seq_id)
        return freed

    def block_table(self, seq_id: int) -> list[int]:
        return self.tables.block_table(seq_id)

    def usage(self) -> PoolUsage:
        return self.tables.usage()

    def max_seq_kv_tokens(self) -> int:
        return self.num_blocks // self.num_kv_groups * self.block_size

    def snapshot(self) -> PoolSnapshot:
        snap = self.tables.snapshot()
        snap.cache_key_checks = self.tables.key_checks()
        return snap
