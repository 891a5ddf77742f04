"""Block-size sweep: throughput, batch size, internal fragmentation and latency against block size.

One line per strategy preset that ran at two or more block sizes (`strategy.block_size=8,16,32`),
at the highest rate where it did; means over seeds with 95% CIs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kvbench.reporting.charts.common import Chart, Skipped, at_rate, legend_outside
from kvbench.reporting.series import Scenario, format_rate
from kvbench.reporting.stats import aggregate, error_bars
from kvbench.reporting.styles import (
    TEXT_WIDTH_IN,
    display_name,
    new_figure,
    save_figure,
    strategy_color,
    strategy_linestyle,
    style,
)

NAME = "block_size_sweep"
PANELS = (  # metric, panel title, axis label, scale to the axis unit
    ("output_tokens_per_s", "throughput", "output tokens/s", 1.0),
    ("mean_batch_size", "mean running batch", "sequences", 1.0),
    ("mem_internal_frag_frac", "internal fragmentation", "share of KV pool (%)", 100.0),
    ("normalized_latency_s", "normalized latency (mean)", "s per output token", 1.0),
)


def draw(scenario: Scenario, out_dir) -> Chart | Skipped:
    curves = [_curve(preset, runs) for preset, runs in scenario.table.groupby("preset", sort=False)]
    curves = [c for c in curves if c is not None]
    if not curves:
        return Skipped(NAME, "no strategy ran at two or more block sizes (sweep strategy.block_size=8,16,32)")
    data = pd.concat(curves, ignore_index=True)
    with style():
        fig, axes = new_figure(2, 2, figsize=(TEXT_WIDTH_IN, 4.6))
        for ax, (metric, panel_title, unit, scale) in zip(axes.flatten(), PANELS):
            for preset, curve in data.groupby("preset", sort=False):
                ax.errorbar(curve["block_size"], curve[metric] * scale, yerr=error_bars(curve, metric, scale),
                            color=strategy_color(preset), linestyle=strategy_linestyle(preset), marker="o",
                            markersize=4, capsize=2.5, label=f"{display_name(preset)} at {format_rate(curve['rate'].iloc[0])}")
            ax.set_xscale("log", base=2)
            sizes = sorted(data["block_size"].unique())
            ax.set_xticks(sizes, [str(int(s)) for s in sizes])
            ax.minorticks_off()
            ax.set_xlabel("block size (tokens)")
            ax.set_ylabel(unit)
            ax.set_title(panel_title)
            ax.set_ylim(bottom=0)
        legend_outside(fig, axes.flatten())
        title = scenario.title("Block-size sweep")
        paths = save_figure(fig, out_dir, NAME)
    return Chart(NAME, title, data, paths)


def _curve(preset: str, runs: pd.DataFrame) -> pd.DataFrame | None:
    """The preset's means per block size, at the highest rate with two or more block sizes, or None."""
    rates = sorted(runs["rate"].unique(), key=lambda r: -np.inf if np.isnan(r) else r, reverse=True)
    for rate in rates:
        at = at_rate(runs, rate)
        if at["block_size"].nunique() >= 2:
            curve = aggregate(at, ["block_size"], [metric for metric, *_ in PANELS]).sort_values("block_size")
            return curve.assign(preset=preset, rate=rate)
    return None
