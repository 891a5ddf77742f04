"""Eviction policies: which free block a paged pool hands out next (and so which cache entry dies).

A policy holds the pool's free blocks. Freed blocks join it (`push`), allocation takes one out
(`pop`), and a cached free block that a new request hits leaves it from anywhere (`remove`).
Whatever `pop` returns loses its cache entry, so the pop order is the eviction order.

`LRUFreeQueue` (vLLM v1's free queue): least recently freed first; a sequence's blocks are freed
tail first, so its tail is evicted before its head. vLLM threads a doubly linked list through its
blocks; here the freed blocks are a deque in the order freed, so that a release's blocks join it in
one C-level `extend` and a take is a `popleft` (both once per block of every output, where a linked
list costs a Python call and four link updates). A block revived out of the middle (`remove`, a
prefix hit) is not searched for: its entry stays where it is and the block counts it stale
(`Block.num_stale_entries`), and it is skipped on reaching the head. A block's entries lie in the
order it was pushed and only its last can be live (when the block is free), so the count alone says
which to skip. The deque is compacted when stale entries outnumber live ones, so every operation is
O(1) amortised and the deque holds at most about twice the free blocks.

Blocks are materialised lazily: the queue starts as every block id in order, but ids never handed
out yet are a counter, not objects. `pop` hands them out first, then the freed blocks: exactly the
order of a list that started full and had every freed block appended at its tail. So memory grows
with the blocks a run actually uses, never with the pool's size.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol


class Block:
    __slots__ = ("block_id", "ref_cnt", "num_tokens", "reserve_end", "cache_key", "map_key", "num_stale_entries")

    def __init__(self, block_id: int):
        self.block_id = block_id
        self.ref_cnt = 0
        self.num_tokens = 0  # slots holding KV of existing tokens
        self.reserve_end = 0  # slots below this will be written by the owner; above: internal frag
        self.cache_key: object | None = None  # (parent block hash, content) once full and cached
        self.map_key: object = None  # what the pool's cache map files it under (block_pool.py); None when not filed
        self.num_stale_entries = 0  # its entries in LRUFreeQueue's deque that are no longer live

    def __repr__(self) -> str:
        return f"Block({self.block_id}, ref={self.ref_cnt}, tokens={self.num_tokens})"


class EvictionPolicy(Protocol):
    """The free blocks of a pool, in the order they will be handed out.

    Built as `cls(num_blocks, materialise)`: `materialise(block_id)` makes the Block object of an
    id never handed out before (the pool keeps it), so a policy can start from a counter.
    """

    num_blocks: int  # free blocks held

    def push(self, block: Block) -> None:
        """A block became free (its cache entry, if any, is kept until it is popped)."""

    def pop(self) -> Block:
        """The next block to hand out. IndexError when none is free."""

    def remove(self, block: Block) -> None:
        """Take a free block out of turn (a cached block revived by a prefix hit)."""

    def block_ids(self) -> list[int]:
        """Free block ids in the order `pop` would return them (tests and the invariant checker)."""

    # Optional: `push_all(blocks)`, `push` for each block in order, in one call (a sequence's
    # release frees a block of every output at once); the pool calls `push` per block without it.


class LRUFreeQueue:
    """Least recently freed first; never-used blocks before any freed one."""

    # Stale entries tolerated before a compaction is considered (a few cost nothing to skip).
    _MIN_STALE_TO_COMPACT = 64

    def __init__(self, num_blocks: int, materialise: Callable[[int], Block]):
        self._materialise = materialise  # block id -> its new Block (the pool records it)
        self._num_pool_blocks = num_blocks
        self._next_fresh_id = 0  # ids from here up were never handed out: the queue's head
        self._freed: deque[Block] = deque()  # freed blocks, least recently freed first, stale entries among them
        self._num_stale = 0
        self.num_blocks = num_blocks
        # The deque of freed blocks once no block is left that was never used (None before), for a
        # caller that takes them itself: `popleft`, then `skip_stale` where the block has stale
        # entries, and each block taken counted off `num_blocks`.
        self.freed_once_all_used: deque[Block] | None = self._freed if num_blocks == 0 else None

    def push(self, block: Block) -> None:
        self._freed.append(block)
        self.num_blocks += 1

    def push_all(self, blocks: list[Block]) -> None:
        """`push` for each block in order."""
        self._freed.extend(blocks)
        self.num_blocks += len(blocks)

    def pop(self) -> Block:
        if self._next_fresh_id < self._num_pool_blocks:
            block = self._materialise(self._next_fresh_id)
            self._next_fresh_id += 1
            self.num_blocks -= 1
            if self._next_fresh_id == self._num_pool_blocks:
                self.freed_once_all_used = self._freed
            return block
        if not self.num_blocks:
            raise IndexError("no free block")
        block = self._freed.popleft()
        if block.num_stale_entries:
            block = self.skip_stale(block)
        self.num_blocks -= 1
        return block

    def skip_stale(self, block: Block) -> Block:
        """The first live block from `block` (just popped off the head) on."""
        freed = self._freed
        while block.num_stale_entries:
            block.num_stale_entries -= 1
            self._num_stale -= 1
            block = freed.popleft()
        return block

    def remove(self, block: Block) -> None:
        """Only freed blocks can be removed: a never-used block holds nothing anyone could want."""
        block.num_stale_entries += 1
        self.num_blocks -= 1
        self._num_stale += 1
        if self._num_stale > self._MIN_STALE_TO_COMPACT and self._num_stale > self.num_blocks:
            self._compact()

    def _compact(self) -> None:
        """Drop every stale entry, in place (a caller may hold the deque)."""
        live = []
        for block in self._freed:
            if block.num_stale_entries:
                block.num_stale_entries -= 1
            else:
                live.append(block)
        self._freed.clear()
        self._freed.extend(live)
        self._num_stale = 0

    def block_ids(self) -> list[int]:
        ids = list(range(self._next_fresh_id, self._num_pool_blocks))
        to_skip: dict[int, int] = {}  # block id -> its stale entries not reached yet
        for block in self._freed:
            num_stale = to_skip.get(block.block_id, block.num_stale_entries)
            if num_stale:
                to_skip[block.block_id] = num_stale - 1
            else:
                ids.append(block.block_id)
        return ids
