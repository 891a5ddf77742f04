"""Where KV memory goes, per strategy: stacked bars of the time-averaged share of the pool in each state.

The states are the accounting vocabulary of `strategies/base.py` (token states, reserved, internal
and external fragmentation, cached, free), which sum to the pool; the figures are summary.json's
`mem_*_frac`, averaged over seeds. One panel per request rate (at most `MAX_PANELS`).
"""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Rectangle

from kvbench.reporting.charts.common import Chart, Skipped, at_rate
from kvbench.reporting.series import Scenario, format_rate
from kvbench.reporting.stats import aggregate
from kvbench.reporting.styles import MEMORY_CATEGORIES, MEMORY_COLORS, new_figure, save_figure, style

NAME = "memory_breakdown"
MAX_PANELS = 6
FRACTIONS = {category: f"mem_{category}_frac" for category, _ in MEMORY_CATEGORIES}


def draw(scenario: Scenario, out_dir) -> Chart | Skipped:
    runs = scenario.table
    if not all(column in runs for column in FRACTIONS.values()):
        return Skipped(NAME, "summary.json lacks the mem_*_frac memory breakdown")
    data = aggregate(runs, ["series", "color", "rate"], list(FRACTIONS.values()))
    data = data.rename(columns={column: category for category, column in FRACTIONS.items()})
    rates = runs.sort_values("rate")["rate"].drop_duplicates().tolist()  # NaN (offline) counts once
    notes = []
    if len(rates) > MAX_PANELS:
        picked = np.unique(np.linspace(0, len(rates) - 1, MAX_PANELS).round().astype(int))
        notes.append(f"{len(rates)} rates swept; {len(picked)} shown")
        rates = [rates[i] for i in picked]
    series = scenario.series()["series"].tolist()
    with style():
        width_in = max(4.5, 1.2 + 0.5 * len(series) * len(rates) + 1.8)
        fig, axes = new_figure(1, len(rates), figsize=(width_in, 3.8), sharey=True)
        for ax, rate in zip(axes[0], rates):
            _panel(ax, data, series, rate, multiple=len(rates) > 1)
        axes[0][0].set_ylabel("share of KV pool, time-averaged (%)")
        handles = [Rectangle((0, 0), 1, 1, color=MEMORY_COLORS[c]) for c, _ in reversed(MEMORY_CATEGORIES)]
        fig.legend(handles, [label for _, label in reversed(MEMORY_CATEGORIES)], loc="center left",
                   bbox_to_anchor=(1.0, 0.5), frameon=False)
        title = scenario.title("Where KV-cache memory goes")
        fig.suptitle(title)
        fig.tight_layout()
        paths = save_figure(fig, out_dir, NAME)
    return Chart(NAME, title, data, paths, notes)


def _panel(ax, data, series: list[str], rate: float, multiple: bool) -> None:
    rows = at_rate(data, rate)
    rows = rows.set_index("series").reindex([s for s in series if s in set(rows["series"])])
    bottom = np.zeros(len(rows))
    xs = np.arange(len(rows))
    for category, _ in MEMORY_CATEGORIES:
        heights = rows[category].to_numpy(dtype=float) * 100
        ax.bar(xs, heights, 0.7, bottom=bottom, color=MEMORY_COLORS[category], edgecolor="white", linewidth=0.5)
        if category == "token":
            for x, h in zip(xs, heights):
                if h >= 6:
                    ax.text(x, h / 2, f"{h:.0f}%", ha="center", va="center", fontsize=7, color="white")
        bottom += heights
    ax.set_xticks(xs, rows.index, rotation=30, ha="right")
    for tick, name in zip(ax.get_xticklabels(), rows.index):
        tick.set_color(data.loc[data["series"] == name, "color"].iloc[0])
    ax.set_ylim(0, 100)
    ax.grid(axis="x", visible=False)
    if multiple:
        ax.set_title(format_rate(rate))
