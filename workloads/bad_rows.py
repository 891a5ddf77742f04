"""Malformed rows of a trace file: fail naming the file and line, or skip and count them.

Readers check whole columns at once (`require`) or one record at a time (`reject`). By default the
first bad row found stops the load with a `TraceFormatError` that names the file, the line and the
problem; with `workload.skip_bad_rows=true` bad rows are dropped, counted (the run summary and the
manifest report the count) and summarised in one warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas (a third of a second) is imported where a table is built, not when a run starts
    import pandas as pd

SKIP_HINT = " (workload.skip_bad_rows=true skips and counts such rows)"


class TraceFormatError(ValueError):
    """A trace file that cannot be read as its workload's format; the message names file and line."""


class SkippedRowsWarning(UserWarning):
    """Malformed rows were skipped (workload.skip_bad_rows=true)."""


class BadRows:
    def __init__(self, source: str, skip: bool):
        self.source = source
        self.skip = skip
        self.num_skipped = 0
        self._first: str | None = None  # the first skipped row's line and problem, for the warning

    def reject(self, line: int, problem: str) -> None:
        """One bad record: raise, or count it."""
        if not self.skip:
            raise TraceFormatError(f"{self.source}, line {line}: {problem}{SKIP_HINT}")
        self.num_skipped += 1
        if self._first is None:
            self._first = f"line {line}: {problem}"

    def require(self, ok: np.ndarray, lines: np.ndarray, problem: Callable[[int], str]) -> np.ndarray:
        """Rows where `ok` is False are bad: raise naming the first, or return `ok` to filter with.

        `problem(i)` describes row i (its position in `ok`).
        """
        if not ok.all():
            first = int(np.argmin(ok))
            if not self.skip:
                raise TraceFormatError(f"{self.source}, line {lines[first]}: {problem(first)}{SKIP_HINT}")
            if self._first is None:
                self._first = f"line {lines[first]}: {problem(first)}"
        return ok

    def keep(self, valid: np.ndarray) -> np.ndarray:
        """Positions of the valid rows; counts the others (then as `done`)."""
        self.num_skipped += int(len(valid) - valid.sum())
        self.done(int(valid.sum()))
        return np.flatnonzero(valid)

    def done(self, num_valid: int) -> None:
        """After reading: fail when no row is valid; warn once about everything skipped."""
        if not num_valid:
            raise TraceFormatError(
                f"{self.source}: no valid request ({self.num_skipped} bad rows; first at {self._first})"
            )
        if self.num_skipped:
            warnings.warn(
                f"{self.source}: skipped {self.num_skipped} malformed rows (first at {self._first})",
                SkippedRowsWarning, stacklevel=3,
            )


def as_floats(column: pd.Series) -> np.ndarray:
    """A CSV column as float64, NaN where a value is not a number (a column of numbers is already parsed)."""
    import pandas as pd
    if column.dtype.kind in "iuf":
        return column.to_numpy(dtype=np.float64)
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)


def parse_counts(column: pd.Series, minimum: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Whole numbers >= minimum: (int64 values, 0 where invalid; mask of the valid ones)."""
    if column.dtype.kind in "iu":  # parsed as integers already: no float copy of a long column
        values = column.to_numpy(dtype=np.int64)
        ok = values >= minimum
        return np.where(ok, values, 0), ok
    values = as_floats(column)
    ok = np.isfinite(values) & (values == np.floor(values)) & (values >= minimum)
    return np.where(ok, values, 0).astype(np.int64), ok


def parse_floats(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Finite numbers: (float64 values, mask of the valid ones)."""
    values = as_floats(column)
    ok = np.isfinite(values)
    return np.where(ok, values, 0.0), ok


def shown(value: object) -> str:
    """A field as an error message quotes it: text in quotes, numbers as they are."""
    return repr(value) if isinstance(value, str) else str(value)


def not_a_count(column: str, raw: np.ndarray, minimum: int = 1) -> Callable[[int], str]:
    """The message for a bad count in `column` (values `raw`)."""
    def problem(i: int) -> str:
        return f"{column} is empty" if raw[i] == "" else f"{column}={shown(raw[i])} is not a whole number >= {minimum}"

    return problem


def require_counts(
    frame: pd.DataFrame, column: str, lines: np.ndarray, bad: BadRows, minimum: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """A column of whole numbers >= minimum: its values, and where they parsed (others reported bad)."""
    values, ok = parse_counts(frame[column], minimum)
    return values, bad.require(ok, lines, not_a_count(column, frame[column].to_numpy(), minimum))
