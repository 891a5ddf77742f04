"""Run many configs, each into its own run directory, in parallel worker processes.

A run already complete in its directory is not run again, so an interrupted reproduction resumes
where it stopped. Every run is an ordinary kvbench run (config.yaml, manifest, tables, summary), so
`kvbench report` and `kvbench compare` read the results like any other.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from omegaconf import open_dict
from tqdm import tqdm

from kvbench.compose import compose
from kvbench.results import SUMMARY, is_complete
from kvbench.runner import execute


@dataclass(frozen=True)
class RunSpec:
    name: str  # the run directory, relative to the batch's folder
    overrides: tuple[str, ...]  # Hydra overrides, as on the command line


def compose_run(overrides: tuple[str, ...]):
    """The run's config and its chosen presets (as `kvbench run` would record them)."""
    cfg = compose(overrides, return_hydra_config=True)
    choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if not k.startswith(("hydra", "schema"))}
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, choices


def run_one(spec: RunSpec, root: Path) -> str:
    cfg, choices = compose_run(spec.overrides)
    execute(cfg, root / spec.name, choices, progress=False)
    return spec.name


def run_all(specs: list[RunSpec], root: Path, jobs: int = 1, progress: bool = True) -> dict[str, dict]:
    """Run every spec not yet complete under `root`; return name -> summary for all of them."""
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError("two runs of a batch share a name")
    todo = [s for s in specs if not is_complete(root / s.name)]
    bar = tqdm(total=len(specs), initial=len(specs) - len(todo), unit="run", disable=not progress or None)
    with bar:
        if jobs > 1 and len(todo) > 1:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                for future in as_completed([pool.submit(run_one, spec, root) for spec in todo]):
                    bar.set_postfix_str(future.result(), refresh=False)
                    bar.update()
        else:
            for spec in todo:
                bar.set_postfix_str(run_one(spec, root), refresh=False)
                bar.update()
    return {s.name: json.loads((root / s.name / SUMMARY).read_text()) for s in specs}
