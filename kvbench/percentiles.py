"""numpy's linear-interpolation percentile and its median, to the bit, without numpy.ma.

`np.percentile` and `np.median` import `numpy.ma` on their first call (numpy 2.4: `np.unique`
asks `np.ma.is_masked`), 30 to 90 ms that the end of a run otherwise never spends. These take the
same steps numpy takes for finite float64 values: the two neighbours of the virtual index
`(n - 1) * q / 100` found by a partial sort, then numpy's `_lerp`; the median is the mean of the
middle one or two values. tests/core/test_percentiles.py compares them with numpy's on many arrays.
"""

from __future__ import annotations

import math

import numpy as np


def percentiles(values: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """The `qs` percentiles (0 to 100) of finite `values`, as `np.percentile(values, q)` gives them."""
    n = len(values)
    positions = [(n - 1) * (q / 100) for q in qs]
    below = [min(int(math.floor(position)), n - 1) for position in positions]
    ordered = np.partition(values, sorted({*below, *(min(i + 1, n - 1) for i in below)}))
    results = []
    for position, i in zip(positions, below):
        a, b = float(ordered[i]), float(ordered[min(i + 1, n - 1)])
        t = position - i if position < n - 1 else position + 1  # numpy's gamma past the last value
        difference = b - a
        results.append(b - difference * (1 - t) if t >= 0.5 else a + difference * t)
    return results


def median(values: np.ndarray) -> float:
    """The median of finite `values`, as `np.median(values)` gives it."""
    n = len(values)
    middle = n // 2
    if n % 2:
        return float(np.partition(values, middle)[middle])
    ordered = np.partition(values, [middle - 1, middle])
    return (float(ordered[middle - 1]) + float(ordered[middle])) / 2
