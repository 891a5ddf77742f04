"""One storage tier below the GPU pool (CPU memory, local disk, a remote pool): an LRU set of blocks.

A tier holds the cache keys of the blocks whose K/V it stores (the content, not a GPU block id: a
block loaded back is copied into whatever GPU block is free). It holds at most `capacity_blocks`;
inserting into a full tier pushes out its least recently used block, which the caller passes on to
the next tier down or drops. Reading a block (a hit that loads it) makes it the most recent.
Lookups (`__contains__`) change nothing, so a strategy can ask what it would hit without moving it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class TierStore:
    def __init__(self, name: str, capacity_blocks: int):
        if capacity_blocks < 1:
            raise ValueError(f"tier {name!r} holds {capacity_blocks} blocks: less than one")
        self.name = name
        self.capacity_blocks = capacity_blocks
        self._keys: OrderedDict[Hashable, None] = OrderedDict()  # least recently used first

    def __contains__(self, key: Hashable) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def keys(self) -> list[Hashable]:
        """Held keys, least recently used first (the order they would be pushed out)."""
        return list(self._keys)

    def touch(self, key: Hashable) -> None:
        """A held block was read: it becomes the most recently used."""
        self._keys.move_to_end(key)

    def remove(self, key: Hashable) -> None:
        del self._keys[key]

    def insert(self, key: Hashable) -> Hashable | None:
        """Store a block not held yet; returns the key pushed out to make room, if any."""
        self._keys[key] = None
        if len(self._keys) > self.capacity_blocks:
            return self._keys.popitem(last=False)[0]
        return None
