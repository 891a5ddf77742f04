"""The Hydra callback that claims a run's (or a sweep's) directory before Hydra writes into it.

Hydra writes `.hydra/` and its log into the output directory before kvbench's code runs, so the
claim (kvbench.run_claim: a lock, and no writing over an earlier run) is taken here, when the run or
sweep starts. With `kvbench run --overwrite` Hydra is pointed at the claim's fresh sibling, which
replaces the old directory once the new run (every job of a sweep) completed.

After a sweep the callback lists the jobs that did not complete; `kvbench run -m` then exits 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, read_write

from kvbench.commands.errors import fail
from kvbench.errors import RunDirectoryError
from kvbench.results import MANIFEST, is_complete, read_manifest
from kvbench.run_claim import RunClaim

overwrite = False  # set by `kvbench run --overwrite`
failed_jobs: list[str] = []  # the last sweep's jobs that did not complete, one line each
_run_claim: RunClaim | None = None  # the claim of a single run, until `release_run`


def _claim(target: str, key: str, cfg: DictConfig) -> RunClaim:
    """Claim `target` (the value of `key`); point Hydra at the directory to write into."""
    try:
        claim = RunClaim.acquire(target, overwrite)
    except (RunDirectoryError, OSError) as err:  # Hydra would turn an exception here into a warning
        sys.exit(fail(err))
    if claim.replaces:
        parent_key, name = key.rsplit(".", 1)
        parent = OmegaConf.select(cfg, parent_key)
        with read_write(parent):  # Hydra's own node is read-only
            parent[name] = str(claim.write_dir)
    return claim


def run_target() -> Path | None:
    """Where the single run now starting ends up once it completes."""
    return _run_claim.target if _run_claim is not None else None


def release_run() -> None:
    """The single run is over (however it ended): give its directory back."""
    global _run_claim
    if _run_claim is not None:
        _run_claim.release()
        _run_claim = None


class RunDirectoryGuard(Callback):
    def __init__(self) -> None:
        self._sweep: RunClaim | None = None

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        # runner.execute finds this claim again (claims are re-entrant) and commits it; the task
        # function calls release_run when it ends.
        global _run_claim
        HydraConfig.instance().set_config(config)  # the directory names the chosen presets (${hydra:...})
        _run_claim = _claim(str(config.hydra.run.dir), "hydra.run.dir", config)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        failed_jobs.clear()
        self._sweep = _claim(str(config.hydra.sweep.dir), "hydra.sweep.dir", config)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        claim, self._sweep = self._sweep, None
        if claim is None:
            return
        try:
            failed_jobs.extend(unfinished_jobs(claim.write_dir))
            if not failed_jobs:
                claim.commit()
        finally:
            claim.release()


def unfinished_jobs(sweep_dir: Path) -> list[str]:
    """`<job dir>: <status> (<error>)` for every job directory of a sweep that did not complete."""
    lines = []
    for job_dir in sorted((p for p in Path(sweep_dir).iterdir() if p.is_dir()), key=_job_order):
        if not (job_dir / MANIFEST).is_file() and not (job_dir / ".hydra").is_dir():
            continue  # not a job (a report folder, say)
        if is_complete(job_dir):
            continue
        manifest = read_manifest(job_dir) or {}
        status, error = manifest.get("status", "no manifest"), manifest.get("error")
        lines.append(f"{job_dir}: {status}" + (f" ({error})" if error else ""))
    return lines


def _job_order(path: Path) -> tuple:
    return (0, int(path.name), "") if path.name.isdigit() else (1, 0, path.name)
