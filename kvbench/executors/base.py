"""Executors run (or cost) the steps the scheduler plans. One registry, named by `engine=`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from omegaconf import MISSING

from kvbench.registry import Registry
from kvbench.scheduler import Scheduler, StepPlan
from kvbench.sequence import RequestState


@dataclass
class EngineConfig:
    name: str = MISSING


class Executor(ABC):
    """Turns a planned step into its duration, running it for real or costing it.

    Built as `cls(config, model=ModelSpec, hardware=HardwareConfig, budget=KVBudget, seed=int)`.
    """

    # Whether it moves K/V, so that the strategy must log its block copies (pop_block_copies).
    needs_block_copies: ClassVar[bool] = False

    @abstractmethod
    def execute(self, step: StepPlan, scheduler: Scheduler) -> float:
        """Run or cost `step`; return its duration in seconds."""

    def summary_fields(self) -> dict:
        """Engine-specific figures for summary.json."""
        return {}

    def request_fields(self, group: RequestState) -> dict:
        """Engine-specific columns of a finished request's row in the requests table."""
        return {}


EXECUTORS: Registry[Executor] = Registry("engine")
