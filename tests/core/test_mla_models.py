"""Multi-head latent attention and mixture-of-experts presets (DeepSeek-V2/V3) against their papers."""

import pytest
from kvbench.compose import compose

import kvbench.config  # noqa: F401
from kvbench.cost_model import RooflineCostModel, StepWork
from kvbench.hardware import HardwareConfig, kv_budget
from kvbench.model_spec import ModelSpec
from omegaconf import OmegaConf


def spec(name: str, *overrides: str) -> ModelSpec:
    return ModelSpec(OmegaConf.to_object(compose([f"model={name}", *overrides]).model))


# Published totals (model cards): V2-Lite 15.7B / 2.4B activated, V2 236B / 21B, V3 671B / 37B (V3's
# 685B on the hub adds the 14B multi-token-prediction module, which serving does not run). The
# activated counts leave out the input embedding (a row lookup, not a matmul), so the test does too.
@pytest.mark.parametrize(("name", "total_billion", "active_billion", "layers"), [
    ("deepseek-v2-lite", 15.7, 2.4, 27),
    ("deepseek-v2", 236, 21, 60),
    ("deepseek-v3", 671, 37, 61),
])
def test_mla_presets_match_the_published_sizes(name, total_billion, active_billion, layers):
    model = spec(name)
    c = model.config
    input_embedding = c.vocab_size * c.hidden_size
    assert model.num_params / 1e9 == pytest.approx(total_billion, rel=0.005)
    # The cards round to two or three significant digits: within 3%.
    assert (model.num_active_params - input_embedding) / 1e9 == pytest.approx(active_billion, rel=0.03)
    # One vector of kv_lora_rank + qk_rope_head_dim = 512 + 64 per token per layer, 16-bit.
    assert model.kv_bytes_per_token == (512 + 64) * layers * 2
    assert model.kv_tensors_per_layer == 1


def test_deepseek_v2_kv_cache_is_93_3_percent_smaller_than_deepseek_67bs():
    """DeepSeek-V2 (arXiv 2405.04434, section 3.2.3): deployed with its KV cache quantized to 6 bits
    per element on average, it needs 93.3% less KV cache per token than DeepSeek 67B (16-bit, GQA
    with 8 KV heads over 95 layers). The figure is published to 0.1 percentage point, so the ratio
    computed from the two configs must round to it: within 0.05 points."""
    v2, dense = spec("deepseek-v2"), spec("deepseek-67b")
    assert dense.kv_bytes_per_token == 2 * 95 * 8 * 128 * 2  # 389,120 bytes
    v2_6bit_bytes = v2.kv_bytes_per_token * 6 / 16  # 576 elements x 60 layers at 6 bits: 25,920 bytes
    reduction_percent = 100 * (1 - v2_6bit_bytes / dense.kv_bytes_per_token)
    assert reduction_percent == pytest.approx(93.3, abs=0.05)
    # Without the quantization MLA alone saves 82.2%: the 93.3% needs both.
    assert 100 * (1 - v2.kv_bytes_per_token / dense.kv_bytes_per_token) == pytest.approx(82.2, abs=0.05)


H200 = HardwareConfig(name="h200", memory_bytes=141 * 10**9, mem_bandwidth_bytes_per_s=4.8e12, peak_flops=989e12,
                      interconnect_bytes_per_s=450e9)


def test_the_mla_latent_is_replicated_on_every_tensor_parallel_worker():
    model = spec("deepseek-v2-lite")
    h200x2 = HardwareConfig(**{**vars(H200), "tensor_parallel": 2})
    budget = kv_budget(h200x2, model, 64, kv_cache_bytes=10**9)
    assert budget.kv_bytes_per_token == 2 * model.kv_bytes_per_token
    assert budget.num_blocks == 10**9 // (64 * 2 * 31_104)
    dense = spec("llama-3-8b")  # K/V heads split over the workers: no copies
    assert kv_budget(h200x2, dense, 16, kv_cache_bytes=10**9).kv_bytes_per_token == dense.kv_bytes_per_token


def test_roofline_reads_active_experts_and_the_latent():
    model = spec("deepseek-v2-lite")
    c = model.config
    cost = RooflineCostModel(model, H200)
    decode = StepWork(num_prefill_tokens=0, prefill_attention_pairs=0, prefill_context_tokens=0, num_decode_seqs=1,
                      decode_context_tokens=1000, num_sampled_tokens=1)
    bytes_moved = model.active_weight_bytes + model.kv_bytes_per_token * (1000 + 1)
    assert cost.step_time_s(decode) == pytest.approx(bytes_moved / (4.8e12 * 0.8), rel=1e-12)
    assert model.active_weight_bytes < model.weight_bytes / 5  # 6 of 64 routed experts
    # Absorbed MLA: each head scores 576 latent + RoPE elements and sums 512 latent elements.
    assert model.attention_flops_per_pair == 2 * 27 * 16 * (512 + 64 + 512)
    # Matmul FLOPs: the active parameters without the embeddings, twice.
    embeddings = 2 * c.vocab_size * c.hidden_size
    assert model.flops_per_token == 2 * (model.num_active_params - embeddings)


def test_dense_models_are_unchanged_by_the_moe_fields():
    model = spec("llama-2-13b")
    assert model.num_active_params == model.num_params and model.active_weight_bytes == model.weight_bytes
    assert model.flops_per_token == 2 * model.config.num_layers * model.layer_params


def test_bad_mla_and_moe_settings_are_refused():
    with pytest.raises(ValueError, match="model.kv_lora_rank=0 must be >= 1 with model.attention=mla"):
        spec("deepseek-v2-lite", "model.kv_lora_rank=0")
    with pytest.raises(ValueError, match="num_experts_per_tok <= num_experts \\(got 65\\)"):
        spec("deepseek-v2-lite", "model.num_experts_per_tok=65")
