"""`scheduler.policy=lpm` admits the waiting request with the longest cached prefix first."""

import pytest

from kvbench.errors import ConfigError
from kvbench.request import Request
from kvbench.scheduler import SchedulerConfig
from kvbench.tokens import Synthetic, TokenSequence


def _requests():
    doc = Synthetic("doc", 32)
    # One request computes "doc"; while it decodes, two more arrive: a stranger first, then a
    # reader of "doc". One sequence at a time, so the queue's order decides who goes next.
    writer = Request(0, 0.0, TokenSequence((doc, Synthetic("w", 4))), num_output_tokens=4)
    stranger = Request(1, 0.001, TokenSequence.synthetic("stranger", 36), num_output_tokens=2)
    reader = Request(2, 0.002, TokenSequence((doc, Synthetic("r", 4))), num_output_tokens=2)
    return [writer, stranger, reader]


@pytest.mark.parametrize("name", ["paged_prefix", "paged_radix"])
@pytest.mark.parametrize(("policy", "order"), [("fcfs", [0, 1, 2]), ("lpm", [0, 2, 1])])
def test_lpm_admits_the_longest_cached_prefix_first(strategy_factory, driver, name, policy, order):
    config = SchedulerConfig(max_num_seqs=1, max_num_batched_tokens=64, chunked_prefill=True, policy=policy)
    trace = driver(strategy_factory(name, num_blocks=64), _requests(), config)
    assert [g.request_id for g in sorted(trace.finished, key=lambda g: g.finish_time_s)] == order
    hits = {g.request_id: g.num_prefix_hit_tokens for g in trace.finished}
    assert hits[2] == 32


def test_an_unknown_policy_is_a_config_error(strategy_factory, driver):
    with pytest.raises(ConfigError, match="scheduler.policy='sjf'"):
        driver(strategy_factory("paged", num_blocks=8), _requests(), SchedulerConfig(4, 64, True, policy="sjf"))


def test_static_batching_admits_the_next_batch_when_the_longest_member_ends(strategy_factory, driver):
    short = Request(0, 0.0, TokenSequence.synthetic("short", 4), num_output_tokens=2)
    long = Request(1, 0.0, TokenSequence.synthetic("long", 4), num_output_tokens=6)
    late = Request(2, 0.001, TokenSequence.synthetic("late", 4), num_output_tokens=2)
    for batching, late_first_step in (("continuous", 1), ("static", 6)):
        config = SchedulerConfig(max_num_seqs=8, max_num_batched_tokens=64, chunked_prefill=True, batching=batching)
        trace = driver(strategy_factory("hf_static", num_blocks=512, block_size=1), [short, long, late], config)
        first_step = next(i for i, s in enumerate(trace.steps) if any(c.seq.group.request_id == 2 for c in s.prefills))
        assert first_step == late_first_step, batching

