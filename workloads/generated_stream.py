"""The requests of a generated arrival process, made a chunk of rows at a time.

With `workload.arrival` poisson, gamma or offline, one gap drawn per request (no sessions) and the
first `num_requests` rows taken (no seeded sample), every replay control (workloads/replay.py)
works on each row by itself, in the table's order:
- arrival times are the running sum of the gaps, so they never decrease: arrival order is row
  order, and the time window [start_s, start_s + duration_s) is one range of rows;
- the shift to the window's start and the time scale apply to each time alone (target_rate needs
  only the window's first and last time);
- the max_model_len filter and the request ids (positions in the window) need only the row.

`stream_generated` therefore goes over the rows once at build time, chunk by chunk
(ROWS_PER_CHUNK, workloads/chunked_column.py), and keeps per chunk what it takes to make it again:
the running sum before it, how many requests it keeps and its last arrival time. A
`GeneratedStream` makes a chunk's columns when the scheduler reads into it. The gaps are one draw
kept as generator states, and the running sum is carried across chunks by adding it to a chunk's
first gap before `np.cumsum`: numpy accumulates in order, so each time is the same sum, bit for
bit, as the whole column's cumsum (tests/workloads/test_chunked_column.py).

What a run holds is then a few chunks, whatever the number of requests: a million requests at
t = 0 cost no more memory before the first step than ten thousand.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from kvbench.request_stream import RequestStream
from kvbench.workloads.arrivals import gap_draw, scale_factor
from kvbench.workloads.chunked_column import ROWS_PER_CHUNK, ChunkedColumn, column_values, drawn_column
from kvbench.workloads.request_table import RequestTable

if TYPE_CHECKING:
    from kvbench.workloads.base import WorkloadConfig


class GeneratedStream(RequestStream):
    """A `RequestStream` whose columns are made a chunk at a time (built by `stream_generated`)."""

    def __init__(
        self, table: RequestTable, times: RunningTimes, window: tuple[int, int], start_s: float, factor: float,
        max_model_len: int, n: int, beam_width: int,
    ):
        # Not the whole-column dataclass fields: `rows`, `arrival_times_s` are made per chunk here.
        self.table, self.n, self.beam_width = table, n, beam_width
        self._chunk_start, self._chunk = 0, []
        self._times = times
        self._window = window  # rows [first, end) arrive in the time window
        self._start_s, self._factor = start_s, factor  # time -> (time - start_s) * factor
        self._max_model_len = max_model_len
        self._num_kept_before = [0]  # per chunk, stream positions before it (and after the last)
        self._last_times_s: list[float] = []  # per chunk, its last kept request's arrival time
        self._made: dict[int, tuple] = {}  # the chunks made last (the scheduler reads two places)
        for index in range(times.num_chunks):
            columns = self._make(index)
            self._num_kept_before.append(self._num_kept_before[-1] + len(columns[0]))
            self._last_times_s.append(float(columns[2][-1]) if len(columns[0]) else -np.inf)
        self._made.clear()
        # Positions in the window increase with the stream; a table's own ids need not, and come whole
        # (the requests table sorts them), as the table holding them is whole.
        self.request_ids: Sequence[int] = GeneratedIds(self) if table.request_ids is None else np.concatenate(
            [self._make(index)[1] for index in range(times.num_chunks)])

    def __repr__(self) -> str:
        return f"GeneratedStream({len(self)} requests)"

    def __len__(self) -> int:
        return self._num_kept_before[-1]

    @property
    def num_dropped_too_long(self) -> int:
        first, end = self._window
        return end - first - len(self)

    def _make(self, index: int) -> tuple:
        """Chunk `index`'s kept requests: (rows, request ids, arrival times, output lengths, session ids, turns)."""
        made = self._made.get(index)
        if made is not None:
            return made
        table = self.table
        first, end = self._window
        chunk_start = index * ROWS_PER_CHUNK
        start, stop = max(chunk_start, first), max(min(chunk_start + ROWS_PER_CHUNK, end), first)
        rows = np.arange(start, stop)
        times_s = (self._times.chunk(index)[start - chunk_start:stop - chunk_start] - self._start_s) * self._factor
        num_output_tokens = column_values(table.num_output_tokens, start, stop)
        fits = column_values(table.num_prompt_tokens, start, stop) + num_output_tokens <= self._max_model_len
        ids = rows - first if table.request_ids is None else column_values(table.request_ids, start, stop)
        made = (
            rows[fits], ids[fits].astype(np.int64), times_s[fits], num_output_tokens[fits],
            *(None if column is None else column_values(column, start, stop)[fits]
              for column in (table.session_ids, table.turns)),
        )
        if len(self._made) >= 2:
            del self._made[next(iter(self._made))]
        self._made[index] = made
        return made

    def _chunk_of(self, position: int) -> int:
        """The chunk holding stream position `position` (0 <= position < len)."""
        return bisect_right(self._num_kept_before, position) - 1

    def _column_item(self, column: int, index: int) -> int | float:
        """Column `column` of `_make`'s chunks at stream position `index` (negative: from the end)."""
        position = index + len(self) if index < 0 else index
        if not 0 <= position < len(self):
            raise IndexError(f"request {index} of a stream of {len(self)}")
        chunk = self._chunk_of(position)
        return self._make(chunk)[column].item(position - self._num_kept_before[chunk])

    def _columns(self, start: int, end: int) -> tuple[np.ndarray | None, ...]:
        parts = []
        while start < end:
            index = self._chunk_of(start)
            offset = self._num_kept_before[index]
            stop = min(end, self._num_kept_before[index + 1])
            parts.append([None if column is None else column[start - offset:stop - offset]
                          for column in self._make(index)])
            start = stop
        if len(parts) == 1:
            return tuple(parts[0])
        return tuple(None if column[0] is None else np.concatenate(column) for column in zip(*parts))

    def arrival_time_s(self, index: int) -> float:
        return self._column_item(2, index)

    def num_arrived(self, now_s: float, start: int) -> int:
        if start >= len(self):
            return start
        chunk = self._chunk_of(start)
        last_times_s = self._last_times_s
        while chunk < len(last_times_s) and last_times_s[chunk] <= now_s:  # whole chunks arrived (or empty)
            chunk += 1
        if chunk == len(last_times_s):
            return len(self)
        return max(start, self._num_kept_before[chunk] + int(np.searchsorted(self._make(chunk)[2], now_s, side="right")))


