"""What every workload shares: its config fields, the request stream it returns, the length filter.

A workload turns its config and a seed into a list of `Request`s, plus what the run manifest must
record about the data behind them. Arrival times and lengths are drawn from separate generators
(`arrivals.py`, `lengths.py`), so any "when" combines with any "how long".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from omegaconf import MISSING

from kvbench.registry import Registry
from kvbench.request import Request
from kvbench.workloads.arrivals import Arrival


@dataclass
class WorkloadConfig:
    """Fields every workload has; each workload's schema extends this."""

    name: str = MISSING
    num_requests: int | None = 1000  # None: all the data has
    arrival: Arrival = Arrival.poisson
    rate: float = 10.0  # requests per second (poisson, gamma)
    burstiness: float = 1.0  # gamma shape: 1 is Poisson, below 1 burstier, above 1 smoother
    n: int = 1  # parallel samples per request
    beam_width: int = 1
    seed: int | None = None  # None: the run's seed


@dataclass
class WorkloadData:
    """The requests of a run and what the manifest records about them."""

    requests: list[Request]
    num_dropped_too_long: int = 0  # prompt + output longer than max_model_len
    dataset: dict = field(default_factory=dict)  # name, source, sha256...


class Workload(ABC):
    def __init__(self, config: WorkloadConfig, seed: int, max_model_len: int):
        if config.num_requests is not None and config.num_requests < 1:
            raise ValueError(f"workload.num_requests={config.num_requests} must be >= 1 (or null for all)")
        if config.n < 1 or config.beam_width < 1:
            raise ValueError(f"workload.n={config.n} and workload.beam_width={config.beam_width} must be >= 1")
        if config.n > 1 and config.beam_width > 1:
            raise ValueError("set workload.n or workload.beam_width, not both")
        self.config = config
        self.seed = config.seed if config.seed is not None else seed
        self.max_model_len = max_model_len

    @abstractmethod
    def load(self) -> WorkloadData:
        """Build the requests (deterministic for a seed)."""


WORKLOADS: Registry[Workload] = Registry("workload")


def drop_too_long(requests: list[Request], max_model_len: int) -> tuple[list[Request], int]:
    """Keep requests whose prompt + output fits in max_model_len; count the others."""
    kept = [r for r in requests if r.num_prompt_tokens + r.num_output_tokens <= max_model_len]
    return kept, len(requests) - len(kept)
