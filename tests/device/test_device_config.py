"""engine=device settings: composed from YAML, and every impossible combination named."""

from __future__ import annotations

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from kvbench.executors.device import AttentionBackend, DeviceExecutor, DType
from kvbench.hardware import kv_budget
from kvbench.model_spec import ModelSpec
from kvbench.runner import build

WORKLOAD = [
    "workload=synthetic", "workload.num_requests=2", "workload.prompt.min=1", "workload.prompt.max=8",
    "workload.output.min=1", "workload.output.max=4",
]
TINY_CPU = ["model=tiny", "engine=device", "engine.device=cpu", "num_blocks=64", *WORKLOAD]


def test_the_yaml_composes_to_the_schema(compose_config):
    cfg = compose_config(["engine=device"])
    assert cfg.engine.name == "device"
    assert (cfg.engine.device, cfg.engine.dtype, cfg.engine.backend) == ("cuda", DType.bfloat16, AttentionBackend.auto)
    with pytest.raises(ConfigCompositionException, match="dtype"):
        compose_config(["engine=device", "engine.dtype=int8"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["engine.backend=triton", "engine.dtype=float64"], "engine.backend=triton has no float64 kernels"),
        (["engine.backend=triton", "engine.dtype=float16"], "runs float32 only: set engine.dtype=float32"),
        (["engine.device=tpu"], "engine.device='tpu' is not a device"),
        (["hardware.tensor_parallel=2"], "hardware.tensor_parallel=2 must be 1"),
    ],
)
def test_impossible_settings_are_named(overrides, message, compose_config):
    with pytest.raises(ValueError, match=message):
        build(compose_config([*TINY_CPU, *overrides]))


def test_triton_on_cpu_needs_the_interpreter(compose_config, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="start with TRITON_INTERPRET=1"):
        build(compose_config([*TINY_CPU, "engine.backend=triton", "engine.dtype=float32"]))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without CUDA")
def test_cuda_without_cuda_says_what_to_do(compose_config):
    with pytest.raises(ValueError, match="engine.device=cuda but CUDA is not available here.*engine.device=cpu"):
        build(compose_config(["model=tiny", "engine=device", "num_blocks=64", *WORKLOAD]))


def test_a_pool_larger_than_the_machine_is_refused_before_allocating(compose_config):
    # The tiny model's pool derived from an H200, in float64: hundreds of GiB. (Built without a
    # strategy: a paged strategy of that many blocks alone takes a while to set up.)
    cfg = compose_config(["model=tiny", "hardware=h200", "engine=device", "engine.device=cpu", "engine.dtype=float64"])
    model, hardware = ModelSpec(OmegaConf.to_object(cfg.model)), OmegaConf.to_object(cfg.hardware)
    budget = kv_budget(hardware, model, block_size=16)
    with pytest.raises(ValueError, match=r"shrink the model \(model.num_layers=...\) or the pool \(num_blocks="):
        DeviceExecutor(OmegaConf.to_object(cfg.engine), model=model, hardware=hardware, budget=budget, seed=0)
