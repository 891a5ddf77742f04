"""Opening trace files: the path check, the manifest record, and CSV / JSONL / JSON records with lines.

CSV goes through pandas' C parser (tens of milliseconds for the 19k-row Azure trace, about a second
for BurstGPT's 1.4M rows). A column that is all numbers arrives as numbers; one with anything else
arrives as text, and the reader's checks (`bad_rows.parse_counts`) find the bad values, vectorised,
and name their lines: with blank lines kept as rows, row i of the frame is line i + 2 of the file.
A row with too many fields stops pandas; with `skip_bad_rows` the file is then re-read with the
`csv` module, which skips such rows one by one (slower, only for broken files).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kvbench.workloads.bad_rows import SKIP_HINT, BadRows, TraceFormatError

_WHITESPACE = re.compile(r"[ \t\r\n]*")


def trace_path(path: str | None, workload: str, how_to_get: str) -> Path:
    """The file a trace workload reads; the errors say where to get it."""
    if path is None:
        raise FileNotFoundError(f"workload={workload} needs workload.path=<file>; {how_to_get}")
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"workload.path={path}: no such file; {how_to_get}")
    return file


def read_trace_bytes(file: Path) -> bytes:
    data = file.read_bytes()
    if not data.strip():
        raise TraceFormatError(f"{file}: the file is empty")
    return data


def open_trace(path: str | None, workload: str, how_to_get: str, skip_bad_rows: bool) -> tuple[Path, bytes, BadRows]:
    """The trace file, its bytes, and the bad-row policy that names it: how every loader starts."""
    file = trace_path(path, workload, how_to_get)
    return file, read_trace_bytes(file), BadRows(str(file), skip_bad_rows)


def file_record(name: str, file: Path, data: bytes, **extra: Any) -> dict:
    """The manifest's record of a trace file: what it is, where it was, its sha256."""
    return {"name": name, "source": str(file.resolve()), "sha256": hashlib.sha256(data).hexdigest(), **extra}


def read_csv(
    file: Path, data: bytes, columns: Sequence[str], bad: BadRows, optional: Sequence[str] = ()
) -> tuple[pd.DataFrame, np.ndarray]:
    """The named columns (and the optional ones the file has) as text, and each row's file line.

    Other columns are ignored and blank lines dropped.
    """
    try:
        frame = pd.read_csv(io.BytesIO(data), keep_default_na=False, skip_blank_lines=False)
        lines = np.arange(len(frame)) + 2
    except pd.errors.ParserError as err:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        if not bad.skip or found is None:
            where = f", line {found.group(2)}" if found else ""
            detail = f"expected {found.group(1)} fields, saw {found.group(3)}" if found else str(err)
            raise TraceFormatError(f"{file}{where}: {detail}{SKIP_HINT if found else ''}") from None
        frame, lines = _read_csv_skipping(data, bad)
    except UnicodeDecodeError as err:
        raise TraceFormatError(f"{file}: not UTF-8 text ({err})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise TraceFormatError(f"{file}: no column {', '.join(missing)}; the header has {', '.join(frame.columns)}")
    frame = frame[[*columns, *(c for c in optional if c in frame.columns)]]
    blank = _blank_rows(frame)
    if blank.any():
        frame, lines = frame[~blank].reset_index(drop=True), lines[~blank]
    if not len(frame):
        raise TraceFormatError(f"{file}: a header and no rows")
    return frame, lines


def _blank_rows(frame: pd.DataFrame) -> np.ndarray:
    """Rows that were blank lines: empty in every column (a column parsed as numbers has none)."""
    blank = np.ones(len(frame), dtype=bool)
    for column in frame.columns:
        values = frame[column]
        if values.dtype.kind in "iufb":
            return np.zeros(len(frame), dtype=bool)
        blank &= (values.to_numpy() == "")
    return blank


def _read_csv_skipping(data: bytes, bad: BadRows) -> tuple[pd.DataFrame, np.ndarray]:
    reader = csv.reader(io.StringIO(data.decode("utf-8")))
    header = next(reader)
    rows, lines = [], []
    for row in reader:
        if len(row) == len(header) or not row:
            rows.append(row or [""] * len(header))
            lines.append(reader.line_num)
        else:
            bad.reject(reader.line_num, f"expected {len(header)} fields, saw {len(row)}")
    return pd.DataFrame(rows, columns=header, dtype=str), np.asarray(lines, dtype=np.int64)


def read_jsonl(data: bytes, bad: BadRows) -> tuple[list[dict], np.ndarray]:
    """The JSON objects of a JSON Lines file and their lines (blank lines ignored)."""
    records, lines = [], []
    for line, text in enumerate(data.splitlines(), start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            bad.reject(line, f"not JSON ({err})")
            continue
        if not isinstance(record, dict):
            bad.reject(line, f"expected a JSON object, got {type(record).__name__}")
            continue
        records.append(record)
        lines.append(line)
    return records, np.asarray(lines, dtype=np.int64)


def read_json_list(file: Path, data: bytes, bad: BadRows) -> tuple[list[dict], np.ndarray]:
    """The objects of a top-level JSON array, each with the line where it starts.

    Decoded element by element (json's raw_decode), so a bad element is named by its line.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TraceFormatError(f"{file}: not UTF-8 text ({err})") from None
    decoder = json.JSONDecoder()
    position = _WHITESPACE.match(text, 0).end()
    if text[position : position + 1] != "[":
        raise TraceFormatError(f"{file}: expected a JSON array of objects")
    position = _WHITESPACE.match(text, position + 1).end()
    records, lines = [], []
    line, counted_to = 1, 0
    while text[position : position + 1] != "]":
        line += text.count("\n", counted_to, position)
        counted_to = position
        try:
            item, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as err:
            raise TraceFormatError(f"{file}, line {err.lineno}: not JSON ({err.msg})") from None
        if isinstance(item, dict):
            records.append(item)
            lines.append(line)
        else:
            bad.reject(line, f"expected a JSON object, got {type(item).__name__}")
        position = _WHITESPACE.match(text, position).end()
        if text[position : position + 1] == ",":
            position = _WHITESPACE.match(text, position + 1).end()
        elif text[position : position + 1] != "]":
            line += text.count("\n", counted_to, position)
            raise TraceFormatError(f"{file}, line {line}: expected ',' or ']' after an element")
    if text[position + 1 :].strip():
        raise TraceFormatError(f"{file}: text after the closing ']'")
    if not records and not bad.num_skipped:
        raise TraceFormatError(f"{file}: an empty JSON array")
    return records, np.asarray(lines, dtype=np.int64)
