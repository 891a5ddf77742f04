"""Throughput per strategy: output tokens/s and requests/s, bars with 95% CIs over seeds, grouped by rate."""

from __future__ import annotations


from kvbench.reporting.charts.common import Chart, Skipped, grouped_bars, legend_outside
from kvbench.reporting.series import Scenario
from kvbench.reporting.stats import aggregate
from kvbench.reporting.styles import TEXT_WIDTH_IN, new_figure, save_figure, style

NAME = "throughput"
PANELS = (  # metric, panel title, axis label
    ("output_tokens_per_s", "output tokens", "tokens/s"),
    ("requests_per_s", "finished requests", "requests/s"),
)


def draw(scenario: Scenario, out_dir) -> Chart | Skipped:
    runs = scenario.table
    if not all(metric in runs for metric, _, _ in PANELS):
        return Skipped(NAME, "summary.json lacks output_tokens_per_s / requests_per_s")
    data = aggregate(runs, ["series", "label", "color", "rate"], [metric for metric, _, _ in PANELS])
    num_groups = data["rate"].nunique(dropna=False)
    num_series = data["series"].nunique()
    with style():
        fig, axes = new_figure(1, len(PANELS), figsize=(TEXT_WIDTH_IN, 3.2))
        for ax, (metric, panel_title, unit) in zip(axes[0], PANELS):
            grouped_bars(ax, data, metric)
            ax.set_ylabel(unit)
            ax.set_title(panel_title)
            if num_groups > 1:
                ax.set_xlabel("request rate")
        if num_groups > 1:
            legend_outside(fig, axes[0], ncol=min(num_series, 5))
        seeds = int(data["num_runs"].max())
        what = "Throughput" + (f" (mean and 95% interval over {seeds} seeds)" if seeds > 1 else "")
        title = scenario.title(what)
        paths = save_figure(fig, out_dir, NAME)
    return Chart(NAME, title, data, paths)
