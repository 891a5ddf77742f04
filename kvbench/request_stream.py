"""The requests of a run as a lazy, deterministic stream: columns in arrival order, a `Request` built on demand.

A `Request` with its token segments costs about a kilobyte of Python objects; a million of them,
built up front, were most of a million-request run's memory. The stream keeps what the replay
controls decided (which table rows, in arrival order, their arrival times and ids) as numpy
columns, tens of bytes a request, and builds `stream[i]` from the workload's `RequestTable` when
someone asks for it: the scheduler, when the request reaches the head of its waiting queue
(kvbench/waiting_queue.py). Building is a pure function of the columns, so the same seed gives
the same requests, however many times and in whatever order they are built.

It is a `collections.abc.Sequence`: `len`, indexing and iteration work as on the list of requests
it replaces (iteration builds each request as it goes, so a loop over it holds one at a time).
It lives beside `Request` because the scheduler takes it without importing the workloads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kvbench.request import Request

if TYPE_CHECKING:
    from kvbench.workloads.request_table import RequestTable


@dataclass(eq=False, repr=False)
class RequestStream(Sequence):
    table: RequestTable
    rows: np.ndarray  # the table row of each request, in arrival order
    arrival_times_s: np.ndarray  # float64, non-decreasing
    request_ids: np.ndarray  # int64, unique
    n: int = 1  # every request's parallel samples...
    beam_width: int = 1  # ...and beam width (the workload's settings)

    def __repr__(self) -> str:
        return f"RequestStream({len(self)} requests)"

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int | slice) -> Request | list[Request]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        row = int(self.rows[index])
        table = self.table
        return Request(
            request_id=int(self.request_ids[index]),
            arrival_time_s=float(self.arrival_times_s[index]),
            prompt=table.prompt(row),
            num_output_tokens=int(table.num_output_tokens[row]),
            n=self.n,
            beam_width=self.beam_width,
            session_id=None if table.session_ids is None else int(table.session_ids[row]),
            turn=None if table.turns is None else int(table.turns[row]),
            output=None if table.output is None else table.output(row),
        )

    @property
    def num_seqs(self) -> int:
        """Sequences each request runs at once after its prefill (the same for all)."""
        return max(self.n, self.beam_width)
