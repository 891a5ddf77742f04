"""Quantized KV formats on the device executor: the reference quantizers, and the dense proof at a
format (kernels/quant_reference.py, model.kv_dtype)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kvbench.device.dense_reference import dense_logits
from kvbench.kernels.quant_reference import E2M1_VALUES, fake_quantize
from kvbench.kv_format import KVFormat
from kvbench.strategies import STRATEGIES

PRESETS = sorted({*STRATEGIES.names(), "orca_max", "orca_pow2", "orca_oracle"})
WORKLOAD = [
    "workload=synthetic", "workload.num_requests=16", "workload.arrival=offline",
    "workload.prompt.min=4", "workload.prompt.max=40", "workload.output.min=1", "workload.output.max=16",
    "workload.shared_prefix_tokens=20", "workload.num_prefix_groups=2", "workload.n=2",
    "engine.dtype=float64", "scheduler.max_num_batched_tokens=256", "kv_cache_bytes=300000",
    # The reference quantizes every token (no full-precision window), so the budget sets none aside.
    "model.kv_residual_tokens=0",
]
STRATEGY_OVERRIDES = {"vattention": ["strategy.page_bytes=512"]}  # 16 tokens of the tiny model at fp8
# The same quantized values through paged kernels and through dense attention: float64 rounding.
EXACT_ATOL = 1e-9
# Against the unquantized dense model, the largest logit difference over the row's largest |logit|
# (the tiny model with random weights, 2 layers, seeds 0-2 measured): int8 (per-token groups of 32,
# each element within half a step of (max - min) / 255) 0.49-0.60%; fp8 e4m3 (3 mantissa bits,
# relative rounding up to 2^-4) 2.9%; fp8 e5m2 (2 mantissa bits, up to 2^-3) 5.6-7.3%. The bounds
# are about 3x the worst measured, for other seeds.
RELATIVE_TOLERANCE = {"int8": 0.02, "fp8_e4m3": 0.09, "fp8_e5m2": 0.22}


def fmt(name: str, group_size: int = 32) -> KVFormat:
    return KVFormat.of(name, 2, group_size=group_size)


def test_fp8_keeps_representable_values_and_saturates():
    x = torch.tensor([[[1.0, -0.5, 448.0, 1000.0, 1.3]]], dtype=torch.float64)
    assert fake_quantize(x, fmt("fp8_e4m3")).flatten().tolist() == [1.0, -0.5, 448.0, 448.0, 1.25]
    assert fake_quantize(x, fmt("fp8_e5m2")).flatten().tolist()[:4] == [1.0, -0.5, 448.0, 1024.0]


@pytest.mark.parametrize("bits, name", [(8, "int8"), (4, "int4")])
def test_int_groups_round_to_half_a_step_of_their_own_range(bits, name):
    x = torch.randn(5, 2, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = fake_quantize(x, fmt(name, group_size=16))
    groups, got = x.reshape(5, 4, 16), out.reshape(5, 4, 16)
    step = (groups.amax(-1, keepdim=True) - groups.amin(-1, keepdim=True)) / ((1 << bits) - 1)
    assert ((got - groups).abs() <= step / 2 + 1e-3 * step.abs() + 1e-6).all()  # + fp16 scale rounding
    assert len(torch.unique(got[0, 0])) <= 1 << bits


def test_nvfp4_elements_are_e2m1_values_times_a_block_scale():
    x = torch.randn(3, 1, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = fake_quantize(x, fmt("nvfp4")).reshape(3, 2, 16)
    scale = (x.reshape(3, 2, 16).abs().amax(-1, keepdim=True) / 6).to(torch.float8_e4m3fn).to(torch.float64)
    assert set((out / scale).abs().flatten().tolist()) <= set(E2M1_VALUES)


@pytest.mark.parametrize("name", ["fp8_e4m3", "int8", "int4", "nvfp4"])
def test_a_tokens_stored_value_does_not_depend_on_the_other_tokens(name):
    x = torch.randn(8, 2, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    together = fake_quantize(x, fmt(name))
    alone = torch.cat([fake_quantize(x[i : i + 1], fmt(name)) for i in range(8)])
    assert torch.equal(together, alone)


def quantized_dense_continuation(engine, request) -> str:
    vocab = engine.model_config.vocab_size
    ids = request.prompt.ids(0, request.num_prompt_tokens, vocab).tolist()
    for _ in range(request.num_output_tokens):
        ids.append(int(dense_logits(engine.decoder, ids, engine.kv_format)[-1].argmax()))
    return " ".join(map(str, ids[request.num_prompt_tokens :]))


@pytest.mark.parametrize("kv_dtype", sorted(RELATIVE_TOLERANCE))
def test_quantized_logits_equal_the_quantized_dense_model_and_stay_near_the_exact_one(kv_dtype, run_device):
    run, recorder = run_device(["strategy=paged_prefix", f"model.kv_dtype={kv_dtype}", *WORKLOAD,
                                "engine.record_logits=true"])
    engine = run.executor.engine
    assert engine.kv_format.is_quantized
    worst_exact = worst_relative = 0.0
    for records in engine.book.finished.values():
        for record in records:
            tokens = record.token_ids[: max(record.logits) + 1]
            quantized = dense_logits(engine.decoder, tokens, engine.kv_format).numpy()
            exact = dense_logits(engine.decoder, tokens).numpy()
            for position, row in record.logits.items():
                worst_exact = max(worst_exact, float(np.abs(row - quantized[position]).max()))
                worst_relative = max(worst_relative,
                                     float(np.abs(row - exact[position]).max() / np.abs(exact[position]).max()))
    assert worst_exact <= EXACT_ATOL
    assert 0 < worst_relative <= RELATIVE_TOLERANCE[kv_dtype]  # > 0: the format did change the values


@pytest.mark.parametrize("kv_dtype", sorted(RELATIVE_TOLERANCE))
def test_every_strategy_gives_the_same_tokens_at_a_format(kv_dtype, run_device):
    shas = {}
    for strategy in PRESETS:
        run, recorder = run_device([f"strategy={strategy}", *STRATEGY_OVERRIDES.get(strategy, []),
                                    f"model.kv_dtype={kv_dtype}", *WORKLOAD])
        shas[strategy] = run.executor.summary_fields()["tokens_sha256"]
    engine = run.executor.engine
    texts = recorder.requests_table().set_index("request_id")["generated_token_ids"].to_dict()
    for request in run.workload.requests:  # the last strategy's tokens are the quantized dense model's
        expected = quantized_dense_continuation(engine, request)
        assert set(texts[request.request_id].split("|")) == {expected}, f"request {request.request_id}"
    assert len(set(shas.values())) == 1, shas
