"""Lines of means over seeds (with 95% intervals) against something, one line per series: the drawing
shared by the charts that plot a metric against request rate or throughput."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kvbench.reporting.stats import error_bars
from kvbench.reporting.styles import strategy_linestyle

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")


def draw_lines(ax, data: pd.DataFrame, series: pd.DataFrame, x: str, metric: str, scale: float = 1.0,
               x_errors: bool = False) -> None:
    """One line per series of `metric` (scaled) against column `x`, points sorted by `x`."""
    for index, row in enumerate(series.itertuples()):
        points = data[data["series"] == row.series].sort_values(x)
        if points.empty:
            continue
        ax.errorbar(points[x], points[metric] * scale, yerr=error_bars(points, metric, scale),
                    xerr=error_bars(points, x) if x_errors else None, color=row.color,
                    marker=MARKERS[index % len(MARKERS)], markersize=4, linewidth=1.3, elinewidth=0.8, capsize=2,
                    linestyle=strategy_linestyle(row.preset), label=row.label)


def rate_axis(ax, rates: list[float]) -> None:
    """Request rates on the x axis: log2 when they span a factor of 8 or more."""
    if rates and rates[0] > 0 and rates[-1] / rates[0] >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(rates, [f"{r:g}" for r in rates])
    ax.minorticks_off()
    ax.set_xlabel("request rate (req/s)")


def finite(values) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[np.isfinite(array)]
