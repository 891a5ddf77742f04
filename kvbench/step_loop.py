"""The step loop every engine shares: plan a step, run or cost it, apply its results."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from kvbench.collector import built_objects_frozen
from kvbench.executors.base import Executor
from kvbench.scheduler import Scheduler, StepPlan
from kvbench.sequence import RequestState
from kvbench.strategies.base import PoolUsage


@dataclass(slots=True)
class StepResult:
    step: StepPlan
    start_s: float
    duration_s: float
    usage: PoolUsage  # the pool during the step
    finished: list[RequestState]


def run_steps(scheduler: Scheduler, executor: Executor) -> Iterator[StepResult]:
    """Every step until the workload is served; idle time jumps to the next arrival."""
    with built_objects_frozen():  # what was built before the loop lives through it (kvbench.collector)
        clock_s = 0.0
        while scheduler.has_work():
            step = scheduler.schedule(clock_s)
            if step is None:
                clock_s = scheduler.next_arrival_time_s()
                continue
            duration_s = executor.execute(step)
            usage, finished = scheduler.complete(step, clock_s + duration_s)
            yield StepResult(step, clock_s, duration_s, usage, finished)
            clock_s += duration_s
