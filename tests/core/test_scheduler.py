"""Continuous batching: what every step may hold, preemption, forks, and lazy decoding's exactness."""

from __future__ import annotations

import pytest

from kvbench.request import Request
from kvbench.errors import ConfigError
from kvbench.scheduler import Phase, Scheduler, SchedulerConfig, SchedulerError
from kvbench.step_loop import run_steps
from kvbench.strategies import STRATEGIES
from kvbench.strategies.invariants import check
from kvbench.tokens import TokenSequence

from .conftest import FixedStepTime

CHUNKED = SchedulerConfig(max_num_seqs=16, max_num_batched_tokens=64, chunked_prefill=True)
V0 = SchedulerConfig(max_num_seqs=16, max_num_batched_tokens=128, chunked_prefill=False)
STRATEGY_VARIANTS = [(name, {}) for name in STRATEGIES.names()] + [
    ("contiguous", {"reservation": "oracle", "allocator": "buddy"}),
    ("contiguous", {"reservation": "pow2", "allocator": "first_fit"}),
    ("paged_radix", {"eviction": "lfu"}),
    ("vattention", {"deferred_reclamation": True}),
    ("hf_dynamic", {"growth": "double"}),
]
IDS = [f"{n}-{'-'.join(map(str, o.values())) or 'default'}" for n, o in STRATEGY_VARIANTS]


@pytest.mark.parametrize("config", [CHUNKED, V0], ids=["chunked", "v0"])
@pytest.mark.parametrize(("name", "options"), STRATEGY_VARIANTS, ids=IDS)
def test_lazy_decoding_matches_syncing_every_token(name, options, config, requests, strategy_factory, driver):
    """Skipping the strategy between block boundaries must change nothing, step by step."""
    lazy = driver(strategy_factory(name, num_blocks=160, **options), requests, config, lazy=True)
    eager_strategy = strategy_factory(name, num_blocks=160, **options)
    eager = driver(eager_strategy, requests, config, lazy=False, check_every_step=True)
    assert lazy.rows() == eager.rows()
    assert sum(s.num_preemptions for s in lazy.steps) > 0, "the pool should be small enough to preempt"
    assert [g.request_id for g in lazy.finished] == [g.request_id for g in eager.finished]
    usage = eager_strategy.usage()
    assert usage.token_slots == usage.reserved_slots == usage.internal_frag_slots == 0


@pytest.mark.parametrize("config", [CHUNKED, V0], ids=["chunked", "v0"])
def test_every_step_respects_the_budgets_and_every_request_finishes(config, requests, strategy_factory, driver):
    trace = driver(strategy_factory("paged_cow", num_blocks=160), requests, config)
    for step, usage in zip(trace.steps, trace.usages):
        assert step.num_scheduled_tokens <= config.max_num_batched_tokens
        assert usage.token_slots + usage.reserved_slots + usage.internal_frag_slots + usage.free_slots \
            + usage.cached_slots + usage.external_frag_slots == usage.pool_slots
        if not config.chunked_prefill:
            assert not (step.prefills and step.num_decode_seqs), "v0 steps are prefill-only or decode-only"
    assert sorted(g.request_id for g in trace.finished) == [r.request_id for r in requests]
    for group in trace.finished:
        request = group.request
        assert group.phase is Phase.FINISHED
        assert request.arrival_time_s < group.first_token_time_s <= group.finish_time_s
        assert group.num_generated_tokens >= request.num_output_tokens * request.num_seqs


def test_chunked_prefill_splits_a_long_prompt_across_steps(strategy_factory, driver):
    request = Request(0, 0.0, TokenSequence.synthetic("long", 100), num_output_tokens=3)
    trace = driver(strategy_factory("paged", num_blocks=64), [request], SchedulerConfig(4, 32, True))
    assert [s.num_prefill_tokens for s in trace.steps] == [32, 32, 32, 4, 0, 0]
    assert [s.num_decode_seqs for s in trace.steps] == [0, 0, 0, 0, 1, 1]
    assert trace.finished[0].first_token_time_s == pytest.approx(0.04)


