"""Read a run's step and request tables, whichever format the run wrote them in.

A run directory holds `steps` and `requests` as Parquet (`steps.parquet`, the default at scale) or
CSV (`steps.csv`, on request and in runs made by older kvbench versions). Every reader in reporting
goes through `read_run_table`, so all of them accept both; Parquet wins where a directory has both.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

TABLES = ("steps", "requests")
SUFFIXES = (".parquet", ".csv")  # in order of preference


def run_table_path(run_dir: Path, table: str) -> Path | None:
    """The file holding `table` ("steps" or "requests") in `run_dir`, or None when the run kept none."""
    if table not in TABLES:
        raise ValueError(f"unknown run table {table!r}; choose from {', '.join(TABLES)}")
    for suffix in SUFFIXES:
        path = Path(run_dir) / f"{table}{suffix}"
        if path.is_file():
            return path
    return None


def has_run_table(run_dir: Path, table: str) -> bool:
    return run_table_path(run_dir, table) is not None


def read_run_table(run_dir: Path, table: str, columns: Sequence[str] | None = None) -> pd.DataFrame | None:
    """`table` of the run in `run_dir` as a DataFrame (only `columns` when given), or None if it kept none."""
    path = run_table_path(run_dir, table)
    if path is None:
        return None
    wanted = list(columns) if columns is not None else None
    if path.suffix == ".parquet":
        return pd.read_parquet(path, columns=wanted)
    return pd.read_csv(path, usecols=wanted)


def table_names(table: str) -> str:
    """'steps.parquet or steps.csv', for messages that say what a run lacks."""
    return " or ".join(f"{table}{suffix}" for suffix in SUFFIXES)
