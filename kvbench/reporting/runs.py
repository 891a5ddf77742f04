"""Find run directories under the paths a user names, and load the complete ones into one tidy table.

An input is a run directory, a Hydra sweep directory, or any folder holding either. A directory is a
run when it holds manifest.json or summary.json, or Hydra's `.hydra/` (a run killed before kvbench
wrote its manifest). Only complete runs (`kvbench.results.is_complete`) enter the table; every other
run, and every job a sweep was asked to run but never started, is kept as a `RunProblem` so that
reports list it and never plot it as if it had finished. A simulator run found twice (same config
and seed) is counted once.

The table has one row per complete run: every summary.json key as is, plus `mem_waste_frac` (the
pool held but not holding tokens: reserved + internal + external fragmentation); the resolved config flattened
under `cfg.` (`cfg.workload.rate`, `cfg.seed`); the chosen scheduler preset; and where the run lives
(`run_dir`, `run_name`, `sweep_dir`, `command`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from kvbench.reporting.sweeps import command_line, expected_jobs, is_sweep_dir, job_dir
from kvbench.results import CONFIG, MANIFEST, SUMMARY

HYDRA_SUBDIR = ".hydra"
CONFIG_PREFIX = "cfg."


class InputError(ValueError):
    """An input path that cannot be read as runs; the message names it."""


@dataclass(frozen=True)
class RunProblem:
    """A run that is not complete, or a sweep job that never ran."""

    path: Path
    status: str  # failed | interrupted | running | incomplete | unreadable | malformed | missing | duplicate
    detail: str


@dataclass
class RunRecord:
    """One complete run, as read from its directory."""

    path: Path
    name: str  # the path relative to the input it was found under, for tables and labels
    sweep_dir: Path | None
    summary: dict
    config: dict
    manifest: dict
    overrides: list[str] | None  # Hydra's task overrides, when Hydra ran it

    @property
    def command(self) -> str:
        """The command that reproduces this run alone."""
        if self.overrides is not None:
            return command_line(["kvbench", "run", *self.overrides])
        return str(self.manifest.get("command", ""))


@dataclass
class RunSet:
    inputs: list[Path]
    records: list[RunRecord] = field(default_factory=list)
    problems: list[RunProblem] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """One row per complete run (see the module docstring for the columns)."""
        rows = [_row(record) for record in self.records]
        return pd.DataFrame(rows).infer_objects() if rows else pd.DataFrame()


def load_runs(inputs: list[str | Path]) -> RunSet:
    """Every run under `inputs`; raises InputError for a path that does not exist or is no directory."""
    paths = [Path(p).expanduser().resolve() for p in inputs]
    for path in paths:
        if not path.exists():
            raise InputError(f"{path}: no such directory")
        if not path.is_dir():
            raise InputError(f"{path}: not a directory (give a run or sweep directory)")
    run_set = RunSet(inputs=paths)
    seen: set[Path] = set()
    for root in paths:
        run_dirs = find_run_dirs(root)
        any_missing = _missing_sweep_jobs(root, run_set)
        if not run_dirs and not any_missing:
            run_set.problems.append(
                RunProblem(root, "incomplete", "no run directories here (none holds manifest.json or summary.json)")
            )
        for run_dir in run_dirs:
            if run_dir in seen:
                continue
            seen.add(run_dir)
            _load_one(run_dir, root, run_set)
    _drop_simulator_repeats(run_set)
    run_set.problems.sort(key=lambda problem: [_natural_key(Path(part)) for part in problem.path.parts])
    return run_set


def config_key(record: RunRecord) -> str:
    """What makes two runs the same experiment: the resolved config and the preset chosen per group
    (groups left unchosen, such as an optional `experiment`, say nothing and are left out)."""
    choices = {group: name for group, name in mapping(record.manifest.get("choices")).items() if name is not None}
    return json.dumps({"config": record.config, "choices": choices}, sort_keys=True)


def _drop_simulator_repeats(run_set: RunSet) -> None:
    """Keep one of several simulator runs with the same config and seed (found under two inputs, say).

    The simulator is deterministic, so such runs are one measurement, not repeats; counting them twice
    would shrink confidence intervals for nothing. Engines that measure are left alone.
    """
    first_of: dict[str, RunRecord] = {}
    kept = []
    for record in run_set.records:
        if record.summary.get("engine") != "sim":
            kept.append(record)
            continue
        key = config_key(record)
        if key in first_of:
            detail = f"same config and seed as {first_of[key].path} (the simulator is deterministic): counted once"
            run_set.problems.append(RunProblem(record.path, "duplicate", detail))
        else:
            first_of[key] = record
            kept.append(record)
    run_set.records = kept


def find_run_dirs(root: Path) -> list[Path]:
    """Run directories at or under `root`, in natural order (job 2 before job 10)."""
    if _is_run_dir(root):
        return [root]
    found = []
    for child in sorted((c for c in root.iterdir() if c.is_dir() and c.name != HYDRA_SUBDIR), key=_natural_key):
        found += find_run_dirs(child)
    return found


def _missing_sweep_jobs(root: Path, run_set: RunSet) -> bool:
    """Record the jobs of every sweep under `root` that have no directory; True if there were any."""
    sweeps = [root] if is_sweep_dir(root) else [p.parent for p in sorted(root.rglob("multirun.yaml"))]
    missing = False
    for sweep_dir in sweeps:
        for job_num, overrides in enumerate(expected_jobs(sweep_dir) or []):
            if job_dir(sweep_dir, job_num) is None:
                detail = f"sweep job {job_num} never ran ({command_line(overrides)})"
                run_set.problems.append(RunProblem(sweep_dir / str(job_num), "missing", detail))
                missing = True
    return missing


def _is_run_dir(path: Path) -> bool:
    return (path / MANIFEST).is_file() or (path / SUMMARY).is_file() or (path / HYDRA_SUBDIR).is_dir()


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _load_one(run_dir: Path, root: Path, run_set: RunSet) -> None:
    name = run_dir.name if run_dir == root else str(run_dir.relative_to(root.parent))
    manifest_path, summary_path = run_dir / MANIFEST, run_dir / SUMMARY
    try:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        run_set.problems.append(RunProblem(run_dir, "unreadable", f"{MANIFEST}: {err}"))
        return
    if manifest is None and not manifest_path.is_file():
        detail = f"no {MANIFEST}: the run never started or was killed at once"
        run_set.problems.append(RunProblem(run_dir, "incomplete", detail))
        return
    if not isinstance(manifest, dict):
        detail = f"{MANIFEST} holds {_json_kind(manifest)}, not an object"
        run_set.problems.append(RunProblem(run_dir, "malformed", detail))
        return
    status = manifest.get("status", "unknown")
    if status != "complete" or not summary_path.is_file():
        run_set.problems.append(RunProblem(run_dir, _problem_status(status), _problem_detail(manifest, summary_path)))
        return
    try:
        summary = json.loads(summary_path.read_text())
        config = yaml.safe_load((run_dir / CONFIG).read_text())
        overrides_path = run_dir / HYDRA_SUBDIR / "overrides.yaml"
        overrides = yaml.safe_load(overrides_path.read_text()) if overrides_path.is_file() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as err:
        run_set.problems.append(RunProblem(run_dir, "unreadable", str(err)))
        return
    problem = summary_problem(summary) or _config_problem(config, overrides)
    if problem:
        run_set.problems.append(RunProblem(run_dir, "malformed", problem))
        return
    sweep_dir = run_dir.parent if is_sweep_dir(run_dir.parent) else None
    run_set.records.append(RunRecord(run_dir, name, sweep_dir, summary, config or {}, manifest, overrides))


# What reports group and label runs by: a summary without them cannot be placed.
REQUIRED_SUMMARY_KEYS = ("strategy", "workload", "model", "hardware", "engine")
# Summary fields that must be numbers (or null) wherever they appear: by suffix, and by name.
NUMERIC_SUFFIXES = ("_s", "_ms", "_frac", "_rate", "_bytes", "_tokens", "_size")
NUMERIC_NAMES = ("preemptions", "cow_copies", "fork_copied_blocks", "seed", "tensor_parallel", "num_blocks",
                 "num_requests", "num_steps", "num_dropped_requests", "num_skipped_rows")


def summary_problem(summary) -> str | None:
    """What is wrong with a summary.json's content, in words naming the field; None when it is usable."""
    if not isinstance(summary, dict):
        return f"{SUMMARY} holds {_json_kind(summary)}, not an object"
    missing = [key for key in REQUIRED_SUMMARY_KEYS if not isinstance(summary.get(key), str)]
    if missing:
        return f"{SUMMARY} lacks {', '.join(missing)} (or holds no text there)"
    for key, value in summary.items():
        if isinstance(value, (dict, list)):
            return f"{SUMMARY}: {key} holds {_json_kind(value)}, not a single value"
        numeric = key.endswith(NUMERIC_SUFFIXES) or key in NUMERIC_NAMES or key.startswith(("num_", "mean_", "p99_"))
        if numeric and value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"{SUMMARY}: {key} is {value!r}, not a number"
    return None


