"""One run over time: where the KV pool is (stacked area, GiB) and how many sequences run (batch size).

Drawn for one representative run per series (the highest rate swept, the lowest seed) from its
steps.csv. A step's state holds until the next step starts, and is drawn so. Runs of more than
`MAX_POINTS` steps are sampled on an even time grid: long runs stay light to draw, and every sampled
value is the exact state of a step, never an average.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kvbench.reporting.charts.common import Chart, Skipped, representative_runs
from kvbench.reporting.series import Scenario, format_rate, slug
from kvbench.reporting.styles import MEMORY_CATEGORIES, MEMORY_COLORS, new_figure, save_figure, style
from kvbench.results import STEPS

NAME = "timeline"
MAX_POINTS = 2000
GiB = 2**30
SAMPLED_COLUMNS = tuple(f"{category}_bytes" for category, _ in MEMORY_CATEGORIES) + ("batch_size", "num_waiting")


def draw(scenario: Scenario, out_dir) -> list[Chart | Skipped]:
    """A timeline per series; a Skipped for each series whose run kept no steps.csv."""
    results: list[Chart | Skipped] = []
    for _, run in representative_runs(scenario).iterrows():
        name = f"{NAME}_{slug(run['series'])}"
        steps_csv = Path(run["run_dir"]) / STEPS
        try:
            steps = pd.read_csv(steps_csv)
        except FileNotFoundError:
            results.append(Skipped(name, f"{run['run_name']} kept no {STEPS}"))
            continue
        if steps.empty:
            results.append(Skipped(name, f"{run['run_name']}: {STEPS} has no steps"))
            continue
        results.append(_draw_run(scenario, run, sample_steps(steps), out_dir, name))
    return results


def sample_steps(steps: pd.DataFrame, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """The step table's state over time: at every step start (and the last step's end) when there are
    fewer than `max_points` steps, else at `max_points` evenly spaced times."""
    start_s = steps["time_s"].to_numpy()
    end_s = float(start_s[-1] + steps["duration_s"].iloc[-1])
    if len(steps) < max_points:
        times_s = np.append(start_s, end_s)
    else:
        times_s = np.linspace(start_s[0], end_s, max_points)
    index = np.clip(np.searchsorted(start_s, times_s, side="right") - 1, 0, len(steps) - 1)
    sampled = steps.iloc[index][list(SAMPLED_COLUMNS)].reset_index(drop=True)
    sampled.insert(0, "time_s", times_s)
    return sampled


def _as_steps(times_s: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates that hold each value until the next time (a state, not a ramp between samples)."""
    return np.repeat(times_s, 2)[1:], np.repeat(values, 2)[:-1]


def _draw_run(scenario: Scenario, run: pd.Series, sampled: pd.DataFrame, out_dir, name: str) -> Chart:
    with style():
        fig, ((mem_ax,), (batch_ax,)) = new_figure(2, 1, figsize=(7.5, 5.2), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
        )
        times_s = sampled["time_s"].to_numpy()
        layers = [_as_steps(times_s, sampled[f"{c}_bytes"].to_numpy() / GiB)[1] for c, _ in MEMORY_CATEGORIES]
        step_times_s = _as_steps(times_s, times_s)[0]
        mem_ax.stackplot(step_times_s, layers, colors=[MEMORY_COLORS[c] for c, _ in MEMORY_CATEGORIES],
                         labels=[label for _, label in MEMORY_CATEGORIES], linewidth=0)
        mem_ax.set_ylabel("KV pool (GiB)")
        mem_ax.set_ylim(0, float(np.sum(layers, axis=0).max()) * 1.02)
        mem_ax.margins(x=0)
        handles, labels = mem_ax.get_legend_handles_labels()
        mem_ax.legend(handles[::-1], labels[::-1], loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        batch_ax.step(times_s, sampled["batch_size"], where="post", color=run["color"], linewidth=1.2,
                      label="running")
        batch_ax.step(times_s, sampled["num_waiting"], where="post", color="0.45", linewidth=1, linestyle="--",
                      label="waiting")
        batch_ax.set_ylabel("requests")
        batch_ax.set_xlabel("time (s)")
        batch_ax.set_ylim(bottom=0)
        batch_ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        what = f"Memory and batch over time: {run['series']}, {format_rate(run['rate'])}, seed {run['seed']}"
        title = scenario.title(what)
        fig.suptitle(title)
        fig.tight_layout()
        paths = save_figure(fig, out_dir, name)
    return Chart(name, title, sampled, paths, [f"run {run['run_name']}"])
