"""What a Hydra sweep directory was asked to run, so that jobs which never ran can be named.

Hydra's basic sweeper (used by the basic and joblib launchers) expands the sweep overrides in
`multirun.yaml` into the cartesian product, in order, and numbers the jobs from 0; with kvbench's
`hydra.sweep.subdir: ${hydra.job.num}` job i runs in `<sweep>/<i>`. A sweep that stopped early (a
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
JOB_NUM_SUBDIR = "${hydra.job.num}"


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
    if (hydra_cfg.get("sweep") or {}).get("subdir") != JOB_NUM_SUBDIR:
        return None
    params = [f"{key}={value}" for key, value in (sweeper.get("params") or {}).items()]
    task = list((hydra_cfg.get("overrides") or {}).get("task") or [])
    try:
        overrides = OverridesParser.create().parse_overrides(params + task)
        batches = BasicSweeper.split_arguments(overrides, None)
    except HydraException:
        return None  # e.g. a glob sweep, which needs the config loader to expand
    return [list(job) for batch in batches for job in batch]


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
