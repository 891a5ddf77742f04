"""Opening trace files: the path check, the manifest record, and CSV / JSONL / JSON records with lines.

Files compressed with gzip or zstd (recognised by their first bytes, whatever their name) are read
through a decompressing stream. A path that is a directory, a file that cannot be read, and text
that is not UTF-8 are each reported in one line naming the file (and the line, for bad text).

CSV is streamed through pandas' C parser in chunks of `CSV_CHUNK_ROWS`, keeping only the columns a
workload reads (a trace of a gigabyte holds its two length columns in memory, not its text), and
stops early when the workload needs only the first rows (`max_rows`). A column that is all numbers
arrives as numbers; one with anything else arrives as text, and the reader's checks
(`bad_rows.parse_counts`) find the bad values, vectorised, and name their lines: with blank lines
kept as rows, row i of the file is line i + 2. A row with too many fields stops pandas; with
`skip_bad_rows` the file is then re-read with the `csv` module, which skips such rows one by one
(slower, only for broken files).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from kvbench.workloads.bad_rows import SKIP_HINT, BadRows, TraceFormatError

if TYPE_CHECKING:  # pandas (a third of a second) is imported where a table is built, not when a run starts
    import pandas as pd

_WHITESPACE = re.compile(r"[ \t\r\n]*")
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CSV_CHUNK_ROWS = 1 << 18
_HASH_BLOCK_BYTES = 1 << 20


def trace_path(path: str | None, workload: str, how_to_get: str) -> Path:
    """The file a trace workload reads; the errors say where to get it."""
    if path is None:
        raise FileNotFoundError(f"workload={workload} needs workload.path=<file>; {how_to_get}")
    file = Path(path).expanduser()
    if file.is_dir():
        raise IsADirectoryError(f"workload.path={path} is a directory: give the trace file itself")
    if not file.is_file():
        raise FileNotFoundError(f"workload.path={path}: no such file; {how_to_get}")
    return file


@contextmanager
def reading(file: Path) -> Iterator[None]:
    """Errors of the operating system or a decompressor while reading `file`, as one line naming it."""
    try:
        yield
    except TraceFormatError:
        raise
    except (OSError, EOFError) as err:  # permission denied, a truncated gzip stream, a bad zstd frame
        raise TraceFormatError(f"{file}: cannot read it ({getattr(err, 'strerror', None) or err})") from None
    except Exception as err:
        if type(err).__module__.startswith("zstandard") or type(err).__name__ == "ZstdError":
            raise TraceFormatError(f"{file}: cannot decompress it as zstd ({err})") from None
        raise


def open_decompressed(file: Path) -> IO[bytes]:
    """The file as a binary stream, decompressed when it is gzip or zstd."""
    raw = open(file, "rb")  # noqa: SIM115 (the caller closes the stream, which closes this)
    magic = raw.read(4)
    raw.seek(0)
    if magic.startswith(GZIP_MAGIC):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if magic == ZSTD_MAGIC:
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
    return raw


def read_trace_bytes(file: Path) -> bytes:
    """The file's (decompressed) bytes; an empty file is an error."""
    with reading(file), open_decompressed(file) as stream:
        data = stream.read()
    if not data.strip():
        raise TraceFormatError(f"{file}: the file is empty")
    return data


def open_trace(path: str | None, workload: str, how_to_get: str, skip_bad_rows: bool) -> tuple[Path, bytes, BadRows]:
    """The trace file, its bytes, and the bad-row policy that names it: how every JSON loader starts."""
    file = trace_path(path, workload, how_to_get)
    return file, read_trace_bytes(file), BadRows(str(file), skip_bad_rows)


def file_record(name: str, file: Path, **extra: Any) -> dict:
    """The manifest's record of a trace file: what it is, where it was, the sha256 of its bytes as stored."""
    digest = hashlib.sha256()
    with reading(file), open(file, "rb") as stream:
        while block := stream.read(_HASH_BLOCK_BYTES):
            digest.update(block)
    return {"name": name, "source": str(file.resolve()), "sha256": digest.hexdigest(), **extra}


