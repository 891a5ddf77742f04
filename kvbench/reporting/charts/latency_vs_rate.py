"""Latency against request rate, a line per strategy, and the highest rate each sustains under a bound.

Panels: mean normalized latency (end-to-end latency / output tokens, the vLLM paper's measure),
TTFT p50 and p99, TPOT p50 and p99, and output tokens/s. Points are means over seeds with 95% CIs.
The bound applies to normalized latency: a fixed number of seconds per token, or a multiple of the
scenario's lowest (best, usually unloaded) normalized latency, e.g. "5x".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kvbench.reporting.charts.common import Chart, Skipped, legend_outside
from kvbench.reporting.latency import sustained_rate
from kvbench.reporting.series import Scenario
from kvbench.reporting.stats import aggregate, error_bars
from kvbench.reporting.styles import TEXT_WIDTH_IN, new_figure, save_figure, strategy_linestyle, style

NAME = "latency_vs_rate"
BOUND_METRIC = "normalized_latency_s"
PANELS = (  # metric, panel title, axis label
    ("normalized_latency_s", "normalized latency (mean)", "s per output token"),
    ("ttft_p50_s", "TTFT p50", "time to first token (s)"),
    ("ttft_p99_s", "TTFT p99", "time to first token (s)"),
    ("output_tokens_per_s", "throughput", "output tokens/s"),
    ("tpot_p50_s", "TPOT p50", "time per output token (s)"),
    ("tpot_p99_s", "TPOT p99", "time per output token (s)"),
)
LOG_SCALE_SPREAD = 30  # a panel whose values span more than this factor gets a log y axis
LOG_SCALE_SPREAD_X = 8  # rates spanning this factor (1, 2, 4, 8) get a log2 x axis
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")
DODGE = 0.03  # relative x offset between series


@dataclass(frozen=True)
class LatencyBound:
    """A bound on mean normalized latency: `seconds`, or `multiple` x the scenario's lowest value."""

    seconds: float | None = None
    multiple: float | None = None

    @classmethod
    def parse(cls, text: str) -> LatencyBound:
        try:
            value = float(text[:-1]) if text.endswith("x") else float(text)
        except ValueError:
            value = math.nan
        if not value > 0:
            raise ValueError(f"--latency-bound {text!r}: give seconds per token (0.1) or a multiple of the best (5x)")
        return cls(multiple=value) if text.endswith("x") else cls(seconds=value)

    def resolve(self, best_s: float) -> float:
        return self.seconds if self.seconds is not None else self.multiple * best_s

    def describe(self, best_s: float) -> str:
        if self.seconds is not None:
            return f"{self.seconds:.4g} s/token"
        return f"{self.multiple:g}× best = {self.resolve(best_s):.3g} s/token"


