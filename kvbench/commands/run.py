"""`kvbench run`: the Hydra application around runner.execute.

A single run composes its config once. `@hydra.main` composes it twice (once to read `hydra.mode`,
once to run) and the one-line error check would add a third composition, about 0.15 s each; so a
plain `kvbench run OVERRIDES...` drives Hydra's own application object directly (`run_single`):
one composition, in which a bad override fails with the usual one line, then Hydra's callbacks and
`run_job` exactly as `Hydra.run` calls them (`.hydra/`, kvbench.log, the run directory guard).
Anything else (a sweep, `--help`, `--cfg`, a config that asks for `hydra.mode=MULTIRUN`) goes
through `@hydra.main` unchanged.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import kvbench.config  # noqa: F401  (registers the schemas before Hydra composes)
from kvbench.commands import run_guard
from kvbench.commands.errors import USER_ERRORS, fail
from kvbench.compose_errors import check_run_arguments
from kvbench.interrupts import exit_code
from kvbench.report_text import summary_table
from kvbench.runner import execute

OVERWRITE_FLAG = "--overwrite"
CONFIG_PATH = "pkg://kvbench.conf"
CONFIG_NAME = "config"


def run_task(cfg: DictConfig) -> None:
    """The task Hydra runs for each job: one run into the job's output directory."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    choices = {k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith(("hydra", "schema"))}
    sweep = hydra_cfg.mode is RunMode.MULTIRUN
    final_dir = run_guard.run_target() or run_dir  # where it goes once complete (elsewhere with --overwrite)
    try:
        summary = execute(cfg, run_dir, choices)
    except KeyboardInterrupt as err:
        print(f"kvbench: {err or 'interrupted'}; run directory (interrupted): {run_dir}", file=sys.stderr)
        sys.exit(exit_code(err))  # a sweep stops too
    except Exception as err:
        print(f"run directory (failed): {run_dir}", file=sys.stderr)
        if not isinstance(err, USER_ERRORS):
            if not sweep:
                raise
            traceback.print_exception(err)  # a crash: the sweep's other jobs still run, then it exits 1
        code = fail(err)
        if sweep:
            return  # the sweep's other jobs still run; it lists the failed ones at the end
        sys.exit(code)
    finally:
        run_guard.release_run()
    if sweep:
        return  # a sweep prints one combined table at its end (kvbench/commands/sweep_callback.py)
    print(summary_table([summary]))
    print(f"run directory: {final_dir}")


_hydra_main = hydra.main(version_base=None, config_path=CONFIG_PATH, config_name=CONFIG_NAME)(run_task)


def run_single(overrides: list[str]) -> bool:
    """Run one job from a single composition, as `Hydra.run` does; False (nothing done) when the
    composed config asks for a sweep (`hydra.mode=MULTIRUN`), which `@hydra.main` must launch."""
    from hydra._internal.callbacks import Callbacks
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.utils import run_job
    from hydra.types import HydraContext

    app = Hydra.create_main_hydra2(task_name="kvbench", config_search_path=create_config_search_path(CONFIG_PATH))
    try:
        cfg = app.compose_config(CONFIG_NAME, overrides, run_mode=RunMode.RUN, with_log_configuration=True)
        if cfg.hydra.mode is RunMode.MULTIRUN:
            return False
        if cfg.hydra.mode is None:  # recorded in .hydra/hydra.yaml as @hydra.main records it
            cfg.hydra.overrides.hydra.append("hydra.mode=RUN")
            cfg.hydra.mode = RunMode.RUN
        callbacks = Callbacks(cfg)
        callbacks.on_run_start(config=cfg, config_name=CONFIG_NAME)
        job = run_job(
            hydra_context=HydraContext(config_loader=app.config_loader, callbacks=callbacks),
            task_function=run_task, config=cfg, job_dir_key="hydra.run.dir", job_subdir_key=None,
        )
        callbacks.on_run_end(config=cfg, config_name=CONFIG_NAME, job_return=job)
        job.return_value  # noqa: B018  (re-raises what the task raised, as Hydra.run does)
        return True
    finally:
        GlobalHydra.instance().clear()


def main(args: list[str]) -> int:
    # Hydra then raises a bad override or config instead of printing its own multi-line report and
    # exiting 1, so it fails as every command does (commands/errors.py: one line, exit 2).
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    run_guard.overwrite = OVERWRITE_FLAG in args
    args = [a for a in args if a != OVERWRITE_FLAG]
    sys.argv = ["kvbench run", *args]
    # A plain run's one composition reports a bad override itself (commands/errors.py: one line).
    if any(a.startswith("-") for a in args) or not run_single(args):
        check_run_arguments(args)  # a bad override: one line naming the key, exit 2 (a ValueError)
        _hydra_main()
    if run_guard.failed_jobs:
        print(f"kvbench: {len(run_guard.failed_jobs)} job(s) of the sweep did not complete:", file=sys.stderr)
        for line in run_guard.failed_jobs:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0
