"""What sharing buys: prefix-cache hit rate, memory saved by shared blocks, copy-on-write copies.

Drawn only where some run has something to show (a prefix hit, shared blocks or a CoW copy);
strategies that share nothing stay in the chart as zero bars, the baseline they are compared with.
"""

from __future__ import annotations


from kvbench.reporting.charts.common import Chart, Skipped, grouped_bars, legend_outside
from kvbench.reporting.series import Scenario
from kvbench.reporting.stats import aggregate
from kvbench.reporting.styles import TEXT_WIDTH_IN, new_figure, save_figure, style

NAME = "sharing"
PANELS = (  # metric, panel title, axis label, scale to the axis unit, bar label
    ("prefix_hit_rate", "prefix-cache hit rate", "prompt tokens served from cache (%)", 100.0, "{:.1f}"),
    ("shared_saved_frac", "memory saved by sharing", "share of KV pool, time-averaged (%)", 100.0, "{:.1f}"),
    ("cow_copies", "copy-on-write copies", "blocks copied", 1.0, "{:.0f}"),
)


def draw(scenario: Scenario, out_dir) -> Chart | Skipped:
    runs = scenario.table
    panels = [p for p in PANELS if p[0] in runs and (runs[p[0]].fillna(0) > 0).any()]
    if not panels:
        return Skipped(NAME, "no run reused a cached prefix, shared a block or copied on write")
    data = aggregate(runs, ["series", "label", "color", "rate"], [metric for metric, *_ in panels])
    num_groups = data["rate"].nunique(dropna=False)
    num_series = data["series"].nunique()
    with style():
        fig, axes = new_figure(1, len(panels), figsize=(TEXT_WIDTH_IN, 3.2))
        for ax, (metric, panel_title, unit, scale, label_format) in zip(axes[0], panels):
            grouped_bars(ax, data, metric, scale, label_format)
            ax.margins(y=0.12)
            ax.set_title(panel_title)
            ax.set_ylabel(unit)
        if num_groups > 1:
            legend_outside(fig, axes[0], ncol=min(num_series, 5))
        title = scenario.title("Sharing: prefix caching and copy-on-write")
        paths = save_figure(fig, out_dir, NAME)
    return Chart(NAME, title, data, paths)
