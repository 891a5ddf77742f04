"""The replay controls every workload has, applied to its candidate requests (a `RequestTable`).

With `workload.arrival=trace` (the file's timestamps, made relative to the first):
  1. the time window [start_s, start_s + duration_s) of the trace;
  2. the first `num_requests` in arrival order (all of them when fewer), or that many drawn at
     random with the seed (`workload.sample=true`), kept in arrival order.
With a generated process (poisson, gamma, offline), the requests are picked first, so that the
process sets the rate of exactly the requests that run:
  1. the first `num_requests` rows in the table's order, or a seeded random sample of them;
  2. arrival times drawn for them: one per request, or one per session when the workload has
     sessions (their later turns keep their delays after the first);
  3. the time window, on those times.
Then, in both cases:
  4. times shifted so the window starts at 0, then multiplied by `time_scale`, or rescaled so that
     the mean rate from the first to the last arrival is `target_rate`;
  5. the max_model_len filter: a request whose prompt + output is longer is dropped and counted.
The result is a `RequestStream`: these decisions as columns, each `Request` built when it is needed.
With a generated process, one gap per request (no sessions) and no sample, every step works on each
row alone, and the stream makes its columns a chunk of rows at a time (workloads/generated_stream.py):
what a run holds does not grow with the number of requests.

Request ids are the table's own (a trace's row positions, a user's ids) or, for generated workloads,
positions in arrival order: in both cases fixed before the length filter, so runs with different
models name the same request alike.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from kvbench.workloads.arrivals import Arrival, arrival_times_s, scale_factor
from kvbench.request_stream import RequestStream
from kvbench.workloads.generated_stream import stream_generated
from kvbench.workloads.request_table import RequestTable

if TYPE_CHECKING:
    from kvbench.workloads.base import WorkloadConfig


class UnsortedTraceWarning(UserWarning):
    """A trace's timestamps were out of order; it is replayed sorted."""


def replay(
    table: RequestTable, c: WorkloadConfig, rng: np.random.Generator, max_model_len: int
) -> tuple[RequestStream, int]:
    """The requests a run replays, in arrival order (each built on demand: kvbench/request_stream.py),
    and how many were too long for max_model_len."""
    if not len(table):
        raise ValueError(f"{table.source}: no requests")
    if Arrival(c.arrival) is not Arrival.trace and table.session_offsets_s is None and not c.sample:
        return stream_generated(table, c, rng, max_model_len)  # every control row by row: made in chunks
    return whole_stream(table.whole(), c, rng, max_model_len)


def whole_stream(
    table: RequestTable, c: WorkloadConfig, rng: np.random.Generator, max_model_len: int
) -> tuple[RequestStream, int]:
    """`replay` on whole columns: for a trace's timestamps, sessions and a seeded sample, which need
    every row at once (and, in tests, the reference a generated stream is compared with)."""
    if Arrival(c.arrival) is Arrival.trace:
        times_s = trace_times(table, c)
        rows = in_window(times_s, np.argsort(times_s, kind="stable"), c, table.source)
        rows = select(rows, c, rng, table.source)
    else:
        rows = select(np.arange(len(table)), c, rng, table.source)
        times_s = np.empty(len(table))
        times_s[rows] = generated_times(table, rows, c, rng)
        rows = in_window(times_s, rows[np.argsort(times_s[rows], kind="stable")], c, table.source)
    times_s = scale(times_s[rows] - c.start_s, c)
    if len(times_s) and not np.isfinite(times_s[-1]):
        raise ValueError(f"{table.source}: workload.time_scale={c.time_scale} stretches arrival times past what a float holds")
    fits = table.num_prompt_tokens[rows] + table.num_output_tokens[rows] <= max_model_len
    ids = table.request_ids[rows] if table.request_ids is not None else np.arange(len(rows))
    stream = RequestStream(table, rows[fits], times_s[fits], ids[fits].astype(np.int64), c.n, c.beam_width)
    return stream, int(len(rows) - fits.sum())


def trace_times(table: RequestTable, c: WorkloadConfig) -> np.ndarray:
    """Every row's timestamp (s) relative to the first; warns when the file was not in order."""
    if table.timestamps_s is None:
        raise ValueError(
            f"workload={c.name}: {table.source} has no timestamps for workload.arrival=trace; set "
            "workload.arrival=poisson (with workload.rate=), gamma or offline"
        )
    timestamps_s = table.timestamps_s
    first_s, last_s = float(timestamps_s.min()), float(timestamps_s.max())
    if not np.isfinite(last_s - first_s):  # each is finite; their difference may not be
        raise ValueError(
            f"{table.source}: arrival times span more than a float holds (from {first_s:g} to {last_s:g} s)"
        )
    if len(timestamps_s) > 1 and np.any(np.diff(timestamps_s) < 0):
        warnings.warn(f"{table.source}: timestamps are not in order; replaying them sorted", UnsortedTraceWarning,
                      stacklevel=3)
    return timestamps_s - first_s


def generated_times(table: RequestTable, rows: np.ndarray, c: WorkloadConfig, rng: np.random.Generator) -> np.ndarray:
    """Arrival times (s) of `rows` by the configured process, per request or per session."""
    arrival = Arrival(c.arrival)
    if table.session_offsets_s is None:
        return arrival_times_s(arrival, len(rows), c.rate, c.burstiness, rng)
    # Sessions arrive by the process in the order they first appear; later turns keep their delays.
    _, first_rows, session_of_row = np.unique(table.session_ids[rows], return_index=True, return_inverse=True)
    starts_s = np.empty(len(first_rows))
    starts_s[np.argsort(first_rows, kind="stable")] = arrival_times_s(
        arrival, len(first_rows), c.rate, c.burstiness, rng
    )
    return starts_s[session_of_row] + table.session_offsets_s[rows]


def in_window(times_s: np.ndarray, ordered_rows: np.ndarray, c: WorkloadConfig, source: str) -> np.ndarray:
    """The rows of `ordered_rows` (in arrival order) arriving in [start_s, start_s + duration_s)."""
    end_s = np.inf if c.duration_s is None else c.start_s + c.duration_s
    sorted_s = times_s[ordered_rows]
    rows = ordered_rows[(sorted_s >= c.start_s) & (sorted_s < end_s)]
    if not len(rows):
        raise ValueError(
            f"{source}: no request arrives in the window workload.start_s={c.start_s}, "
            f"workload.duration_s={c.duration_s} (arrivals span {sorted_s[0]:.1f} to {sorted_s[-1]:.1f} s)"
        )
    return rows


def select(rows: np.ndarray, c: WorkloadConfig, rng: np.random.Generator, source: str) -> np.ndarray:
    """The first num_requests of `rows`, or num_requests of them at random (kept in their order)."""
    if c.num_requests is None:
        return rows
    if not c.sample:
        return rows[: c.num_requests]
    if c.num_requests > len(rows):
        raise ValueError(
            f"workload.sample=true draws workload.num_requests={c.num_requests} requests, but {source} has "
            f"only {len(rows)} to draw from"
        )
    return rows[np.sort(rng.choice(len(rows), c.num_requests, replace=False))]


def scale(times_s: np.ndarray, c: WorkloadConfig) -> np.ndarray:
    """Stretch or compress arrival times by time_scale, or to the mean rate target_rate."""
    first_s, last_s = (times_s[0], times_s[-1]) if len(times_s) else (0.0, 0.0)
    return times_s * scale_factor(first_s, last_s, len(times_s), c)
