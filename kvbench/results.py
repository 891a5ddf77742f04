"""The run directory: what a run leaves behind, written so that only a finished run looks finished.

    config.yaml       the resolved config (without `results`, where the run writes: not part of the experiment)
    manifest.json     status (running | complete | failed | interrupted), versions, kvbench's own commit and
                      the user's working repository (kvbench/provenance.py), seed, dataset
    steps.parquet     one row per step (steps.csv with results.format=csv), streamed to disk in chunks
    requests.parquet  one row per finished request (requests.csv with results.format=csv), streamed in id order
    summary.json      headline figures: strict JSON, written last, atomically, and only when the run completed

A table is written under a partial name (`steps.partial.parquet`) and renamed when the run
completes, so a table of an interrupted or failed run never looks whole. Readers (report, compare)
treat a directory without summary.json, or whose manifest does not say `complete`, as unfinished;
`read_table` reads a table in either format.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf, open_dict

from kvbench.provenance import distribution_version, run_sources

if TYPE_CHECKING:  # pandas (a third of a second) is imported where a DataFrame is asked for, not in a run
    import numpy as np
    import pandas as pd

SUMMARY = "summary.json"
MANIFEST = "manifest.json"
STEPS = "steps"
REQUESTS = "requests"
CONFIG = "config.yaml"
PACKAGES = (
    "kvbench", "torch", "triton", "numpy", "pandas", "pyarrow", "matplotlib", "hydra-core", "omegaconf", "tqdm",
)


class TableFormat(Enum):
    parquet = "parquet"
    csv = "csv"


@dataclass
class ResultsConfig:
    """How a run writes its tables (`results.format=csv`); left out of config.yaml."""

    format: TableFormat = TableFormat.parquet


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = distribution_version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def gpu_record() -> dict[str, str | None] | None:
    """The GPU and its driver, when there is one (CUDA).

    Never imports torch (1.5 s and 200 MiB that a simulator run does not need): torch's view when
    the run already imported it (a device run), else `nvidia-smi`'s when the machine has one.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return _nvidia_smi_record()
    if not torch.cuda.is_available():
        return None
    record = _nvidia_smi_record() or {"driver": None}
    return {"name": torch.cuda.get_device_name(), "driver": record["driver"], "cuda": torch.version.cuda}


def _nvidia_smi_record() -> dict[str, str | None] | None:
    """The first GPU's name and driver as `nvidia-smi` reports them; None without one."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        line = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"], capture_output=True,
            text=True, timeout=10, check=True,
        ).stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None
    name, _, driver = line.rpartition(",")
    return {"name": name.strip() or None, "driver": driver.strip() or None, "cuda": None}


def _json_ready(value, key: str = ""):
    """NaN (a figure with nothing to measure, such as TPOT when no request made two tokens) is
    written as null; an infinite figure is a bug upstream and is refused, naming the key."""
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return None
        raise ValueError(f"{key or 'a value'}={value} is not a finite number; refusing to write it as JSON")
    if isinstance(value, dict):
        return {k: _json_ready(v, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v, key) for v in value]
    return value


def write_json_atomic(path: Path, data: dict) -> None:
    """Strict JSON (no NaN or Infinity tokens), written under a temporary name and renamed; the
    temporary file is removed when writing fails (a full disk)."""
    text = json.dumps(_json_ready(data), indent=2, sort_keys=True, allow_nan=False) + "\n"
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def table_path(run_dir: str | Path, name: str) -> Path | None:
    """The complete `name` table (steps, requests) of a run, Parquet or CSV; None when there is none."""
    for table_format in TableFormat:
        path = Path(run_dir) / f"{name}.{table_format.value}"
        if path.is_file():
            return path
    return None


def read_table(run_dir: str | Path, name: str, columns: list[str] | None = None, **csv_options) -> pd.DataFrame | None:
    """A run's `name` table (steps, requests) in whichever format it was written; None when absent."""
    import pandas as pd
    path = table_path(run_dir, name)
    if path is None:
        return None
    if path.suffix == ".parquet":
        return pd.read_parquet(path, columns=columns)
    return pd.read_csv(path, usecols=columns, **csv_options)


def table_names(name: str) -> str:
    """'steps.parquet or steps.csv', for messages that say what a run lacks."""
    return " or ".join(f"{name}.{table_format.value}" for table_format in TableFormat)


