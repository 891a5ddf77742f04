"""Per-step and per-request records of a run, and the headline figures computed from them.

Strategy events are open: every run has the standard ones (`cow_copies`, `fork_copied_blocks`) in
their usual place, and whatever else its strategy declares in `counted_events` follows as extra
step columns (events per step) and summary fields (the run's total).

Recording packs a step's numbers into a byte buffer (one `struct.pack`, 8 bytes a column: about
180 bytes a step rather than a 22-field tuple's kilobyte of Python objects). Every `STEP_CHUNK_ROWS`
steps the buffer becomes a chunk of typed columns (a numpy view, copied out column by column;
memory turned from token slots into bytes), added into the running `StepTotals` and handed to the
run's sink (the steps table on disk, a Parquet row group), so a long run never holds all its steps
in memory. Finished requests' rows go the same way, in request id order (kvbench/request_rows.py).

A strategy with a block table per layer group (group_tables.py) reports each group's held and
token slots in its usage: they become `kv_group{g}_held_bytes` / `kv_group{g}_token_bytes` step
columns and `kv_group{g}_held_frac` / `_token_frac` / `_max_held_bytes` summary fields; runs of
other strategies and models have none of them.

Sums are independent of threads and launchers: time-weighted sums are `math.fsum` of elementwise
products per chunk, then `math.fsum` of the chunks (a BLAS dot product's result depends on how many
threads split it); counts are Python integers.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from kvbench.percentiles import percentiles
from kvbench.request_rows import RequestRows
from kvbench.scheduler import StepPlan
from kvbench.sequence import RequestState
from kvbench.serving_metrics import output_lengths
from kvbench.strategies.base import STANDARD_EVENTS, PoolUsage

if TYPE_CHECKING:  # pandas (a third of a second) is imported where a DataFrame is asked for, not in a run
    import pandas as pd

    from kvbench.serving_metrics import RequestsTable

STEP_COLUMNS = (
    "step", "time_s", "duration_s", "batch_size", "num_decode_seqs", "num_prefill_seqs", "num_waiting",
    "num_prefill_tokens", "num_decode_tokens",
    "token_bytes", "reserved_bytes", "internal_frag_bytes", "external_frag_bytes", "free_bytes", "cached_bytes",
    "shared_saved_bytes",
    "preemptions", "prefix_hit_tokens", "prefix_query_tokens", "cow_copies", "fork_copied_blocks", "num_finished",
)
MEMORY_COLUMNS = (
    "token_bytes", "reserved_bytes", "internal_frag_bytes", "external_frag_bytes", "free_bytes", "cached_bytes",
)


FLOAT_STEP_COLUMNS = ("time_s", "duration_s")  # every other step column is an int64


STEP_CHUNK_ROWS = 65_536  # steps per chunk; fixed, so the sums (and summaries) do not depend on it
TIME_WEIGHTED_COLUMNS = (*MEMORY_COLUMNS, "shared_saved_bytes")
COUNTED_COLUMNS = ("preemptions", "prefix_hit_tokens", "prefix_query_tokens", "cow_copies", "fork_copied_blocks")
GROUP_COLUMN_PREFIX = "kv_group"


def group_columns(num_groups: int) -> tuple[str, ...]:
    """The step columns of a run with `num_groups` layer groups: held bytes, then token bytes."""
    return (*(f"kv_group{g}_held_bytes" for g in range(num_groups)),
            *(f"kv_group{g}_token_bytes" for g in range(num_groups)))


StepColumns = Mapping[str, np.ndarray]  # a chunk of the steps table: column name -> its values


@dataclass
class StepTotals:
    """What the summary needs from the steps table, added up chunk by chunk."""

    extra_events: tuple[str, ...] = ()  # the strategy's declared events beyond the standard ones
    num_steps: int = 0
    batch_size_sum: int = 0
    max_batch_size: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    group_max_bytes: dict[str, int] = field(default_factory=dict)  # per layer group column: its peak
    _duration_sums: list[float] = field(default_factory=list)  # one per chunk
    _weighted_sums: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in TIME_WEIGHTED_COLUMNS})

    def __post_init__(self) -> None:
        self.counts = dict.fromkeys((*COUNTED_COLUMNS, *self.extra_events), 0)

    @classmethod
    def of(cls, steps: pd.DataFrame, extra_events: tuple[str, ...] = ()) -> StepTotals:
        """The totals of a whole steps table (chunked as the recorder chunks it)."""
        totals = cls(extra_events)
        for start in range(0, len(steps), STEP_CHUNK_ROWS):
            totals.add(steps.iloc[start : start + STEP_CHUNK_ROWS])
        return totals

    @classmethod
    def combined(cls, parts: list[StepTotals]) -> StepTotals:
        """The totals of several steps tables together (a fleet's replicas), in the order given."""
        totals = cls(parts[0].extra_events)
        for part in parts:
            totals.num_steps += part.num_steps
            totals.batch_size_sum += part.batch_size_sum
            totals.max_batch_size = max(totals.max_batch_size, part.max_batch_size)
            for column, count in part.counts.items():
                totals.counts[column] += count
            totals._duration_sums.extend(part._duration_sums)
            for column, sums in part._weighted_sums.items():
                totals._weighted_sums.setdefault(column, []).extend(sums)
            for column, peak in part.group_max_bytes.items():
                totals.group_max_bytes[column] = max(totals.group_max_bytes.get(column, 0), peak)
        return totals

    def add(self, chunk: StepColumns | pd.DataFrame) -> None:
        weights = np.asarray(chunk["duration_s"], dtype=np.float64)
        if not len(weights):
            return
        self.num_steps += len(weights)
        batch = np.asarray(chunk["batch_size"], dtype=np.int64)
        self.batch_size_sum += int(batch.sum())
        self.max_batch_size = max(self.max_batch_size, int(batch.max()))
        for column in self.counts:
            self.counts[column] += int(np.asarray(chunk[column], dtype=np.int64).sum())
        self._duration_sums.append(math.fsum(weights))
        for column in chunk:  # a layer-grouped run's columns: weighted like memory, and their peak
            if column.startswith(GROUP_COLUMN_PREFIX):
                self._weighted_sums.setdefault(column, [])
                peak = int(chunk[column].max())
                self.group_max_bytes[column] = max(self.group_max_bytes.get(column, 0), peak)
        for column, sums in self._weighted_sums.items():
            sums.append(math.fsum(np.asarray(chunk[column], dtype=np.float64) * weights))

    @property
    def total_time_s(self) -> float:
        return math.fsum(self._duration_sums)

    def time_weighted_sum(self, column: str) -> float:
        return math.fsum(self._weighted_sums[column])


class MetricsRecorder:
    def __init__(
        self, kv_bytes_per_token: int, event_names: tuple[str, ...] = STANDARD_EVENTS,
        step_sink: Callable[[StepColumns], None] | None = None,
        request_sink: Callable[[dict], None] | None = None, request_ids: np.ndarray | None = None,
    ):
        """`step_sink` receives the steps table chunk by chunk (column name -> numpy array); without
        one the recorder keeps them (`steps_table()`), for tests and small runs in memory.
        `request_sink` receives the requests table the same way, in request id order
        (kvbench/request_rows.py: it needs `request_ids`, the ids of every request that will finish)."""
        self.kv_bytes_per_token = kv_bytes_per_token
        self.extra_events = tuple(e for e in event_names if e not in STANDARD_EVENTS)
        self._step_sink = step_sink
        self._step_chunks: list[StepColumns] = []
        self.step_totals = StepTotals(self.extra_events)
        self._pending = bytearray()  # the steps not in a chunk yet, packed row after row
        self._pack: Callable[..., bytes] | None = None  # packs one row; set by the first step, which fixes the columns
        self._chunk_bytes = 0
        self.requests = RequestRows(request_sink, request_ids)
        self._last_counts = dict.fromkeys((*STANDARD_EVENTS, *self.extra_events), 0)  # as of the last chunk
        self.group_columns: tuple[str, ...] = ()  # set by the first step of a layer-grouped strategy
        self.end_time_s = 0.0

    def record_step(
        self, step: StepPlan, start_s: float, duration_s: float, usage: PoolUsage,
        counters: dict[str, int], num_finished: int,
    ) -> None:
        """`counters`: the strategy's cumulative event counts (absent standard ones count 0). A row
        keeps them cumulative; its chunk turns them into events per step (one subtraction per
        column rather than per step)."""
        # Once per step: StepPlan.batch_size and PoolUsage.shared_saved_slots (properties) written out.
        num_prefills = len(step.prefills)
        token_slots, reserved_slots = usage.token_slots, usage.reserved_slots
        internal_frag_slots = usage.internal_frag_slots
        row = (
            step.step_index, start_s, duration_s, step.num_decode_requests + num_prefills, step.num_decode_seqs,
            num_prefills, step.num_waiting_requests, step.num_prefill_tokens, step.num_decode_seqs,
            token_slots, reserved_slots, internal_frag_slots, usage.external_frag_slots, usage.free_slots,
            usage.cached_slots, usage.logical_slots - (token_slots + reserved_slots + internal_frag_slots),
            step.num_preemptions, step.num_prefix_hit_tokens, step.num_prefix_query_tokens,
            counters.get("cow_copies", 0), counters.get("fork_copied_blocks", 0), num_finished,
        )
        if self.extra_events:
            row += tuple(map(counters.__getitem__, self.extra_events))
        if usage.group_held_slots:
            if not self.group_columns:
                self.group_columns = group_columns(len(usage.group_held_slots))
            row += usage.group_held_slots + usage.group_token_slots
        if self._pack is None:
            row_format = struct.Struct("<" + "".join("d" if name in FLOAT_STEP_COLUMNS else "q"
                                                     for name in self.step_column_names()))
            self._pack, self._chunk_bytes = row_format.pack, STEP_CHUNK_ROWS * row_format.size
        self._pending += self._pack(*row)
        self.end_time_s = start_s + duration_s
        if len(self._pending) >= self._chunk_bytes:
            self.flush_steps()

    def step_column_names(self) -> tuple[str, ...]:
        return (*STEP_COLUMNS, *self.extra_events, *self.group_columns)

    def flush_steps(self) -> None:
        """Turn the pending steps into a chunk: counted into the totals, then sunk or kept."""
        if not self._pending:
            return
        chunk = self._step_columns(self._pending)
        self._pending = bytearray()
        self.step_totals.add(chunk)
        if self._step_sink is not None:
            self._step_sink(chunk)
        else:
            self._step_chunks.append(chunk)

    def record_finished(self, groups: list[RequestState], extra: Callable[[RequestState], dict] | None = None) -> None:
        """Record finished requests (`extra(g)`: an executor's own fields), then drop their sequences:
        each refers to its request state, so otherwise the pair (and the request's token streams)
        waits as cyclic garbage for the collector, whose young passes walk it again and again. The
        recorder is a finished request's last reader, in a single run and in a fleet alike."""
        add = self.requests.add
        for g in groups:  # once per request: each field read once
            r = g.request
            arrival_time_s, first_token_time_s, finish_time_s = r.arrival_time_s, g.first_token_time_s, g.finish_time_s
            num_output_tokens = r.num_output_tokens
            ttft = first_token_time_s - arrival_time_s
            latency = finish_time_s - arrival_time_s
            tpot = (finish_time_s - first_token_time_s) / (num_output_tokens - 1) if num_output_tokens > 1 else np.nan
            add((
                r.request_id, arrival_time_s, first_token_time_s, finish_time_s, r.num_prompt_tokens,
                num_output_tokens, r.n, r.beam_width, g.num_generated_tokens, g.num_preemptions,
                g.num_prefix_hit_tokens, ttft, latency, tpot, latency / num_output_tokens,
            ), extra(g) if extra else {})
            g.seqs = []

    def _step_columns(self, packed: bytes | bytearray) -> StepColumns:
        """The packed rows as typed columns, memory in bytes and events per step."""
        names = self.step_column_names()
        rows = np.frombuffer(packed, dtype=[(name, "<f8" if name in FLOAT_STEP_COLUMNS else "<i8") for name in names])
        columns = {name: rows[name].copy() for name in names}  # each column contiguous, apart from the buffer
        if not len(rows):
            return columns
        for column in (*TIME_WEIGHTED_COLUMNS, *self.group_columns):
            columns[column] *= self.kv_bytes_per_token
        last = self._last_counts
        for column in last:  # cumulative counts -> events per step
            cumulative = columns[column]
            columns[column] = np.diff(cumulative, prepend=last[column])
            last[column] = int(cumulative[-1])
        return columns

    def empty_step_columns(self) -> StepColumns:
        """The steps table's columns, without rows."""
        return self._step_columns(b"")

    def steps_table(self) -> pd.DataFrame:
        """Every step, when the recorder kept them (no sink)."""
        import pandas as pd
        if self._step_sink is not None:
            raise RuntimeError("the steps went to the run's steps table, chunk by chunk")
        self.flush_steps()
        chunks = self._step_chunks or [self.empty_step_columns()]
        return pd.DataFrame({name: np.concatenate([chunk[name] for chunk in chunks]) for name in chunks[0]})

    def requests_table(self) -> pd.DataFrame:
        """Every finished request, sorted by id, when the recorder kept them (no request sink)."""
        return self.requests.table()


def event_totals(totals: StepTotals) -> dict:
    """summary.json fields for the events a strategy declares beyond the standard ones."""
    return {name: totals.counts[name] for name in totals.extra_events}


# summary.json stores floats at this many significant digits. Summing a float column in another
# order (another BLAS, thread count or CPU) moves the last of the 17 digits a double prints; at 12
# digits such noise is gone, so baselines made on one machine compare exactly with runs on another.
SUMMARY_SIGNIFICANT_DIGITS = 12


def rounded(summary: dict) -> dict:
    """`summary` with every float rounded to SUMMARY_SIGNIFICANT_DIGITS significant digits (NaN, inf kept)."""
    def round_float(value):
        if isinstance(value, float) and math.isfinite(value):
            return float(f"{value:.{SUMMARY_SIGNIFICANT_DIGITS}g}")
        return value

    return {key: round_float(value) for key, value in summary.items()}


def _percentiles(values, qs: tuple[float, ...]) -> list[float]:
    """numpy's linear-interpolation percentiles of a column, NaN (a request without TPOT) left out."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return percentiles(values, qs) if len(values) else [float("nan")] * len(qs)


def summarize(steps: StepTotals | pd.DataFrame, requests: RequestsTable, pool_bytes: int, end_time_s: float) -> dict:
    """Headline figures. Memory fractions are time-weighted shares of the KV pool.

    `requests`: the requests table, a DataFrame or a table on disk read a column at a time
    (kvbench.results.TableColumns); either way its columns go through the same numpy operations,
    so the figures are the same to the bit."""
    totals = steps if isinstance(steps, StepTotals) else StepTotals.of(steps)
    duration_s = end_time_s
    total_time_s = totals.total_time_s

    def time_avg_frac(column: str) -> float:
        if total_time_s <= 0:
            return 0.0
        return totals.time_weighted_sum(column) / total_time_s / pool_bytes

    num_requests = len(requests)
    output_tokens = int(output_lengths(requests).sum())
    prompt_tokens = int(np.asarray(requests["num_prompt_tokens"], dtype=np.int64).sum())
    query_tokens = totals.counts["prefix_query_tokens"]
    hit_tokens = totals.counts["prefix_hit_tokens"]
    per_s = (lambda x: x / duration_s) if duration_s > 0 else (lambda x: 0.0)
    ttft_p50_s, ttft_p99_s = _percentiles(requests["ttft_s"], (50, 99))  # a column at a time: one in memory
    tpot_p50_s, tpot_p99_s = _percentiles(requests["tpot_s"], (50, 99))
    # NaN left out, as pandas' mean leaves it out (np.nanmean adds as pandas does: the same bits)
    normalized_latency_s = float(np.nanmean(requests["normalized_latency_s"])) if num_requests else float("nan")
    summary = {
        "num_requests": num_requests,
        "num_steps": totals.num_steps,
        "duration_s": duration_s,
        "prompt_tokens": prompt_tokens,
        "output_tokens": output_tokens,
        "output_tokens_per_s": per_s(output_tokens),
        "total_tokens_per_s": per_s(output_tokens + prompt_tokens),
        "requests_per_s": per_s(num_requests),
        "mean_batch_size": totals.batch_size_sum / totals.num_steps if totals.num_steps else 0.0,
        "max_batch_size": totals.max_batch_size,
        "mem_token_frac": time_avg_frac("token_bytes"),
        "mem_reserved_frac": time_avg_frac("reserved_bytes"),
        "mem_internal_frag_frac": time_avg_frac("internal_frag_bytes"),
        "mem_external_frag_frac": time_avg_frac("external_frag_bytes"),
        "mem_free_frac": time_avg_frac("free_bytes"),
        "mem_cached_frac": time_avg_frac("cached_bytes"),
        "shared_saved_frac": time_avg_frac("shared_saved_bytes"),
        "preemptions": totals.counts["preemptions"],
        "prefix_hit_tokens": hit_tokens,
        "prefix_hit_rate": hit_tokens / query_tokens if query_tokens else 0.0,
        "cow_copies": totals.counts["cow_copies"],
        "fork_copied_blocks": totals.counts["fork_copied_blocks"],
        "ttft_p50_s": ttft_p50_s,
        "ttft_p99_s": ttft_p99_s,
        "tpot_p50_s": tpot_p50_s,
        "tpot_p99_s": tpot_p99_s,
        "normalized_latency_s": normalized_latency_s,
    }
    for column, peak in totals.group_max_bytes.items():  # per layer group, in step-column order
        if column.endswith("_held_bytes"):
            group = column.removesuffix("_held_bytes")
            summary[f"{group}_held_frac"] = time_avg_frac(column)
            summary[f"{group}_token_frac"] = time_avg_frac(f"{group}_token_bytes")
            summary[f"{group}_max_held_bytes"] = peak
    return summary
