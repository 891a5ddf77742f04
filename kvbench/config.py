"""The run's config schema, and the Hydra ConfigStore entries every YAML file extends.

Each group's YAML files start with `defaults: [/schema/<group>...@_here_, _self_]`, so Hydra
checks every key and value against a dataclass when it composes the config: a typo or a value of
the wrong type fails before the run, naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

import kvbench.executors  # noqa: F401  (registers engine schemas)
import kvbench.strategies  # noqa: F401  (registers strategy schemas)
import kvbench.workloads  # noqa: F401  (registers workload schemas)
from kvbench.hardware import HardwareConfig
from kvbench.model_spec import ModelConfig
from kvbench.scheduler import SchedulerConfig
from kvbench.serving_metrics import SLOConfig


@dataclass
class RunConfig:
    strategy: Any = MISSING
    workload: Any = MISSING
    model: ModelConfig = MISSING
    hardware: HardwareConfig = MISSING
    engine: Any = MISSING
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    seed: int = 0
    kv_cache_bytes: int | None = None  # set the KV pool directly (bytes, all GPUs together)...
    num_blocks: int | None = None  # ...or in blocks; otherwise derived from the hardware
    # Goodput SLOs in ms, as `vllm bench serve --goodput ttft:500 tpot:50`: goodput.ttft_ms=500 goodput.tpot_ms=50
    goodput: SLOConfig = field(default_factory=SLOConfig)


def register_schemas() -> None:
    store = ConfigStore.instance()
    store.store(group="schema", name="model", node=ModelConfig)
    store.store(group="schema", name="hardware", node=HardwareConfig)
    store.store(group="schema", name="scheduler", node=SchedulerConfig)
    store.store(name="run_schema", node=RunConfig)


register_schemas()
