"""The Python API, for notebooks and scripts: `kvbench.run(overrides)` and `kvbench.load_runs(path)`.

    import kvbench
    result = kvbench.run(["strategy=paged", "workload.num_requests=200"])
    result.summary["output_tokens_per_s"], result.requests.head(), result.run_dir
    runs = kvbench.load_runs("results/sweeps/my_study")      # one row per complete run

Neither imports pyplot nor changes matplotlib's backend, so charts in the notebook keep its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml


@dataclass
class RunResult:
    """A finished run: its summary, where it lives, and its tables (read on first use)."""

    run_dir: Path
    summary: dict
    overrides: list[str]
    _tables: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    @property
    def config(self) -> dict:
        """The resolved config, as the run directory's config.yaml holds it."""
        return yaml.safe_load((self.run_dir / "config.yaml").read_text())

    @property
    def steps(self) -> pd.DataFrame:
        """One row per step (time, batch, the memory breakdown in bytes, ...)."""
        return self._table("steps")

    @property
    def requests(self) -> pd.DataFrame:
        """One row per finished request (arrival, TTFT, TPOT, latency, ...)."""
        return self._table("requests")

    def _table(self, name: str) -> pd.DataFrame:
        from kvbench.results import read_table

        if name not in self._tables:
            table = read_table(self.run_dir, name)
            if table is None:
                raise FileNotFoundError(f"{self.run_dir}: the run kept no {name} table")
            self._tables[name] = table
        return self._tables[name]


def run(overrides: Sequence[str] | str = (), run_dir: str | Path | None = None, progress: bool = False) -> RunResult:
    """One run, as `kvbench run OVERRIDES...` does, in this process.

    `overrides` are Hydra overrides (`["strategy=orca_max", "workload.rate=4"]`, or one string of
    them separated by spaces). The run directory defaults to `results/runs/<time>_<strategy>_<workload>`
    under the current directory, as on the command line. Bad settings raise ValueError (or
    ConfigError, a ValueError) naming the key.
    """
    from kvbench.compose_errors import compose_or_raise
    from kvbench.runner import execute

    words = overrides.split() if isinstance(overrides, str) else list(overrides)
    cfg, choices = compose_or_raise(words)
    if run_dir is None:
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
        run_dir = Path("results/runs") / f"{stamp}_{choices['strategy']}_{choices['workload']}"
    run_dir = Path(run_dir)
    summary = execute(cfg, run_dir, choices, progress=progress)
    return RunResult(run_dir, summary, words)


def load_runs(paths: str | Path | Iterable[str | Path], *, latency: bool = True) -> pd.DataFrame:
    """Every complete run under `paths` (run directories, sweeps, or folders holding them) as one tidy
    DataFrame: a row per run, every summary.json figure as a column, the resolved config flattened
    under `cfg.` (`cfg.workload.rate`), and `run_dir`, `run_name`, `sweep_dir`, `command`.

    With `latency`, TTFT/TPOT percentiles are recomputed from each run's requests table where kept
    (as `kvbench report` does). Runs that are not complete are left out; `kvbench report` lists them.
    """
    from kvbench.reporting.latency import with_request_latency
    from kvbench.reporting.runs import load_runs as load_run_set

    inputs = [paths] if isinstance(paths, (str, Path)) else list(paths)
    table = load_run_set(inputs).table()
    return with_request_latency(table) if latency and len(table) else table
