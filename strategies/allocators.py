"""Free-space allocators over a linear address space of blocks, for the contiguous strategy.

Both hand out runs of consecutive block ids, lowest address first, so the holes they leave are
real: external fragmentation is measured, not assumed.

- `FirstFitAllocator`: exact-size runs; the first hole large enough wins; freed runs coalesce with
  free neighbours.
- `BuddyAllocator`: runs of a power of two blocks, split from and merged with their buddy (the
  allocator the PagedAttention paper gives its Orca baselines). A request for n blocks holds the
  next power of two; the surplus is internal fragmentation. A pool that is not a power of two is
  cut into aligned power-of-two regions, largest first, and no merge crosses a region's edge.
"""

from __future__ import annotations

import bisect
from abc import ABC, abstractmethod


def next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


class FreeSpaceAllocator(ABC):
    def __init__(self, num_blocks: int):
        self.num_blocks = num_blocks
        self.num_free_blocks = num_blocks
        self.version = 0  # bumped by every allocation and free: the holes are unchanged while it is

    @abstractmethod
    def run_size(self, num_blocks: int) -> int:
        """Blocks actually held for a request of `num_blocks`."""

    @abstractmethod
    def allocate(self, num_blocks: int) -> int | None:
        """Start of a run of `run_size(num_blocks)` blocks, or None (nothing changed)."""

    @abstractmethod
    def free(self, start: int, num_blocks: int) -> None:
        """Return the run allocated at `start` for a request of `num_blocks`."""

    @abstractmethod
    def holes(self) -> list[tuple[int, int]]:
        """Free runs (start, num_blocks) that an allocation can use whole, in address order."""

    @abstractmethod
    def largest_run(self) -> int:
        """The largest `num_blocks` an empty pool could serve."""

    def unusable_free_blocks(self, num_blocks: int) -> int:
        """Free blocks in holes too small for a request of `num_blocks`."""
        need = self.run_size(num_blocks)
        return sum(size for _, size in self.holes() if size < need)


class FirstFitAllocator(FreeSpaceAllocator):
    def __init__(self, num_blocks: int):
        super().__init__(num_blocks)
        self._starts = [0]  # sorted hole starts
        self._sizes = {0: num_blocks}

    def run_size(self, num_blocks: int) -> int:
        return num_blocks

    def allocate(self, num_blocks: int) -> int | None:
        for i, start in enumerate(self._starts):
            size = self._sizes[start]
            if size >= num_blocks:
                del self._sizes[start]
                if size == num_blocks:
                    del self._starts[i]
                else:
                    self._starts[i] = start + num_blocks
                    self._sizes[start + num_blocks] = size - num_blocks
                self.num_free_blocks -= num_blocks
                self.version += 1
                return start
        return None

    def free(self, start: int, num_blocks: int) -> None:
        self.version += 1
        i = bisect.bisect_left(self._starts, start)
        end = start + num_blocks
        if i < len(self._starts) and self._starts[i] == end:  # merge the hole after
            num_blocks += self._sizes.pop(end)
            del self._starts[i]
        if i > 0:
            prev = self._starts[i - 1]
            if prev + self._sizes[prev] == start:  # merge into the hole before
                self._sizes[prev] += num_blocks
                self.num_free_blocks += end - start
                return
        self._starts.insert(i, start)
        self._sizes[start] = num_blocks
        self.num_free_blocks += end - start

    def holes(self) -> list[tuple[int, int]]:
        return [(start, self._sizes[start]) for start in self._starts]

    def largest_run(self) -> int:
        return self.num_blocks


class BuddyAllocator(FreeSpaceAllocator):
    def __init__(self, num_blocks: int):
        super().__init__(num_blocks)
        self._max_order = num_blocks.bit_length()
        self._free: list[list[int]] = [[] for _ in range(self._max_order)]  # per order: sorted starts
        self._region_starts: list[int] = []
        self._region_orders: list[int] = []
        start = 0
        for order in reversed(range(self._max_order)):
            if num_blocks >> order & 1:
                self._region_starts.append(start)
                self._region_orders.append(order)
                self._free[order].append(start)
                start += 1 << order
        for starts in self._free:
            starts.sort()

    def run_size(self, num_blocks: int) -> int:
        return next_pow2(num_blocks)

    def allocate(self, num_blocks: int) -> int | None:
        order = (num_blocks - 1).bit_length()
        for found in range(order, self._max_order):
            if self._free[found]:
                break
        else:
            return None
        start = self._free[found].pop(0)
        while found > order:  # split, keeping the lower half
            found -= 1
            bisect.insort(self._free[found], start + (1 << found))
        self.num_free_blocks -= 1 << order
        self.version += 1
        return start

    def free(self, start: int, num_blocks: int) -> None:
        order = (num_blocks - 1).bit_length()
        self.num_free_blocks += 1 << order
        self.version += 1
        region_order = self._region_orders[bisect.bisect_right(self._region_starts, start) - 1]
        while order < region_order:
            buddy = start ^ (1 << order)
            starts = self._free[order]
            i = bisect.bisect_left(starts, buddy)
            if i == len(starts) or starts[i] != buddy:
                break
            del starts[i]
            start = min(start, buddy)
            order += 1
        bisect.insort(self._free[order], start)

    def holes(self) -> list[tuple[int, int]]:
        return sorted((start, 1 << order) for order, starts in enumerate(self._free) for start in starts)

    def largest_run(self) -> int:
        return 1 << self._region_orders[0]


ALLOCATORS: dict[str, type[FreeSpaceAllocator]] = {"first_fit": FirstFitAllocator, "buddy": BuddyAllocator}
