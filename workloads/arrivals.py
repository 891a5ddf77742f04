"""When requests arrive: arrival-time generators, apart from what the requests contain."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

import numpy as np


class Arrival(Enum):
    poisson = "poisson"  # exponential gaps at `rate`
    gamma = "gamma"  # gamma gaps at `rate` with shape `burstiness`
    offline = "offline"  # everything at t = 0 (a throughput run)
    trace = "trace"  # the trace's own timestamps (trace replays)


def arrival_times_s(
    arrival: Arrival, num_requests: int, rate: float, burstiness: float, rng: np.random.Generator
) -> np.ndarray:
    """Arrival times in seconds, non-decreasing, the first gap drawn like the others."""
    draw = gap_draw(arrival, rate, burstiness)
    return np.zeros(num_requests) if draw is None else np.cumsum(draw(rng, num_requests))


def gap_draw(arrival: Arrival, rate: float, burstiness: float) -> Callable[[np.random.Generator, int], np.ndarray] | None:
    """How the gaps between arrivals (s) are drawn: (rng, count) -> gaps, >= 0; None for offline (all at 0).
    Each gap is drawn on its own, so drawing them in chunks gives the same gaps (workloads/chunked_column.py)."""
    arrival = Arrival(arrival)
    if arrival is Arrival.offline:
        return None
    if arrival is Arrival.trace:
        raise ValueError("workload.arrival=trace needs a trace workload with timestamps")
    if not rate > 0:
        raise ValueError(f"workload.rate={rate} must be > 0 requests/s for workload.arrival={arrival.value}")
    if arrival is Arrival.poisson:
        return lambda rng, num: rng.exponential(1.0 / rate, num)
    if not burstiness > 0:
        raise ValueError(f"workload.burstiness={burstiness} must be > 0")
    return lambda rng, num: rng.gamma(burstiness, 1.0 / (rate * burstiness), num)


def scale_factor(first_s: float, last_s: float, num_requests: int, config) -> float:
    """What arrival times are multiplied by: `workload.time_scale`, or the factor that makes the mean rate
    from the first arrival (`first_s`) to the last (`last_s`) of `num_requests` `workload.target_rate`."""
    if config.target_rate is None:
        return config.time_scale
    span_s = float(last_s - first_s)
    if span_s <= 0:
        raise ValueError(
            f"workload.target_rate={config.target_rate} needs at least two requests at different times "
            f"(workload.arrival={Arrival(config.arrival).value} gives {num_requests} spanning {span_s} s)"
        )
    rate = (num_requests - 1) / span_s
    return rate / config.target_rate
