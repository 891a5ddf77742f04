"""The paged family's pool: blocks, reference counts, the prefix-cache map and the accounting.

Free blocks live in an eviction policy (eviction.py; LRU today, vLLM v1's free queue). A freed
block keeps its cache entry until the policy hands it out for new content: "free" and "cached" are
one set, and `num_cached_free_blocks` counts the latter. The pool owns caching and uncaching, and
counts the entries it evicts into the strategy's `evicted_blocks` counter when it has one.

The pool also keeps the memory accounting of held blocks (ref_cnt > 0): each block knows how many
of its slots hold tokens (`num_tokens`) and up to which offset the owning sequence will still
write (`reserve_end`); the rest is internal fragmentation. Aggregates change only when a block
changes, never by scanning. Only blocks a run has used exist as objects (see eviction.py), so a
huge pool costs no more than a small one.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from kvbench.strategies.eviction import Block, EvictionPolicy, LRUFreeQueue

__all__ = ["Block", "BlockPool"]


class BlockPool:
    """All blocks of a paged strategy, with ref counts, free blocks, cache map and accounting."""

    def __init__(
        self, num_blocks: int, block_size: int, eviction: type[EvictionPolicy] = LRUFreeQueue,
        counters: dict[str, int] | None = None,
    ):
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.blocks: list[Block] = []  # materialised blocks; block_id == index (handed out in id order first)
        self.free_queue: EvictionPolicy = eviction(num_blocks, self._materialise)
        self.cached: dict[Hashable, Block] = {}  # cache_key -> block (held or free)
        self.num_cached_free_blocks = 0  # free blocks that still hold a cache entry
        self.token_slots = 0  # over held blocks
        self.reserved_slots = 0  # over held blocks
        # Evictions go to the strategy's counters when it declares them (an extra steps.csv column).
        self._counters = counters if counters is not None and "evicted_blocks" in counters else None
        self.num_evicted_blocks = 0

    def _materialise(self, block_id: int) -> Block:
        block = Block(block_id)
        self.blocks.append(block)
        return block

    @property
    def num_free_blocks(self) -> int:
        return self.free_queue.num_blocks

    @property
    def num_held_blocks(self) -> int:
        return self.num_blocks - self.free_queue.num_blocks

    def ref_cnts(self) -> list[int]:
        """ref_cnt of every block id (never-used blocks: 0)."""
        return [b.ref_cnt for b in self.blocks] + [0] * (self.num_blocks - len(self.blocks))

    def take_new(self, num_blocks: int) -> list[Block]:
        """Blocks for new content, evicting their old cache entries. Caller checked the count."""
        out = []
        for _ in range(num_blocks):
            block = self.free_queue.pop()
            if block.cache_key is not None:
                self._evict(block)
            block.ref_cnt = 1
            block.num_tokens = 0
            block.reserve_end = 0
            out.append(block)
        return out

    def _evict(self, block: Block) -> None:
        del self.cached[block.cache_key]
        block.cache_key = None
        self.num_cached_free_blocks -= 1
        self.num_evicted_blocks += 1
        if self._counters is not None:
            self._counters["evicted_blocks"] += 1

    def cache(self, block: Block, key: Hashable) -> bool:
        """Make a held block findable under `key`; False if another block already holds that key."""
        if key in self.cached:
            return False
        block.cache_key = key
        self.cached[key] = block
        return True

    def uncache(self, block: Block) -> None:
        """Forget a held block's cache entry (its content will not be what the key says)."""
        del self.cached[block.cache_key]
        block.cache_key = None

    def lookup(self, key: Hashable) -> Block | None:
        return self.cached.get(key)

    def touch(self, block: Block) -> None:
        """Add a reference to a block that holds wanted content (a prefix hit or a fork)."""
        if block.ref_cnt == 0:
            self.free_queue.remove(block)
            self.num_cached_free_blocks -= 1
            self.token_slots += block.num_tokens
            self.reserved_slots += block.reserve_end - block.num_tokens
        block.ref_cnt += 1

    def release(self, blocks_tail_first: Iterable[Block]) -> bool:
        """Drop one reference from each block; blocks reaching zero become free.

        Pass a sequence's blocks tail first: with LRU its tail is then evicted before its head.
        Returns whether any block became free.
        """
        freed = False
        for block in blocks_tail_first:
            block.ref_cnt -= 1
            if block.ref_cnt == 0:
                self.token_slots -= block.num_tokens
                self.reserved_slots -= block.reserve_end - block.num_tokens
                if block.cache_key is not None:
                    self.num_cached_free_blocks += 1
                else:
                    block.num_tokens = block.reserve_end = 0
                self.free_queue.push(block)
                freed = True
        return freed

    def set_fill(self, block: Block, num_tokens: int, reserve_end: int) -> None:
        """Set a held block's filled slots and reservation end, keeping the aggregates."""
        self.token_slots += num_tokens - block.num_tokens
        self.reserved_slots += (reserve_end - num_tokens) - (block.reserve_end - block.num_tokens)
        block.num_tokens = num_tokens
        block.reserve_end = reserve_end
