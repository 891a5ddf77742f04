"""Step and kernel timers: CUDA events on a GPU, the wall clock on CPU.

On CUDA a step records events on the current stream (start, each named section's bounds, end)
and synchronises once, on the end event, when the step stops: timing adds no synchronisation
inside the step, and the sections' times are device times of the kernels between their events.
On CPU torch runs each operation to completion before returning, so `time.perf_counter` around
the same code measures the same thing.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import torch


class StepTimer:
    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.section_totals_s: dict[str, float] = defaultdict(float)
        self._start: torch.cuda.Event | float | None = None
        self._open: list[tuple[str, torch.cuda.Event, torch.cuda.Event]] = []

    def _mark(self) -> torch.cuda.Event | float:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def start(self) -> None:
        self._start = self._mark()
        self._open = []

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        """Time the code inside as `name` (summed over the step and over steps)."""
        begin = self._mark()
        yield
        end = self._mark()
        if self.cuda:
            self._open.append((name, begin, end))
        else:
            self.section_totals_s[name] += end - begin

    def stop(self) -> float:
        """End the step; its duration in seconds (waits for the device)."""
        if self._start is None:
            raise RuntimeError("StepTimer.stop() without start()")
        end = self._mark()
        if self.cuda:
            end.synchronize()
            duration_s = self._start.elapsed_time(end) / 1e3
            for name, begin, finish in self._open:
                self.section_totals_s[name] += begin.elapsed_time(finish) / 1e3
        else:
            duration_s = end - self._start
        self._start = None
        return duration_s

    def reset(self) -> None:
        self.section_totals_s.clear()
