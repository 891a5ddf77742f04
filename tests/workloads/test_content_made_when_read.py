"""Workloads that build a request's tokens only when a strategy reads them (`MadeWhenRead`): the
lengths a request is built with, from the workload's columns, are those of its content."""

from __future__ import annotations

import pytest

from kvbench.workloads.arrivals import Arrival
from kvbench.workloads.sharegpt import ShareGPTConfig
from kvbench.workloads.sharegpt_multiturn import ShareGPTMultiturnConfig


@pytest.mark.parametrize(
    "config", [ShareGPTConfig(num_requests=20_000, arrival=Arrival.offline), ShareGPTMultiturnConfig(num_sessions=300)]
)
def test_the_lengths_a_request_is_built_with_are_those_of_its_content(load, config):
    requests = load(config).requests
    for request in requests:
        for tokens in (request.prompt, request.output):
            # Reading the segments makes them (and checks the length); the sum checks it again.
            assert sum(segment.num_tokens for segment in tokens.segments) == tokens.num_tokens
