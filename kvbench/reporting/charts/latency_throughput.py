"""Latency against throughput (the Pareto view): each strategy's points at the rates swept, output
tokens/s across, tail TTFT and mean normalized latency up. Further right and lower is better; a
curve bending up is where a strategy stops absorbing load."""

from __future__ import annotations

from kvbench.reporting.charts.common import Chart, Skipped, legend_outside
from kvbench.reporting.charts.rate_lines import draw_lines, finite
from kvbench.reporting.series import Scenario
from kvbench.reporting.stats import aggregate
from kvbench.reporting.styles import TEXT_WIDTH_IN, new_figure, save_figure, style

NAME = "latency_vs_throughput"
PANELS = (  # metric, axis label
    ("ttft_p99_s", "TTFT p99 (s)"),
    ("normalized_latency_s", "normalized latency (s per output token)"),
)


def draw(scenario: Scenario, out_dir) -> Chart | Skipped:
    runs = scenario.table[scenario.table["rate"].notna()]
    if len(scenario.rates()) < 2:
        return Skipped(NAME, "needs runs at two or more values of workload.rate")
    data = aggregate(runs, ["series", "label", "color", "rate"],
                     ["output_tokens_per_s"] + [metric for metric, _ in PANELS])
    with style():
        fig, axes = new_figure(1, len(PANELS), figsize=(TEXT_WIDTH_IN, 3.0), sharex=True)
        for ax, (metric, label) in zip(axes[0], PANELS):
            draw_lines(ax, data, scenario.series(), "output_tokens_per_s", metric)
            values = finite(data[metric])
            if len(values) and values.min() > 0 and values.max() / values.min() > 30:
                ax.set_yscale("log")
            ax.set_xlabel("output tokens/s")
            ax.set_ylabel(label)
        legend_outside(fig, axes[0])
        title = scenario.title("Latency against throughput (points: the request rates swept)")
        paths = save_figure(fig, out_dir, NAME)
    return Chart(NAME, title, data, paths)
