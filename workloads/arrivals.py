"""When requests arrive: arrival-time generators, apart from what the requests contain."""

from __future__ import annotations

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
    arrival = Arrival(arrival)
    if arrival is Arrival.offline:
        return np.zeros(num_requests)
    if arrival is Arrival.trace:
        raise ValueError("workload.arrival=trace needs a trace workload with timestamps")
    if not rate > 0:
        raise ValueError(f"workload.rate={rate} must be > 0 requests/s for workload.arrival={arrival.value}")
    if arrival is Arrival.poisson:
        gaps = rng.exponential(1.0 / rate, num_requests)
    else:
        if not burstiness > 0:
            raise ValueError(f"workload.burstiness={burstiness} must be > 0")
        gaps = rng.gamma(burstiness, 1.0 / (rate * burstiness), num_requests)
    return np.cumsum(gaps)
