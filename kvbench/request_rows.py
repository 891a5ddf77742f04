"""Finished requests' rows: the requests table, streamed to disk in request-id order, and the summary's columns.

The table is sorted by request id, but requests finish in another order. With a sink (the run's
requests table) each finished row waits only until every request with a smaller id has finished,
then goes on in chunks of `REQUEST_CHUNK_ROWS` (Parquet row groups): under FCFS, requests finish
roughly in arrival order, so the rows waiting are about the requests running, not the run's.
The summary's percentiles and means need every request, so the few numbers they read (prompt and
output lengths, n, beam width, TTFT, TPOT, latency, normalized latency) are kept in typed arrays,
44 bytes a request (44 MB for a million), in the table's order, so they sum exactly as the whole
table did. Without a sink every row is kept, and `table()` gives the whole table.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd  # imported where a table is built: a simulator run's start-up has no pandas

REQUEST_COLUMNS = (
    "request_id", "arrival_time_s", "first_token_time_s", "finish_time_s", "num_prompt_tokens", "num_output_tokens",
    "n", "beam_width", "num_generated_tokens", "num_preemptions", "prefix_hit_tokens",
    "ttft_s", "latency_s", "tpot_s", "normalized_latency_s",
)
# What summary.json and the vLLM-format result read from the requests table, with the typecode
# each is kept in (token counts fit 32 bits, sample counts 16); the summary sees them as int64 / float64.
SUMMARY_COLUMNS = {
    "num_prompt_tokens": "i", "num_output_tokens": "i", "n": "h", "beam_width": "h",
    "ttft_s": "d", "latency_s": "d", "tpot_s": "d", "normalized_latency_s": "d",
}
_SUMMARY_POSITIONS = [(REQUEST_COLUMNS.index(name), name) for name in SUMMARY_COLUMNS]
REQUEST_CHUNK_ROWS = 16_384  # rows per chunk handed to the sink (a row group); does not change the table


class RequestRows:
    def __init__(self, sink: Callable[[pd.DataFrame], None] | None = None, request_ids: np.ndarray | None = None):
        """`sink` receives the table chunk by chunk, in id order; it needs `request_ids`, the ids of
        every request that will finish."""
        if sink is not None and request_ids is None:
            raise ValueError("streaming the requests table needs the ids of the requests that will finish")
        self._sink = sink
        self._ids_in_order = np.sort(request_ids) if sink is not None else None
        self._num_handed_on = 0  # rows already in chunks (positions in _ids_in_order)
        self._waiting: dict[int, tuple[tuple, dict]] = {}  # finished, behind a smaller id that has not
        self._rows: list[tuple] = []  # without a sink: every row; with one: the next chunk's
        self._extras: list[dict] = []  # engine-specific columns, one dict per row
        self._summary = {name: array(typecode) for name, typecode in SUMMARY_COLUMNS.items()}

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
            self._append(*ready)
        if len(self._rows) >= REQUEST_CHUNK_ROWS:
            self.flush()

    def _append(self, row: tuple, extra: dict) -> None:
        self._rows.append(row)
        self._extras.append(extra)
        for position, name in _SUMMARY_POSITIONS:
            self._summary[name].append(row[position])

    def flush(self) -> None:
        """Hand the rows ready so far to the sink (at the end of a run: all of them)."""
        if self._sink is None or not self._rows:
            return
        chunk = self._frame(self._rows, self._extras)
        self._num_handed_on += len(self._rows)
        self._rows, self._extras = [], []
        self._sink(chunk)

    def table(self) -> pd.DataFrame:
        """Every row, sorted by request id (without a sink)."""
        if self._sink is not None:
            raise RuntimeError("the requests went to the run's requests table, chunk by chunk")
        return self._frame(self._rows, self._extras).sort_values("request_id", ignore_index=True)

    def empty_table(self) -> pd.DataFrame:
        return self._frame([], [])

    def summary_table(self) -> pd.DataFrame:
        """The columns the summary reads, in the table's order: the whole table without a sink."""
        if self._sink is None:
            return self.table()
        if self._waiting or self._rows:
            raise RuntimeError(f"{len(self._waiting) + len(self._rows)} finished requests were not written")
        import pandas as pd
        return pd.DataFrame({
            name: np.asarray(values, dtype=np.float64 if typecode == "d" else np.int64)
            for (name, values), typecode in zip(self._summary.items(), SUMMARY_COLUMNS.values())
        })

    @staticmethod
    def _frame(rows: list[tuple], extras: list[dict]) -> pd.DataFrame:
        import pandas as pd
        frame = pd.DataFrame.from_records(rows, columns=REQUEST_COLUMNS)
        if any(extras):
            frame = pd.concat([frame, pd.DataFrame.from_records(extras)], axis=1)
        return frame
