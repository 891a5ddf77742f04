"""The roofline: a step costs the larger of its bytes and its FLOPs at the hardware's rates."""

import pytest

from kvbench.cost_model import RooflineCostModel, StepWork
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


def test_step_overhead_is_added_and_checked():
    assert RooflineCostModel(MODEL, hardware(), step_overhead_s=0.5).step_time_s(decode_work(1, 0)) == pytest.approx(
        RooflineCostModel(MODEL, hardware()).step_time_s(decode_work(1, 0)) + 0.5)
    with pytest.raises(ValueError, match="step_overhead_s"):
        RooflineCostModel(MODEL, hardware(), step_overhead_s=-1)
