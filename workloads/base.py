"""What every workload shares: its config fields, the request stream it returns, the replay controls.

A workload reads or generates its candidate requests as a `RequestTable` (columns, one row per
request, before anything is picked or timed); `replay.py` then applies the controls every workload
has (time window, first N or a seeded sample, arrival process, time scale or target rate, n and
beam width, the max_model_len filter) and returns a `RequestStream`, which builds each `Request`
when it is needed (kvbench/request_stream.py). Arrival times and lengths come from separate
generators (`arrivals.py`, `lengths.py`), so any "when" combines with any "how long".
"""

from __future__ import annotations

import gc
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from omegaconf import MISSING

from kvbench.registry import Registry
from kvbench.workloads.arrivals import Arrival
from kvbench.workloads.replay import replay
from kvbench.request_stream import RequestStream
from kvbench.workloads.request_table import RequestTable


@dataclass
class WorkloadConfig:
    """Fields every workload has; each workload's schema extends this."""

    name: str = MISSING
    num_requests: int | None = 1000  # the first N requests in arrival order (None: all the data has)
    sample: bool = False  # pick num_requests at random (seeded) instead of the first ones
    arrival: Arrival = Arrival.poisson
    rate: float = 10.0  # requests (or sessions) per second (poisson, gamma)
    burstiness: float = 1.0  # gamma shape: 1 is Poisson, below 1 burstier, above 1 smoother
    start_s: float = 0.0  # time window: requests arriving in [start_s, start_s + duration_s)...
    duration_s: float | None = None  # ...of the trace (from its first request) or of the generated arrivals
    time_scale: float = 1.0  # multiplies arrival times: 2 stretches the trace to half its rate
    target_rate: float | None = None  # or: rescale arrivals to this mean rate (requests/s)
    n: int = 1  # parallel samples per request
    beam_width: int = 1
    seed: int | None = None  # None: the run's seed


@dataclass
class TraceFileConfig(WorkloadConfig):
    """A workload read from a file."""

    num_requests: int | None = None
    arrival: Arrival = Arrival.trace
    path: str | None = None  # the trace file (none is shipped: see docs/workloads.md)
    skip_bad_rows: bool = False  # skip and count malformed rows instead of failing on the first


@dataclass
class WorkloadData:
    """The requests of a run and what the manifest records about them."""

    requests: RequestStream  # in arrival order, each built when indexed or iterated
    num_dropped_too_long: int = 0  # prompt + output longer than max_model_len
    dataset: dict = field(default_factory=dict)  # name, source, sha256...
    num_skipped_bad_rows: int = 0  # malformed rows skipped (workload.skip_bad_rows=true)


class Workload(ABC):
    def __init__(self, config: WorkloadConfig, seed: int, max_model_len: int):
        check_controls(config)
        self.config = config
        self.seed = config.seed if config.seed is not None else seed
        self.max_model_len = max_model_len

    def load(self) -> WorkloadData:
        """Build the requests (deterministic for a seed)."""
        rng = np.random.default_rng(self.seed)
        with gc_paused():
            table = self.read(rng)
            requests, num_dropped = replay(table, self.config, rng, self.max_model_len)
        return WorkloadData(requests, num_dropped, table.dataset, table.num_skipped_rows)

    @abstractmethod
    def read(self, rng: np.random.Generator) -> RequestTable:
        """The candidate requests, before the replay controls pick and time them."""


WORKLOADS: Registry[Workload] = Registry("workload")


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a workload is read and built.

    A long trace allocates hundreds of thousands of objects (parsed rows, token segments), none in a
    reference cycle; with the collector on, its passes over the growing heap cost as much as the
    work itself (Mooncake's 12k-row trace: 0.65 s instead of 0.4 s).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def check_controls(c: WorkloadConfig) -> None:
    """Reject settings of the shared controls that cannot work, naming them."""
    if c.num_requests is not None and c.num_requests < 1:
        raise ValueError(f"workload.num_requests={c.num_requests} must be >= 1 (or null for all)")
    if c.n < 1 or c.beam_width < 1:
        raise ValueError(f"workload.n={c.n} and workload.beam_width={c.beam_width} must be >= 1")
    if c.n > 1 and c.beam_width > 1:
        raise ValueError("set workload.n or workload.beam_width, not both")
    if c.sample and c.num_requests is None:
        raise ValueError("workload.sample=true picks workload.num_requests at random: set workload.num_requests")
    if c.start_s < 0 or (c.duration_s is not None and c.duration_s <= 0):
        raise ValueError(f"the window needs workload.start_s >= 0 and workload.duration_s > 0 (or null), "
                         f"got start_s={c.start_s}, duration_s={c.duration_s}")
    if not c.time_scale > 0:
        raise ValueError(f"workload.time_scale={c.time_scale} must be > 0")
    if c.target_rate is not None:
        if not c.target_rate > 0:
            raise ValueError(f"workload.target_rate={c.target_rate} must be > 0 requests/s (or null)")
        if c.time_scale != 1.0:
            raise ValueError("set workload.time_scale or workload.target_rate, not both")
