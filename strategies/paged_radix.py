"""`paged_radix`: SGLang's RadixAttention. A radix tree over token ids finds the longest cached prefix.

Composed of the block pool, the block tables (forks share, copy-on-write) and the radix tree
(radix_tree.py), whose pages are `strategy.block_size` tokens: SGLang's `page_size`, 1 by default
(token granularity), 16 to compare with `paged_prefix` block for block.

- Match at admission: the longest cached prefix in whole pages, capped below the prompt's length
  (its last token's logits give the next one). The sequence locks the path it matched.
- Insert what a sequence computed: its prefilled prefix when a chunk completes (so requests
  admitted later share it while it still runs, as SGLang's `cache_unfinished_req`), and everything
  when it finishes or is preempted (`cache_finished_req`). Only computed tokens are inserted, so
  nobody finds K/V still being written. A twin computed concurrently stays anonymous.
- Eviction: the tail pages of unlocked leaves, by `strategy.eviction` (lru, lfu, fifo), only once
  no never-used or contentless free block is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from kvbench.strategies.base import KVCacheStrategy, PoolSnapshot, PoolUsage, SeqView, StrategyConfig, ceil_div
from kvbench.strategies.block_pool import BlockPool
from kvbench.strategies.paged_tables import PagedTables, SeqBlocks
from kvbench.strategies.radix_tree import RadixFreeQueue, RadixNode, RadixTree
from kvbench.strategies.registry import register


class RadixEviction(Enum):
    lru = "lru"
    lfu = "lfu"
    fifo = "fifo"


@dataclass
class PagedRadixConfig(StrategyConfig):
    name: str = "paged_radix"
    block_size: int = 1  # SGLang's page_size
    eviction: RadixEviction = RadixEviction.lru


@register("paged_radix", PagedRadixConfig)
class PagedRadixStrategy(KVCacheStrategy):
    counted_events = ("evicted_blocks",)
    swap_unsupported = (
        "SGLang's radix cache keeps a preempted request's tokens in its tree (retract, then recompute "
        "what was evicted); it has no swap space. Use paged_prefix, or tiered offload of the cache"
    )

    def __init__(self, config: PagedRadixConfig, num_blocks: int, max_model_len: int):
        super().__init__(config, num_blocks, max_model_len)
        self.tree = RadixTree(self.block_size, RadixEviction(config.eviction).value, self._register)
        self.pool = BlockPool(
            num_blocks, self.block_size, eviction=lambda n, materialise: RadixFreeQueue(n, materialise, self.tree),
            counters=self.counters,
        )
        self.tables = PagedTables(self.pool, self.counters, self._log_copies)
        self.locked: dict[int, RadixNode] = {}  # seq_id -> the deepest node it locks
        # seq_id -> the end of the prefill chunk its last allocate made room for: it may write up
        # to there, then must call again so the chunk it computed is inserted.
        self._chunk_end: dict[int, int] = {}

    def _register(self, blocks) -> None:
        cache = self.pool.cache
        for block in blocks:
            cache(block, block.block_id)  # the tree is the index: the pool only marks it cached

    def cached_prefix_tokens(self, seq: SeqView, num_tokens: int) -> int:
        return self.tree.match(seq.stream, (num_tokens - 1) // self.block_size * self.block_size).num_tokens

    def probe_prefix_tokens(self, stream, num_tokens: int, memo: dict) -> int:
        return self.tree.match(stream, (num_tokens - 1) // self.block_size * self.block_size).num_tokens

    def prefix_cache_version(self) -> int:
        return self.tree.num_inserts

    def allocate(self, seq: SeqView, num_computed_tokens: int, num_new_tokens: int) -> int | None:
        seq_id = seq.seq_id
        num_total_tokens = num_computed_tokens + num_new_tokens
        state = self.tables.seqs.get(seq_id)
        if state is None:
            match = self.tree.match(seq.stream, num_computed_tokens)
            if match.num_tokens != num_computed_tokens:
                raise ValueError(
                    f"seq {seq_id}: num_computed_tokens={num_computed_tokens} is not its cached prefix "
                    f"({match.num_tokens} tokens)"
                )
            num_reviving = sum(1 for block in match.blocks if block.ref_cnt == 0)
            num_needed = ceil_div(num_total_tokens, self.block_size) - len(match.blocks)
            if num_needed > self.pool.num_free_blocks - num_reviving:
                return None
            # Locked before new blocks are taken, so the eviction they cause cannot take the hit.
            self.locked[seq_id] = self.tree.lock_match(match)
            state = self.tables.admit(seq, match.blocks, num_total_tokens)
        else:
            chunk_end = self._chunk_end[seq_id]
            if num_new_tokens == 1 and not chunk_end:
                # Decoding (the call page 1 makes every token): nothing to insert, no chunk to stop at.
                return self.tables.grow_one(state, num_computed_tokens)
            if not self.tables.grow(state, num_computed_tokens, num_new_tokens):
                return None
            if chunk_end:
                # The first call after a prefill chunk (the headroom stopped there): insert the chunk.
                # Decoded tokens wait for the finish, so how often the scheduler calls changes nothing.
                self._insert(seq_id, state, min(num_computed_tokens, chunk_end))
        chunk_end = self._chunk_end[seq_id] = num_total_tokens if num_new_tokens > 1 else 0
        return self._headroom(state, chunk_end)

    def headroom(self, seq_id: int) -> int:
        return self._headroom(self.tables.seqs[seq_id], self._chunk_end[seq_id])

    def _headroom(self, state: SeqBlocks, chunk_end: int) -> int:
        headroom = self.tables.headroom(state)
        if chunk_end // self.block_size * self.block_size > state.num_tokens:
            return min(headroom, chunk_end - state.num_tokens)
        return headroom

    def _insert(self, seq_id: int, state: SeqBlocks, num_computed_tokens: int) -> None:
        num_tokens = min(num_computed_tokens // self.block_size, len(state.blocks)) * self.block_size
        node = self.tree.insert(state.stream, state.blocks, num_tokens)
        old = self.locked[seq_id]
        if node is not old:
            self.tree.lock(node)
            self.tree.unlock(old)
            self.locked[seq_id] = node

    def fork(self, parent_id: int, child: SeqView, num_computed_tokens: int) -> bool:
        self.tables.fork_shared(parent_id, child, num_computed_tokens)
        node = self.locked[parent_id]
        self.tree.lock(node)
        self.locked[child.seq_id] = node
        self._chunk_end[child.seq_id] = 0
        return True

    def free(self, seq_id: int, num_computed_tokens: int) -> bool:
        state = self.tables.drop(seq_id, num_computed_tokens)
        self._insert(seq_id, state, num_computed_tokens)
        self.tree.unlock(self.locked.pop(seq_id))
        del self._chunk_end[seq_id]
        return self.tables.release(state)

    def block_table(self, seq_id: int) -> list[int]:
        return self.tables.block_table(seq_id)

    def usage(self) -> PoolUsage:
        return self.tables.usage()

    def max_seq_kv_tokens(self) -> int:
        return self.pool_slots

    def snapshot(self) -> PoolSnapshot:
        snap = self.tables.snapshot()
        positions = self.tree.block_positions()
        bs = self.block_size
        for state in self.tables.seqs.values():
            for i, block in enumerate(state.blocks):
                if block.cache_key is not None:
                    expected = (i * bs, state.stream.block_key(i * bs, (i + 1) * bs))
                    snap.cache_key_checks.append((block.block_id, positions.get(block.block_id), expected))
        return snap
