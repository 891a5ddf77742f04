"""`kvbench run`: the Hydra application around runner.execute."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import kvbench.config  # noqa: F401  (registers the schemas before Hydra composes)
from kvbench.report_text import summary_table
from kvbench.runner import execute
from kvbench.scheduler import SchedulerError

# ConfigError is a ValueError; input files that are missing or malformed raise these too, and a
# workload whose optional dependency is missing raises ImportError with the pip command to run.
USER_ERRORS = (SchedulerError, ValueError, FileNotFoundError, ImportError)


@hydra.main(version_base=None, config_path="pkg://kvbench.conf", config_name="config")
def _run(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    choices = {k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith(("hydra", "schema"))}
    try:
        summary = execute(cfg, run_dir, choices)
    except USER_ERRORS as err:
        from kvbench.cli import fail

        print(f"run directory (failed): {run_dir}", file=sys.stderr)
        code = fail(err)
        if hydra_cfg.mode is RunMode.MULTIRUN:
            return  # the sweep's other jobs still run; its manifest marks this one failed
        sys.exit(code)
    if hydra_cfg.mode is RunMode.MULTIRUN:
        return  # a sweep prints one combined table at its end (kvbench/sweep_callback.py)
    print(summary_table([summary]))
    print(f"run directory: {run_dir}")


def run_app(args: list[str]) -> int:
    from kvbench.cli import fail
    from kvbench.compose_errors import check_run_arguments

    try:
        check_run_arguments(args)  # a bad override: one line naming the key, exit 2
    except ValueError as err:
        return fail(err)
    sys.argv = ["kvbench run", *args]
    _run()
    return 0
