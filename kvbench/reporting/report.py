"""`kvbench report RUNS_OR_SWEEPS... [--out DIR]`: charts (PNG + PDF) and a Markdown summary of runs.

Writes into DIR:

    report.md                    what was found, summary tables, the figures, what could not be drawn
    runs.csv                     the tidy table: one row per complete run (summary, flattened config)
    figures/<chart>.png|pdf|csv  each chart and the numbers behind it
                                 (figures/<scenario>/... when the runs span several scenarios)

Runs that failed, were interrupted or are still running, and sweep jobs that never ran, are listed
in report.md and on stderr, never plotted. Exit status: 0 when something was charted, 2 for bad input
(a path that does not exist, or no complete run at all; report.md then says what is missing).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kvbench.reporting import markdown as md
from kvbench.reporting.charts import Chart, LatencyBound, Skipped, draw_all
from kvbench.reporting.latency import with_request_latency
from kvbench.reporting.runs import InputError, RunSet, load_runs
from kvbench.reporting.series import Scenario, scenarios
from kvbench.reporting.tables import SUMMARY_TABLES, summary_cells, summary_numbers, sustained_cells

REPORT = "report.md"
RUNS_CSV = "runs.csv"
FIGURES = "figures"


@dataclass
class ScenarioReport:
    scenario: Scenario
    figures_dir: Path
    results: list[Chart | Skipped]

    @property
    def charts(self) -> list[Chart]:
        return [r for r in self.results if isinstance(r, Chart)]

    @property
    def skipped(self) -> list[Skipped]:
        return [r for r in self.results if isinstance(r, Skipped)]


def make_report(run_set: RunSet, out_dir: Path, bound: LatencyBound) -> list[ScenarioReport]:
    """Draw every chart of every scenario under out_dir/figures; write runs.csv and each chart's numbers."""
    out_dir.mkdir(parents=True, exist_ok=True)
    found = scenarios(with_request_latency(run_set.table())) if run_set.records else []
    reports = []
    for scenario in found:
        figures_dir = out_dir / FIGURES / scenario.slug if len(found) > 1 else out_dir / FIGURES
        results = draw_all(scenario, figures_dir, bound)
        for chart in (r for r in results if isinstance(r, Chart)):
            chart.data.to_csv(figures_dir / f"{chart.name}.csv", index=False)
            for key, extra in chart.tables.items():
                extra.to_csv(figures_dir / f"{chart.name}_{key}.csv", index=False)
        reports.append(ScenarioReport(scenario, figures_dir, results))
    if reports:
        tidy = pd.concat([r.scenario.table.assign(scenario=r.scenario.label) for r in reports], ignore_index=True)
        tidy.to_csv(out_dir / RUNS_CSV, index=False)
    return reports


def problems_markdown(run_set: RunSet) -> str:
    if not run_set.problems:
        return ""
    rows = [[_shown_path(p.path), p.status, p.detail] for p in run_set.problems]
    return (
        "## Runs left out\n\n"
        "These runs did not complete, never ran, or repeat another run; nothing below includes them.\n\n"
        + md.table(["run", "status", "what happened"], rows)
    )


def report_markdown(run_set: RunSet, reports: list[ScenarioReport], out_dir: Path) -> str:
    parts = ["# kvbench report\n"]
    inputs = ", ".join(f"`{_shown_path(p)}`" for p in run_set.inputs)
    parts.append(
        f"Inputs: {inputs}. Complete runs: {len(run_set.records)}; not complete: {len(run_set.problems)}; "
        f"scenarios: {len(reports)}.\n"
    )
    if not run_set.records:
        parts.append("**No complete run was found, so there is nothing to chart.**\n")
    problems = problems_markdown(run_set)
    if problems:
        parts.append(problems)
    for report in reports:
        parts.append(scenario_markdown(report, out_dir, heading="##"))
    return "\n".join(parts)


def scenario_markdown(report: ScenarioReport, out_dir: Path, heading: str) -> str:
    scenario = report.scenario
    numbers = summary_numbers(scenario)
    parts = [
        f"{heading} {scenario.label}\n",
        f"{len(scenario.table)} complete runs. Means over seeds; [low, high] is the 95% bootstrap percentile interval "
        "where a point has several seeds.\n",
    ]
    for what, columns in SUMMARY_TABLES:
        parts += [f"**{what}**\n", md.table(*summary_cells(numbers, columns))]
    for chart in report.charts:
        if "sustained_rate" in chart.tables:
            parts.append(f"{heading}# Highest request rate under the latency bound\n")
            parts.append(md.table(*sustained_cells(chart.tables["sustained_rate"])))
    parts.append(f"{heading}# Figures\n")
    for chart in report.charts:
        relative = os.path.relpath(chart.paths[0], out_dir)
        parts.append(f"**{chart.title.splitlines()[0]}** ([PDF]({os.path.relpath(chart.paths[1], out_dir)}), "
                     f"[data]({os.path.relpath(chart.paths[0].with_suffix('.csv'), out_dir)}))\n")
        parts.append(md.image(chart.title.splitlines()[0], relative))
        parts += [f"- {note}\n" for note in chart.notes]
    if report.skipped:
        parts.append(f"{heading}# Charts not drawn\n")
        parts.append("".join(f"- `{s.name}`: {s.reason}\n" for s in report.skipped))
    return "\n".join(parts)


def _shown_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def parse_args(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="kvbench report",
        description="Charts (PNG + PDF) and a Markdown summary of kvbench runs and sweeps.",
    )
    parser.add_argument("inputs", nargs="+", metavar="RUNS_OR_SWEEPS",
                        help="run directories, sweep directories, or folders holding them")
    parser.add_argument("--out", type=Path, help="output directory (default: INPUT/report for a single input)")
    parser.add_argument("--latency-bound", default="5x",
                        help="bound on mean normalized latency for the highest sustained rate: seconds per "
                             "output token (0.1) or a multiple of the best strategy's lowest value (5x, the default)")
    return parser.parse_args(args)


def main(args: list[str]) -> int:
    """Bad input raises InputError or ValueError: the command layer prints it in one line, exit 2."""
    ns = parse_args(args)
    bound = LatencyBound.parse(ns.latency_bound)
    if ns.out is None and len(ns.inputs) > 1:
        raise InputError("several inputs: name the output directory with --out")
    out_dir = ns.out if ns.out is not None else Path(ns.inputs[0]) / "report"
    run_set = load_runs(ns.inputs)
    reports = make_report(run_set, out_dir, bound)
    (out_dir / REPORT).write_text(report_markdown(run_set, reports, out_dir))
    for problem in run_set.problems:
        print(f"kvbench report: left out: {_shown_path(problem.path)} ({problem.status}): {problem.detail}",
              file=sys.stderr)
    if not run_set.records:
        raise InputError(f"no complete run under {', '.join(map(str, ns.inputs))}; see {out_dir / REPORT}")
    num_figures = sum(len(r.charts) for r in reports)
    print(f"{len(run_set.records)} runs, {num_figures} figures: {out_dir / REPORT}")
    return 0
