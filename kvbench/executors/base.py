"""Executors run (or cost) the steps the scheduler plans. One registry, named by `engine=`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from omegaconf import MISSING

from kvbench.registry import Registry
from kvbench.scheduler import StepPlan
from kvbench.sequence import RequestState


@dataclass
class EngineConfig:
    name: str = MISSING


class Executor(ABC):
    """Turns a planned step into its duration, running it for real or costing it.

    Built as `cls(config, model=ModelSpec, hardware=HardwareConfig, budget=KVBudget, seed=int)`.
    The plan is all it sees: never the scheduler, never the strategy.
    """

    # Whether it reads block tables and moves K/V, so that plans must carry the tables and the
    # block copies (`StepPlan.decodes`, `.block_tables`, `.block_copies`).
    needs_block_tables: ClassVar[bool] = False
    # Seconds its steps spent on swap copies (`StepPlan.num_swap_*_blocks`), costed or measured.
    swap_transfer_s: float = 0.0

    @abstractmethod
    def execute(self, plan: StepPlan) -> float:
        """Run or cost the planned step; return its duration in seconds."""

    def summary_fields(self) -> dict:
        """Engine-specific figures for summary.json."""
        return {}

    def request_fields(self, group: RequestState) -> dict:
        """Engine-specific columns of a finished request's row in the requests table."""
        return {}


EXECUTORS: Registry[Executor] = Registry("engine")
