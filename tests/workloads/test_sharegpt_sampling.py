"""`sharegpt` beyond its conversations: drawing turns with replacement, and the columns it keeps."""

from __future__ import annotations

import pytest

from kvbench.workloads.arrivals import Arrival
from kvbench.workloads.sharegpt import ShareGPTConfig


def test_more_requests_than_conversations_need_drawing_with_replacement(load):
    with pytest.raises(ValueError, match="with_replacement=true draws them again"):
        load(ShareGPTConfig(num_requests=200_000))
    data = load(ShareGPTConfig(num_requests=200_000, with_replacement=True, arrival=Arrival.offline))
    requests = data.requests
    assert len(requests) == 200_000 and list(requests.request_ids[:3]) == [0, 1, 2]
    first = [requests[i] for i in range(0, 200_000, 1000)]
    assert len({r.prompt for r in requests[:20_000]}) < 20_000  # a turn drawn twice has the same tokens
    again = load(ShareGPTConfig(num_requests=200_000, with_replacement=True, arrival=Arrival.offline)).requests
    assert [again[i] for i in range(0, 200_000, 1000)] == first  # seeded
    other = load(ShareGPTConfig(num_requests=200_000, with_replacement=True, arrival=Arrival.offline), seed=1)
    assert [other.requests[i] for i in range(0, 200_000, 1000)] != first


def test_a_draw_passes_the_length_filters(load):
    config = ShareGPTConfig(num_requests=5000, with_replacement=True, max_prompt_tokens=64, max_total_tokens=256)
    requests = load(config).requests
    assert all(4 <= r.num_prompt_tokens <= 64 and r.num_prompt_tokens + r.num_output_tokens <= 256 for r in requests)


def test_with_replacement_needs_a_number_of_requests(load):
    with pytest.raises(ValueError, match="set workload.num_requests"):
        load(ShareGPTConfig(num_requests=None, with_replacement=True))
