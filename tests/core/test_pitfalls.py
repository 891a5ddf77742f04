"""Regression tests for the ways simulators of prefix caching and preemption go wrong."""

from __future__ import annotations

import numpy as np
import pytest

from kvbench.request import Request
from kvbench.scheduler import SchedulerConfig
from kvbench.tokens import TokenSequence


def unique_prompts(num_requests: int, seed: int, max_prompt: int = 40, max_output: int = 40) -> list[Request]:
    rng = np.random.default_rng(seed)
    return [
        Request(i, i * 0.002, TokenSequence.synthetic(("only", i), int(rng.integers(4, max_prompt))),
                num_output_tokens=int(rng.integers(2, max_output)))
        for i in range(num_requests)
    ]


def test_prefix_caching_under_heavy_preemption_does_not_inflate_throughput(strategy_factory, driver):
    """No two prompts share a token, so the cache can only serve a preempted request its own blocks
    back: every token generated is counted once, every prompt token is computed at least once, and
    every token a step asked for is either computed or a hit."""
    requests = unique_prompts(40, seed=1)
    trace = driver(strategy_factory("paged_prefix", num_blocks=24), requests, SchedulerConfig(16, 256, True))
    assert sum(s.num_preemptions for s in trace.steps) >= 20, "the pool should be tight enough to thrash"
    by_id = {g.request_id: g for g in trace.finished}
    assert sorted(by_id) == [r.request_id for r in requests]
    for request in requests:
        group = by_id[request.request_id]
        assert group.num_generated_tokens == request.num_output_tokens
        if group.num_preemptions == 0:
            assert group.num_prefix_hit_tokens == 0  # only a recompute can hit
    computed = sum(s.num_prefill_tokens for s in trace.steps)
    hits = sum(s.num_prefix_hit_tokens for s in trace.steps)
    assert computed + hits == sum(s.num_prefix_query_tokens for s in trace.steps)
    assert computed >= sum(r.num_prompt_tokens for r in requests)
    assert hits > 0
    # Decodes: one per generated token after the first of each admission, never more.
    assert sum(s.num_decode_seqs for s in trace.steps) <= sum(r.num_output_tokens - 1 for r in requests)


@pytest.mark.parametrize("name", ["paged", "paged_prefix"])
def test_a_preempted_request_is_not_readmitted_into_the_room_it_just_left(name, strategy_factory, driver):
    """The first request needs a block every 4 steps and takes it from the second. If the second
    came straight back (its first chunk fits in what it left), it would be preempted again at every
    one of the first's block boundaries until the first finished: a readmission livelock. vLLM
    admits nothing in a step that preempted, and admits a prompt only when all of it fits."""
    first = Request(0, 0.0, TokenSequence.synthetic("a", 4), num_output_tokens=29)  # 8 blocks at the end
    second = Request(1, 0.0, TokenSequence.synthetic("b", 4), num_output_tokens=20)
    trace = driver(strategy_factory(name, num_blocks=8), [first, second], SchedulerConfig(2, 4, True))
    assert not any(s.num_preemptions and s.num_prefix_query_tokens for s in trace.steps)
    # Readmitted at once, the second would be preempted 8 times instead of once.
    assert {g.request_id: g.num_preemptions for g in trace.finished} == {0: 0, 1: 1}


def test_a_pool_far_too_small_for_the_workload_still_serves_every_request(strategy_factory, driver):
    """A pool that holds one longest sequence and little more: every step makes progress, every
    request finishes with the right number of tokens, and the pool's accounting stays whole."""
    requests = unique_prompts(25, seed=3, max_prompt=30, max_output=30)
    longest_blocks = max(-(-r.max_num_kv_tokens // 4) for r in requests)
    trace = driver(strategy_factory("paged_prefix", num_blocks=longest_blocks + 1), requests,
                   SchedulerConfig(64, 256, True), check_every_step=True)
    assert all(s.num_scheduled_tokens > 0 for s in trace.steps)
    assert sorted(g.request_id for g in trace.finished) == list(range(25))
    assert all(g.num_generated_tokens == g.request.num_output_tokens for g in trace.finished)
    assert sum(s.num_preemptions for s in trace.steps) > 0
    for usage in trace.usages:
        assert usage.free_slots >= 0 and usage.cached_slots >= 0
