"""The roofline: a step costs the larger of its bytes and its FLOPs at the hardware's rates."""

import pytest

from kvbench.cost_model import RooflineCostModel, StepWork
from kvbench.cpu_overhead import cpu_overhead
from kvbench.errors import ConfigError
from kvbench.hardware import HardwareConfig
from kvbench.model_spec import MLP, ModelConfig, ModelSpec

MODEL = ModelSpec(ModelConfig(
    name="m", num_layers=2, hidden_size=8, num_heads=2, num_kv_heads=1, head_dim=4, intermediate_size=16,
    vocab_size=10, max_model_len=64, mlp=MLP.gated, tie_word_embeddings=False, dtype_bytes=2))
# layer params: 8*(2+2)*4 + 2*4*8 = 192 attention + 3*8*16 = 384 MLP = 576; x2 layers + 2*10*8 embeddings
PARAMS = 2 * 576 + 160


def hardware(**overrides) -> HardwareConfig:
    base = dict(name="h", memory_bytes=1, mem_bandwidth_bytes_per_s=1000.0, peak_flops=1e6,
                bandwidth_efficiency=0.5, flops_efficiency=0.5)
    return HardwareConfig(**{**base, **overrides})


def decode_work(num_seqs: int, context_tokens: int) -> StepWork:
    return StepWork(0, 0, 0, num_seqs, context_tokens, num_seqs)


def test_a_small_decode_step_is_memory_bound():
    assert MODEL.num_params == PARAMS and MODEL.kv_bytes_per_token == 2 * 2 * 1 * 4 * 2
    cost = RooflineCostModel(MODEL, hardware())
    # bytes: weights + K/V of the 10 context tokens read + 1 new token written, at 1000 * 0.5 B/s
    expected_s = (PARAMS * 2 + 32 * (10 + 1)) / 500.0
    flops = 2 * 2 * 576 * 1 + 2 * 10 * 8 + 4 * 2 * 2 * 4 * 10
    assert flops / 5e5 < expected_s
    assert cost.step_time_s(decode_work(1, 10)) == pytest.approx(expected_s)


def test_a_large_prefill_is_compute_bound_and_grows_with_its_attention():
    cost = RooflineCostModel(MODEL, hardware(mem_bandwidth_bytes_per_s=1e12))
    short = StepWork(100, 100 * 101 // 2, 100, 0, 0, 1)
    long = StepWork(100, 100 * 4000 + 100 * 101 // 2, 4100, 0, 0, 1)
    assert cost.step_time_s(long) > cost.step_time_s(short)
    flops = 2 * 2 * 576 * 100 + 2 * 10 * 8 * 1 + 4 * 2 * 2 * 4 * (100 * 101 // 2)
    assert cost.step_time_s(short) == pytest.approx(flops / 5e5)


def test_tensor_parallelism_splits_the_work_and_adds_all_reduces():
    one = RooflineCostModel(MODEL, hardware())
    two = RooflineCostModel(MODEL, hardware(tensor_parallel=2, interconnect_bytes_per_s=100.0))
    comm_s = 2 * 2 * 8 * 2 * 2 * (1 / 2) / 100.0  # per token: 2 all-reduces x layers x hidden x bytes x ring
    assert two.step_time_s(decode_work(1, 10)) == pytest.approx(one.step_time_s(decode_work(1, 10)) / 2 + comm_s)
    with pytest.raises(ValueError, match="interconnect_bytes_per_s"):
        RooflineCostModel(MODEL, hardware(tensor_parallel=2))


def test_cpu_overhead_presets_name_their_source_and_extra_terms_add_up():
    assert cpu_overhead("none").step_time_s(64, 4096) == 0.0
    v0 = cpu_overhead("vllm-2023")
    # 5 ms of GPU time is 38% of a v0 step: 13.16 ms, 8.16 ms of it on the CPU.
    assert v0.step_time_s(1, 1) == pytest.approx(5e-3 / 0.38 * 0.62) and "v0.6.0 blog" in v0.source
    assert cpu_overhead("vllm-v1").fixed_s == pytest.approx(5e-3 / 0.38 * 0.29)
    assert cpu_overhead("sglang").fixed_s == 0.0 and "overlap" in cpu_overhead("sglang").source
    mixed = cpu_overhead("vllm-v1", 1e-3, 2e-5, 1e-7)
    assert mixed.step_time_s(10, 1000) == pytest.approx(5e-3 / 0.38 * 0.29 + 1e-3 + 10 * 2e-5 + 1000 * 1e-7)
    with pytest.raises(ConfigError, match="engine.cpu_overhead='vllm' is not one of none, vllm-2023"):
        cpu_overhead("vllm")
    with pytest.raises(ConfigError, match="engine.step_overhead_s=-1 must be >= 0"):
        cpu_overhead("none", -1)
