"""How long requests are: length distributions for synthetic prompts and outputs."""

from __future__ import annotations

from collections.abc import Callable
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


def length_draw(config: LengthConfig, what: str) -> Callable[[np.random.Generator, int], np.ndarray]:
    """How `config`'s lengths are drawn: (rng, count) -> lengths (int64, >= 1); checks the settings now
    (`what` names them in error messages).
    Each length is drawn on its own, so drawing them in chunks gives the same lengths
    (workloads/chunked_column.py)."""
    dist = LengthDist(config.dist)
    if dist is LengthDist.fixed:
        if config.value < 1:
            raise ValueError(f"{what}.value={config.value} must be >= 1")
        return lambda rng, num: np.full(num, config.value, dtype=np.int64)
    if not 1 <= config.min <= config.max:
        raise ValueError(f"{what}: need 1 <= min <= max, got min={config.min}, max={config.max}")
    if dist is LengthDist.uniform:
        return lambda rng, num: rng.integers(config.min, config.max + 1, num)
    if dist is LengthDist.lognormal:
        if config.mean <= 0 or config.sigma < 0:
            raise ValueError(f"{what}: lognormal needs mean > 0 and sigma >= 0")
        mu = np.log(config.mean) - config.sigma**2 / 2
        return lambda rng, num: clipped(rng.lognormal(mu, config.sigma, num), config)
    if config.alpha <= 1:
        raise ValueError(f"{what}.alpha={config.alpha} must be > 1 for zipf")
    return lambda rng, num: clipped(config.min - 1 + rng.zipf(config.alpha, num).astype(np.float64), config)


def clipped(raw: np.ndarray, config: LengthConfig) -> np.ndarray:
    return np.clip(np.rint(raw), config.min, config.max).astype(np.int64)
