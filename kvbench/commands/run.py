"""`kvbench run`: the Hydra application around runner.execute."""

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


@hydra.main(version_base=None, config_path="pkg://kvbench.conf", config_name="config")
def _run(cfg: DictConfig) -> None:
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


def main(args: list[str]) -> int:
    # Hydra then raises a bad override or config instead of printing its own multi-line report and
    # exiting 1, so it fails as every command does (commands/errors.py: one line, exit 2).
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    run_guard.overwrite = OVERWRITE_FLAG in args
    args = [a for a in args if a != OVERWRITE_FLAG]
    check_run_arguments(args)  # a bad override: one line naming the key, exit 2 (a ValueError)
    sys.argv = ["kvbench run", *args]
    _run()
    if run_guard.failed_jobs:
        print(f"kvbench: {len(run_guard.failed_jobs)} job(s) of the sweep did not complete:", file=sys.stderr)
        for line in run_guard.failed_jobs:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0
