"""Means and 95% confidence intervals over seeds."""

import math

import numpy as np
import pandas as pd
import pytest

from kvbench.reporting.stats import aggregate, mean_ci, t975


def test_t_quantiles_match_the_tables_and_join_smoothly_past_30():
    assert t975(1) == pytest.approx(12.7062)
    assert t975(4) == pytest.approx(2.7764)
    assert t975(30) == pytest.approx(2.0423)
    # Published values past the table: 40 -> 2.0211, 60 -> 2.0003, 120 -> 1.9799.
    assert t975(40) == pytest.approx(2.0211, abs=2e-4)
    assert t975(60) == pytest.approx(2.0003, abs=2e-4)
    assert t975(120) == pytest.approx(1.9799, abs=2e-4)
    assert t975(30) > t975(31) > t975(1000) > 1.96
    with pytest.raises(ValueError):
        t975(0)


def test_mean_ci_is_students_t_interval():
    mean, half_width, n = mean_ci([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3)
    assert half_width == pytest.approx(4.3027 * 1.0 / math.sqrt(3))


def test_one_value_has_no_interval_and_nan_is_ignored():
    mean, half_width, n = mean_ci([5.0, float("nan")])
    assert (mean, n) == (5.0, 1) and math.isnan(half_width)
    mean, half_width, n = mean_ci([])
    assert n == 0 and math.isnan(mean) and math.isnan(half_width)


def test_aggregate_groups_in_first_seen_order_and_keeps_nan_keys():
    table = pd.DataFrame({
        "series": ["b", "b", "a", "a"],
        "rate": [np.nan, np.nan, 2.0, 2.0],
        "x": [1.0, 3.0, 10.0, 10.0],
    })
    out = aggregate(table, ["series", "rate"], ["x", "absent"])
    assert out["series"].tolist() == ["b", "a"]
    assert out["num_runs"].tolist() == [2, 2]
    assert out["x"].tolist() == [2.0, 10.0]
    assert out.loc[0, "x_ci"] == pytest.approx(12.7062 * math.sqrt(2) / math.sqrt(2))
    assert out.loc[1, "x_ci"] == 0.0
    assert out["absent"].isna().all()
