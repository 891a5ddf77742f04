"""How many sequences run at once: the CDF of the running batch size, weighted by step duration.

Weighting by time answers "for what share of the time did at most b sequences run" (a count of
steps would over-weight short steps). Idle time between steps (no request in the system) is left
out. Drawn from the same representative run per series as the timelines.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kvbench.reporting.charts.common import Chart, Skipped, rate_note, representative_runs
from kvbench.reporting.series import Scenario
from kvbench.reporting.styles import TEXT_WIDTH_IN, new_figure, save_figure, strategy_linestyle, style
from kvbench.results import read_table, table_names

NAME = "batch_size_cdf"


def batch_size_cdf(steps: pd.DataFrame) -> pd.DataFrame:
    """batch_size, share_of_time (of steps with batch <= batch_size), one row per distinct batch size."""
    weights = steps.groupby("batch_size")["duration_s"].sum().sort_index()
    total_s = weights.sum()
    cdf = weights.cumsum() / total_s if total_s > 0 else weights * 0.0
    return pd.DataFrame({"batch_size": weights.index.to_numpy(), "share_of_time": cdf.to_numpy()})


def draw(scenario: Scenario, out_dir) -> Chart | Skipped:
    runs = representative_runs(scenario)
    curves, missing = [], []
    for _, run in runs.iterrows():
        steps = read_table(run["run_dir"], "steps", ["batch_size", "duration_s"])
        if steps is None:
            missing.append(run["run_name"])
            continue
        curve = batch_size_cdf(steps)
        curves.append(curve.assign(series=run["series"], label=run["label"], preset=run["preset"], color=run["color"],
                                   run_name=run["run_name"]))
    if not curves:
        return Skipped(NAME, f"no run kept {table_names('steps')} ({', '.join(missing)})")
    data = pd.concat(curves, ignore_index=True)
    with style():
        fig, axes = new_figure(1, 1, figsize=(TEXT_WIDTH_IN, 3.2))
        ax = axes[0][0]
        for series, curve in data.groupby("series", sort=False):
            # Start each staircase at (0, 0) so a line that never batches more than b still shows its jump.
            xs = np.concatenate([[0], curve["batch_size"].to_numpy()])
            ys = np.concatenate([[0.0], curve["share_of_time"].to_numpy()])
            ax.step(xs, ys * 100, where="post", color=curve["color"].iloc[0], linewidth=1.8, label=curve["label"].iloc[0],
                    linestyle=strategy_linestyle(curve["preset"].iloc[0]))
        ax.set_xlabel("running batch size (sequences)")
        ax.set_ylabel("share of busy time with batch ≤ x (%)")
        ax.set_ylim(0, 101)
        ax.set_xlim(left=0)
        ax.legend(loc="lower right", frameon=False)
        title = scenario.title(f"Batch-size CDF, {rate_note(runs)}")
        paths = save_figure(fig, out_dir, NAME)
    notes = [f"no steps table: {', '.join(missing)}"] if missing else []
    return Chart(NAME, title, data, paths, notes)