class GeneratedIds(Sequence):
    """A generated stream's request ids, in stream order, made with its chunks (for the requests table)."""

    increasing = True  # for the requests table (kvbench/request_rows.py), which needs them in order

    def __init__(self, stream: GeneratedStream):
        self._stream = stream

    def __len__(self) -> int:
        return len(self._stream)

    def __getitem__(self, index: int | slice) -> int | list[int]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self._stream._column_item(1, index)


class RunningTimes:
    """Arrival times as the running sum of drawn gaps (or all 0: offline), made a chunk at a time."""

    def __init__(self, gaps: ChunkedColumn | None, num_rows: int):
        self.num_rows = num_rows
        self.num_chunks = -(-num_rows // ROWS_PER_CHUNK)
        self._gaps = gaps
        self._carries_s = [0.0]  # per chunk, the sum of the gaps before it
        for index in range(self.num_chunks - 1):
            self._carries_s.append(self.chunk(index)[-1])

    def chunk(self, index: int) -> np.ndarray:
        """Chunk `index`'s times (s), rows from index * ROWS_PER_CHUNK."""
        if self._gaps is None:
            return np.zeros(min(ROWS_PER_CHUNK, self.num_rows - index * ROWS_PER_CHUNK))
        gaps = self._gaps.chunk(index)
        if index:
            gaps = gaps.copy()
            gaps[0] += self._carries_s[index]
        return np.cumsum(gaps)

    def at(self, row: int) -> np.float64:
        index, offset = divmod(row, ROWS_PER_CHUNK)
        return self.chunk(index)[offset]

    def first_row_at_or_after(self, time_s: float) -> int:
        """The first row arriving at `time_s` or later (num_rows: none)."""
        for index in range(self.num_chunks):
            times_s = self.chunk(index)
            if times_s[-1] >= time_s:
                return index * ROWS_PER_CHUNK + int(np.searchsorted(times_s, time_s, side="left"))
        return self.num_rows


def stream_generated(
    table: RequestTable, c: WorkloadConfig, rng: np.random.Generator, max_model_len: int
) -> tuple[RequestStream, int]:
    """The replay controls for a generated arrival process with one gap per request and the first
    `num_requests` rows (see the module's docstring): the stream and how many requests were too long."""
    num_rows = len(table) if c.num_requests is None else min(c.num_requests, len(table))
    draw = gap_draw(c.arrival, c.rate, c.burstiness)
    times = RunningTimes(None if draw is None else drawn_column(rng, num_rows, draw), num_rows)
    first = times.first_row_at_or_after(c.start_s)
    end = num_rows if c.duration_s is None else times.first_row_at_or_after(c.start_s + c.duration_s)
    if first >= end:
        raise ValueError(
            f"{table.source}: no request arrives in the window workload.start_s={c.start_s}, "
            f"workload.duration_s={c.duration_s} (arrivals span {times.at(0):.1f} to {times.at(num_rows - 1):.1f} s)"
        )
    window_first_s, window_last_s = times.at(first) - c.start_s, times.at(end - 1) - c.start_s
    factor = scale_factor(window_first_s, window_last_s, end - first, c)
    if not np.isfinite(window_last_s * factor):
        raise ValueError(f"{table.source}: workload.time_scale={c.time_scale} stretches arrival times past what a float holds")
    stream = GeneratedStream(table, times, (first, end), c.start_s, factor, max_model_len, c.n, c.beam_width)
    return stream, stream.num_dropped_too_long
