"""What every chart shares: its result types, grouped bars with error bars, the runs a per-run chart shows."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kvbench.reporting.runs import CONFIG_PREFIX
from kvbench.reporting.series import Scenario, format_rate

SEED = f"{CONFIG_PREFIX}seed"


@dataclass
class Chart:
    """A chart that was drawn: its files and the numbers behind it (also written as `<name>.csv`)."""

    name: str
    title: str
    data: pd.DataFrame
    paths: list[Path]
    notes: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # further numbers, e.g. sustained rates


@dataclass
class Skipped:
    """A chart that could not be drawn from these runs, and why."""

    name: str
    reason: str


def grouped_bars(ax, data: pd.DataFrame, value: str, scale: float = 1.0, label_format: str | None = None) -> None:
    """Bars of `value` (with error bars from `<value>_low`/`_high` where defined), one group per rate, one
    bar per series.

    `data` has the columns series, color, rate, `value`, `<value>_low`, `<value>_high`, in drawing order. With a
    single rate the series names label the x axis; otherwise the rates do and a legend names series.
    `label_format` ("{:.0f}") writes each bar's value above it.
    """
    rates = data["rate"].drop_duplicates().tolist()  # NaN (offline) counts once
    series = list(dict.fromkeys(data["series"].tolist()))
    width = 0.8 / len(series)
    for s_index, name in enumerate(series):
        rows = data[data["series"] == name]
        xs, heights, below, above = [], [], [], []
        for r_index, rate in enumerate(rates):
            match = at_rate(rows, rate)
            if match.empty:
                continue
            row = match.iloc[0]
            xs.append(r_index + (s_index - (len(series) - 1) / 2) * width)
            heights.append(row[value] * scale)
            low, high = row.get(f"{value}_low", math.nan), row.get(f"{value}_high", math.nan)
            below.append(0.0 if low is None or math.isnan(low) else (row[value] - low) * scale)
            above.append(0.0 if high is None or math.isnan(high) else (high - row[value]) * scale)
        color = data.loc[data["series"] == name, "color"].iloc[0]
        label = data.loc[data["series"] == name, "label"].iloc[0] if "label" in data else name
        errors = [below, above] if any(below) or any(above) else None
        bars = ax.bar(xs, heights, width * 0.92, color=color, label=label, yerr=errors, capsize=3,
                      error_kw={"elinewidth": 1})
        if label_format:
            ax.bar_label(bars, [label_format.format(h) for h in heights], fontsize=7, padding=2)
    if len(rates) == 1:
        offsets = [(i - (len(series) - 1) / 2) * width for i in range(len(series))]
        labels = [data.loc[data["series"] == s, "label"].iloc[0] if "label" in data else s for s in series]
        ax.set_xticks(offsets, labels, rotation=25, ha="right")
    else:
        ax.set_xticks(range(len(rates)), [format_rate(r) for r in rates])
    ax.grid(axis="x", visible=False)


def at_rate(table: pd.DataFrame, rate: float) -> pd.DataFrame:
    """The rows at `rate`; a NaN rate (offline runs) matches NaN."""
    return table[table["rate"].isna()] if math.isnan(rate) else table[table["rate"] == rate]


def representative_runs(scenario: Scenario) -> pd.DataFrame:
    """One run per series for per-run charts: the highest rate swept (the most load), the lowest seed."""
    table = scenario.table.assign(_rate=scenario.table["rate"].fillna(-np.inf))
    table = table.sort_values(["series_order", "_rate", SEED], ascending=[True, False, True])
    return table.drop_duplicates("series").drop(columns="_rate")


def rate_note(runs: pd.DataFrame) -> str:
    """'at 8 req/s' when the runs share one rate, else the rates per series."""
    rates = runs["rate"].unique()
    if len(rates) == 1:
        return f"at {format_rate(rates[0])}"
    return "at " + ", ".join(f"{s}: {format_rate(r)}" for s, r in zip(runs["series"], runs["rate"]))


def legend_outside(fig, axes, ncol: int | None = None) -> None:
    """One legend for the figure, below the panels, from the first panel's handles."""
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol or min(len(labels), 3), frameon=False)
