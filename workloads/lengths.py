"""How long requests are: length distributions for synthetic prompts and outputs."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np


class LengthDist(Enum):
    fixed = "fixed"  # always `value`
    uniform = "uniform"  # integers in [min, max]
    lognormal = "lognormal"  # mean `mean`, log-space sigma `sigma`, clipped to [min, max]
    zipf = "zipf"  # min - 1 + Zipf(alpha), clipped to max: many short, a heavy tail


@dataclass
class LengthConfig:
    dist: LengthDist = LengthDist.fixed
    value: int = 128
    min: int = 1
    max: int = 2048
    mean: float = 128.0
    sigma: float = 1.0
    alpha: float = 1.5


def sample_lengths(config: LengthConfig, num: int, rng: np.random.Generator, what: str) -> np.ndarray:
    """`num` lengths (int64, >= 1). `what` names the setting in error messages."""
    dist = LengthDist(config.dist)
    if dist is LengthDist.fixed:
        if config.value < 1:
            raise ValueError(f"{what}.value={config.value} must be >= 1")
        return np.full(num, config.value, dtype=np.int64)
    if not 1 <= config.min <= config.max:
        raise ValueError(f"{what}: need 1 <= min <= max, got min={config.min}, max={config.max}")
    if dist is LengthDist.uniform:
        return rng.integers(config.min, config.max + 1, num)
    if dist is LengthDist.lognormal:
        if config.mean <= 0 or config.sigma < 0:
            raise ValueError(f"{what}: lognormal needs mean > 0 and sigma >= 0")
        mu = np.log(config.mean) - config.sigma**2 / 2
        raw = rng.lognormal(mu, config.sigma, num)
    else:
        if config.alpha <= 1:
            raise ValueError(f"{what}.alpha={config.alpha} must be > 1 for zipf")
        raw = config.min - 1 + rng.zipf(config.alpha, num).astype(np.float64)
    return np.clip(np.rint(raw), config.min, config.max).astype(np.int64)
