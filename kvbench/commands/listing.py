"""`kvbench list`: the choices of each config group, one line each.

For the groups backed by a registry (strategy, workload, engine) the choices are the registry's
names (built in or installed plugins, which compose from their dataclass alone) together with the
YAML presets (`orca_max` is a preset of the `contiguous` class); a registered name without a
preset is described by its class's docstring.
"""

from __future__ import annotations

import inspect
from importlib import resources

import yaml

from kvbench.hardware import GiB
from kvbench.model_spec import ModelConfig, ModelSpec

GROUPS = {"strategy": "strategies", "workload": "workloads", "model": "models", "hardware": "hardware",
          "engine": "engines", "scheduler": "schedulers", "experiment": "experiments"}


def conf_dir():
    return resources.files("kvbench.conf")


def presets(group: str) -> dict[str, tuple[str, dict]]:
    """name -> (first comment line, YAML body) of every YAML file in a config group."""
    out = {}
    for entry in sorted(conf_dir().joinpath(group).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            text = entry.read_text()
            first = text.splitlines()[0] if text else ""
            description = first[1:].strip() if first.startswith("#") else ""
            body = yaml.safe_load(text) or {}
            out[entry.name[: -len(".yaml")]] = (description, body)
    return out


def registries() -> dict:
    """group -> the registry of classes behind it."""
    from kvbench.executors import EXECUTORS
    from kvbench.strategies import STRATEGIES
    from kvbench.workloads import WORKLOADS

    return {"strategy": STRATEGIES, "workload": WORKLOADS, "engine": EXECUTORS}


def choices(group: str) -> dict[str, tuple[str, dict]]:
    """name -> (description, YAML body or {}) of every choice of a group: presets and registered names."""
    found = presets(group)
    registry = registries().get(group)
    for name in registry.names() if registry else ():
        if name not in found:
            cls = registry.get(name)
            doc = inspect.cleandoc(cls.__dict__.get("__doc__") or inspect.getmodule(cls).__doc__ or "")
            found[name] = (doc.split("\n\n")[0].replace("\n", " ") + " (installed, no preset)", {})
    return dict(sorted(found.items()))


def describe(group: str, body: dict, description: str) -> str:
    if group == "model":
        fields = {k: v for k, v in body.items() if k in ModelConfig.__dataclass_fields__}
        spec = ModelSpec(ModelConfig(**fields))
        c = spec.config
        params = f"{spec.num_params / 1e9:5.1f}B" if spec.num_params >= 1e8 else f"{spec.num_params / 1e6:5.2f}M"
        kv = spec.kv_bytes_per_token
        kv_text = f"{kv // 1024} KiB" if kv >= 1024 else f"{kv} B"
        heads = (f"{c.num_heads} heads, MLA latent {c.kv_lora_rank}+{c.qk_rope_head_dim}" if spec.is_mla
                 else f"{c.num_heads}/{c.num_kv_heads} q/kv heads")
        if spec.config.num_experts:
            params += f" ({spec.num_active_params / 1e9:.1f}B active)"
        kv_format = "" if spec.kv_format.dtype.value == "auto" else f" {spec.kv_format.name}"
        return f"{params} params, {c.num_layers} layers, {heads}, {kv_text}{kv_format} KV/token, max {c.max_model_len} tokens"
    if group == "hardware":
        return (
            f"{body['memory_bytes'] / GiB:.0f} GiB, {float(body['mem_bandwidth_bytes_per_s']) / 1e9:.0f} GB/s, "
            f"{float(body['peak_flops']) / 1e12:.0f} TFLOP/s  ({description})"
        )
    return description


def main(args: list[str]) -> int:
    print(list_groups(args))
    return 0


def list_groups(groups: list[str]) -> str:
    lines = []
    for group in groups or [g for g in GROUPS if conf_dir().joinpath(g).is_dir()]:
        if group not in GROUPS:
            raise ValueError(f"unknown group {group!r}; valid: {', '.join(GROUPS)}")
        found = choices(group)
        lines.append(f"{GROUPS[group]} ({group}=...):")
        if not found:
            lines.append("  (none)")
        width = max((len(n) for n in found), default=0)
        for name, (description, body) in found.items():
            lines.append(f"  {name:<{width}}  {describe(group, body, description)}")
    return "\n".join(lines)