def _config_problem(config, overrides) -> str | None:
    if config is not None and not isinstance(config, dict):
        return f"{CONFIG} holds {_json_kind(config)}, not a mapping"
    if overrides is not None and not (isinstance(overrides, list) and all(isinstance(o, str) for o in overrides)):
        return f"{HYDRA_SUBDIR}/overrides.yaml is not a list of overrides"
    return None


def _json_kind(value) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "text", bool: "a boolean"}.get(type(value), "a number")


def mapping(value) -> dict:
    """`value` when it is a dict, else {}: manifest fields read defensively (a hand-edited or foreign
    manifest may hold anything)."""
    return value if isinstance(value, dict) else {}


def _problem_status(status) -> str:
    return status if status in ("failed", "interrupted", "running") else "incomplete"


def _problem_detail(manifest: dict, summary_path: Path) -> str:
    status = manifest.get("status", "unknown")
    if status == "complete":
        return f"manifest says complete but {SUMMARY} is missing"
    if not isinstance(status, str):
        return f"{MANIFEST}: status is {status!r}, not one of running, complete, failed, interrupted"
    if status == "running":
        return "manifest still says running: the run is in progress or was killed"
    return str(manifest.get("error") or f"status {status}")


def flatten(config: dict, prefix: str = "") -> dict:
    """{'workload': {'rate': 4}} -> {'workload.rate': 4}; lists become JSON text so cells stay scalar."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list):
            flat[name] = json.dumps(value)
        else:
            flat[name] = value
    return flat


def format_value(value) -> str:
    """A config value for labels: 1000 not 1000.0 (a column with a gap turns ints into floats), and
    'unset' for a missing value rather than 'nan'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unset"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


WASTE_PARTS = ("mem_reserved_frac", "mem_internal_frag_frac", "mem_external_frag_frac")


def _row(record: RunRecord) -> dict:
    summary = record.summary
    parts = [summary.get(p) for p in WASTE_PARTS]
    waste = {"mem_waste_frac": sum(parts)} if all(isinstance(p, (int, float)) for p in parts) else {}
    return {
        **summary,
        **waste,
        **flatten(record.config, CONFIG_PREFIX),
        "tensor_parallel": summary.get("tensor_parallel", 1),
        "scheduler": mapping(record.manifest.get("choices")).get("scheduler"),
        "run_dir": str(record.path),
        "run_name": record.name,
        "sweep_dir": str(record.sweep_dir) if record.sweep_dir else None,
        "command": record.command,
    }
