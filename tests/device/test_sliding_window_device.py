"""The dense-model proof with sliding-window layers (CPU, float64, torch kernels), and the Triton
kernels' window (CPU: the interpreter, float32) against the torch kernels'.

A tiny model whose even layers attend to the last 6 tokens only: every strategy that keeps a
sequence's whole context in one block table (all but the window-aware ones, which the device
engine refuses) must generate exactly the tokens of the dense model with the same window mask,
with logits equal within float64 rounding. The window must matter: the same weights without it
give other logits.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from kvbench.device.dense_reference import dense_logits
from kvbench.errors import ConfigError
from kvbench.kernels.reference import attend, ref_paged_decode_attention
from kvbench.strategies import STRATEGIES

from .test_strategies_compute_the_same import LOGITS_ATOL, SMALL_POOL, STRATEGY_OVERRIDES, WORKLOAD, generated_texts

WINDOW = ["model.layer_pattern=[sliding,full]", "model.sliding_window=6", "engine.backend=torch"]
KEEPING = sorted({*STRATEGIES.names(), "orca_max"} - {n for n in STRATEGIES.names() if STRATEGIES.get(n).window_aware})


def test_the_reference_kernel_sees_only_the_window():
    torch.manual_seed(0)
    keys, values = torch.randn(10, 1, 4, dtype=torch.float64), torch.randn(10, 1, 4, dtype=torch.float64)
    query = torch.randn(1, 2, 4, dtype=torch.float64)
    windowed = attend(query, keys, values, 0.5, 9, sliding_window=3)
    assert torch.allclose(windowed, attend(query, keys[7:], values[7:], 0.5, 2))
    key_cache, value_cache = keys.view(5, 2, 1, 4), values.view(5, 2, 1, 4)
    paged = ref_paged_decode_attention(
        query, key_cache, value_cache, torch.tensor([[0, 1, 2, 3, 4]], dtype=torch.int32),
        torch.tensor([10], dtype=torch.int32), 0.5, sliding_window=3,
    )
    assert torch.allclose(paged, windowed)


@pytest.mark.parametrize("strategy", KEEPING)
def test_sliding_window_layers_generate_the_dense_models_tokens(strategy, run_device, dense_continuations, max_logit_error):
    run, recorder = run_device([f"strategy={strategy}", *STRATEGY_OVERRIDES.get(strategy, []), SMALL_POOL, *WORKLOAD, *WINDOW])
    engine = run.executor.engine
    dense = dense_continuations(engine, run.workload.requests)
    for request_id, text in generated_texts(recorder).items():
        samples = text.split("|")
        assert samples == [dense[request_id]] * len(samples), f"request {request_id}"
    assert max_logit_error(engine) <= LOGITS_ATOL


def test_the_window_changes_what_the_model_computes(run_device):
    run, _ = run_device(["strategy=paged_radix", SMALL_POOL, *WORKLOAD, *WINDOW, "workload.num_requests=1"])
    decoder = run.executor.engine.decoder
    tokens = list(range(1, 30))
    windowed = dense_logits(decoder, tokens)
    decoder.config.layer_pattern = ["full"]
    try:
        full = dense_logits(decoder, tokens)
    finally:
        decoder.config.layer_pattern = ["sliding", "full"]
    assert torch.allclose(windowed[:6], full[:6])  # the first 6 positions see everything either way
    assert not torch.allclose(windowed[6:], full[6:])


def test_window_aware_strategies_are_refused_on_the_device(run_device):
    for strategy in ("paged", "paged_prefix"):  # a table per layer group
        with pytest.raises(ConfigError, match=f"cannot run model=tiny with strategy={strategy}"):
            run_device([f"strategy={strategy}", *WORKLOAD, *WINDOW])


# Prompts of 74-94 tokens (a 64-token shared prefix) with a window of 6: past the kernels' first 64-token tile, so the Triton
# kernels skip whole tiles before the window (tests/kernels/test_sliding_window_kernels.py proves
# the skip); a shared prefix gives prefix-cache hits (paged_radix keeps every token, so the device
# runs it on a windowed model; it hits only what is computed, so one request runs at a time),
# 2 samples copy-on-write.
TRITON_WINDOW = [
    "strategy=paged_radix", "strategy.block_size=4", "workload=synthetic", "workload.num_requests=3",
    "workload.arrival=offline", "workload.prompt.min=10", "workload.prompt.max=30", "workload.output.min=2",
    "workload.output.max=5", "workload.shared_prefix_tokens=64", "workload.n=2", "engine.dtype=float32",
    "engine.record_logits=true", "num_blocks=160", "scheduler.max_num_seqs=2", "model.layer_pattern=[sliding,full]", "model.sliding_window=6",
]


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1", reason="Triton on CPU needs TRITON_INTERPRET=1")
@pytest.mark.parametrize("kv_dtype", ["auto", "fp8_e4m3"])
def test_triton_kernels_give_the_torch_kernels_tokens_on_a_windowed_model(kv_dtype, run_device):
    overrides = [*TRITON_WINDOW, f"model.kv_dtype={kv_dtype}"]
    triton_run, triton_recorder = run_device([*overrides, "engine.backend=triton"])
    torch_run, torch_recorder = run_device([*overrides, "engine.backend=torch"])
    assert triton_run.executor.summary_fields()["attention_backend"] == "triton"
    assert triton_recorder.steps_table()["prefix_hit_tokens"].sum() > 0
    triton_texts = list(triton_recorder.requests_table()["generated_token_ids"])
    assert triton_texts == list(torch_recorder.requests_table()["generated_token_ids"])
    rows = {}
    for name, run in (("triton", triton_run), ("torch", torch_run)):
        rows[name] = {(request_id, position): row for request_id, records in run.executor.engine.book.finished.items()
                      for position, row in records[0].logits.items()}
    assert rows["triton"].keys() == rows["torch"].keys()
    assert max(float(np.abs(rows["triton"][k] - rows["torch"][k]).max()) for k in rows["triton"]) <= 1e-4
