"""Model sizes and the KV budget they leave, against the real models' published numbers."""

import pytest
from kvbench.compose import compose

import kvbench.config  # noqa: F401
from kvbench.hardware import GiB, HardwareConfig, kv_budget
from kvbench.model_spec import ModelConfig, ModelSpec
from omegaconf import OmegaConf


def spec(name: str) -> ModelSpec:
    return ModelSpec(OmegaConf.to_object(compose([f"model={name}"]).model))


@pytest.mark.parametrize(
    ("name", "params_billion", "kv_bytes_per_token"),
    [
        ("opt-13b", 12.85, 819_200),  # 800 KiB per token: the PagedAttention paper's figure
        ("llama-2-7b", 6.74, 524_288),
        ("llama-2-13b", 13.02, 819_200),
        ("llama-2-70b", 68.98, 327_680),
        ("llama-3-8b", 8.03, 131_072),
        ("llama-3-70b", 70.55, 327_680),
        ("mistral-7b", 7.24, 131_072),
    ],
)
def test_presets_match_the_published_models(name, params_billion, kv_bytes_per_token):
    model = spec(name)
    assert model.num_params / 1e9 == pytest.approx(params_billion, abs=0.01)
    assert model.kv_bytes_per_token == kv_bytes_per_token


def test_opt_13b_has_15_7k_token_slots_in_12_gib():
    budget = kv_budget(HardwareConfig(name="any", memory_bytes=0, mem_bandwidth_bytes_per_s=1, peak_flops=1),
                       spec("opt-13b"), block_size=1, kv_cache_bytes=12 * GiB)
    assert budget.num_token_slots == 15_728


def test_derived_budget_subtracts_weights_and_reserve():
    hardware = HardwareConfig(name="gpu", memory_bytes=80 * GiB, mem_bandwidth_bytes_per_s=1, peak_flops=1,
                              gpu_memory_utilization=0.9, activation_reserve_bytes=2 * GiB, tensor_parallel=2)
    model = spec("llama-2-13b")
    budget = kv_budget(hardware, model, block_size=16)
    expected_bytes = int(80 * GiB * 0.9) * 2 - model.weight_bytes - 2 * 2 * GiB
    assert budget.num_blocks == expected_bytes // (16 * model.kv_bytes_per_token)


def test_budget_errors_name_the_setting():
    tiny_gpu = HardwareConfig(name="tiny-gpu", memory_bytes=20 * GiB, mem_bandwidth_bytes_per_s=1, peak_flops=1)
    with pytest.raises(ValueError, match="holds less than one block"):
        kv_budget(tiny_gpu, spec("llama-2-13b"), block_size=16)
    with pytest.raises(ValueError, match="kv_cache_bytes=1000"):
        kv_budget(tiny_gpu, spec("tiny"), block_size=16, kv_cache_bytes=1000)
    with pytest.raises(ValueError, match="not both"):
        kv_budget(tiny_gpu, spec("tiny"), block_size=16, kv_cache_bytes=10**9, num_blocks=8)
    with pytest.raises(ValueError, match="num_blocks=0"):
        kv_budget(tiny_gpu, spec("tiny"), block_size=16, num_blocks=0)


def test_model_shape_errors_name_the_setting():
    config = OmegaConf.to_object(OmegaConf.structured(ModelConfig(
        name="bad", num_layers=2, hidden_size=64, num_heads=6, num_kv_heads=4, head_dim=16,
        intermediate_size=128, vocab_size=100, max_model_len=64)))
    with pytest.raises(ValueError, match="model.num_heads=6 is not a multiple of model.num_kv_heads=4"):
        ModelSpec(config)
