"""What a Hydra sweep directory was asked to run, so that jobs which never ran can be named.

Hydra's basic sweeper (used by the basic, joblib and submitit launchers) expands the sweep overrides
in `multirun.yaml` into the cartesian product, in order, and numbers the jobs from 0; with kvbench's
`hydra.sweep.subdir` job i runs in `<sweep>/<i>_<its overrides>` (`<sweep>/<i>` in sweeps made by
older versions). A sweep that stopped early (a
failing job ends a basic sweep) leaves the later numbers missing. Other sweepers or subdir patterns
cannot be expanded this way; for them nothing is expected and only what exists is reported.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

MULTIRUN = "multirun.yaml"
JOB_SUBDIRS = ("${hydra.job.num}", "${kvbench_job_dir:${hydra.job.num},${hydra.job.override_dirname}}")


def is_sweep_dir(path: Path) -> bool:
    return (path / MULTIRUN).is_file()


def expected_jobs(sweep_dir: Path) -> list[list[str]] | None:
    """The override list of every job the sweep was to run (index = job number), or None if unknown."""
    try:
        hydra_cfg = (yaml.safe_load((sweep_dir / MULTIRUN).read_text()) or {}).get("hydra", {})
    except (OSError, yaml.YAMLError):
        return None
    sweeper = hydra_cfg.get("sweeper") or {}
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    if (hydra_cfg.get("sweep") or {}).get("subdir") not in JOB_SUBDIRS:
        return None
    params = [f"{key}={value}" for key, value in (sweeper.get("params") or {}).items()]
    task = list((hydra_cfg.get("overrides") or {}).get("task") or [])
    try:
        overrides = OverridesParser.create().parse_overrides(params + task)
        batches = BasicSweeper.split_arguments(overrides, None)
    except HydraException:
        return None  # e.g. a glob sweep, which needs the config loader to expand
    return [list(job) for batch in batches for job in batch]


def job_dir(sweep_dir: Path, job_num: int) -> Path | None:
    """The directory of job `job_num` of a sweep (`<num>` or `<num>_<overrides>`), or None if it has none."""
    exact = sweep_dir / str(job_num)
    if exact.is_dir():
        return exact
    named = sorted(p for p in sweep_dir.glob(f"{job_num}_*") if p.is_dir())
    return named[0] if named else None


def sweep_command(sweep_dir: Path) -> str | None:
    """`kvbench run -m ...` as Hydra recorded the sweep (task and hydra overrides), or None."""
    try:
        hydra_cfg = (yaml.safe_load((sweep_dir / MULTIRUN).read_text()) or {}).get("hydra", {})
    except (OSError, yaml.YAMLError):
        return None
    recorded = hydra_cfg.get("overrides") or {}
    hydra_overrides = [o for o in recorded.get("hydra") or [] if o != "hydra.mode=MULTIRUN"]
    return command_line(["kvbench", "run", "-m", *(recorded.get("task") or []), *hydra_overrides])


def command_line(words: list[str]) -> str:
    """Words joined for a POSIX shell, quoting only words that need it (`strategy=paged,orca_max` does not)."""
    return " ".join(w if w and all(c.isalnum() or c in "=,._-/:+@%" for c in w) else shlex.quote(w) for w in words)
