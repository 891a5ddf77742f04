"""`engine=sim`: the simulator. A step's duration comes from a cost model; nothing is computed."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from kvbench.cost_model import ProfileCostModel, RooflineCostModel, StepWork
from kvbench.cpu_overhead import cpu_overhead
from kvbench.executors.base import EXECUTORS, EngineConfig, Executor
from kvbench.hardware import HardwareConfig, KVBudget
from kvbench.host_link import HostLinkCost
from kvbench.model_spec import ModelSpec
from kvbench.scheduler import StepPlan


class CostModelKind(Enum):
    roofline = "roofline"
    profile = "profile"  # a table measured by `kvbench profile` (engine.profile_path)


@dataclass
class SimEngineConfig(EngineConfig):
    name: str = "sim"
    cost_model: CostModelKind = CostModelKind.roofline
    # CPU time per step outside the GPU (kvbench/cpu_overhead.py): a preset of published
    # measurements (none | vllm-2023 | vllm-v1 | sglang), plus these terms.
    cpu_overhead: str = "none"
    step_overhead_s: float = 0.0  # fixed CPU time per step (scheduling, sampling, launches)
    cpu_overhead_per_seq_s: float = 0.0  # per sequence with a token in the step
    cpu_overhead_per_token_s: float = 0.0  # per token the step computes
    profile_path: str | None = None  # the profile CSV (its JSON sidecar beside it), for cost_model=profile
    # Swap preemption's copies (kvbench/host_link.py): false, the step waits for them (vLLM v0 ran
    # them before the model on the same stream); true, they run on a copy stream beside the
    # step's compute, which then takes the longer of the two.
    swap_overlap: bool = False


@EXECUTORS.register("sim", SimEngineConfig)
class SimExecutor(Executor):
    def __init__(self, config: SimEngineConfig, model: ModelSpec, hardware: HardwareConfig, budget: KVBudget, seed: int):
        self.config_cpu = config.cpu_overhead
        self.cpu = cpu_overhead(config.cpu_overhead, config.step_overhead_s, config.cpu_overhead_per_seq_s,
                                config.cpu_overhead_per_token_s)
        self._has_cpu_time = bool(self.cpu.fixed_s or self.cpu.per_seq_s or self.cpu.per_token_s)
        self.cost_model: RooflineCostModel | None = None
        self.profile: ProfileCostModel | None = None
        if CostModelKind(config.cost_model) is CostModelKind.profile:
            if not config.profile_path:
                raise ValueError("engine.cost_model=profile needs engine.profile_path=<CSV written by kvbench profile>")
            self.profile = ProfileCostModel.load(
                config.profile_path, model, hardware, budget.block_size
            )
        elif config.profile_path:
            raise ValueError(
                f"engine.profile_path={config.profile_path} is set but engine.cost_model=roofline: "
                "add engine.cost_model=profile"
            )
        else:
            self.cost_model = RooflineCostModel(model, hardware)
        self.swap_overlap = config.swap_overlap
        self._model, self._hardware, self._block_bytes = model, hardware, budget.block_bytes
        self._host_link: HostLinkCost | None = None  # built at the first swap: only swap runs need a link
        self.kv_load_s: float | None = None  # loads from tiers below the pool; None: none modelled
        self.kv_load_exposed_s = 0.0  # the part of it that lengthened steps

    def _swap_s(self, plan: StepPlan) -> float:
        if self._host_link is None:
            self._host_link = HostLinkCost(self._model, self._hardware, self._block_bytes)
        swap_s = self._host_link.transfer_s(plan.num_swap_out_blocks + plan.num_swap_in_blocks)
        self.swap_transfer_s += swap_s
        return swap_s

    def execute(self, plan: StepPlan) -> float:
        if self.profile is not None:
            # The profile was measured per block-table layout; the strategy declares its own.
            device_s = self.profile.step_time_s(StepWork.of(plan), plan.layout)
        elif plan.prefills:
            device_s = self.cost_model.step_time_s(StepWork.of(plan))
        else:  # most steps decode only: their numbers go to the roofline as StepWork.of would give them
            num_decode_seqs = plan.num_decode_seqs
            device_s = self.cost_model.time_s(0, 0, 0, num_decode_seqs, plan.decode_context_tokens, num_decode_seqs)
        if plan.num_swap_out_blocks or plan.num_swap_in_blocks:
            swap_s = self._swap_s(plan)
            device_s = max(device_s, swap_s) if self.swap_overlap else device_s + swap_s
        step_s = device_s
        if self._has_cpu_time:  # adding a zero would change nothing
            step_s += self.cpu.step_time_s(plan.num_decode_seqs + len(plan.prefills), plan.num_scheduled_tokens)
        if plan.kv_load_s is None:
            return step_s
        return self._with_kv_load(step_s, plan.kv_load_s, plan.kv_load_overlapped)

    def _with_kv_load(self, step_s: float, load_s: float, overlapped: bool) -> float:
        """A step that loads K/V from tiers below the pool: after the loads, or alongside them."""
        total_s = max(step_s, load_s) if overlapped else step_s + load_s
        self.kv_load_s = self.kv_load_s + load_s if self.kv_load_s is not None else load_s
        self.kv_load_exposed_s += total_s - step_s
        return total_s

    def summary_fields(self) -> dict:
        fields = {"cpu_overhead": self.config_cpu} if self.config_cpu != "none" else {}
        if self.kv_load_s is not None:
            fields |= {"kv_load_s": self.kv_load_s, "kv_load_exposed_s": self.kv_load_exposed_s}
        if self.profile is None:
            return fields
        return fields | {
            "cost_model": "profile",
            "profile_path": self.profile.table.where,
            "profile_dtype": self.profile.table.meta.get("dtype"),
            "profile_steps_outside_grid": self.profile.num_steps_outside_grid,
        }
