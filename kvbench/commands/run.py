"""`kvbench run`: the Hydra application around runner.execute."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import kvbench.config  # noqa: F401  (registers the schemas before Hydra composes)
from kvbench.commands.errors import USER_ERRORS, fail
from kvbench.report_text import summary_table
from kvbench.runner import execute


@hydra.main(version_base=None, config_path="pkg://kvbench.conf", config_name="config")
def _run(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    choices = {k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith(("hydra", "schema"))}
    try:
        summary = execute(cfg, run_dir, choices)
    except USER_ERRORS as err:
        print(f"run directory (failed): {run_dir}", file=sys.stderr)
        code = fail(err)
        if hydra_cfg.mode is RunMode.MULTIRUN:
            return  # the sweep's other jobs still run; its manifest marks this one failed
        sys.exit(code)
    print(summary_table([summary]))
    print(f"run directory: {run_dir}")


def main(args: list[str]) -> int:
    # Hydra then raises a bad override or config instead of printing its own multi-line report and
    # exiting 1, so it fails as every command does (commands/errors.py: one line, exit 2).
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    sys.argv = ["kvbench run", *args]
    _run()
    return 0
