"""How long a user pauses between reading a reply and sending the next message of a session."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np


class ThinkDist(Enum):
    fixed = "fixed"  # always mean_s
    exponential = "exponential"  # memoryless, mean mean_s, clipped to [min_s, max_s]
    lognormal = "lognormal"  # mean mean_s, log-space sigma `sigma`, clipped to [min_s, max_s]
    uniform = "uniform"  # in [min_s, max_s]


@dataclass
class ThinkTimeConfig:
    dist: ThinkDist = ThinkDist.exponential
    mean_s: float = 10.0
    sigma: float = 1.0
    min_s: float = 0.0
    max_s: float = 300.0


def sample_think_times_s(config: ThinkTimeConfig, num: int, rng: np.random.Generator, what: str) -> np.ndarray:
    """`num` pauses in seconds (>= 0). `what` names the setting in error messages."""
    dist = ThinkDist(config.dist)
    if dist is ThinkDist.fixed:
        if config.mean_s < 0:
            raise ValueError(f"{what}.mean_s={config.mean_s} must be >= 0")
        return np.full(num, float(config.mean_s))
    if not 0 <= config.min_s <= config.max_s:
        raise ValueError(f"{what}: need 0 <= min_s <= max_s, got min_s={config.min_s}, max_s={config.max_s}")
    if dist is ThinkDist.uniform:
        return rng.uniform(config.min_s, config.max_s, num)
    if not config.mean_s > 0:
        raise ValueError(f"{what}.mean_s={config.mean_s} must be > 0 for {dist.value}")
    if dist is ThinkDist.exponential:
        raw = rng.exponential(config.mean_s, num)
    else:
        if config.sigma < 0:
            raise ValueError(f"{what}.sigma={config.sigma} must be >= 0")
        raw = rng.lognormal(np.log(config.mean_s) - config.sigma**2 / 2, config.sigma, num)
    return np.clip(raw, config.min_s, config.max_s)
