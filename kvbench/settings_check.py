"""Every numeric setting of a run, checked for finiteness and range before anything is built.

One declarative pass over the resolved config: each number must be finite (no NaN, no infinity,
whatever the group or plugin it belongs to), and the settings in `RANGES` must lie in their range.
The first setting that fails is named, with its value and what it must be, before the run starts;
the checks inside the workloads and the pool (a power-of-two block size, min <= max) then see only
sane numbers. A few settings constrain each other (`check_relations`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fnmatch import fnmatchcase

from omegaconf import DictConfig, OmegaConf

from kvbench.errors import ConfigError
from kvbench.hardware import MAX_NUM_BLOCKS


@dataclass(frozen=True)
class Range:
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False  # low itself is out of range

    def holds(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high

    def __str__(self) -> str:
        low = f"> {_shown(self.low)}" if self.low_open else f">= {_shown(self.low)}"
        return low if self.high == math.inf else f"{low} and <= {_shown(self.high)}"


def _shown(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


COUNT = Range(1)  # a whole number of something
NON_NEGATIVE = Range(0)
POSITIVE = Range(0, low_open=True)
SHARE = Range(0, 1, low_open=True)  # a fraction of a whole

# Dotted config keys (fnmatch patterns: `*` spans dots) and their ranges; the first match applies.
RANGES: tuple[tuple[str, Range], ...] = (
    ("seed", NON_NEGATIVE),
    ("kv_cache_bytes", POSITIVE),
    ("num_blocks", Range(1, MAX_NUM_BLOCKS)),
    ("strategy.block_size", COUNT),
    # MLA and MoE sizes are 0 on models without them; the KIVI residual may be 0.
    ("model.kv_lora_rank", NON_NEGATIVE),
    ("model.q_lora_rank", NON_NEGATIVE),
    ("model.qk_*_head_dim", NON_NEGATIVE),
    ("model.v_head_dim", NON_NEGATIVE),
    ("model.*experts*", NON_NEGATIVE),
    ("model.moe_intermediate_size", NON_NEGATIVE),
    ("model.first_dense_layers", NON_NEGATIVE),
    ("model.kv_residual_tokens", NON_NEGATIVE),
    ("model.sliding_window", NON_NEGATIVE),  # 0: no sliding layer
    ("model.state_bytes_per_layer", NON_NEGATIVE),  # 0: no layer without KV
    ("model.*", COUNT),  # layer, head and vocabulary counts, lengths, dtype_bytes
    ("hardware.interconnect_bytes_per_s", NON_NEGATIVE),
    ("hardware.host_link_*", NON_NEGATIVE),  # 0: no host link (swap preemption refuses it)
    ("hardware.cpu_swap_bytes", NON_NEGATIVE),
    ("hardware.activation_reserve_bytes", NON_NEGATIVE),
    ("hardware.*_efficiency", SHARE),
    ("hardware.gpu_memory_utilization", SHARE),
    ("hardware.tensor_parallel", COUNT),
    ("hardware.*", POSITIVE),  # memory_bytes, mem_bandwidth_bytes_per_s, peak_flops
    ("scheduler.*", COUNT),
    ("engine.*_s", NON_NEGATIVE),
    ("workload.seed", NON_NEGATIVE),
    ("workload.start_s", NON_NEGATIVE),
    ("workload.*.alpha", Range(1, low_open=True)),  # zipf
    ("workload.*.sigma", NON_NEGATIVE),
    ("workload.think_time.mean_s", NON_NEGATIVE),
    ("workload.think_time.*_s", NON_NEGATIVE),
    ("workload.*.mean", POSITIVE),
    ("workload.*.value", COUNT),
    ("workload.*.min", COUNT),
    ("workload.*.max", COUNT),
    ("workload.reply_s_per_token", NON_NEGATIVE),
    ("workload.shared_prefix_tokens", NON_NEGATIVE),
    ("workload.*_tokens", COUNT),  # hash_block_tokens, min_/max_ prompt, output and total tokens
    ("workload.num_*", COUNT),
    ("workload.max_turns", COUNT),
    ("workload.n", COUNT),
    ("workload.beam_width", COUNT),
    ("workload.*", POSITIVE),  # rate, burstiness, duration_s, time_scale, target_rate, timestamp_unit_s
)


def _numbers(node, prefix: str = ""):
    """(dotted key, value) of every number in a config container."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict | list):
            yield from _numbers(value, path)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield path, value


def range_of(key: str) -> Range | None:
    return next((r for pattern, r in RANGES if fnmatchcase(key, pattern)), None)


def check_run_config(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first numeric setting that is not finite or out of its range."""
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    container.pop("hydra", None)
    for key, value in _numbers(container):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}={value} must be a finite number")
        allowed = range_of(key)
        if allowed is not None and not allowed.holds(value):
            raise ConfigError(f"{key}={value} must be {allowed}")
    check_relations(container)


def check_relations(c: dict) -> None:
    """Settings that constrain each other."""
    tp, model = c["hardware"]["tensor_parallel"], c["model"]
    heads, kv_heads = model["num_heads"], model["num_kv_heads"]
    if heads % tp or (kv_heads % tp and tp % kv_heads):
        raise ConfigError(
            f"hardware.tensor_parallel={tp} must divide model.num_heads={heads} (and model.num_kv_heads={kv_heads} "
            f"must divide it or be divisible by it): each GPU holds whole heads"
        )