def test_the_latest_admitted_request_is_preempted_and_recomputes_its_output(strategy_factory, driver):
    first = Request(0, 0.0, TokenSequence.synthetic("a", 8), num_output_tokens=20)
    second = Request(1, 0.0, TokenSequence.synthetic("b", 8), num_output_tokens=20)
    # 12 blocks of 4 tokens: both prompts fit (2 blocks each), both full sequences (7 blocks) do not.
    trace = driver(strategy_factory("paged", num_blocks=12), [first, second], SchedulerConfig(4, 64, True))
    by_id = {g.request_id: g for g in trace.finished}
    assert by_id[0].num_preemptions == 0 and by_id[1].num_preemptions == 1
    prefills = [c for s in trace.steps for c in s.prefills if c.seq.group.request_id == 1]
    assert len(prefills) == 2, "the preempted request comes back as one more prefill"
    recompute = prefills[1]
    # It recomputes its prompt and the outputs it had; that prefill samples its next token, so
    # no sampled token is wasted.
    assert recompute.num_computed_tokens == 0 and recompute.num_new_tokens > 8
    assert by_id[1].num_prefill_target_tokens == recompute.num_new_tokens
    assert by_id[1].num_generated_tokens == 20


def test_parallel_samples_share_the_prompt_and_copy_only_the_partial_block(strategy_factory, driver):
    requests = [Request(i, 0.0, TokenSequence.synthetic(("p", i), 10), num_output_tokens=6, n=4) for i in range(3)]
    strategy = strategy_factory("paged_cow", num_blocks=64)
    trace = driver(strategy, requests, SchedulerConfig(16, 64, True))
    assert strategy.counters["cow_copies"] == 3 * 3  # block 2 of each prompt: copied by 3 of 4 samples
    assert max(u.logical_slots - (u.token_slots + u.reserved_slots + u.internal_frag_slots) for u in trace.usages) > 0
    plain = strategy_factory("paged", num_blocks=64)
    driver(plain, requests, SchedulerConfig(16, 64, True))
    assert plain.counters["fork_copied_blocks"] == 3 * 3 * 3  # 3 blocks copied for each of 3 forks


def test_beam_search_forks_and_prunes_every_step(strategy_factory, driver):
    request = Request(0, 0.0, TokenSequence.synthetic("p", 10), num_output_tokens=12, beam_width=4)
    strategy = strategy_factory("paged_cow", num_blocks=64)
    trace = driver(strategy, [request], SchedulerConfig(16, 64, True), check_every_step=True)
    assert all(s.num_decode_seqs == 4 for s in trace.steps[1:])
    assert strategy.counters["cow_copies"] > 4
    check(strategy)


def test_a_request_that_cannot_fit_alone_is_an_error(strategy_factory, driver):
    request = Request(0, 0.0, TokenSequence.synthetic("p", 8), num_output_tokens=40)
    with pytest.raises(SchedulerError, match="request 0 alone needs more KV cache"):
        driver(strategy_factory("paged", num_blocks=8), [request], SchedulerConfig(4, 64, True))


def test_more_parallel_samples_than_max_num_seqs_is_an_error(strategy_factory, driver):
    request = Request(0, 0.0, TokenSequence.synthetic("p", 8), num_output_tokens=4, n=8)
    with pytest.raises(SchedulerError, match="max_num_seqs=4"):
        driver(strategy_factory("paged", num_blocks=8), [request], SchedulerConfig(4, 64, True))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (SchedulerConfig(max_num_seqs=0), "max_num_seqs=0"),
        (SchedulerConfig(max_num_seqs=64, max_num_batched_tokens=32), "smaller than scheduler.max_num_seqs"),
        (SchedulerConfig(max_num_seqs=4, max_num_batched_tokens=64, chunked_prefill=False), "without chunked prefill"),
    ],
)
def test_impossible_scheduler_settings_name_the_setting(config, message, strategy_factory, driver):
    with pytest.raises(ConfigError, match=message):
        driver(strategy_factory("paged", num_blocks=8), [], config)


