"""A device run on the CPU sizes its KV pool from this machine's memory, not from a GPU preset."""

from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import kvbench.config  # noqa: F401
from kvbench import host_memory
from kvbench.hardware import kv_budget
from kvbench.model_spec import ModelSpec

GiB = 2**30


def composed(*overrides):
    with initialize_config_module(config_module="kvbench.conf", version_base=None):
        return compose("config", overrides=list(overrides))


def test_only_a_cpu_device_run_without_a_set_pool_uses_host_memory():
    assert host_memory.runs_on_host(composed("engine=device", "engine.device=cpu", "model=tiny"))
    assert not host_memory.runs_on_host(composed("engine=device", "engine.device=cuda"))
    assert not host_memory.runs_on_host(composed("engine=sim"))
    assert not host_memory.runs_on_host(composed("engine=device", "engine.device=cpu", "num_blocks=64"))


def test_the_pool_is_a_share_of_available_host_memory_less_weights_and_reserve(monkeypatch):
    monkeypatch.setattr(host_memory, "host_available_bytes", lambda: 8 * GiB)
    cfg = composed("engine=device", "engine.device=cpu", "model=tiny")  # on the default a100-40gb preset
    hardware, model = OmegaConf.to_object(cfg.hardware), ModelSpec(OmegaConf.to_object(cfg.model))
    gpu = kv_budget(hardware, model, 16)
    host = kv_budget(host_memory.on_host(hardware), model, 16)
    expected = int(8 * GiB * host_memory.HOST_MEMORY_SHARE) - model.weight_bytes - hardware.activation_reserve_bytes
    assert host.kv_cache_bytes == expected // host.block_bytes * host.block_bytes
    assert host.kv_cache_bytes < 4 * GiB < gpu.kv_cache_bytes  # not the A100's 35 GiB


def test_host_memory_is_read_from_the_machine():
    assert host_memory.host_available_bytes() > 0
