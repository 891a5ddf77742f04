"""What a sweep (`kvbench run -m`) prints: a progress line per finished job, then one combined table.

Registered as a Hydra callback in conf/config.yaml, so it works with every launcher: `on_job_end`
runs where the job ran (in-process for the basic launcher, in the worker for joblib or submitit),
`on_multirun_end` in the process that launched the sweep, after every job. Progress counts the job
directories whose manifest says the run ended (complete, failed or interrupted) against the jobs
the sweep expands to; the table reads every job's summary.json, so it is the same whichever
launcher ran the jobs, and lists the jobs that did not complete below it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

ENDED = ("complete", "failed", "interrupted")


def _status(run_dir: Path) -> str | None:
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return manifest.get("status") if isinstance(manifest, dict) else None


class SweepCallback(Callback):
    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        hydra_cfg = HydraConfig.get()
        if str(hydra_cfg.mode) != "RunMode.MULTIRUN":
            return
        from kvbench.reporting.sweeps import expected_jobs

        sweep_dir = Path(hydra_cfg.sweep.dir)
        run_dir = Path(hydra_cfg.runtime.output_dir)
        total = len(expected_jobs(sweep_dir) or []) or "?"
        done = sum(1 for child in sweep_dir.iterdir() if child.is_dir() and _status(child) in ENDED)
        status = _status(run_dir) or "no manifest"
        overrides = " ".join(hydra_cfg.overrides.task)
        print(f"[{done}/{total}] {status}: {run_dir.name} ({overrides})", flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from kvbench.report_text import summary_table
        from kvbench.reporting.runs import load_runs

        sweep_dir = Path(config.hydra.sweep.dir)  # HydraConfig is not set once the jobs are done
        if not sweep_dir.is_dir():
            return
        run_set = load_runs([sweep_dir])
        if run_set.records:
            print(summary_table([record.summary for record in run_set.records],
                                [record.path.name for record in run_set.records]))
        for problem in run_set.problems:
            print(f"not complete: {problem.path.name} ({problem.status}): {problem.detail}")
        print(f"sweep directory: {sweep_dir} ({len(run_set.records)} complete, {len(run_set.problems)} not)")
