"""Finished requests' rows: the requests table, streamed to disk in request-id order.

The table is sorted by request id, but requests finish in another order. With a sink (the run's
requests table) each finished row waits only until every request with a smaller id has finished,
then goes on in chunks of `REQUEST_CHUNK_ROWS` (Parquet row groups) of typed columns: under FCFS,
requests finish roughly in arrival order, so the rows waiting are about the requests running, not
the run's. Nothing else is kept: the summary reads the table back from disk, a column at a time
(kvbench.results.TableColumns). Without a sink every row is kept, and `table()` gives the whole table.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd  # imported where a table is built: a simulator run needs no pandas

REQUEST_COLUMNS = (
    "request_id", "arrival_time_s", "first_token_time_s", "finish_time_s", "num_prompt_tokens", "num_output_tokens",
    "n", "beam_width", "num_generated_tokens", "num_preemptions", "prefix_hit_tokens",
    "ttft_s", "latency_s", "tpot_s", "normalized_latency_s",
)
# A row is packed into bytes as it becomes ready (8 bytes a column: no Python objects per row), and
# a chunk is read back as typed columns: int64, float64 for times.
_ROW_DTYPE = np.dtype([(name, "<f8" if name.endswith("_s") else "<i8") for name in REQUEST_COLUMNS])
_pack_row = struct.Struct("<" + "".join("d" if name.endswith("_s") else "q" for name in REQUEST_COLUMNS)).pack
REQUEST_CHUNK_ROWS = 16_384  # rows per chunk handed to the sink (a row group); does not change the table


class RequestRows:
    def __init__(self, sink: Callable[[dict], None] | None = None, request_ids: np.ndarray | None = None):
        """`sink` receives the table chunk by chunk (column name -> values), in id order; it needs
        `request_ids`, the ids of every request that will finish."""
        if sink is not None and request_ids is None:
            raise ValueError("streaming the requests table needs the ids of the requests that will finish")
        self._sink = sink
        self._ids_in_order = _sorted(request_ids) if sink is not None else None
        self._num_handed_on = 0  # rows already in chunks (positions in _ids_in_order)
        self._waiting: dict[int, tuple[tuple, dict]] = {}  # finished, behind a smaller id that has not
        self._packed = bytearray()  # without a sink: every row; with one: the next chunk's
        self._extras: list[dict] = []  # engine-specific columns, one dict per row

    def add(self, row: tuple, extra: dict) -> None:
        """A finished request's row (REQUEST_COLUMNS) and its engine-specific columns."""
        if self._sink is None:  # `_append`, written out: once per request
            self._packed += _pack_row(*row)
            self._extras.append(extra)
            return
        self._waiting[row[0]] = (row, extra)
        ids, waiting = self._ids_in_order, self._waiting
        while self._num_handed_on + len(self._extras) < len(ids):
            ready = waiting.pop(int(ids[self._num_handed_on + len(self._extras)]), None)
            if ready is None:
                break
            self._append(*ready)
        if len(self._extras) >= REQUEST_CHUNK_ROWS:
            self.flush()

    def _append(self, row: tuple, extra: dict) -> None:
        self._packed += _pack_row(*row)
        self._extras.append(extra)

    def flush(self) -> None:
        """Hand the rows ready so far to the sink (at the end of a run: all of them)."""
        if self._sink is None or not self._extras:
            return
        chunk = self.columns(self._packed, self._extras)
        self._num_handed_on += len(self._extras)
        self._packed, self._extras = bytearray(), []
        self._sink(chunk)

    def check_all_written(self) -> None:
        """Refuse a table that lacks a request that was expected to finish (a row still waiting)."""
        if self._waiting or self._extras:
            raise RuntimeError(f"{len(self._waiting) + len(self._extras)} finished requests were not written")

    def table(self) -> pd.DataFrame:
        """Every row, sorted by request id (without a sink)."""
        import pandas as pd
        if self._sink is not None:
            raise RuntimeError("the requests went to the run's requests table, chunk by chunk")
        return pd.DataFrame(self.columns(self._packed, self._extras)).sort_values("request_id", ignore_index=True)

    @staticmethod
    def empty_columns() -> dict:
        return RequestRows.columns(b"", [])

    @staticmethod
    def columns(packed: bytes | bytearray, extras: list[dict]) -> dict:
        """Packed rows as typed columns (int64, float64 for times), then the engine's columns as
        lists (None where a row lacks one)."""
        rows = np.frombuffer(packed, dtype=_ROW_DTYPE)
        columns = {name: rows[name].copy() for name in REQUEST_COLUMNS}  # each contiguous, apart from the buffer
        for name in dict.fromkeys(key for extra in extras for key in extra):
            columns[name] = [extra.get(name) for extra in extras]
        return columns


def _sorted(request_ids: np.ndarray) -> np.ndarray:
    """The ids in increasing order: the array itself when it is (a trace numbered in arrival order), not a copy."""
    if getattr(request_ids, "increasing", False):  # a generated stream's ids, made a chunk at a time
        return request_ids
    return request_ids if np.all(request_ids[1:] > request_ids[:-1]) else np.sort(request_ids)
