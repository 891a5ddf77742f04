"""Which way each metric should move, and whether a change between two runs is a regression.

A metric regresses when it moves the wrong way (throughput and batch size down; waste, latency and
preemptions up) by more than its tolerance:

    |new - base| > rtol * |base| + atol

`rtol` is relative (0.05 = 5% of the base value, `--tolerance`, or per metric with `--metric
name:rtol`); `atol` is a small absolute floor that keeps a metric whose base is zero (no external
fragmentation, no preemption) from failing on any change at all: 0.001 of the pool for fractions
and rates, one event for counts, nothing otherwise. A change the right way beyond the same
threshold is an improvement (reported, never failing). A metric that had a value and lost it
(latency of a run where nothing finished) is a regression.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

# metric -> True when higher is better
DIRECTIONS = {
    "output_tokens_per_s": True,
    "total_tokens_per_s": True,
    "requests_per_s": True,
    "mean_batch_size": True,
    "max_batch_size": True,
    "mem_token_frac": True,
    "prefix_hit_rate": True,
    "shared_saved_frac": True,
    "mem_waste_frac": False,
    "mem_reserved_frac": False,
    "mem_internal_frag_frac": False,
    "mem_external_frag_frac": False,
    "normalized_latency_s": False,
    "ttft_p50_s": False,
    "ttft_p99_s": False,
    "tpot_p50_s": False,
    "tpot_p99_s": False,
    "duration_s": False,
    "preemptions": False,
    "cow_copies": False,
    "fork_copied_blocks": False,
}
DEFAULT_METRICS = (
    "output_tokens_per_s", "requests_per_s", "mean_batch_size", "mem_waste_frac",
    "normalized_latency_s", "ttft_p99_s", "tpot_p50_s",
)
DEFAULT_RTOL = 0.05
COUNT_METRICS = ("preemptions", "cow_copies", "fork_copied_blocks")
# Verdicts that fail the gate.
FAILING = ("regression", "changed", "not compared")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    higher_is_better: bool | None  # None: no better direction, any change beyond tolerance counts
    rtol: float
    atol: float

    @property
    def direction(self) -> str:
        if self.higher_is_better is None:
            return "either way"
        return "higher is better" if self.higher_is_better else "lower is better"


@dataclass(frozen=True)
class Delta:
    metric: str
    base: float
    new: float
    verdict: str  # ok | regression | improvement | changed | not compared

    @property
    def change(self) -> float:
        return self.new - self.base

    @property
    def relative_change(self) -> float:
        return self.change / abs(self.base) if self.base else math.nan


def parse_metric(text: str) -> tuple[str, float | None]:
    """`name` or `name:rtol` (a fraction: 0.1 = 10%) -> (name, rtol or None)."""
    name, colon, rtol_text = text.partition(":")
    if not colon:
        return name, None
    try:
        rtol = float(rtol_text)
    except ValueError:
        rtol = math.nan
    if not rtol >= 0:
        raise ValueError(f"--metric {text!r}: the tolerance after ':' must be a fraction >= 0, such as 0.1")
    return name, rtol


def metric_specs(requested: list[str] | None, default_rtol: float, numeric_fields: set[str],
                 only: bool = False) -> list[MetricSpec]:
    """The metrics to judge: the default set (or, with `only`, just the requested ones), where a
    requested `name:rtol` sets that metric's tolerance and a requested name outside the set adds it.

    `numeric_fields` are the numeric summary fields of the runs: any of them may be requested.
    """
    overrides: dict[str, float | None] = {}
    for text in requested or []:
        name, rtol = parse_metric(text)
        if name not in numeric_fields and name not in DIRECTIONS:
            raise ValueError(f"--metric {name!r} is not a numeric summary field; choose from "
                             f"{', '.join(sorted(numeric_fields | set(DIRECTIONS)))}")
        overrides[name] = rtol if rtol is not None else overrides.get(name)
    if only and not overrides:
        raise ValueError("--only-metrics needs at least one --metric")
    names = list(overrides) if only else list(dict.fromkeys([*DEFAULT_METRICS, *overrides]))
    return [metric_spec(name, overrides.get(name) if overrides.get(name) is not None else default_rtol)
            for name in names]


def metric_spec(name: str, rtol: float) -> MetricSpec:
    return MetricSpec(name, DIRECTIONS.get(name), rtol, default_atol(name))


def default_atol(name: str) -> float:
    if name in COUNT_METRICS:
        return 1.0
    if name.endswith(("_frac", "_rate")):
        return 0.001
    return 0.0


def as_number(value) -> float:
    """A summary value as a float; NaN for anything missing or not a number (null, text, a list)."""
    if isinstance(value, bool) or type(value).__name__ == "bool_" or not isinstance(value, numbers.Real):
        return math.nan
    return float(value)


def judge(spec: MetricSpec, base, new) -> Delta:
    base_value, new_value = as_number(base), as_number(new)
    if not math.isfinite(base_value):
        return Delta(spec.name, base_value, new_value, "not compared")
    if not math.isfinite(new_value):
        return Delta(spec.name, base_value, new_value, "regression")
    change = new_value - base_value
    if abs(change) <= spec.rtol * abs(base_value) + spec.atol:
        return Delta(spec.name, base_value, new_value, "ok")
    if spec.higher_is_better is None:
        return Delta(spec.name, base_value, new_value, "changed")
    better = change > 0 if spec.higher_is_better else change < 0
    return Delta(spec.name, base_value, new_value, "improvement" if better else "regression")
