"""kvbench.percentiles gives numpy's percentile and median to the bit (without importing numpy.ma)."""

import subprocess
import sys

import numpy as np
import pytest

from kvbench.percentiles import median, percentiles

QS = (0, 1, 25, 37.5, 50, 90, 99, 99.9, 100)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 8, 100, 101, 1000, 4097])
def test_percentiles_and_median_are_numpys_to_the_bit(n):
    rng = np.random.default_rng(n)
    for values in (rng.random(n) * 10.0 ** rng.integers(-6, 6), rng.integers(0, 5, n) * 0.1,  # ties
                   rng.lognormal(0, 3, n), np.full(n, 0.3)):
        assert percentiles(values, QS) == [float(np.percentile(values, q)) for q in QS]
        assert median(values) == float(np.median(values))


def test_the_input_is_left_in_its_order():
    values = np.array([3.0, 1.0, 2.0])
    percentiles(values, (50,))
    median(values)
    assert values.tolist() == [3.0, 1.0, 2.0]


def test_numpy_ma_is_not_imported():
    code = ("import sys, numpy as np; from kvbench.percentiles import median, percentiles; "
            "v = np.random.default_rng(0).random(100); percentiles(v, (50, 99)); median(v); "
            "print('numpy.ma' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
