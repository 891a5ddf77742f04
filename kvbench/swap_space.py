"""The swap space of swap preemption (`scheduler.preemption=swap`): host memory in blocks.

`hardware.cpu_swap_bytes` holds `num_blocks` blocks of the GPU pool's block size. The scheduler
takes blocks for a request it swaps out and gives them back when the request is swapped in; the
block ids are what a device executor copies into and out of (its pinned host pool).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kvbench.sequence import RequestState
from kvbench.strategies.base import SwappedKV

if TYPE_CHECKING:
    from kvbench.executors.base import Executor
    from kvbench.scheduler import Scheduler


class SwapSpace:
    """Host blocks: freed ones are reused first (oldest freed first), then ids never used, in order.

    Ids never used are a counter, so a large swap space costs nothing until it is used.
    """

    def __init__(self, num_blocks: int):
        self.num_blocks = num_blocks
        self._freed: deque[int] = deque()
        self._next_unused = 0

    @property
    def num_free_blocks(self) -> int:
        return len(self._freed) + self.num_blocks - self._next_unused

    def allocate(self, num_blocks: int) -> list[int]:
        """`num_blocks` host block ids; the caller checked `num_free_blocks`."""
        assert num_blocks <= self.num_free_blocks, "swap space overcommitted"
        reused = [self._freed.popleft() for _ in range(min(num_blocks, len(self._freed)))]
        fresh = range(self._next_unused, self._next_unused + num_blocks - len(reused))
        self._next_unused += len(fresh)
        return reused + list(fresh)

    def free(self, block_ids: list[int]) -> None:
        self._freed.extend(block_ids)

    def free_block_ids(self) -> list[int]:
        """Every free id, in the order they will be handed out (for the invariant checks)."""
        return [*self._freed, *range(self._next_unused, self.num_blocks)]


@dataclass(slots=True)
class SwappedGroup:
    """A request waiting in the swap space to resume decoding."""

    group: RequestState
    kv: SwappedKV  # what the strategy needs to rebuild its tables
    host_block_ids: list[int]  # host_block_ids[i] holds the copy of kv.src_block_ids[i]


@dataclass(slots=True)
class SwapStats:
    """Counted over a run; `summary_fields` turns them into summary.json fields."""

    num_swap_outs: int = 0  # requests swapped out
    num_swap_ins: int = 0
    swap_out_blocks: int = 0
    swap_in_blocks: int = 0
    # Preemptions that wanted to swap but recomputed: the swap space was full, or the request
    # could never come back (its blocks plus one per sequence exceed the pool).
    swap_fallback_recomputes: int = 0
    # Preemptions by recompute of requests that cannot swap: mid-prefill, beam search (it forks and
    # prunes every step), or a request preempted while forking its samples.
    num_recompute_preemptions: int = 0
    max_swapped_blocks: int = 0  # the swap space's high-water mark

    def summary_fields(self, block_bytes: int) -> dict:
        return {
            "num_swap_outs": self.num_swap_outs,
            "num_swap_ins": self.num_swap_ins,
            "swap_out_blocks": self.swap_out_blocks,
            "swap_in_blocks": self.swap_in_blocks,
            "swap_out_bytes": self.swap_out_blocks * block_bytes,
            "swap_in_bytes": self.swap_in_blocks * block_bytes,
            "swap_fallback_recomputes": self.swap_fallback_recomputes,
            "num_recompute_preemptions": self.num_recompute_preemptions,
            "max_swapped_bytes": self.max_swapped_blocks * block_bytes,
        }


def swap_summary(scheduler: Scheduler, executor: Executor, block_bytes: int) -> dict:
    """Swap preemption's counts and transfer time for summary.json (nothing with preemption=recompute)."""
    fields = scheduler.summary_fields(block_bytes)
    return fields | {"swap_transfer_s": executor.swap_transfer_s} if fields else {}
