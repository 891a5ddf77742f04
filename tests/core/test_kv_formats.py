"""KV formats (model.kv_dtype): exact bytes per token on real presets, the pool they leave, and every
strategy honouring them through the same seam (kvbench/kv_format.py)."""

import pytest
from kvbench.compose import compose

import kvbench.config  # noqa: F401
from kvbench.hardware import HardwareConfig, kv_budget
from kvbench.kv_format import KVDtype, KVFormat
from kvbench.model_spec import ModelSpec
from kvbench.runner import build
from kvbench.strategies import STRATEGIES
from kvbench.strategies.hf_dynamic import HFDynamicConfig, HFDynamicStrategy
from kvbench.strategies.vattention import VAttentionConfig, VAttentionStrategy
from omegaconf import OmegaConf

FORMATS = [d.value for d in KVDtype]
ANY_GPU = HardwareConfig(name="any", memory_bytes=0, mem_bandwidth_bytes_per_s=1, peak_flops=1)


def spec(name: str, *overrides: str) -> ModelSpec:
    return ModelSpec(OmegaConf.to_object(compose([f"model={name}", *overrides]).model))


# One layer's K (or V) of one token holds E elements (num_kv_heads * head_dim; MLA: 512 + 64):
#   16-bit: 2E; fp8: E (its fp32 scale is per tensor, not per token);
#   int8: E + E/32 * 4 (fp16 scale and zero point per group of 32); int4: E/2 + E/32 * 4;
#   nvfp4: E/2 + E/16 (one fp8 e4m3 scale per 16 elements).
# Times 2 (K and V; MLA: 1) times the layers.
@pytest.mark.parametrize(("name", "kv_dtype", "kv_bytes_per_token"), [
    # llama-2-13b: E = 40 * 128 = 5120, 40 layers, K and V: 80 vectors
    ("llama-2-13b", "auto", 80 * 10_240),
    ("llama-2-13b", "fp16", 80 * 10_240),
    ("llama-2-13b", "bf16", 80 * 10_240),
    ("llama-2-13b", "fp8_e4m3", 80 * 5120),
    ("llama-2-13b", "fp8_e5m2", 80 * 5120),
    ("llama-2-13b", "int8", 80 * (5120 + 640)),
    ("llama-2-13b", "int4", 80 * (2560 + 640)),
    ("llama-2-13b", "nvfp4", 80 * (2560 + 320)),
    # llama-3-8b: E = 8 * 128 = 1024, 32 layers: 64 vectors
    ("llama-3-8b", "auto", 131_072),
    ("llama-3-8b", "fp8_e4m3", 65_536),
    ("llama-3-8b", "int8", 64 * 1152),
    ("llama-3-8b", "int4", 64 * 640),
    ("llama-3-8b", "nvfp4", 64 * 576),
    # deepseek-v2-lite: one latent of E = 576 per layer, 27 layers
    ("deepseek-v2-lite", "auto", 27 * 1152),
    ("deepseek-v2-lite", "fp8_e4m3", 27 * 576),
    ("deepseek-v2-lite", "int8", 27 * (576 + 72)),
    ("deepseek-v2-lite", "int4", 27 * (288 + 72)),
    ("deepseek-v2-lite", "nvfp4", 27 * (288 + 36)),
    # deepseek-v3 (kv_dtype bf16 in its preset): 61 layers
    ("deepseek-v3", None, 61 * 1152),
    ("deepseek-v3", "fp8_e4m3", 61 * 576),
    # tiny: E = 2 * 16 = 32, 2 layers, K and V: 4 vectors
    ("tiny", "auto", 4 * 64),
    ("tiny", "fp8_e5m2", 4 * 32),
    ("tiny", "int8", 4 * 36),
    ("tiny", "int4", 4 * 20),
    ("tiny", "nvfp4", 4 * 18),
])
def test_bytes_per_token_of_every_format_on_real_presets(name, kv_dtype, kv_bytes_per_token):
    model = spec(name, *([f"model.kv_dtype={kv_dtype}"] if kv_dtype else []))
    assert model.kv_bytes_per_token == kv_bytes_per_token


def test_the_default_format_is_the_models_dtype():
    for name in ("llama-2-13b", "opt-13b", "tiny"):
        model = spec(name)
        c = model.config
        assert c.kv_dtype is KVDtype.auto
        assert model.kv_bytes_per_token == 2 * c.num_layers * c.num_kv_heads * c.head_dim * c.dtype_bytes
    assert spec("tiny", "model.dtype_bytes=4").kv_bytes_per_token == 512


def test_int_formats_follow_the_group_size_and_refuse_groups_that_do_not_divide():
    assert spec("llama-3-8b", "model.kv_dtype=int4", "model.kv_quant_group_size=128").kv_bytes_per_token == 64 * (512 + 32)
    with pytest.raises(ValueError, match="not a whole number of quantization groups of 48"):
        spec("tiny", "model.kv_dtype=int8", "model.kv_quant_group_size=48")
    with pytest.raises(ValueError, match="kv_quant_group_size=0"):
        KVFormat.of("int8", 2, group_size=0)


