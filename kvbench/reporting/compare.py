"""`kvbench compare BASE NEW`: a regression gate between two runs or two sweeps.

    kvbench compare BASE NEW [--metric NAME[:RTOL] ...] [--only-metrics] [--tolerance RTOL]
                             [--match config|overrides] [--allow-missing] [--out DIR]

Pairs runs (matching.py), judges each metric of each pair (deltas.py), prints a table of deltas and
writes DIR/comparison.{csv,md,png,pdf} (default DIR: NEW/comparison). Where configurations ran with
several seeds, it also pools them and says per metric whether the change is outside the noise
between seeds (noise.py; DIR/comparison_pooled.csv).

`--metric name:rtol` sets one metric's tolerance and adds it to the default set when it is not
there; it never shrinks the set (`--only-metrics` judges just the named metrics).

Exit status: 0 when nothing regressed beyond tolerance; 1 when a metric regressed, changed (a
metric with no better direction), could not be compared (missing or NaN in BASE), or a BASE run has
no partner in NEW (a run that failed or never ran; `--allow-missing` lets that pass); 2 for bad
input (a path that does not exist, no complete run on a side, no pair at all).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from kvbench.reporting import markdown as md
from kvbench.reporting.charts import comparison as comparison_chart
from kvbench.reporting.deltas import DEFAULT_METRICS, DEFAULT_RTOL, FAILING, MetricSpec, judge, metric_specs
from kvbench.reporting.matching import MATCH_MODES, Matching, match_runs
from kvbench.reporting.noise import noise_lines, pooled_changes
from kvbench.reporting.runs import InputError, RunSet, load_runs

COLUMNS = ("run", "metric", "direction", "base", "new", "change", "relative_change", "rtol", "atol", "verdict")


def deltas_table(matching: Matching, base: RunSet, new: RunSet, specs: list[MetricSpec]) -> pd.DataFrame:
    base_rows = base.table().set_index("run_dir")
    new_rows = new.table().set_index("run_dir")
    rows = []
    for pair in matching.pairs:
        b, n = base_rows.loc[str(pair.base.path)], new_rows.loc[str(pair.new.path)]
        for spec in specs:
            delta = judge(spec, b.get(spec.name), n.get(spec.name))
            rows.append((pair.label, spec.name, spec.direction, delta.base, delta.new, delta.change,
                         delta.relative_change, spec.rtol, spec.atol, delta.verdict))
    return pd.DataFrame(rows, columns=COLUMNS)


def numeric_fields(*run_sets: RunSet) -> set[str]:
    """Summary fields that hold a number (not a bool) in some run: what `--metric` may name."""
    return {key for run_set in run_sets for record in run_set.records for key, value in record.summary.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def text_table(deltas: pd.DataFrame) -> str:
    """One line per matched run, the change of each metric in %; `!` marks a regression (or a change
    with no better direction), `?` a metric not compared, `+` an improvement."""
    metrics = list(dict.fromkeys(deltas["metric"]))
    marks = {"regression": " !", "changed": " !", "not compared": " ?", "improvement": " +"}
    header = ["run", *metrics]
    body = []
    for run, rows in deltas.groupby("run", sort=False):
        by_metric = {r.metric: r for r in rows.itertuples()}
        cells = [_percent(by_metric[m].relative_change, by_metric[m].change) + marks.get(by_metric[m].verdict, "")
                 for m in metrics]
        body.append([run, *cells])
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in [header, ["-" * w for w in widths], *body]]
    return "\n".join(lines)


def regression_lines(deltas: pd.DataFrame) -> list[str]:
    lines = []
    for r in deltas[deltas["verdict"].isin(FAILING)].itertuples():
        if r.verdict == "not compared":
            lines.append(f"NOT COMPARED {r.run}: {r.metric} has no value in BASE (missing, null or NaN), so the gate "
                         "cannot judge it: regenerate the baselines or leave the metric out with --only-metrics")
        else:
            lines.append(f"{r.verdict.upper()} {r.run}: {r.metric} {_number(r.base)} -> {_number(r.new)} "
                         f"({_percent(r.relative_change, r.change)}; {r.direction}, "
                         f"tolerance {_tolerance(r.rtol, r.atol)})")
    return lines


def findings(matching: Matching, base: RunSet, new: RunSet) -> list[str]:
    """What the comparison cannot judge: runs without a partner, runs that did not complete."""
    lines = []
    for record in matching.unmatched_base:
        hint = matching.hints.get(str(record.path))
        lines.append(f"missing from NEW: BASE run {record.name}" + (f": {hint}" if hint else ""))
    lines += [f"new in NEW (no BASE run to compare with): {r.name}" for r in matching.unmatched_new]
    for side, run_set in (("BASE", base), ("NEW", new)):
        lines += [f"{side} run not complete: {p.path} ({p.status}): {p.detail}" for p in run_set.problems
                  if p.status != "duplicate"]
    return lines


def comparison_markdown(title: str, deltas: pd.DataFrame, notes: list[str], verdict_line: str,
                        pooled: pd.DataFrame | None = None) -> str:
    rows = [
        (r.run, r.metric, r.direction, _number(r.base), _number(r.new), _percent(r.relative_change, r.change),
         _tolerance(r.rtol, r.atol), f"**{r.verdict}**" if r.verdict in FAILING else r.verdict)
        for r in deltas.itertuples()
    ]
    parts = [f"# {title}\n", f"{verdict_line}\n", "![comparison](comparison.png)\n",
             md.table(("run", "metric", "direction", "base", "new", "change", "tolerance", "verdict"), rows)]
    if pooled is not None and len(pooled):
        rows = [(r.configuration, r.metric, r.num_seeds, f"{_number(r.base)} [{_number(r.base_low)}, {_number(r.base_high)}]",
                 f"{_number(r.new)} [{_number(r.new_low)}, {_number(r.new_high)}]",
                 f"{_signed(r.change)} [{_signed(r.change_low)}, {_signed(r.change_high)}]",
                 {True: "**outside noise**", False: "within noise"}.get(r.outside_noise, "no interval"))
                for r in pooled.itertuples()]
        parts.append("## Pooled over seeds\n\nMeans with 95% bootstrap intervals; a change is outside noise when "
                     "its interval excludes zero.\n\n"
                     + md.table(("configuration", "metric", "seeds", "base", "new", "change", "noise"), rows))
    if notes:
        parts.append("## Not compared\n\n" + "".join(f"- {note}\n" for note in notes))
    return "\n".join(parts)


def _signed(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:+.4g}"


def _tolerance(rtol: float, atol: float) -> str:
    return f"{rtol:.1%}" + (f" + {atol:g}" if atol else "")


def _number(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.4g}"


def _percent(relative: float, change: float) -> str:
    if not math.isnan(relative):
        return f"{relative:+.2%}"
    return "n/a" if math.isnan(change) else f"{change:+.4g}"


def parse_args(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kvbench compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("base", type=Path, metavar="BASE", help="run or sweep directory to compare against")
    parser.add_argument("new", type=Path, metavar="NEW", help="run or sweep directory under test")
    parser.add_argument("--metric", action="append", metavar="NAME[:RTOL]",
                        help=f"a numeric summary field to judge too, or a default metric's own relative tolerance "
                             f"(repeatable; the defaults are {', '.join(DEFAULT_METRICS)})")
    parser.add_argument("--only-metrics", action="store_true",
                        help="judge only the metrics named with --metric, not the defaults")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_RTOL, metavar="RTOL",
                        help=f"relative tolerance of every metric without its own (default {DEFAULT_RTOL}: 5%%)")
    parser.add_argument("--match", choices=MATCH_MODES, default="config",
                        help="pair sweep runs on their resolved config (default) or on their Hydra overrides")
    parser.add_argument("--allow-missing", action="store_true",
                        help="do not fail when a BASE run has no partner in NEW")
    parser.add_argument("--out", type=Path, help="where to write comparison.csv/.md/.png/.pdf (default NEW/comparison)")
    return parser.parse_args(args)


def main(args: list[str]) -> int:
    """Exit 1 on a regression; bad input raises InputError or ValueError (the command layer prints
    it in one line, exit 2)."""
    ns = parse_args(args)
    if not ns.tolerance >= 0:
        raise ValueError(f"--tolerance {ns.tolerance}: must be a fraction >= 0, such as 0.05")
    base, new = load_runs([ns.base]), load_runs([ns.new])
    for side, run_set in (("BASE", base), ("NEW", new)):
        if not run_set.records:
            raise InputError(f"{side} {run_set.inputs[0]}: no complete run")
    specs = metric_specs(ns.metric, ns.tolerance, numeric_fields(base, new), ns.only_metrics)
    matching = match_runs(base, new, ns.match)
    notes = findings(matching, base, new)
    if not matching.pairs:
        print("\n".join(notes), file=sys.stderr)
        raise InputError(f"no run of {ns.new} matches a run of {ns.base} by {ns.match}")
    deltas = deltas_table(matching, base, new, specs)
    regressions = deltas[deltas["verdict"].isin(FAILING)]
    print(text_table(deltas))
    print("change vs BASE per metric; ! regression, + improvement beyond tolerance, ? not compared (no BASE value)")
    for line in regression_lines(deltas):
        print(line)
    for note in notes:
        print(note)
    for pair in matching.pairs:
        if pair.config_changes:
            print(f"config differs for {pair.label}: {'; '.join(pair.config_changes)}")
    pooled = pooled_changes(matching.pairs, specs)
    if len(pooled):
        outside = noise_lines(pooled)
        print(f"pooled over seeds: {len(outside)} of {len(pooled)} metric changes are outside the noise between "
              "seeds (95% bootstrap interval of the change excludes zero)")
        for line in outside:
            print(line)
    verdict_line = (
        f"{len(regressions)} failing metric(s) (regressed, changed or not compared) in {regressions['run'].nunique()} of "
        f"{len(matching.pairs)} matched run(s)" if len(regressions)
        else f"no regression beyond tolerance in {len(matching.pairs)} matched run(s)"
    )
    missing = len(matching.unmatched_base) and not ns.allow_missing
    if missing:
        verdict_line += f"; {len(matching.unmatched_base)} BASE run(s) missing from NEW"
    out_dir = ns.out if ns.out is not None else ns.new / "comparison"
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"kvbench compare: {ns.new} against {ns.base}"
    deltas.to_csv(out_dir / "comparison.csv", index=False)
    if len(pooled):
        pooled.to_csv(out_dir / "comparison_pooled.csv", index=False)
    comparison_chart.draw(deltas, title, out_dir)
    (out_dir / "comparison.md").write_text(comparison_markdown(title, deltas, notes, verdict_line, pooled))
    print(verdict_line)
    print(f"charts and tables: {out_dir}")
    return 1 if len(regressions) or missing else 0
