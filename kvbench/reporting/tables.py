"""The tables of a scenario: the summary (one row per strategy and rate, means and 95% intervals over seeds)
and the highest rate each strategy sustains under the latency bound.

The same numbers go into report.md, the appendix's Markdown and its LaTeX (booktabs) table; this
module computes them and formats the cells, the writers only lay them out.
"""

from __future__ import annotations

import math

import pandas as pd

from kvbench.reporting.series import Scenario, format_rate
from kvbench.reporting.stats import aggregate

# Two tables, so that each fits a page: (metric, header, format, scale to the shown unit).
THROUGHPUT_COLUMNS = (
    ("output_tokens_per_s", "output tok/s", "{:.1f}", 1.0),
    ("requests_per_s", "req/s", "{:.3f}", 1.0),
    ("mean_batch_size", "mean batch", "{:.2f}", 1.0),
    ("mem_token_frac", "KV in tokens (%)", "{:.1f}", 100.0),
    ("mem_waste_frac", "KV wasted (%)", "{:.1f}", 100.0),
    ("preemptions", "preemptions", "{:.0f}", 1.0),
)
LATENCY_COLUMNS = (
    ("normalized_latency_s", "norm. latency (s/token)", "{:.4f}", 1.0),
    ("ttft_p50_s", "TTFT p50 (s)", "{:.3f}", 1.0),
    ("ttft_p99_s", "TTFT p99 (s)", "{:.3f}", 1.0),
    ("tpot_p50_s", "TPOT p50 (s)", "{:.4f}", 1.0),
    ("tpot_p99_s", "TPOT p99 (s)", "{:.4f}", 1.0),
)
SUMMARY_TABLES = (("Throughput and memory", THROUGHPUT_COLUMNS), ("Latency", LATENCY_COLUMNS))
KEY_HEADERS = ("strategy", "rate", "seeds")


def summary_numbers(scenario: Scenario) -> pd.DataFrame:
    """series, label, rate, num_runs, and each metric with `<metric>_low`/`_high`, in series then rate order."""
    runs = scenario.table.sort_values(["series_order", "rate"], kind="stable")
    metrics = [metric for metric, *_ in THROUGHPUT_COLUMNS + LATENCY_COLUMNS if metric in runs]
    return aggregate(runs, ["series", "rate"], metrics)


def summary_cells(numbers: pd.DataFrame, columns: tuple) -> tuple[list[str], list[list[str]]]:
    """Headers and text cells of one summary table (`THROUGHPUT_COLUMNS` or `LATENCY_COLUMNS`);
    a mean over n > 1 runs shows `mean [low, high]`, its 95% interval."""
    columns = [c for c in columns if c[0] in numbers]
    headers = list(KEY_HEADERS) + [header for _, header, _, _ in columns]
    rows = []
    for _, row in numbers.iterrows():
        cells = [str(row["series"]), format_rate(row["rate"]), str(int(row["num_runs"]))]
        cells += [mean_ci_text(row[m], row[f"{m}_low"], row[f"{m}_high"], fmt, scale) for m, _, fmt, scale in columns]
        rows.append(cells)
    return headers, rows


def mean_ci_text(mean: float, low: float, high: float, fmt: str, scale: float = 1.0) -> str:
    if mean is None or math.isnan(mean):
        return "n/a"
    text = fmt.format(mean * scale)
    if low is not None and high is not None and not (math.isnan(low) or math.isnan(high)):
        text += f" [{fmt.format(low * scale)}, {fmt.format(high * scale)}]"
    return text


def sustained_cells(sustained: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Headers and cells of the highest-rate-under-the-bound table (see charts/latency_vs_rate.py)."""
    rows = []
    for row in sustained.itertuples():
        if math.isnan(row.sustained_rate_req_s):
            rate = "none (misses the bound even at the lowest rate swept)"
        else:
            rate = f"{'≥ ' if row.every_rate_met else ''}{row.sustained_rate_req_s:g} req/s"
        rows.append([row.series, f"{row.latency_bound_s:.4g}", rate, f"{row.max_rate_swept_req_s:g}"])
    return ["strategy", "bound (s/token)", "highest rate sustained", "highest rate swept (req/s)"], rows
