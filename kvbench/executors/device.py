"""`engine=device`: run every step for real, on a decoder of the model's shape over a real KV pool.

The schedule is the simulator's (same scheduler, same strategy, same block tables); the step's
duration is measured instead of costed. See kvbench/device/ for the parts and
docs/performance.md for what the timings mean.

This module only declares the schema and registers the engine: torch is imported when a device
executor is built, so the simulator never pays for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from kvbench.executors.base import EXECUTORS, EngineConfig, Executor
from kvbench.hardware import HardwareConfig, KVBudget
from kvbench.model_spec import ModelSpec
from kvbench.scheduler import StepPlan
from kvbench.sequence import RequestState


class DType(Enum):
    float16 = "float16"
    bfloat16 = "bfloat16"
    float32 = "float32"
    float64 = "float64"


class AttentionBackend(Enum):
    auto = "auto"  # triton on CUDA (torch for float64), torch on CPU
    triton = "triton"
    torch = "torch"


@dataclass
class DeviceEngineConfig(EngineConfig):
    name: str = "device"
    device: str = "cuda"  # cuda, cuda:N or cpu
    dtype: DType = DType.bfloat16  # weights, activations and KV pool
    backend: AttentionBackend = AttentionBackend.auto  # kernels for store_kv, copies and attention
    warmup: bool = True  # CUDA: compile the Triton kernels before the first timed step
    record_logits: bool = False  # keep every sampled logits row (the tests compare them with a dense model)


@EXECUTORS.register("device", DeviceEngineConfig)
class DeviceExecutor(Executor):
    needs_block_tables = True

    def __init__(
        self, config: DeviceEngineConfig, model: ModelSpec, hardware: HardwareConfig, budget: KVBudget, seed: int
    ):
        from kvbench.device.engine import DeviceEngine

        self.engine = DeviceEngine(
            device=config.device, dtype=DType(config.dtype).value, backend=AttentionBackend(config.backend).value,
            warmup=config.warmup, record_logits=config.record_logits,
            model=model, hardware=hardware, budget=budget, seed=seed,
        )

    def execute(self, plan: StepPlan) -> float:
        duration_s = self.engine.execute(plan)
        self.swap_transfer_s = self.engine.swap_time_s
        return duration_s

    def summary_fields(self) -> dict:
        return self.engine.summary_fields()

    def request_fields(self, group: RequestState) -> dict:
        return {"generated_token_ids": self.engine.book.finish(group)}
