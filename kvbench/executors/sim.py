"""`engine=sim`: the simulator. A step's duration comes from a cost model; nothing is computed."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from kvbench.cost_model import ProfileCostModel, RooflineCostModel, StepWork
from kvbench.executors.base import EXECUTORS, EngineConfig, Executor
from kvbench.hardware import HardwareConfig, KVBudget
from kvbench.model_spec import ModelSpec
from kvbench.scheduler import StepPlan


class CostModelKind(Enum):
    roofline = "roofline"
    profile = "profile"  # a table measured by `kvbench profile` (engine.profile_path)


@dataclass
class SimEngineConfig(EngineConfig):
    name: str = "sim"
    cost_model: CostModelKind = CostModelKind.roofline
    step_overhead_s: float = 0.0  # fixed CPU time per step (scheduling, sampling, launches)
    profile_path: str | None = None  # the profile CSV (its JSON sidecar beside it), for cost_model=profile


@EXECUTORS.register("sim", SimEngineConfig)
class SimExecutor(Executor):
    def __init__(self, config: SimEngineConfig, model: ModelSpec, hardware: HardwareConfig, budget: KVBudget, seed: int):
        self.cost_model: RooflineCostModel | None = None
        self.profile: ProfileCostModel | None = None
        if CostModelKind(config.cost_model) is CostModelKind.profile:
            if not config.profile_path:
                raise ValueError("engine.cost_model=profile needs engine.profile_path=<CSV written by kvbench profile>")
            self.profile = ProfileCostModel.load(
                config.profile_path, model, hardware, budget.block_size, config.step_overhead_s
            )
        elif config.profile_path:
            raise ValueError(
                f"engine.profile_path={config.profile_path} is set but engine.cost_model=roofline: "
                "add engine.cost_model=profile"
            )
        else:
            self.cost_model = RooflineCostModel(model, hardware, config.step_overhead_s)

    def execute(self, plan: StepPlan) -> float:
        if self.profile is not None:
            # The profile was measured per block-table layout; the strategy declares its own.
            return self.profile.step_time_s(StepWork.of(plan), plan.layout)
        return self.cost_model.step_time_s(StepWork.of(plan))

    def summary_fields(self) -> dict:
        if self.profile is None:
            return {}
        return {
            "cost_model": "profile",
            "profile_path": self.profile.table.where,
            "profile_dtype": self.profile.table.meta.get("dtype"),
            "profile_steps_outside_grid": self.profile.num_steps_outside_grid,
        }
