"""`engine=sim`: the simulator. A step's duration comes from a cost model; nothing is computed."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from kvbench.cost_model import RooflineCostModel, StepWork
from kvbench.executors.base import EXECUTORS, EngineConfig, Executor
from kvbench.hardware import HardwareConfig, KVBudget
from kvbench.model_spec import ModelSpec
from kvbench.scheduler import Scheduler, StepPlan


class CostModelKind(Enum):
    roofline = "roofline"


@dataclass
class SimEngineConfig(EngineConfig):
    name: str = "sim"
    cost_model: CostModelKind = CostModelKind.roofline
    step_overhead_s: float = 0.0  # fixed CPU time per step (scheduling, sampling, launches)


@EXECUTORS.register("sim", SimEngineConfig)
class SimExecutor(Executor):
    def __init__(self, config: SimEngineConfig, model: ModelSpec, hardware: HardwareConfig, budget: KVBudget, seed: int):
        self.cost_model = RooflineCostModel(model, hardware, config.step_overhead_s)

    def execute(self, step: StepPlan, scheduler: Scheduler) -> float:
        return self.cost_model.step_time_s(StepWork.of(step))
