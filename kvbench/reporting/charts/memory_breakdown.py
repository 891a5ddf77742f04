"""Where KV memory goes, per strategy: stacked bars of the time-averaged share of the pool in each state.

The states are the accounting vocabulary of `strategies/base.py` (token states, reserved, internal
and external fragmentation, cached, free), which sum to the pool; the figures are summary.json's
`mem_*_frac`, averaged over seeds. One panel per request rate (at most `MAX_PANELS`).

Blocks freed but kept for prefix reuse are free memory (any allocation can take them): they are
stacked next to free memory, hatched, and each bar of a strategy that caches says its prefix hit
rate above it, so that cached memory reads as what it is, not as waste.
"""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Rectangle

from kvbench.reporting.charts.common import Chart, Skipped, at_rate
from kvbench.reporting.series import Scenario, format_rate
from kvbench.reporting.stats import aggregate
from kvbench.reporting.styles import (
    MEMORY_CATEGORIES,
    MEMORY_COLORS,
    MEMORY_HATCHES,
    TEXT_WIDTH_IN,
    new_figure,
    save_figure,
    style,
)

NAME = "memory_breakdown"
MAX_PANELS = 6
FRACTIONS = {category: f"mem_{category}_frac" for category, _ in MEMORY_CATEGORIES}


def draw(scenario: Scenario, out_dir) -> Chart | Skipped:
    runs = scenario.table
    if not all(column in runs for column in FRACTIONS.values()):
        return Skipped(NAME, "summary.json lacks the mem_*_frac memory breakdown")
    hit_rate = ["prefix_hit_rate"] if "prefix_hit_rate" in runs else []
    data = aggregate(runs, ["series", "label", "color", "rate"], list(FRACTIONS.values()) + hit_rate)
    data = data.rename(columns={column: category for category, column in FRACTIONS.items()})
    rates = runs.sort_values("rate")["rate"].drop_duplicates().tolist()  # NaN (offline) counts once
    notes = []
    if len(rates) > MAX_PANELS:
        picked = np.unique(np.linspace(0, len(rates) - 1, MAX_PANELS).round().astype(int))
        notes.append(f"{len(rates)} rates swept; {len(picked)} shown")
        rates = [rates[i] for i in picked]
    series = scenario.series()["series"].tolist()
    with style():
        fig, axes = new_figure(1, len(rates), figsize=(TEXT_WIDTH_IN, 3.6), sharey=True)
        for ax, rate in zip(axes[0], rates):
            _panel(ax, data, series, rate, multiple=len(rates) > 1)
        axes[0][0].set_ylabel("share of KV pool, time-averaged (%)")
        handles = [Rectangle((0, 0), 1, 1, facecolor=MEMORY_COLORS[c], hatch=MEMORY_HATCHES.get(c), edgecolor="0.5",
                             linewidth=0.3) for c, _ in MEMORY_CATEGORIES]
        fig.legend(handles, [label for _, label in MEMORY_CATEGORIES], loc="outside lower center", ncol=3,
                   frameon=False)
        title = scenario.title("Where KV-cache memory goes")
        paths = save_figure(fig, out_dir, NAME)
    return Chart(NAME, title, data, paths, notes)


def _panel(ax, data, series: list[str], rate: float, multiple: bool) -> None:
    rows = at_rate(data, rate)
    rows = rows.set_index("series").reindex([s for s in series if s in set(rows["series"])])
    bottom = np.zeros(len(rows))
    xs = np.arange(len(rows))
    for category, _ in MEMORY_CATEGORIES:
        heights = rows[category].to_numpy(dtype=float) * 100
        ax.bar(xs, heights, 0.7, bottom=bottom, color=MEMORY_COLORS[category], hatch=MEMORY_HATCHES.get(category),
               edgecolor="white", linewidth=0.5)
        if category == "token":
            for x, h in zip(xs, heights):
                if h >= 6:
                    ax.text(x, h / 2, f"{h:.0f}%", ha="center", va="center", fontsize=7, color="white")
        bottom += heights
    if "prefix_hit_rate" in rows:
        for x, (name, row) in zip(xs, rows.iterrows()):
            caches = row["cached"] > 0 or row["prefix_hit_rate"] > 0 or str(name).startswith("paged_prefix")
            if caches and row["prefix_hit_rate"] == row["prefix_hit_rate"]:
                ax.text(x, 101, f"hit {row['prefix_hit_rate'] * 100:.0f}%", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs, rows["label"], rotation=30, ha="right")
    for tick, name in zip(ax.get_xticklabels(), rows.index):
        tick.set_color(data.loc[data["series"] == name, "color"].iloc[0])
    ax.set_ylim(0, 108)
    ax.set_yticks(range(0, 101, 20))
    ax.grid(axis="x", visible=False)
    if multiple:
        ax.set_title(format_rate(rate))
