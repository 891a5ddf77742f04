"""The dense-model proof with sliding-window layers (CPU, float64, torch kernels).

A tiny model whose even layers attend to the last 6 tokens only: every strategy that keeps a
sequence's whole context in one block table (all but the window-aware ones, which the device
engine refuses) must generate exactly the tokens of the dense model with the same window mask,
with logits equal within float64 rounding. The window must matter: the same weights without it
give other logits.
"""

from __future__ import annotations

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


def test_window_aware_strategies_and_triton_are_refused_on_the_device(run_device):
    for strategy in ("paged", "paged_prefix"):  # a table per layer group
        with pytest.raises(ConfigError, match=f"cannot run model=tiny with strategy={strategy}"):
            run_device([f"strategy={strategy}", *WORKLOAD, *WINDOW])
    with pytest.raises(ValueError, match="no sliding-window mask yet"):
        run_device(["strategy=paged_radix", *WORKLOAD, *WINDOW, "engine.backend=triton", "engine.dtype=float32"])