def test_residual_window_is_full_precision_per_running_sequence():
    # KIVI's R = 128 newest tokens in fp16: 128 tokens x 80 vectors x 5120 elements x 2 bytes.
    assert spec("llama-2-13b", "model.kv_dtype=int4").kv_residual_bytes_per_seq() == 128 * 80 * 5120 * 2
    assert spec("tiny", "model.kv_dtype=int8", "model.kv_residual_tokens=32").kv_residual_bytes_per_seq() == 32 * 4 * 64
    for kv_dtype in ("auto", "fp16", "fp8_e4m3", "nvfp4"):  # no residual outside KIVI's int formats
        assert spec("tiny", f"model.kv_dtype={kv_dtype}").kv_residual_bytes_per_seq() == 0


@pytest.mark.parametrize(("kv_dtype", "max_num_seqs", "num_blocks", "kv_residual_bytes"), [
    # kv_cache_bytes=100000, blocks of 16 tokens: 100000 // (16 * bytes per token) after the residuals
    ("auto", 2, 100_000 // (16 * 256), 0),  # 24
    ("fp8_e4m3", 2, 100_000 // (16 * 128), 0),  # 48
    ("nvfp4", 2, 100_000 // (16 * 72), 0),  # 86
    ("int4", 0, 100_000 // (16 * 80), 0),  # 78: no running sequence, no residual
    ("int4", 2, (100_000 - 2 * 32_768) // (16 * 80), 2 * 32_768),  # 26: two 32 KiB windows first
    ("int8", 1, (100_000 - 32_768) // (16 * 144), 32_768),  # 29
])
def test_exact_block_counts_on_tiny_pools(kv_dtype, max_num_seqs, num_blocks, kv_residual_bytes):
    model = spec("tiny", f"model.kv_dtype={kv_dtype}")
    budget = kv_budget(ANY_GPU, model, 16, kv_cache_bytes=100_000, max_num_seqs=max_num_seqs)
    assert (budget.num_blocks, budget.kv_residual_bytes) == (num_blocks, kv_residual_bytes)
    assert budget.kv_cache_bytes == num_blocks * 16 * model.kv_bytes_per_token


def test_a_budget_eaten_by_residual_windows_says_so():
    with pytest.raises(ValueError, match="residual windows \\(256 sequences; lower scheduler.max_num_seqs"):
        kv_budget(ANY_GPU, spec("tiny", "model.kv_dtype=int4"), 16, kv_cache_bytes=100_000, max_num_seqs=256)


@pytest.mark.parametrize(("kv_dtype", "tokens_per_page"), [
    ("auto", 32), ("fp8_e4m3", 64), ("int8", 64), ("int4", 128), ("nvfp4", 128),
])
def test_vattention_tokens_per_page_follow_one_layers_elements(kv_dtype, tokens_per_page):
    # llama-3-8b: one layer's K is 1024 elements per token; a 64 KiB page holds 65536 / their bytes.
    # Scales live in tensors of their own, so int8 pages hold as many tokens as fp8 pages.
    model = spec("llama-3-8b", f"model.kv_dtype={kv_dtype}")
    config = VAttentionStrategy.configure(VAttentionConfig(page_bytes=64 * 1024), model, 1)
    assert config.block_size == tokens_per_page and config.pages_per_block == 64


def test_vattention_maps_one_latent_page_per_mla_layer():
    # deepseek-v2-lite: one 576-element latent per layer, whole on each of 2 workers: 27 * 2 pages per block.
    model = spec("deepseek-v2-lite")
    config = VAttentionStrategy.configure(VAttentionConfig(page_bytes=64 * 1152), model, 2)
    assert (config.block_size, config.pages_per_block) == (64, 54)
    with pytest.raises(ValueError, match="not a whole number of tokens of one layer's K \\(1152 bytes"):
        VAttentionStrategy.configure(VAttentionConfig(page_bytes=64 * 1024), model, 1)


@pytest.mark.parametrize("kv_dtype", ["auto", "fp8_e4m3", "int4", "nvfp4"])
def test_hf_dynamic_grows_and_copies_in_the_formats_bytes(kv_dtype):
    model = spec("llama-3-8b", f"model.kv_dtype={kv_dtype}")
    config = HFDynamicStrategy.configure(HFDynamicConfig(), model, 2)
    assert config.layer_bytes_per_token == model.kv_format.vector_bytes(4 * 128)  # 4 KV heads per worker
    assert config.kv_bytes_per_token == model.kv_bytes_per_token


@pytest.mark.parametrize("strategy", sorted({*STRATEGIES.names(), "orca_max", "orca_pow2", "orca_oracle"}))
@pytest.mark.parametrize("kv_dtype", FORMATS)
def test_every_strategy_sizes_its_pool_from_the_formats_bytes(strategy, kv_dtype):
    overrides = ["model=tiny", f"model.kv_dtype={kv_dtype}", f"strategy={strategy}", "kv_cache_bytes=4000000",
                 "scheduler.max_num_seqs=8", "workload=synthetic", "workload.num_requests=4"]
    if strategy == "vattention":
        overrides.append("strategy.page_bytes=1024")
    run = build(compose(overrides))
    model, budget = run.model, run.budget
    block_size = run.strategy.block_size
    residual = 8 * model.kv_residual_bytes_per_seq()
    assert budget.kv_bytes_per_token == model.kv_bytes_per_token
    assert budget.num_blocks == (4_000_000 - residual) // (block_size * model.kv_bytes_per_token)
    assert run.strategy.num_blocks == budget.num_blocks
