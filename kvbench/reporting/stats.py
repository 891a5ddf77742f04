"""Means and 95% confidence intervals over repeated runs (seeds).

The interval is Student's t: mean ± t(0.975, n-1) · s / sqrt(n), the usual choice for a handful of
seeds. A single run has no interval (NaN), so charts draw no error bar rather than a zero-width one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

# t quantiles at 0.975 for 1..30 degrees of freedom (standard tables).
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)
_Z975 = 1.959963984540054


def t975(dof: int) -> float:
    """Student's t quantile at 0.975 for `dof` degrees of freedom."""
    if dof < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {dof}")
    if dof <= len(_T975):
        return _T975[dof - 1]
    # Cornish-Fisher expansion around the normal quantile: within 1e-4 of the exact value above 30.
    z = _Z975
    return (
        z
        + (z**3 + z) / (4 * dof)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * dof**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * dof**3)
    )


def mean_ci(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, half-width of the 95% interval, number of finite values). NaN values are ignored."""
    finite = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    n = len(finite)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(finite.mean())
    if n == 1:
        return mean, math.nan, 1
    return mean, t975(n - 1) * float(finite.std(ddof=1)) / math.sqrt(n), n


def aggregate(table: pd.DataFrame, by: list[str], metrics: Sequence[str]) -> pd.DataFrame:
    """One row per group of `by`: each metric's mean and `<metric>_ci`, and `num_runs` in the group.

    Groups keep their first-seen order; NaN keys (e.g. no rate for offline runs) form their own group.
    """
    rows = []
    for key, group in table.groupby(by, sort=False, dropna=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row["num_runs"] = len(group)
        for metric in metrics:
            values = group[metric].astype(np.float64) if metric in group else pd.Series([math.nan])
            row[metric], row[f"{metric}_ci"], _ = mean_ci(values.tolist())
        rows.append(row)
    return pd.DataFrame(rows)