class TableWriter:
    """One table of a run, written in chunks (Parquet row groups, or CSV appended) under a partial
    name; `finish` ends it, `publish` gives it its real name.

    A chunk maps column names to values of one length: numpy arrays (int64, float64) or lists (an
    engine's columns). Parquet is written by pyarrow from the arrays' buffers (a simulator run
    imports no pandas; kvbench/arrow_columns.py), CSV through pandas."""

    def __init__(self, directory: Path, name: str, table_format: TableFormat):
        self.format = TableFormat(table_format)
        self.final_path = directory / f"{name}.{self.format.value}"
        self.partial_path = directory / f"{name}.partial.{self.format.value}"
        self._parquet = None  # pyarrow.parquet.ParquetWriter, opened with the first chunk
        self._num_rows = 0

    def write(self, columns: Mapping[str, Sequence]) -> None:
        if self.format is TableFormat.csv:
            import pandas as pd

            pd.DataFrame(columns).to_csv(self.partial_path, index=False, mode="a" if self._num_rows else "w",
                                         header=not self._num_rows)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            from kvbench.arrow_columns import to_arrow

            table = pa.table({name: to_arrow(values) for name, values in columns.items()})
            if self._parquet is None:
                self._schema = table.schema  # later chunks are cast to it (an engine's column of ints stays ints)
                self._parquet = pq.ParquetWriter(self.partial_path, self._schema)
            if not table.schema.equals(self._schema):
                table = table.cast(self._schema)
            self._parquet.write_table(table)
        self._num_rows += len(next(iter(columns.values())))

    def finish(self, empty: Mapping[str, Sequence]) -> Path:
        """Close the table (its partial name kept); `empty` (the columns, no rows) is written when no chunk came."""
        if not self._num_rows and self._parquet is None:
            self.write(empty)  # the header alone
        self.close()
        return self.partial_path

    def publish(self) -> Path:
        """Give the finished table its real name."""
        os.replace(self.partial_path, self.final_path)
        return self.final_path

    def close(self) -> None:
        """Stop writing; an unfinished table keeps its partial name."""
        if self._parquet is not None:
            writer, self._parquet = self._parquet, None
            writer.close()


class TableColumns:
    """A table on disk read one column at a time, as numpy arrays (NaN where a value is null):
    figures over a long table (the summary's percentiles) without holding all of it in memory.
    `len()` is its number of rows, and `table[name]` a column, as on a DataFrame."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @cached_property
    def _parquet(self):
        import pyarrow.parquet as pq
        return pq.ParquetFile(self.path)  # its footer (the schema, row groups) read once

    @cached_property
    def _num_rows(self) -> int:
        if self.path.suffix == ".parquet":
            return self._parquet.metadata.num_rows
        import pandas as pd
        return len(pd.read_csv(self.path, usecols=[0]))

    def __len__(self) -> int:
        return self._num_rows

    def __getitem__(self, name: str) -> np.ndarray:
        if self.path.suffix == ".parquet":
            from kvbench.arrow_columns import to_numpy
            return to_numpy(self._parquet.read(columns=[name]).column(0))
        import pandas as pd
        return pd.read_csv(self.path, usecols=[name])[name].to_numpy()  # floats were written as their shortest repr


class RunDirectory:
    """Writes one run's files into `path` (claimed beforehand: see kvbench.run_claim)."""

    def __init__(self, path: Path, table_format: TableFormat = TableFormat.parquet):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.table_format = TableFormat(table_format)
        self.steps = TableWriter(self.path, STEPS, self.table_format)
        self.requests = TableWriter(self.path, REQUESTS, self.table_format)
        self._manifest: dict = {}
        self._started = time.perf_counter()

    def start(self, cfg: DictConfig, extra: dict) -> None:
        """Record what is about to run."""
        (self.path / CONFIG).write_text(experiment_yaml(cfg))
        source, working = run_sources()
        self._manifest = {
            "status": "running",
            "command": " ".join(sys.argv),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seed": cfg.seed,
            "kvbench": source,
            "working_repository": working,
            "versions": package_versions(),
            "platform": platform.platform(),
            "table_format": self.table_format.value,
            **extra,
        }
        write_json_atomic(self.path / MANIFEST, self._manifest)

    def update_manifest(self, **fields) -> None:
        self._manifest.update(fields)
        write_json_atomic(self.path / MANIFEST, self._manifest)

    def finish_tables(self, empty_steps: Mapping[str, Sequence],
                      empty_requests: Mapping[str, Sequence]) -> TableColumns:
        """Close both tables, still under their partial names (`empty_*`: the columns, written when a
        table got no row); the requests table, for the summary to read back."""
        self.steps.finish(empty_steps)
        return TableColumns(self.requests.finish(empty_requests))

    def complete(self, summary: dict) -> None:
        """The run finished: name its tables, then write summary.json, then mark it complete."""
        self.steps.publish()
        self.requests.publish()
        write_json_atomic(self.path / SUMMARY, summary)
        self._finish("complete")

    def fail(self, status: str, error: str) -> None:
        """Mark the run failed or interrupted, as far as the disk allows (it may be full)."""
        self.steps.close()
        self.requests.close()
        try:
            self._finish(status, error=error)
        except (OSError, ValueError):
            pass

    def _finish(self, status: str, **fields) -> None:
        self.update_manifest(
            status=status,
            finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            wall_time_s=round(time.perf_counter() - self._started, 3),
            **fields,
        )


def experiment_yaml(cfg: DictConfig) -> str:
    """The resolved config as config.yaml holds it: without `results` (how tables are written)."""
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.pop("results", None)
    return OmegaConf.to_yaml(cfg, resolve=True)


def read_manifest(run_dir: Path) -> dict | None:
    try:
        manifest = json.loads((Path(run_dir) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def is_complete(run_dir: Path) -> bool:
    if not (Path(run_dir) / SUMMARY).is_file():
        return False
    manifest = read_manifest(run_dir)
    return manifest is not None and manifest.get("status") == "complete"
