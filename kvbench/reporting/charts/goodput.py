"""Goodput: requests per second that met every SLO set with `goodput.*_ms` (vLLM's `--goodput`), and
the share of requests that did, against request rate (or per strategy for a single rate)."""

from __future__ import annotations

import pandas as pd

from kvbench.reporting.charts.common import Chart, Skipped, grouped_bars, legend_outside
from kvbench.reporting.charts.rate_lines import draw_lines, rate_axis
from kvbench.reporting.series import Scenario
from kvbench.reporting.stats import aggregate
from kvbench.reporting.styles import TEXT_WIDTH_IN, new_figure, save_figure, style

NAME = "goodput"


def draw(scenario: Scenario, out_dir) -> Chart | Skipped:
    runs = scenario.table
    if "request_goodput" not in runs or pd.to_numeric(runs["request_goodput"], errors="coerce").isna().all():
        return Skipped(NAME, "no run set an SLO (run with goodput.ttft_ms=... goodput.tpot_ms=...)")
    runs = runs.assign(good_share=pd.to_numeric(runs["request_goodput"], errors="coerce") / runs["requests_per_s"])
    data = aggregate(runs, ["series", "label", "color", "rate"], ["request_goodput", "good_share"])
    slo = _slo_text(runs)
    with style():
        fig, axes = new_figure(1, 2, figsize=(TEXT_WIDTH_IN, 3.0))
        for ax, (metric, label, scale) in zip(axes[0], (("request_goodput", "goodput (req/s)", 1.0),
                                                        ("good_share", "requests within the SLOs (%)", 100.0))):
            if len(scenario.rates()) >= 2:
                draw_lines(ax, data[data["rate"].notna()], scenario.series(), "rate", metric, scale)
                rate_axis(ax, scenario.rates())
            else:
                grouped_bars(ax, data, metric, scale)
            ax.set_ylabel(label)
            ax.set_ylim(bottom=0)
        legend_outside(fig, axes[0])
        title = scenario.title(f"Goodput under {slo}")
        paths = save_figure(fig, out_dir, NAME)
    return Chart(NAME, title, data, paths)


def _slo_text(runs: pd.DataFrame) -> str:
    parts = []
    for name in ("ttft", "tpot", "e2el"):
        column = f"cfg.goodput.{name}_ms"
        if column in runs:
            values = pd.to_numeric(runs[column], errors="coerce").dropna().unique()
            if len(values):
                parts.append(f"{name.upper()} ≤ " + "/".join(f"{v:g}" for v in values) + " ms")
    return ", ".join(parts) or "the SLOs"