def draw(scenario: Scenario, out_dir, bound: LatencyBound) -> Chart | Skipped:
    runs = scenario.table
    rates = scenario.rates()
    if len(rates) < 2:
        return Skipped(NAME, "needs runs at two or more values of workload.rate "
                             "(a sweep such as workload.rate=1,2,4,8)")
    metrics = [metric for metric, _, _ in PANELS]
    data = aggregate(runs[runs["rate"].notna()], ["series", "label", "color", "rate"], metrics)
    best_s = float(data[BOUND_METRIC].min())
    bound_s = bound.resolve(best_s)
    sustained = sustained_table(data, bound_s)
    labels = {
        row.series: f"{scenario.labels()[row.series]} ({_sustained_text(row)})" for row in sustained.itertuples()
    }
    with style():
        fig, axes = new_figure(3, 2, figsize=(TEXT_WIDTH_IN, 7.2))
        flat = axes.flatten()
        for ax, (metric, panel_title, unit) in zip(flat, PANELS):
            _panel(ax, data, scenario, metric, labels)
            ax.set_title(panel_title)
            ax.set_ylabel(unit)
            ax.set_xlabel("request rate (req/s)")
        flat[0].axhline(bound_s, color="black", linestyle="--", linewidth=1)
        flat[0].annotate(f"bound: {bound.describe(best_s)}", (0.02, bound_s), xycoords=("axes fraction", "data"),
                         xytext=(0, 3), textcoords="offset points", fontsize=7)
        for row in sustained.itertuples():
            if not math.isnan(row.sustained_rate_req_s):
                at = data[(data["series"] == row.series) & (data["rate"] == row.sustained_rate_req_s)]
                flat[0].plot(row.sustained_rate_req_s, at[BOUND_METRIC].iloc[0], marker="o", markersize=12,
                             markerfacecolor="none", markeredgecolor=at["color"].iloc[0], markeredgewidth=1.5)
        legend_outside(fig, flat, ncol=min(len(labels), 2))
        seeds = int(data["num_runs"].max())
        what = "Latency against request rate" + (f" (mean and 95% interval over {seeds} seeds)" if seeds > 1 else "")
        title = scenario.title(what)
        paths = save_figure(fig, out_dir, NAME)
    notes = [f"latency bound: normalized latency <= {bound.describe(best_s)}; circled: highest rate sustained"]
    return Chart(NAME, title, data, paths, notes, {"sustained_rate": sustained})


def sustained_table(data: pd.DataFrame, bound_s: float) -> pd.DataFrame:
    """Per series: the bound, the highest rate sustained under it, and whether every swept rate met it."""
    rows = []
    for series, group in data.groupby("series", sort=False):
        rate, every_rate_met = sustained_rate(group["rate"], group[BOUND_METRIC], bound_s)
        rows.append({
            "series": series, "latency_bound_s": bound_s, "sustained_rate_req_s": rate,
            "every_rate_met": every_rate_met, "max_rate_swept_req_s": float(group["rate"].max()),
        })
    return pd.DataFrame(rows)


def _sustained_text(row) -> str:
    if math.isnan(row.sustained_rate_req_s):
        return "misses the bound at every rate"
    return f"{'≥ ' if row.every_rate_met else ''}{row.sustained_rate_req_s:g} req/s under the bound"


def _panel(ax, data: pd.DataFrame, scenario: Scenario, metric: str, labels: dict[str, str]) -> None:
    series = scenario.series()
    for index, row in enumerate(series.itertuples()):
        points = data[data["series"] == row.series]
        rates = points["rate"].to_numpy(dtype=float)
        values = points[metric].to_numpy(dtype=float)
        # Strategies with equal results would hide each other: a small sideways offset and their own marker.
        xs = rates * (1 + DODGE * (index - (len(series) - 1) / 2))
        ax.errorbar(xs, values, yerr=error_bars(points, metric), color=row.color,
                    marker=MARKERS[index % len(MARKERS)], markersize=4, linewidth=1.4, elinewidth=0.8, capsize=2,
                    linestyle=strategy_linestyle(row.preset), label=labels.get(row.series, row.series))
    if data[metric].isna().all():
        ax.text(0.5, 0.5, "not recorded\n(the runs kept no requests table)", transform=ax.transAxes, ha="center",
                va="center", color="0.4")
        ax.set_yticks([])
    # Limits follow the means: with two or three seeds an interval can be far wider than the curves.
    finite = data[metric].to_numpy(dtype=float)
    finite = finite[np.isfinite(finite) & (finite > 0)]
    if len(finite) and finite.max() / finite.min() > LOG_SCALE_SPREAD:
        ax.set_yscale("log")
        ax.set_ylim(finite.min() / 2, finite.max() * 2)
    elif len(finite):
        ax.set_ylim(0, finite.max() * 1.25)
    rates = sorted(data["rate"].unique())
    if rates[-1] / rates[0] >= LOG_SCALE_SPREAD_X:
        ax.set_xscale("log", base=2)
    ax.set_xticks(rates, [f"{r:g}" for r in rates])
    ax.minorticks_off()
