"""Memory waste against request rate: reserved, internal and external fragmentation (time-averaged
shares of the pool) and their sum, a line per strategy, means over seeds with 95% intervals."""

from __future__ import annotations

from kvbench.reporting.charts.common import Chart, Skipped, legend_outside
from kvbench.reporting.charts.rate_lines import draw_lines, rate_axis
from kvbench.reporting.series import Scenario
from kvbench.reporting.stats import aggregate
from kvbench.reporting.styles import TEXT_WIDTH_IN, new_figure, save_figure, style

NAME = "fragmentation_vs_rate"
PANELS = (  # metric, panel title
    ("mem_waste_frac", "all waste"),
    ("mem_reserved_frac", "reserved for future tokens"),
    ("mem_internal_frag_frac", "internal fragmentation"),
    ("mem_external_frag_frac", "external fragmentation"),
)


def draw(scenario: Scenario, out_dir) -> Chart | Skipped:
    runs = scenario.table[scenario.table["rate"].notna()]
    if len(scenario.rates()) < 2:
        return Skipped(NAME, "needs runs at two or more values of workload.rate")
    panels = [p for p in PANELS if p[0] in runs]
    if not panels:
        return Skipped(NAME, "summary.json lacks the mem_*_frac memory breakdown")
    data = aggregate(runs, ["series", "label", "color", "rate"], [metric for metric, _ in panels])
    with style():
        fig, axes = new_figure(2, 2, figsize=(TEXT_WIDTH_IN, 4.6), sharex=True)
        for ax, (metric, panel_title) in zip(axes.flatten(), panels):
            draw_lines(ax, data, scenario.series(), "rate", metric, scale=100.0)
            rate_axis(ax, scenario.rates())
            ax.set_title(panel_title)
            ax.set_ylabel("share of KV pool (%)")
            ax.set_ylim(bottom=0)
        legend_outside(fig, axes.flatten())
        title = scenario.title("KV memory wasted against request rate")
        paths = save_figure(fig, out_dir, NAME)
    return Chart(NAME, title, data, paths)
