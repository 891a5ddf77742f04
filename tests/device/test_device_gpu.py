"""The proof on a GPU: float64 torch kernels must reproduce the dense model exactly (tokens and
logits), bf16 Triton kernels within bf16 rounding, also over an fp8 pool and with sliding-window
layers. Skipped without CUDA; the fp8 and window cases have not run on a GPU yet (no GPU was lent
when they were written: scripts/gpu_measure.sh runs them)."""

from __future__ import annotations

import pytest
import torch

from kvbench.device.decoder import Decoder

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

STRATEGIES = ["paged", "paged_cow", "paged_prefix", "contiguous", "orca_max"]
WORKLOAD = [
    "engine.device=cuda", "workload=synthetic", "workload.num_requests=24", "workload.arrival=offline",
    "workload.prompt.min=4", "workload.prompt.max=40", "workload.output.min=1", "workload.output.max=24",
    "workload.shared_prefix_tokens=20", "workload.num_prefix_groups=2", "workload.n=2",
    "engine.record_logits=true", "scheduler.max_num_batched_tokens=256", "kv_cache_bytes=200000",
]
# bf16 keeps 8 bits of mantissa: through two layers the logits move by about 1% of their scale;
# reading a wrong block or position moves them by their whole scale.
BF16_RELATIVE_TOLERANCE = 5e-2


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_float64_on_cuda_generates_the_dense_models_tokens(strategy, run_device, dense_continuations, max_logit_error):
    run, recorder = run_device([f"strategy={strategy}", *WORKLOAD, "engine.dtype=float64"])
    assert run.executor.summary_fields()["device"].startswith("cuda")
    dense = dense_continuations(run.executor.engine, run.workload.requests)
    requests = recorder.requests_table()
    for request_id, text in zip(requests["request_id"], requests["generated_token_ids"]):
        assert set(text.split("|")) == {dense[request_id]}
    assert max_logit_error(run.executor.engine) <= 1e-9


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_bf16_triton_logits_match_the_dense_model(strategy, run_device, max_logit_error):
    run, _ = run_device([f"strategy={strategy}", *WORKLOAD, "engine.dtype=bfloat16", "engine.backend=triton"])
    engine = run.executor.engine
    reference = Decoder(engine.model_config, engine.decoder.weights.to(torch.float32))
    assert max_logit_error(engine, reference=reference, relative=True) <= BF16_RELATIVE_TOLERANCE


@pytest.mark.parametrize("strategy", ["paged_cow", "paged_prefix"])
@pytest.mark.parametrize("kv_dtype", ["fp8_e4m3", "fp8_e5m2"])
def test_bf16_triton_over_an_fp8_pool_matches_the_quantized_dense_model(strategy, kv_dtype, run_device, max_logit_error):
    if torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("fp8 in Triton needs compute capability 8.9+")
    run, _ = run_device([f"strategy={strategy}", *WORKLOAD, "engine.dtype=bfloat16", "engine.backend=triton",
                         f"model.kv_dtype={kv_dtype}"])
    engine = run.executor.engine
    summary = run.executor.summary_fields()
    assert summary["device_kv_pool_dtype"].startswith("float8")
    # One byte per element and an fp32 k_scale and v_scale per layer: the simulator's pool.
    num_layers = engine.model_config.num_layers
    assert summary["device_kv_pool_bytes"] == run.budget.num_blocks * run.budget.block_bytes + 2 * num_layers * 4
    reference = Decoder(engine.model_config, engine.decoder.weights.to(torch.float32))
    assert max_logit_error(engine, reference=reference, relative=True, quantized=True) <= BF16_RELATIVE_TOLERANCE


@pytest.mark.parametrize("strategy", ["paged_radix", "contiguous"])  # they keep every token: the device runs them
def test_bf16_triton_logits_match_the_dense_model_with_a_sliding_window(strategy, run_device, max_logit_error):
    run, _ = run_device([f"strategy={strategy}", *WORKLOAD, "engine.dtype=bfloat16", "engine.backend=triton",
                         "model.layer_pattern=[sliding,full]", "model.sliding_window=16"])
    engine = run.executor.engine
    reference = Decoder(engine.model_config, engine.decoder.weights.to(torch.float32))
    assert max_logit_error(engine, reference=reference, relative=True) <= BF16_RELATIVE_TOLERANCE
