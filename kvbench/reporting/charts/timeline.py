"""Runs over time, one figure for all strategies: where the KV pool is, how many requests run, how
many wait, and preemptions so far.

One row of panels per series (its representative run: the highest rate swept, the lowest seed), one
column per quantity; every panel shares the time axis, and each column shares its y axis, so rows
compare at a glance. Running and waiting requests have panels of their own, so a long queue never
flattens the running batch. A step's state holds until the next step starts, and is drawn so. Runs
of more than `MAX_POINTS` steps are sampled on an even time grid: every sampled value is the exact
state of a step, never an average.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from kvbench.reporting.charts.common import Chart, Skipped, rate_note, representative_runs
from kvbench.reporting.series import Scenario
from kvbench.reporting.styles import (
    MEMORY_CATEGORIES,
    MEMORY_COLORS,
    MEMORY_HATCHES,
    TEXT_WIDTH_IN,
    new_figure,
    save_figure,
    style,
)
from kvbench.results import read_table, table_names

NAME = "timeline"
MAX_POINTS = 2000
GiB = 2**30
SAMPLED_COLUMNS = tuple(f"{category}_bytes" for category, _ in MEMORY_CATEGORIES) + ("batch_size", "num_waiting")
ROW_HEIGHT_IN = 1.35
PREEMPTION_COLOR = "#E7298A"


def draw(scenario: Scenario, out_dir) -> Chart | Skipped:
    runs, samples, missing = [], [], []
    for _, run in representative_runs(scenario).iterrows():
        steps = read_table(run["run_dir"], "steps")
        if steps is None or steps.empty:
            missing.append(run["run_name"])
            continue
        sampled = sample_steps(steps)
        sampled["preemptions_so_far"] = _cumulative_preemptions(steps, sampled["time_s"].to_numpy())
        runs.append(run)
        samples.append(sampled.assign(series=run["series"], run_name=run["run_name"]))
    if not runs:
        return Skipped(NAME, f"no run kept {table_names('steps')} ({', '.join(missing)})")
    with style():
        fig, axes = new_figure(len(runs), 3, figsize=(TEXT_WIDTH_IN, 0.9 + ROW_HEIGHT_IN * len(runs)),
                               sharex=True, sharey="col", gridspec_kw={"width_ratios": [2.2, 1, 1]})
        any_preemption = any(sampled["preemptions_so_far"].iloc[-1] > 0 for sampled in samples)
        for row, (run, sampled) in enumerate(zip(runs, samples)):
            _draw_row(axes[row], run, sampled, row == 0, row == len(runs) - 1, any_preemption)
        # Shared y per column, set once from every row (set_ylim on one row would freeze autoscaling).
        for col, column in ((1, "batch_size"), (2, "num_waiting")):
            top = max(float(sampled[column].max()) for sampled in samples)
            axes[0][col].set_ylim(0, max(1.0, top * 1.05))
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles[::-1], labels[::-1], loc="outside lower center", ncol=3, frameon=False)
        title = scenario.title(f"Memory, running and waiting requests over time, {rate_note(pd.DataFrame(runs))}")
        paths = save_figure(fig, out_dir, NAME)
    notes = [f"no steps table: {', '.join(missing)}"] if missing else []
    notes.append("runs: " + ", ".join(r["run_name"] for r in runs))
    return Chart(NAME, title, pd.concat(samples, ignore_index=True), paths, notes)


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


def _cumulative_preemptions(steps: pd.DataFrame, times_s: np.ndarray) -> np.ndarray:
    """Preemptions made by the end of the step running at each time (exact, from every step)."""
    total = steps["preemptions"].cumsum().to_numpy()
    index = np.clip(np.searchsorted(steps["time_s"].to_numpy(), times_s, side="right") - 1, 0, len(steps) - 1)
    return total[index]


def _as_steps(times_s: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates that hold each value until the next time (a state, not a ramp between samples)."""
    return np.repeat(times_s, 2)[1:], np.repeat(values, 2)[:-1]


def _draw_row(axes, run: pd.Series, sampled: pd.DataFrame, first: bool, last: bool, preemptions: bool) -> None:
    mem_ax, running_ax, waiting_ax = axes
    times_s = sampled["time_s"].to_numpy()
    layers = [_as_steps(times_s, sampled[f"{c}_bytes"].to_numpy() / GiB)[1] for c, _ in MEMORY_CATEGORIES]
    step_times_s = _as_steps(times_s, times_s)[0]
    stacks = mem_ax.stackplot(step_times_s, layers, colors=[MEMORY_COLORS[c] for c, _ in MEMORY_CATEGORIES],
                              labels=[label for _, label in MEMORY_CATEGORIES], linewidth=0)
    for stack, (category, _) in zip(stacks, MEMORY_CATEGORIES):
        if category in MEMORY_HATCHES:
            stack.set_hatch(MEMORY_HATCHES[category])
            stack.set_edgecolor("0.6")
    # One line per part of a variant's label ("vAttention", "page_bytes=65536"): a row is short.
    mem_ax.set_ylabel(run["label"].replace(", ", "\n") + "\nKV pool (GiB)", color=run["color"])
    mem_ax.set_ylim(0, float(np.sum(layers, axis=0).max()) * 1.02)
    mem_ax.margins(x=0)
    running_ax.step(times_s, sampled["batch_size"], where="post", color=run["color"], linewidth=1.1)
    waiting_ax.step(times_s, sampled["num_waiting"], where="post", color="0.35", linewidth=1.0)
    if preemptions:
        preempt_ax = waiting_ax.twinx()
        preempt_ax.step(times_s, sampled["preemptions_so_far"], where="post", color=PREEMPTION_COLOR, linewidth=0.9,
                        linestyle=":")
        preempt_ax.tick_params(axis="y", colors=PREEMPTION_COLOR, labelsize=7)
        preempt_ax.set_ylim(bottom=0)
        preempt_ax.spines["right"].set_visible(True)
    if first:
        mem_ax.set_title("KV pool")
        running_ax.set_title("running requests")
        waiting_ax.set_title("waiting (grey); preemptions\nso far (dotted, right)" if preemptions
                             else "waiting requests\n(no preemption)")
    if last:
        for ax in axes:
            ax.set_xlabel("time (s)")
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4))  # the narrow panels' tick labels would collide
