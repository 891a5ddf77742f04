"""Latency figures of a run from its requests table, and the highest request rate under a bound.

summary.json carries a few percentiles; charts want a few more (TPOT p99), so they are computed here
the same way `kvbench.metrics.summarize` does (numpy's linear-interpolation percentile, NaN ignored).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from kvbench.results import read_table

LATENCY_METRICS = ("normalized_latency_s", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s")


def _percentile(values: pd.Series, q: float) -> float:
    values = values.dropna()
    return float(np.percentile(values, q)) if len(values) else math.nan


def request_latency(requests: pd.DataFrame) -> dict[str, float]:
    """Mean normalized latency (s per output token) and TTFT / TPOT p50 and p99, in seconds."""
    return {
        "normalized_latency_s": float(requests["normalized_latency_s"].mean()) if len(requests) else math.nan,
        "ttft_p50_s": _percentile(requests["ttft_s"], 50),
        "ttft_p99_s": _percentile(requests["ttft_s"], 99),
        "tpot_p50_s": _percentile(requests["tpot_s"], 50),
        "tpot_p99_s": _percentile(requests["tpot_s"], 99),
    }


def with_request_latency(table: pd.DataFrame) -> pd.DataFrame:
    """`table` with LATENCY_METRICS recomputed from each run's requests table where the run kept it.

    Runs without a requests table (committed baselines keep only summaries) keep summary.json's values;
    a metric summary.json lacks (tpot_p99_s) is NaN for them.
    """
    table = table.copy()
    for metric in LATENCY_METRICS:
        if metric not in table:
            table[metric] = math.nan
    for index, run_dir in table["run_dir"].items():
        requests = read_table(run_dir, "requests", ["ttft_s", "tpot_s", "normalized_latency_s"])
        if requests is not None:
            for metric, value in request_latency(requests).items():
                table.at[index, metric] = value
    return table


def sustained_rate(rates: pd.Series, latencies: pd.Series, bound: float) -> tuple[float, bool]:
    """The highest rate such that it and every lower rate meet `latency <= bound`.

    Returns (rate, every_rate_met): NaN when even the lowest rate misses the bound; `every_rate_met`
    says the sweep never reached the limit, so the true figure is at least `rate`. Requiring every
    lower rate to pass keeps one lucky point past the knee from counting.
    """
    order = np.argsort(rates.to_numpy(dtype=np.float64))
    best = math.nan
    for rate, latency in zip(rates.to_numpy(dtype=np.float64)[order], latencies.to_numpy(dtype=np.float64)[order]):
        if not latency <= bound:  # NaN fails too
            return best, False
        best = float(rate)
    return best, not math.isnan(best)
