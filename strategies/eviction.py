"""Eviction policies: which free block a paged pool hands out next (and so which cache entry dies).

A policy holds the pool's free blocks. Freed blocks join it (`push`), allocation takes one out
(`pop`), and a cached free block that a new request hits leaves it from anywhere (`remove`).
Whatever `pop` returns loses its cache entry, so the pop order is the eviction order.

`LRUFreeQueue` (vLLM v1's free queue): least recently freed first. It is a doubly linked list
threaded through the blocks themselves, so every operation is O(1); a sequence's blocks are freed
tail first, so its tail is evicted before its head.

Blocks are materialised lazily: the queue starts as every block id in order, but ids never handed
out yet are a counter, not objects. `pop` hands them out first, then the freed blocks: exactly the
order of a list that started full and had every freed block appended at its tail. So memory grows
with the blocks a run actually uses, never with the pool's size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Block:
    __slots__ = ("block_id", "ref_cnt", "num_tokens", "reserve_end", "cache_key", "map_key", "prev_free", "next_free")

    def __init__(self, block_id: int):
        self.block_id = block_id
        self.ref_cnt = 0
        self.num_tokens = 0  # slots holding KV of existing tokens
        self.reserve_end = 0  # slots below this will be written by the owner; above: internal frag
        self.cache_key: object | None = None  # (parent block hash, content) once full and cached
        self.map_key: object = None  # what the pool's cache map files it under (block_pool.py); stale once uncached
        self.prev_free: Block | None = None
        self.next_free: Block | None = None

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

    def __init__(self, num_blocks: int, materialise: Callable[[int], Block]):
        self._materialise = materialise  # block id -> its new Block (the pool records it)
        self._num_pool_blocks = num_blocks
        self._next_fresh_id = 0  # ids from here up were never handed out: the queue's head
        self._head = Block(-1)
        self._tail = Block(-1)
        self._head.next_free = self._tail
        self._tail.prev_free = self._head
        self.num_blocks = num_blocks

    def push(self, block: Block) -> None:
        last = self._tail.prev_free
        last.next_free = block
        block.prev_free = last
        block.next_free = self._tail
        self._tail.prev_free = block
        self.num_blocks += 1

    def push_all(self, blocks: list[Block]) -> None:
        """`push` for each block in order: the blocks are chained to each other, then to the tail."""
        tail = self._tail
        last = tail.prev_free
        for block in blocks:
            last.next_free = block
            block.prev_free = last
            last = block
        last.next_free = tail
        tail.prev_free = last
        self.num_blocks += len(blocks)

    def pop(self) -> Block:
        if self._next_fresh_id < self._num_pool_blocks:
            block = self._materialise(self._next_fresh_id)
            self._next_fresh_id += 1
            self.num_blocks -= 1
            return block
        block = self._head.next_free
        if block is self._tail:
            raise IndexError("no free block")
        after = block.next_free  # unlink the head (remove(), inlined: this is every allocation)
        self._head.next_free = after
        after.prev_free = self._head
        block.prev_free = block.next_free = None
        self.num_blocks -= 1
        return block

    def remove(self, block: Block) -> None:
        """Only freed blocks can be removed: a never-used block holds nothing anyone could want."""
        block.prev_free.next_free = block.next_free
        block.next_free.prev_free = block.prev_free
        block.prev_free = block.next_free = None
        self.num_blocks -= 1

    def block_ids(self) -> list[int]:
        ids = list(range(self._next_fresh_id, self._num_pool_blocks))
        block = self._head.next_free
        while block is not self._tail:
            ids.append(block.block_id)
            block = block.next_free
        return ids

