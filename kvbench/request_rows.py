"""Finished requests' rows: the requests table, streamed to disk in request-id order.

The table is sorted by request id, but requests finish in another order. With a sink (the run's
requests table) each finished row waits only until every request with a smaller id has finished,
then goes on in chunks of `REQUEST_CHUNK_ROWS` (Parquet row groups) of typed columns: under FCFS,
requests finish roughly in arrival order, so the rows waiting are about the requests running, not
the run's. Nothing else is kept: the summary reads the table back from disk, a column at a time
(kvbench.results.TableColumns). Without a sink every row is kept, and `table()` gives the whole table.
"""

from __future__ import annotations

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
_DTYPES = tuple(np.float64 if name.endswith("_s") else np.int64 for name in REQUEST_COLUMNS)
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
        self._rows: list[tuple] = []  # without a sink: every row; with one: the next chunk's
        self._extras: list[dict] = []  # engine-specific columns, one dict per row

    def add(self, row: tuple, extra: dict) -> None:
        """A finished request's row (REQUEST_COLUMNS) and its engine-specific columns."""
        if self._sink is None:
            self._rows.append(row)
            self._extras.append(extra)
            return
        self._waiting[row[0]] = (row, extra)
        ids, waiting = self._ids_in_order, self._waiting
        while self._num_handed_on + len(self._rows) < len(ids):
            ready = waiting.pop(int(ids[self._num_handed_on + len(self._rows)]), None)
            if ready is None:
                break
            self._rows.append(ready[0])
            self._extras.append(ready[1])
        if len(self._rows) >= REQUEST_CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        """Hand the rows ready so far to the sink (at the end of a run: all of them)."""
        if self._sink is None or not self._rows:
            return
        chunk = self.columns(self._rows, self._extras)
        self._num_handed_on += len(self._rows)
        self._rows, self._extras = [], []
        self._sink(chunk)

    def check_all_written(self) -> None:
        """Refuse a table that lacks a request that was expected to finish (a row still waiting)."""
        if self._waiting or self._rows:
            raise RuntimeError(f"{len(self._waiting) + len(self._rows)} finished requests were not written")

    def table(self) -> pd.DataFrame:
        """Every row, sorted by request id (without a sink)."""
        import pandas as pd
        if self._sink is not None:
            raise RuntimeError("the requests went to the run's requests table, chunk by chunk")
        return pd.DataFrame(self.columns(self._rows, self._extras)).sort_values("request_id", ignore_index=True)

    @staticmethod
    def empty_columns() -> dict:
        return RequestRows.columns([], [])

    @staticmethod
    def columns(rows: list[tuple], extras: list[dict]) -> dict:
        """Rows (REQUEST_COLUMNS) as typed columns (int64, float64 for times), then the engine's
        columns as lists (None where a row lacks one)."""
        values = zip(*rows) if rows else ((),) * len(REQUEST_COLUMNS)
        columns = {name: np.array(column, dtype=dtype) for name, dtype, column in zip(REQUEST_COLUMNS, _DTYPES, values)}
        for name in dict.fromkeys(key for extra in extras for key in extra):
            columns[name] = [extra.get(name) for extra in extras]
        return columns


def _sorted(request_ids: np.ndarray) -> np.ndarray:
    """The ids in increasing order: the array itself when it is (a trace numbered in arrival order), not a copy."""
    return request_ids if np.all(request_ids[1:] > request_ids[:-1]) else np.sort(request_ids)
