"""Headline figures from the step and request tables."""

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
