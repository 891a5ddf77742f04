"""The controls every workload has: time scale or target rate, window, first N or a seeded sample,
the max_model_len filter, n and beam width."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kvbench.workloads.arrivals import Arrival
from kvbench.workloads.custom import CustomConfig
from kvbench.workloads.synthetic import SyntheticConfig


@pytest.fixture
def ten_requests(tmp_path) -> str:
    """Ten requests one second apart (from t = 100 s), prompt i + 1 tokens, ids 10..19."""
    path = tmp_path / "ten.jsonl"
    path.write_text("".join(
        json.dumps({"id": 10 + i, "prompt_len": i + 1, "output_len": 2, "arrival_time": 100.0 + i}) + "\n"
        for i in range(10)
    ))
    return str(path)


def ids_and_times(data) -> list[tuple[int, float]]:
    return [(r.request_id, r.arrival_time_s) for r in data.requests]


def test_trace_times_start_at_zero(load, ten_requests):
    assert ids_and_times(load(CustomConfig(path=ten_requests))) == [(10 + i, float(i)) for i in range(10)]


def test_time_scale_stretches_and_target_rate_rescales(load, ten_requests):
    stretched = load(CustomConfig(path=ten_requests, time_scale=2.0))
    assert [t for _, t in ids_and_times(stretched)] == [2.0 * i for i in range(10)]
    faster = load(CustomConfig(path=ten_requests, target_rate=2.0))  # 9 gaps over 9 s: 1/s -> 2/s
    assert [t for _, t in ids_and_times(faster)] == pytest.approx([0.5 * i for i in range(10)])


def test_window_then_first_n(load, ten_requests):
    window = load(CustomConfig(path=ten_requests, start_s=2.0, duration_s=3.0))
    assert ids_and_times(window) == [(12, 0.0), (13, 1.0), (14, 2.0)]
    first = load(CustomConfig(path=ten_requests, start_s=2.0, num_requests=2))
    assert ids_and_times(first) == [(12, 0.0), (13, 1.0)]
    assert len(load(CustomConfig(path=ten_requests, num_requests=50)).requests) == 10  # all, when fewer
    with pytest.raises(ValueError, match="no request arrives in the window workload.start_s=20.0"):
        load(CustomConfig(path=ten_requests, start_s=20.0))


def test_seeded_sample_keeps_arrival_order(load, ten_requests):
    config = CustomConfig(path=ten_requests, num_requests=4, sample=True)
    picks = {seed: [r.request_id for r in load(config, seed=seed).requests] for seed in range(4)}
    assert all(len(p) == 4 and p == sorted(p) for p in picks.values())
    assert len({tuple(p) for p in picks.values()}) > 1  # the seed decides
    again = load(CustomConfig(path=ten_requests, num_requests=4, sample=True), seed=2)
    assert [r.request_id for r in again.requests] == picks[2]
    with pytest.raises(ValueError, match="draws workload.num_requests=11 requests, but .* has only 10"):
        load(CustomConfig(path=ten_requests, num_requests=11, sample=True))


def test_max_model_len_drops_and_counts(load, ten_requests):
    data = load(CustomConfig(path=ten_requests), max_model_len=6)  # prompt i + 1 plus 2 output tokens
    assert [r.request_id for r in data.requests] == [10, 11, 12, 13]
    assert data.num_dropped_too_long == 6


def test_n_and_beam_width_reach_every_request(load, ten_requests):
    assert {r.n for r in load(CustomConfig(path=ten_requests, n=3)).requests} == {3}
    assert {r.beam_width for r in load(CustomConfig(path=ten_requests, beam_width=2)).requests} == {2}
    with pytest.raises(ValueError, match="not both"):
        load(CustomConfig(path=ten_requests, n=2, beam_width=2))


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"time_scale": 0.0}, "workload.time_scale=0.0 must be > 0"),
        ({"target_rate": -1.0}, "workload.target_rate=-1.0 must be > 0"),
        ({"target_rate": 1.0, "time_scale": 2.0}, "time_scale or workload.target_rate, not both"),
        ({"duration_s": 0.0}, "duration_s > 0"),
        ({"sample": True, "num_requests": None}, "set workload.num_requests"),
        ({"arrival": Arrival.offline, "target_rate": 1.0}, "needs at least two requests at different times"),
    ],
)
def test_bad_settings_are_named(load, ten_requests, options, problem):
    with pytest.raises(ValueError, match=problem):
        load(CustomConfig(path=ten_requests, **options))


def test_generated_arrivals_replace_the_trace_times(load, ten_requests):
    offline = load(CustomConfig(path=ten_requests, arrival=Arrival.offline, num_requests=3))
    assert ids_and_times(offline) == [(10, 0.0), (11, 0.0), (12, 0.0)]
    poisson = load(CustomConfig(path=ten_requests, arrival=Arrival.poisson, rate=4.0))
    times = np.array([t for _, t in ids_and_times(poisson)])
    assert times[0] > 0 and np.all(np.diff(times) >= 0)
    assert [r.request_id for r in poisson.requests] == list(range(10, 20))
    windowed = load(CustomConfig(path=ten_requests, arrival=Arrival.poisson, rate=4.0, duration_s=float(times[4])))
    assert [t for _, t in ids_and_times(windowed)] == times[:4].tolist()  # the window cuts the generated times


def test_controls_apply_to_generators_too(load):
    base = SyntheticConfig(num_requests=50, rate=5.0)
    times = [r.arrival_time_s for r in load(base).requests]
    scaled = [r.arrival_time_s for r in load(SyntheticConfig(num_requests=50, rate=5.0, time_scale=3.0)).requests]
    assert scaled == pytest.approx([3.0 * t for t in times])
    window = load(SyntheticConfig(num_requests=50, rate=5.0, start_s=2.0, duration_s=4.0)).requests
    assert [r.arrival_time_s for r in window] == pytest.approx([t - 2.0 for t in times if 2.0 <= t < 6.0])
