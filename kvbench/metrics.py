"""Per-step and per-request records of a run, and the headline figures computed from them.

Recording is a tuple append per step (plotting and aggregation happen after the run). Memory is
kept in token slots while recording and turned into bytes when the tables are built.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from collections.abc import Callable

from kvbench.scheduler import StepPlan
from kvbench.sequence import RequestState
from kvbench.strategies.base import PoolUsage, StrategyCounters

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
REQUEST_COLUMNS = (
    "request_id", "arrival_time_s", "first_token_time_s", "finish_time_s", "num_prompt_tokens", "num_output_tokens",
    "n", "beam_width", "num_generated_tokens", "num_preemptions", "prefix_hit_tokens",
    "ttft_s", "latency_s", "tpot_s", "normalized_latency_s",
)


class MetricsRecorder:
    def __init__(self, kv_bytes_per_token: int):
        self.kv_bytes_per_token = kv_bytes_per_token
        self._steps: list[tuple] = []
        self._requests: list[tuple] = []
        self._request_extras: list[dict] = []  # engine-specific columns, one dict per request
        self._last_counters = StrategyCounters()
        self.end_time_s = 0.0

    def record_step(
        self, step: StepPlan, start_s: float, duration_s: float, usage: PoolUsage,
        counters: StrategyCounters, num_finished: int,
    ) -> None:
        last = self._last_counters
        self._steps.append((
            step.step_index, start_s, duration_s, step.batch_size, step.num_decode_seqs, len(step.prefills),
            step.num_waiting_requests, step.num_prefill_tokens, step.num_decode_seqs,
            usage.token_slots, usage.reserved_slots, usage.internal_frag_slots, usage.external_frag_slots,
            usage.free_slots, usage.cached_slots, usage.shared_saved_slots,
            step.num_preemptions, step.num_prefix_hit_tokens, step.num_prefix_query_tokens,
            counters.cow_copies - last.cow_copies, counters.fork_copied_blocks - last.fork_copied_blocks, num_finished,
        ))
        last.cow_copies, last.fork_copied_blocks = counters.cow_copies, counters.fork_copied_blocks
        self.end_time_s = start_s + duration_s

    def record_finished(self, groups: list[RequestState], extra: Callable[[RequestState], dict] | None = None) -> None:
        for g in groups:
            self._request_extras.append(extra(g) if extra else {})
            r = g.request
            ttft = g.first_token_time_s - r.arrival_time_s
            latency = g.finish_time_s - r.arrival_time_s
            tpot = (g.finish_time_s - g.first_token_time_s) / (r.num_output_tokens - 1) if r.num_output_tokens > 1 else np.nan
            self._requests.append((
                r.request_id, r.arrival_time_s, g.first_token_time_s, g.finish_time_s, r.num_prompt_tokens,
                r.num_output_tokens, r.n, r.beam_width, g.num_generated_tokens, g.num_preemptions,
                g.num_prefix_hit_tokens, ttft, latency, tpot, latency / r.num_output_tokens,
            ))

    def steps_table(self) -> pd.DataFrame:
        df = pd.DataFrame.from_records(self._steps, columns=STEP_COLUMNS)
        for column in (*MEMORY_COLUMNS, "shared_saved_bytes"):
            df[column] = df[column].astype(np.int64) * self.kv_bytes_per_token
        return df

    def requests_table(self) -> pd.DataFrame:
        df = pd.DataFrame.from_records(self._requests, columns=REQUEST_COLUMNS)
        if any(self._request_extras):
            df = pd.concat([df, pd.DataFrame.from_records(self._request_extras)], axis=1)
        return df.sort_values("request_id", ignore_index=True)


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


def _percentile(values: pd.Series, q: float) -> float:
    values = values.dropna()
    return float(np.percentile(values, q)) if len(values) else float("nan")


def summarize(steps: pd.DataFrame, requests: pd.DataFrame, pool_bytes: int, end_time_s: float) -> dict:
    """Headline figures. Memory fractions are time-weighted shares of the KV pool."""
    duration_s = end_time_s
    weights = steps["duration_s"].to_numpy()
    total_time_s = weights.sum()

    def time_avg_frac(column: str) -> float:
        if total_time_s <= 0:
            return 0.0
        return float(np.dot(steps[column].to_numpy(dtype=np.float64), weights) / total_time_s / pool_bytes)

    output_tokens = int((requests["num_output_tokens"] * requests[["n", "beam_width"]].max(axis=1)).sum())
    prompt_tokens = int(requests["num_prompt_tokens"].sum())
    query_tokens = int(steps["prefix_query_tokens"].sum())
    hit_tokens = int(steps["prefix_hit_tokens"].sum())
    per_s = (lambda x: x / duration_s) if duration_s > 0 else (lambda x: 0.0)
    return {
        "num_requests": len(requests),
        "num_steps": len(steps),
        "duration_s": duration_s,
        "prompt_tokens": prompt_tokens,
        "output_tokens": output_tokens,
        "output_tokens_per_s": per_s(output_tokens),
        "total_tokens_per_s": per_s(output_tokens + prompt_tokens),
        "requests_per_s": per_s(len(requests)),
        "mean_batch_size": float(steps["batch_size"].mean()) if len(steps) else 0.0,
        "max_batch_size": int(steps["batch_size"].max()) if len(steps) else 0,
        "mem_token_frac": time_avg_frac("token_bytes"),
        "mem_reserved_frac": time_avg_frac("reserved_bytes"),
        "mem_internal_frag_frac": time_avg_frac("internal_frag_bytes"),
        "mem_external_frag_frac": time_avg_frac("external_frag_bytes"),
        "mem_free_frac": time_avg_frac("free_bytes"),
        "mem_cached_frac": time_avg_frac("cached_bytes"),
        "shared_saved_frac": time_avg_frac("shared_saved_bytes"),
        "preemptions": int(steps["preemptions"].sum()),
        "prefix_hit_tokens": hit_tokens,
        "prefix_hit_rate": hit_tokens / query_tokens if query_tokens else 0.0,
        "cow_copies": int(steps["cow_copies"].sum()),
        "fork_copied_blocks": int(steps["fork_copied_blocks"].sum()),
        "ttft_p50_s": _percentile(requests["ttft_s"], 50),
        "ttft_p99_s": _percentile(requests["ttft_s"], 99),
        "tpot_p50_s": _percentile(requests["tpot_s"], 50),
        "tpot_p99_s": _percentile(requests["tpot_s"], 99),
        "normalized_latency_s": float(requests["normalized_latency_s"].mean()) if len(requests) else float("nan"),
    }
