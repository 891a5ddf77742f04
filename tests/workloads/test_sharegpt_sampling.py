"""`sharegpt` beyond its conversations: the missing requests drawn again, with replacement."""

from __future__ import annotations

import pytest

from kvbench.workloads.arrivals import Arrival
from kvbench.workloads.sharegpt import ShareGPTConfig

NUM_PASSING = 15_449  # first turns of the shipped table that pass the default filters


def test_more_requests_than_passing_turns_draw_the_rest_again(load):
    config = ShareGPTConfig(num_requests=50_000, arrival=Arrival.offline)
    requests = load(config).requests
    assert len(requests) == 50_000 and list(requests.request_ids[:3]) == [0, 1, 2]
    unique = load(ShareGPTConfig(num_requests=NUM_PASSING, arrival=Arrival.offline)).requests
    assert requests[:50] == unique[:50] and requests[NUM_PASSING - 1] == unique[NUM_PASSING - 1]  # those first
    assert len({r.prompt for r in unique}) == NUM_PASSING
    drawn = {r.prompt for r in requests[NUM_PASSING : NUM_PASSING + 20_000]}
    assert len(drawn) < 20_000 and drawn <= {r.prompt for r in unique}  # repeats, of turns that pass
    every_500th = range(0, 50_000, 500)
    again, other = load(config).requests, load(config, seed=1).requests
    assert [again[i] for i in every_500th] == [requests[i] for i in every_500th]  # seeded
    assert [other[i] for i in every_500th] != [requests[i] for i in every_500th]


def test_no_passing_turn_is_an_error_that_names_the_filters(load):
    with pytest.raises(ValueError, match="no ShareGPT conversation passes the length filters"):
        load(ShareGPTConfig(num_requests=10, min_prompt_tokens=2000, max_prompt_tokens=2000))