def non_utf8_line(file: Path) -> int:
    """The first line of the (decompressed) file that is not UTF-8, 0 if none."""
    with open_decompressed(file) as stream:
        for number, line in enumerate(stream, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


def read_csv(
    file: Path, columns: Sequence[str], bad: BadRows, optional: Sequence[str] = (), max_rows: int | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """The named columns (and the optional ones the file has) and each row's file line.

    Other columns are ignored and blank lines dropped; with `max_rows`, reading stops after that many
    rows (blank lines not counted).
    """
    import pandas as pd
    with reading(file):
        try:
            return _read_csv_chunks(file, columns, optional, max_rows)
        except pd.errors.ParserError as err:
            found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
            if not bad.skip or found is None:
                where = f", line {found.group(2)}" if found else ""
                detail = f"expected {found.group(1)} fields, saw {found.group(3)}" if found else str(err)
                raise TraceFormatError(f"{file}{where}: {detail}{SKIP_HINT if found else ''}") from None
            frame, lines = _read_csv_skipping(read_trace_bytes(file), bad)
            frame.columns = [str(c).strip() for c in frame.columns]
            return _select(file, frame, lines, columns, optional)
        except UnicodeDecodeError as err:
            raise TraceFormatError(f"{file}, line {non_utf8_line(file)}: not UTF-8 text ({err.reason})") from None
        except pd.errors.EmptyDataError:
            raise TraceFormatError(f"{file}: the file is empty") from None


def _read_csv_chunks(
    file: Path, columns: Sequence[str], optional: Sequence[str], max_rows: int | None
) -> tuple[pd.DataFrame, np.ndarray]:
    import pandas as pd
    with open_decompressed(file) as stream:
        header = [str(c).strip() for c in pd.read_csv(stream, nrows=0).columns]
    missing = [c for c in columns if c not in header]
    if missing:
        raise TraceFormatError(f"{file}: no column {', '.join(missing)}; the header has {', '.join(header)}")
    wanted = [*columns, *(c for c in optional if c in header)]
    frames, line_parts, first_row, num_rows = [], [], 0, 0
    with open_decompressed(file) as stream:
        # Every column is parsed (pandas checks each row's field count only then); each chunk keeps
        # the wanted ones.
        chunks = pd.read_csv(stream, keep_default_na=False, skip_blank_lines=False, chunksize=CSV_CHUNK_ROWS)
        for chunk in chunks:
            chunk.columns = [str(c).strip() for c in chunk.columns]
            frame, lines = _drop_blank(_narrow(chunk[wanted]), np.arange(first_row, first_row + len(chunk)) + 2)
            first_row += len(chunk)
            frames.append(frame)
            line_parts.append(lines)
            num_rows += len(frame)
            if max_rows is not None and num_rows >= max_rows:
                break
    if not num_rows:
        raise TraceFormatError(f"{file}: a header and no rows")
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    lines = np.concatenate(line_parts)
    if max_rows is not None and len(frame) > max_rows:
        frame, lines = frame.iloc[:max_rows], lines[:max_rows]
    return frame, lines


def _narrow(frame: pd.DataFrame) -> pd.DataFrame:
    """Integer columns in 32 bits where their values fit: half the memory of a long trace's counts."""
    narrowed = {}
    for column in frame.columns:
        values = frame[column]
        if values.dtype.kind == "i" and len(values) and -(2**31) <= values.min() and values.max() < 2**31:
            narrowed[column] = values.astype(np.int32)
    return frame.assign(**narrowed) if narrowed else frame


def _select(
    file: Path, frame: pd.DataFrame, lines: np.ndarray, columns: Sequence[str], optional: Sequence[str]
) -> tuple[pd.DataFrame, np.ndarray]:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise TraceFormatError(f"{file}: no column {', '.join(missing)}; the header has {', '.join(frame.columns)}")
    frame, lines = _drop_blank(frame[[*columns, *(c for c in optional if c in frame.columns)]], lines)
    if not len(frame):
        raise TraceFormatError(f"{file}: a header and no rows")
    return frame.reset_index(drop=True), lines


def _drop_blank(frame: pd.DataFrame, lines: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    blank = _blank_rows(frame)
    return (frame[~blank], lines[~blank]) if blank.any() else (frame, lines)


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
    import pandas as pd
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
    _refuse_one_object(data, bad.source)
    records, lines = [], []
    for line, text in enumerate(data.splitlines(), start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except UnicodeDecodeError as err:
            bad.reject(line, f"not UTF-8 text ({err.reason})")
            continue
        except json.JSONDecodeError as err:
            bad.reject(line, f"not JSON ({err})")
            continue
        if not isinstance(record, dict):
            bad.reject(line, f"expected a JSON object, got {type(record).__name__}")
            continue
        records.append(record)
        lines.append(line)
    return records, np.asarray(lines, dtype=np.int64)


def _refuse_one_object(data: bytes, source: str) -> None:
    """A file holding one JSON object (pretty-printed, or wrapping the requests in a key) is not
    JSON Lines: say so rather than report its lines as broken records."""
    if data.lstrip()[:1] != b"{":
        return
    try:
        whole = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return  # several objects (JSON Lines proper), or broken ones: reported line by line
    lists = [key for key, value in whole.items() if isinstance(value, list) and value and isinstance(value[0], dict)]
    if len(data.strip().splitlines()) > 1 or lists:
        inside = f" (its {lists[0]!r} holds a list of objects: give that list as the file)" if lists else ""
        raise TraceFormatError(
            f"{source}: the file is one JSON object{inside}; expected a JSON array of request objects "
            "or JSON Lines (one object per line)"
        )


def read_json_list(file: Path, data: bytes, bad: BadRows) -> tuple[list[dict], np.ndarray]:
    """The objects of a top-level JSON array, each with the line where it starts.

    Decoded element by element (json's raw_decode), so a bad element is named by its line.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise TraceFormatError(f"{file}, line {line}: not UTF-8 text ({err.reason})") from None
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
            comma = position
            position = _WHITESPACE.match(text, position + 1).end()
            if text[position : position + 1] == "]":
                line += text.count("\n", counted_to, comma)
                raise TraceFormatError(f"{file}, line {line}: a comma after the last element (JSON allows none)")
        elif text[position : position + 1] != "]":
            line += text.count("\n", counted_to, position)
            raise TraceFormatError(f"{file}, line {line}: expected ',' or ']' after an element")
    if text[position + 1 :].strip():
        raise TraceFormatError(f"{file}: text after the closing ']'")
    if not records and not bad.num_skipped:
        raise TraceFormatError(f"{file}: an empty JSON array")
    return records, np.asarray(lines, dtype=np.int64)
