"""The run's config schema, and the Hydra ConfigStore entries every YAML file extends.

Each group's YAML files start with `defaults: [/schema/<group>...@_here_, _self_]`, so Hydra
checks every key and value against a dataclass when it composes the config: a typo or a value of
the wrong type fails before the run, naming the key.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, OmegaConf

import kvbench.executors  # noqa: F401  (registers engine schemas)
import kvbench.strategies  # noqa: F401  (registers strategy schemas)
import kvbench.workloads  # noqa: F401  (registers workload schemas)
from kvbench.hardware import HardwareConfig
from kvbench.model_spec import ModelConfig
from kvbench.registry import store_schema
from kvbench.results import ResultsConfig
from kvbench.routers import FleetConfig
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
    results: ResultsConfig = field(default_factory=ResultsConfig)  # how tables are written (not in config.yaml)
    # Goodput SLOs in ms, as `vllm bench serve --goodput ttft:500 tpot:50`: goodput.ttft_ms=500 goodput.tpot_ms=50
    goodput: SLOConfig = field(default_factory=SLOConfig)
    # Replicas behind a router (kvbench/fleet.py): fleet.num_replicas=4 fleet.router=prefix_aware
    fleet: FleetConfig = field(default_factory=FleetConfig)


def short_run_id() -> str:
    """Six hex digits, the same for every `${run_id:}` of one config: two runs started in the same
    second get different default directories."""
    return secrets.token_hex(3)


def register_schemas() -> None:
    store_schema("schema", "model", ModelConfig)
    store_schema("schema", "hardware", HardwareConfig)
    store_schema("schema", "scheduler", SchedulerConfig)
    store_schema(None, "run_schema", RunConfig)
    if not OmegaConf.has_resolver("run_id"):
        OmegaConf.register_new_resolver("run_id", short_run_id, use_cache=True)


MAX_JOB_DIR_CHARS = 200  # a file name may hold 255 bytes


def job_dir_name(job_num, override_dirname: str) -> str:
    """A sweep job's directory: its number (for order) and its overrides, `3_seed=1,strategy=paged`.

    Characters a path must not hold (a `/` in a file override) become `_`; a name longer than
    MAX_JOB_DIR_CHARS is cut and ends with a digest of the whole, so names stay unique.
    """
    name = re.sub(r"[^A-Za-z0-9=,._+@-]+", "_", str(override_dirname))
    if len(name) > MAX_JOB_DIR_CHARS:
        name = name[:MAX_JOB_DIR_CHARS - 9] + "_" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{job_num}_{name}" if name else str(job_num)


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("kvbench_job_dir", job_dir_name, replace=True)


register_schemas()
register_resolvers()
