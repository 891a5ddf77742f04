"""Means and 95% bootstrap intervals over seeds; changes judged against noise."""

import math

import numpy as np
import pandas as pd
import pytest

from kvbench.reporting.stats import aggregate, difference_ci, mean_ci, outside_noise


def test_the_interval_respects_the_data_where_a_t_interval_would_not():
    # Preemptions over three seeds: mean 39, t-interval 39 +- 252, i.e. below zero. The bootstrap stays in range.
    interval = mean_ci([0, 0, 117])
    assert interval.mean == 39 and interval.n == 3
    assert interval.low >= 0 and interval.high <= 117
    assert interval.low <= interval.mean <= interval.high


def test_the_interval_is_deterministic_and_close_to_the_normal_theory_one_for_many_seeds():
    values = np.random.default_rng(1).normal(10, 1, size=30)
    interval = mean_ci(list(values))
    assert interval == mean_ci(list(values))
    half_width = 1.96 * values.std(ddof=1) / np.sqrt(30)
    assert (interval.high - interval.low) / 2 == pytest.approx(half_width, rel=0.15)


def test_one_value_has_no_interval_and_nan_is_ignored():
    interval = mean_ci([5.0, float("nan"), None])
    assert (interval.mean, interval.n) == (5.0, 1) and math.isnan(interval.low)
    interval = mean_ci([])
    assert interval.n == 0 and math.isnan(interval.mean)
    assert mean_ci([2.0, 2.0]).low == mean_ci([2.0, 2.0]).high == 2.0  # no spread: a zero-width interval


def test_a_change_is_outside_noise_only_when_its_interval_excludes_zero():
    change, low, high = difference_ci([100, 101, 99], [90, 91, 89])
    assert change == pytest.approx(-10) and outside_noise(low, high) is True
    change, low, high = difference_ci([100, 110, 90], [101, 111, 91])
    assert change == pytest.approx(1) and outside_noise(low, high) is False
    assert outside_noise(*difference_ci([1.0], [2.0])[1:]) is None  # one run a side: no interval
    assert outside_noise(*difference_ci([3.0, 3.0], [3.5, 3.5])[1:]) is True  # deterministic runs that moved


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
    assert (out.loc[0, "x_low"], out.loc[0, "x_high"]) == (1.0, 3.0)
    assert out.loc[1, "x_low"] == out.loc[1, "x_high"] == 10.0
    assert out["absent"].isna().all()