def test_same_step_admissions_share_a_prefix(strategy_factory, driver):
    prompt = TokenSequence.synthetic("doc", 32)
    requests = [Request(i, 0.0, prompt + TokenSequence.synthetic(("q", i), 4), num_output_tokens=2) for i in range(3)]
    trace = driver(strategy_factory("paged_prefix", num_blocks=64), requests, SchedulerConfig(8, 256, True))
    first_step = trace.steps[0]
    assert len(first_step.prefills) == 3
    assert first_step.num_prefix_hit_tokens == 2 * 32


def test_beam_requests_under_preemption_finish_and_keep_the_pool_consistent(strategy_factory, driver):
    """Two beam requests in a pool without sharing: their forks preempt each other."""
    requests = [Request(i, 0.0, TokenSequence.synthetic(("p", i), 12), num_output_tokens=30, beam_width=3)
                for i in range(2)]
    strategy = strategy_factory("paged", num_blocks=40)
    trace = driver(strategy, requests, SchedulerConfig(16, 64, True), check_every_step=True)
    assert sorted(g.request_id for g in trace.finished) == [0, 1]
    assert sum(s.num_preemptions for s in trace.steps) > 0
    check(strategy)


def test_a_step_that_preempted_admits_nothing(strategy_factory):
    """vLLM 0.33.0 admits no waiting request in a step that preempted (`if not preempted_reqs`)."""
    first = Request(0, 0.0, TokenSequence.synthetic("a", 4), num_output_tokens=9)
    second = Request(1, 0.0, TokenSequence.synthetic("b", 4), num_output_tokens=4)
    strategy = strategy_factory("paged", num_blocks=4)
    config = SchedulerConfig(2, 4, True, reserve_full_prompt=False)  # the rule below alone
    scheduler = Scheduler(strategy, config, [first, second], 128, seed=0)
    trace = []
    for result in run_steps(scheduler, FixedStepTime()):
        tables = {g.request_id: strategy.block_table(g.seqs[0].seq_id) for g in scheduler.running.values()}
        trace.append((result.step.num_preemptions, len(result.step.prefills), tables, strategy.snapshot().free_queue))
    # Step 5: the first request's decode needs a third block, so the second (blocks 2 and 3) is
    # preempted; the first takes block 3 and block 2 stays free: the second comes back a step later.
    assert trace[4] == (0, 0, {0: [0, 1], 1: [2, 3]}, [])
    assert trace[5] == (1, 0, {0: [0, 1, 3]}, [2])
    assert trace[6] == (0, 1, {0: [0, 1, 3], 1: [2]}, [])
    assert [t[:2] for t in trace if t[0]] == [(1, 0), (1, 0)]


def test_chunked_prefill_admits_a_prompt_only_when_all_of_it_fits(strategy_factory):
    """vLLM 0.33.0's scheduler_reserve_full_isl: the whole prompt must fit, not just its first chunk."""
    first = Request(0, 0.0, TokenSequence.synthetic("a", 4), num_output_tokens=9)
    second = Request(1, 0.0, TokenSequence.synthetic("b", 4), num_output_tokens=4)
    strategy = strategy_factory("paged", num_blocks=4)
    scheduler = Scheduler(strategy, SchedulerConfig(2, 4, True), [first, second], 128, seed=0)
    trace = []
    for result in run_steps(scheduler, FixedStepTime()):
        tables = {g.request_id: strategy.block_table(g.seqs[0].seq_id) for g in scheduler.running.values()}
        trace.append((result.step.num_preemptions, len(result.step.prefills), tables, strategy.snapshot().free_queue))
    assert trace[5] == (1, 0, {0: [0, 1, 3]}, [2])
    # The preempted request must recompute 7 tokens (2 blocks); one block is free, so it waits
    # instead of taking a 3-token chunk into block 2 and being preempted again.
    assert trace[6] == (0, 0, {0: [0, 1, 3]}, [2])
    assert trace[7] == (0, 0, {0: [0, 1, 3]}, [2])
    assert trace[9] == (0, 1, {1: [3]}, [1, 0, 2])
    assert sum(t[0] for t in trace) == 1
