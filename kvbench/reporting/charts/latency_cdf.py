"""CDFs of per-request latency: TTFT, TPOT and end-to-end latency, one line per strategy.

From each series' representative run (the highest rate swept, the lowest seed), read from its
requests table: the share of requests served within x seconds, the curve behind every percentile.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kvbench.reporting.charts.common import Chart, Skipped, legend_outside, rate_note, representative_runs
from kvbench.results import read_table, table_names
from kvbench.reporting.series import Scenario
from kvbench.reporting.styles import TEXT_WIDTH_IN, new_figure, save_figure, strategy_linestyle, style

NAME = "latency_cdf"
PANELS = (  # requests column, panel title
    ("ttft_s", "time to first token (s)"),
    ("tpot_s", "time per output token (s)"),
    ("latency_s", "end-to-end latency (s)"),
)


def draw(scenario: Scenario, out_dir) -> Chart | Skipped:
    runs = representative_runs(scenario)
    curves, missing = [], []
    for _, run in runs.iterrows():
        requests = read_table(run["run_dir"], "requests", [column for column, _ in PANELS])
        if requests is None:
            missing.append(run["run_name"])
            continue
        for column, _ in PANELS:
            values = np.sort(requests[column].dropna().to_numpy(dtype=float))
            if len(values):
                curves.append(pd.DataFrame({
                    "metric": column, "value_s": values, "share": np.arange(1, len(values) + 1) / len(values),
                    "series": run["series"], "label": run["label"], "preset": run["preset"], "color": run["color"],
                }))
    if not curves:
        return Skipped(NAME, f"no run kept {table_names('requests')} ({', '.join(missing)})")
    data = pd.concat(curves, ignore_index=True)
    with style():
        fig, axes = new_figure(1, len(PANELS), figsize=(TEXT_WIDTH_IN, 2.9), sharey=True)
        for ax, (column, panel_title) in zip(axes[0], PANELS):
            for _, curve in data[data["metric"] == column].groupby("series", sort=False):
                ax.step(curve["value_s"], curve["share"] * 100, where="post", color=curve["color"].iloc[0],
                        linestyle=strategy_linestyle(curve["preset"].iloc[0]), linewidth=1.4,
                        label=curve["label"].iloc[0])
            values = data.loc[data["metric"] == column, "value_s"]
            if len(values) and values.min() > 0 and values.max() / values.min() > 30:
                ax.set_xscale("log")
            ax.set_xlabel(panel_title)
        axes[0][0].set_ylabel("requests within x (%)")
        axes[0][0].set_ylim(0, 101)
        legend_outside(fig, axes[0])
        title = scenario.title(f"Latency CDFs per request, {rate_note(runs)}")
        paths = save_figure(fig, out_dir, NAME)
    notes = [f"no requests table: {', '.join(missing)}"] if missing else []
    return Chart(NAME, title, data, paths, notes)
