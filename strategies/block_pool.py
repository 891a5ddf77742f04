"""Blocks, the free queue and the prefix-cache map shared by the paged strategies.

The free queue is a doubly linked list threaded through the blocks themselves (vLLM v1's design):
popping the head, adding at either end and unlinking a cached block that a new request revives are
all O(1), and the queue order is the eviction order. A freed block keeps its cache entry until it
is popped for reuse, so "free" and "cached" are one list; `num_cached_blocks` counts the latter.
Freed blocks without a cache entry go to the head (reused first: they can never serve a hit), freed
cached blocks to the tail (least recently freed evicted first), as `BlockPool.free_blocks` in
vLLM 0.33.0 (`vllm/v1/core/block_pool.py`).

The pool also keeps the memory accounting of held blocks (ref_cnt > 0): each block knows how many
of its slots hold tokens (`num_tokens`) and up to which offset the owning sequence will still
write (`reserve_end`); the rest is internal fragmentation. Aggregates change only when a block
changes, never by scanning.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable


class Block:
    __slots__ = ("block_id", "ref_cnt", "num_tokens", "reserve_end", "cache_key", "prev_free", "next_free")

    def __init__(self, block_id: int):
        self.block_id = block_id
        self.ref_cnt = 0
        self.num_tokens = 0  # slots holding KV of existing tokens
        self.reserve_end = 0  # slots below this will be written by the owner; above: internal frag
        self.cache_key: Hashable | None = None  # (parent block hash, content) once full and cached
        self.prev_free: Block | None = None
        self.next_free: Block | None = None

    def __repr__(self) -> str:
        return f"Block({self.block_id}, ref={self.ref_cnt}, tokens={self.num_tokens})"


class FreeBlockQueue:
    """Doubly linked list of free blocks with sentinels; allocation pops the head."""

    def __init__(self, blocks: Iterable[Block]):
        self._head = Block(-1)
        self._tail = Block(-1)
        self._head.next_free = self._tail
        self._tail.prev_free = self._head
        self.num_blocks = 0
        for block in blocks:
            self.append(block)

    def append(self, block: Block) -> None:
        last = self._tail.prev_free
        last.next_free = block
        block.prev_free = last
        block.next_free = self._tail
        self._tail.prev_free = block
        self.num_blocks += 1

    def prepend_n(self, blocks: list[Block]) -> None:
        """Put `blocks` at the head, in their order (the first of them becomes the head)."""
        if not blocks:
            return
        first = self._head.next_free
        prev = self._head
        for block in blocks:
            block.prev_free = prev
            prev.next_free = block
            prev = block
        prev.next_free = first
        first.prev_free = prev
        self.num_blocks += len(blocks)

    def popleft(self) -> Block:
        block = self._head.next_free
        if block is self._tail:
            raise IndexError("no free block")
        self.remove(block)
        return block

    def remove(self, block: Block) -> None:
        block.prev_free.next_free = block.next_free
        block.next_free.prev_free = block.prev_free
        block.prev_free = block.next_free = None
        self.num_blocks -= 1

    def block_ids(self) -> list[int]:
        ids = []
        block = self._head.next_free
        while block is not self._tail:
            ids.append(block.block_id)
            block = block.next_free
        return ids


class BlockPool:
    """All blocks of a paged strategy, with ref counts, free queue, cache map and accounting."""

    def __init__(self, num_blocks: int, block_size: int):
        self.block_size = block_size
        self.blocks = [Block(i) for i in range(num_blocks)]
        self.free_queue = FreeBlockQueue(self.blocks)
        # cache_key -> the block a lookup finds (held or free), the earliest registered; later
        # blocks with the same content (a prompt recomputed while its twin was cached) wait in
        # `_twins`, so the content stays findable when the first is evicted (vLLM 0.33.0's
        # BlockHashToBlockMap keeps every block under its hash, in insertion order).
        self.cached: dict[Hashable, Block] = {}
        self._twins: dict[Hashable, list[Block]] = {}
        self.num_cached_free_blocks = 0  # free blocks that still hold a cache entry
        self.token_slots = 0  # over held blocks
        self.reserved_slots = 0  # over held blocks
        self.num_evicted_blocks = 0

    @property
    def num_free_blocks(self) -> int:
        return self.free_queue.num_blocks

    @property
    def num_held_blocks(self) -> int:
        return len(self.blocks) - self.free_queue.num_blocks

    def take_new(self, num_blocks: int) -> list[Block]:
        """Pop blocks for new content, evicting their old cache entries. Caller checked the count."""
        out = []
        for _ in range(num_blocks):
            block = self.free_queue.popleft()
            if block.cache_key is not None:
                self.uncache(block)
                self.num_cached_free_blocks -= 1
                self.num_evicted_blocks += 1
            block.ref_cnt = 1
            block.num_tokens = 0
            block.reserve_end = 0
            out.append(block)
        return out

    def cache(self, block: Block, key: Hashable) -> None:
        """Register a held, full block under `key`, behind any block already registered there."""
        block.cache_key = key
        first = self.cached.setdefault(key, block)
        if first is not block:
            self._twins.setdefault(key, []).append(block)

    def uncache(self, block: Block) -> None:
        """Drop a block's cache entry; the next block registered under its key takes its place."""
        key = block.cache_key
        block.cache_key = None
        twins = self._twins.get(key)
        if self.cached[key] is block:
            if twins:
                self.cached[key] = twins.pop(0)
            else:
                del self.cached[key]
        else:
            twins.remove(block)
        if twins is not None and not twins:
            del self._twins[key]

    def cached_blocks(self) -> list[Block]:
        """Every block with a cache entry, twins included."""
        return [*self.cached.values(), *(b for twins in self._twins.values() for b in twins)]

    def touch(self, block: Block) -> None:
        """Add a reference to a block that holds wanted content (a prefix hit or a fork)."""
        if block.ref_cnt == 0:
            self.free_queue.remove(block)
            self.num_cached_free_blocks -= 1
            self.token_slots += block.num_tokens
            self.reserved_slots += block.reserve_end - block.num_tokens
        block.ref_cnt += 1

    def release(self, blocks_tail_first: Iterable[Block]) -> bool:
        """Drop one reference from each block; blocks reaching zero join the free queue.

        Pass a sequence's blocks tail first. Cached ones join the tail in that order (its tail is
        evicted before its head); the others go to the head in that order too, ahead of every
        block freed earlier (vLLM reuses them first). Returns whether any block became free.
        """
        reuse_first: list[Block] = []
        freed = False
        for block in blocks_tail_first:
            block.ref_cnt -= 1
            if block.ref_cnt == 0:
                self.token_slots -= block.num_tokens
                self.reserved_slots -= block.reserve_end - block.num_tokens
                if block.cache_key is not None:
                    self.num_cached_free_blocks += 1
                    self.free_queue.append(block)
                else:
                    block.num_tokens = block.reserve_end = 0
                    reuse_first.append(block)
                freed = True
        self.free_queue.prepend_n(reuse_first)
        return freed

    def set_fill(self, block: Block, num_tokens: int, reserve_end: int) -> None:
        """Set a held block's filled slots and reservation end, keeping the aggregates."""
        self.token_slots += num_tokens - block.num_tokens
        self.reserved_slots += (reserve_end - num_tokens) - (block.reserve_end - block.num_tokens)
        block.num_tokens = num_tokens
        block.reserve_end = reserve_end
