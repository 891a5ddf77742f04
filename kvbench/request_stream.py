"""The requests of a run as a lazy, deterministic stream: columns in arrival order, a `Request` built on demand.

A `Request` with its token segments costs about a kilobyte of Python objects; a million of them,
built up front, were most of a million-request run's memory. The stream keeps what the replay
controls decided (which table rows, in arrival order, their arrival times and ids) as numpy
columns, tens of bytes a request, and builds `stream[i]` from the workload's `RequestTable` when
someone asks for it: the scheduler, when the request reaches the head of its waiting queue
(kvbench/waiting_queue.py). Building is a pure function of the columns, so the same seed gives
the same requests, however many times and in whatever order they are built.

A generated workload's stream (`kvbench/workloads/generated_stream.py`, a subclass) holds not even
the columns: it makes them a chunk of rows at a time, so the scheduler asks the stream, not an
array, when requests arrive (`num_arrived`, `arrival_time_s`).

It is a `collections.abc.Sequence`: `len`, indexing and iteration work as on the list of requests
it replaces (iteration builds each request as it goes, so a loop over it holds one at a time).
It lives beside `Request` because the scheduler takes it without importing the workloads.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING

import numpy as np

from kvbench.request import Request
from kvbench.tokens import TokenSequence

if TYPE_CHECKING:
    from kvbench.workloads.request_table import RequestTable

# Requests whose column values are converted to Python numbers at once. Reading a numpy array one
# scalar at a time costs more than the rest of building a request, and the scheduler reads the
# stream in order; a chunk of a thousand holds a few dozen kilobytes.
_CHUNK_SIZE = 1024


@dataclass(eq=False, repr=False)
class RequestStream(Sequence):
    table: RequestTable
    rows: np.ndarray  # the table row of each request, in arrival order
    arrival_times_s: np.ndarray  # float64, non-decreasing
    request_ids: np.ndarray  # int64, unique
    n: int = 1  # every request's parallel samples...
    beam_width: int = 1  # ...and beam width (the workload's settings)
    # The chunk last read: from stream position `_chunk_start` on, each request's `Request` arguments.
    _chunk_start: int = field(default=0, init=False)
    _chunk: list[tuple] = field(default_factory=list, init=False)

    def __repr__(self) -> str:
        return f"RequestStream({len(self)} requests)"

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int | slice) -> Request | list[Request]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        position = index - self._chunk_start
        if not 0 <= position < len(self._chunk):
            position = self._read_chunk(index)
        return Request(*self._chunk[position])

    def _read_chunk(self, index: int) -> int:
        """Make the chunk holding stream position `index` the current one; `index`'s place in it."""
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"request {index} of a stream of {len(self)}")
        start = index - index % _CHUNK_SIZE
        rows, request_ids, arrival_times_s, num_output_tokens, session_ids, turns = self._columns(
            start, min(start + _CHUNK_SIZE, len(self)))

        table = self.table

        def column(values: np.ndarray | None) -> list | repeat:
            return repeat(None) if values is None else values.astype(np.int64, copy=False).tolist()

        def sequences(make: Callable[[int], TokenSequence] | None) -> list | repeat:
            """The rows' token sequences (a `MadeWhenRead` column makes them at once)."""
            if make is None:
                return repeat(None)
            many = getattr(make, "many", None)
            return many(rows) if many is not None else list(map(make, rows.tolist()))

        self._chunk = list(zip(
            request_ids.tolist(), arrival_times_s.tolist(), sequences(table.prompt), column(num_output_tokens),
            repeat(self.n), repeat(self.beam_width), column(session_ids), column(turns), sequences(table.output),
        ))
        self._chunk_start = start
        return index - start

    def _columns(self, start: int, end: int) -> tuple[np.ndarray, ...]:
        """Stream positions [start, end): table rows, request ids, arrival times, output lengths, session
        ids and turns (None when the table has none)."""
        rows = self.rows[start:end]
        table = self.table
        return (
            rows, self.request_ids[start:end], self.arrival_times_s[start:end], table.num_output_tokens[rows],
            None if table.session_ids is None else table.session_ids[rows],
            None if table.turns is None else table.turns[rows],
        )

    def arrival_time_s(self, index: int) -> float:
        """When the request at stream position `index` arrives."""
        return float(self.arrival_times_s[index])

    def num_arrived(self, now_s: float, start: int) -> int:
        """Stream positions up to which every request has arrived by `now_s` (>= start: positions
        before it have arrived already). Arrival times never decrease."""
        return bisect_right(self.arrival_times_s, now_s, lo=start)

    @property
    def num_seqs(self) -> int:
        """Sequences each request runs at once after its prefill (the same for all)."""
        return max(self.n, self.beam_width)
