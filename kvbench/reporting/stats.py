"""Means and 95% confidence intervals over repeated runs (seeds), and whether two sets differ beyond noise.

The interval is a bootstrap percentile interval (`scipy.stats.bootstrap`): the 2.5th and 97.5th
percentiles of the mean over resamples of the runs. Unlike mean ± t·s/√n it never leaves the range
the data can take (no "39 ± 152" preemptions: a count's interval stays at or above its lowest
value), and it needs no table of quantiles. With a handful of seeds it is about the range of the
values, which is what a reader should see. The resampling is seeded, so a report is the same on
every run. A single run has no interval (NaN), so charts draw no error bar rather than a zero-width one.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
NUM_RESAMPLES = 2000
SEED = 0  # the resampling's seed: the same runs give the same interval everywhere


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int  # finite values used


def _finite(values: Sequence[float]) -> np.ndarray:
    array = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    return array[np.isfinite(array)]


def mean_ci(values: Sequence[float]) -> Interval:
    """The mean of the finite values and its 95% bootstrap percentile interval."""
    finite = _finite(values)
    n = len(finite)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(finite.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1)
    if np.all(finite == finite[0]):
        return Interval(mean, mean, mean, n)  # no spread: the bootstrap has nothing to resample
    low, high = _bootstrap((finite,), lambda x, axis: np.mean(x, axis=axis))
    return Interval(mean, min(low, mean), max(high, mean), n)


def difference_ci(base: Sequence[float], new: Sequence[float]) -> tuple[float, float, float]:
    """(mean(new) - mean(base), low, high): the change of the mean and its 95% bootstrap interval,
    resampling each side's runs apart. NaN bounds when a side has fewer than two runs."""
    b, n = _finite(base), _finite(new)
    if not len(b) or not len(n):
        return math.nan, math.nan, math.nan
    change = float(n.mean() - b.mean())
    if len(b) < 2 or len(n) < 2:
        return change, math.nan, math.nan
    if np.all(b == b[0]) and np.all(n == n[0]):
        return change, change, change
    low, high = _bootstrap((b, n), lambda x, y, axis: np.mean(y, axis=axis) - np.mean(x, axis=axis))
    return change, min(low, change), max(high, change)


def outside_noise(low: float, high: float) -> bool | None:
    """True when the interval of a change excludes zero; None when there is no interval (one run)."""
    if math.isnan(low) or math.isnan(high):
        return None
    return low > 0 or high < 0


def _bootstrap(samples: tuple[np.ndarray, ...], statistic) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about few distinct resamples for n = 2
        result = stats.bootstrap(samples, statistic, confidence_level=CONFIDENCE, n_resamples=NUM_RESAMPLES,
                                 method="percentile", vectorized=True, rng=np.random.default_rng(SEED))
    interval = result.confidence_interval
    return float(interval.low), float(interval.high)


def aggregate(table: pd.DataFrame, by: list[str], metrics: Sequence[str]) -> pd.DataFrame:
    """One row per group of `by`: each metric's mean, `<metric>_low` and `<metric>_high` (the 95% interval),
    and `num_runs` in the group.

    Groups keep their first-seen order; NaN keys (e.g. no rate for offline runs) form their own group.
    """
    rows = []
    for key, group in table.groupby(by, sort=False, dropna=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row["num_runs"] = len(group)
        for metric in metrics:
            values = pd.to_numeric(group[metric], errors="coerce") if metric in group else pd.Series([math.nan])
            interval = mean_ci(values.tolist())
            row[metric], row[f"{metric}_low"], row[f"{metric}_high"] = interval.mean, interval.low, interval.high
        rows.append(row)
    return pd.DataFrame(rows)


def error_bars(data: pd.DataFrame, metric: str, scale: float = 1.0) -> np.ndarray | None:
    """Asymmetric error bars (2 x n: below, above the mean) for matplotlib, or None when no point has one."""
    mean = data[metric].to_numpy(dtype=float)
    below = mean - data[f"{metric}_low"].to_numpy(dtype=float)
    above = data[f"{metric}_high"].to_numpy(dtype=float) - mean
    if not (np.isfinite(below).any() or np.isfinite(above).any()):
        return None
    return np.nan_to_num(np.vstack([below, above]) * scale).clip(min=0)
