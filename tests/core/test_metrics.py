"""Headline figures from the step and request tables."""

import math

import numpy as np
import pandas as pd
import pytest

from kvbench.metrics import STEP_COLUMNS, summarize


def test_memory_fractions_are_time_weighted_shares_of_the_pool():
    steps = pd.DataFrame(0, index=range(2), columns=STEP_COLUMNS)
    steps["duration_s"] = [1.0, 3.0]
    steps["token_bytes"] = [100, 20]
    steps["free_bytes"] = [0, 80]
    steps["reserved_bytes"] = [0, 0]
    steps["batch_size"] = [4, 2]
    requests = pd.DataFrame({
        "num_output_tokens": [10, 5], "num_prompt_tokens": [3, 3], "n": [1, 2], "beam_width": [1, 1],
        "ttft_s": [0.5, 1.5], "tpot_s": [0.1, np.nan], "normalized_latency_s": [0.2, 0.4],
    })
    summary = summarize(steps, requests, pool_bytes=100, end_time_s=4.0)
    assert summary["mem_token_frac"] == pytest.approx((100 * 1 + 20 * 3) / 4 / 100)
    assert summary["mem_free_frac"] == pytest.approx(80 * 3 / 4 / 100)
    assert summary["mean_batch_size"] == 3 and summary["max_batch_size"] == 4
    assert summary["output_tokens"] == 10 + 5 * 2
    assert summary["output_tokens_per_s"] == pytest.approx(20 / 4)
    assert summary["ttft_p50_s"] == pytest.approx(1.0)
    assert summary["tpot_p50_s"] == pytest.approx(0.1)  # the one-token request has no TPOT
    assert summary["normalized_latency_s"] == pytest.approx(0.3)


def test_time_weighted_sums_are_exactly_rounded_whatever_the_thread_count():
    """A BLAS dot product's rounding depends on how threads split it; math.fsum's does not."""
    rng = np.random.default_rng(0)
    num_steps = 5000
    steps = pd.DataFrame(0, index=range(num_steps), columns=STEP_COLUMNS)
    steps["duration_s"] = rng.uniform(1e-4, 1.0, num_steps) * 10.0 ** rng.integers(-3, 3, num_steps)
    steps["token_bytes"] = rng.integers(0, 2**40, num_steps)
    requests = pd.DataFrame({
        "num_output_tokens": [1], "num_prompt_tokens": [1], "n": [1], "beam_width": [1],
        "ttft_s": [0.1], "tpot_s": [np.nan], "normalized_latency_s": [0.1],
    })
    weights = steps["duration_s"].to_numpy()
    exact = math.fsum(steps["token_bytes"].to_numpy(dtype=np.float64) * weights) / math.fsum(weights) / 2**41
    assert summarize(steps, requests, pool_bytes=2**41, end_time_s=1.0)["mem_token_frac"] == exact
    shuffled = steps.sample(frac=1.0, random_state=1)  # any order of the same steps: the same figure
    assert summarize(shuffled, requests, pool_bytes=2**41, end_time_s=1.0)["mem_token_frac"] == exact


def test_a_streamed_run_summarises_exactly_as_one_kept_in_memory(monkeypatch):
    """Steps flushed chunk by chunk to the sink give the same totals as the whole table."""
    import kvbench.metrics as metrics
    from kvbench.metrics import StepTotals

    monkeypatch.setattr(metrics, "STEP_CHUNK_ROWS", 7)
    rng = np.random.default_rng(1)
    steps = pd.DataFrame(rng.integers(0, 1000, (50, len(STEP_COLUMNS))), columns=STEP_COLUMNS)
    steps["duration_s"] = rng.uniform(0, 1, 50)
    chunked = StepTotals()
    for start in range(0, 50, 7):
        chunked.add(steps.iloc[start : start + 7])
    whole = StepTotals.of(steps)
    assert chunked == whole and whole.num_steps == 50
