"""The ITL distribution from per-step aggregates equals numpy's statistics over every token's gap."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np
import pytest

from kvbench.executors.base import Executor
from kvbench.inter_token_latency import InterTokenLatencies
from kvbench.request import Request
from kvbench.scheduler import Phase, Scheduler, SchedulerConfig
from kvbench.tokens import TokenSequence

from .conftest import make_strategy, mixed_requests

CHUNKED = SchedulerConfig(max_num_seqs=16, max_num_batched_tokens=64, chunked_prefill=True)
V0 = SchedulerConfig(max_num_seqs=16, max_num_batched_tokens=128, chunked_prefill=False)
PERCENTILES = (1, 10, 25, 50, 75, 90, 99)


class TokenCountedTime(Executor):
    """Steps whose length depends on their tokens, so gaps differ from step to step."""

    def execute(self, plan) -> float:
        return 0.01 + 0.0003 * plan.num_prefill_tokens + 0.0001 * plan.num_decode_seqs


def run_with_every_token_time(strategy, requests, config, lazy=True, num_swap_blocks=0):
    """The aggregated recorder, and the brute force: each request's every token time, from the plans."""
    scheduler = Scheduler(strategy, config, requests, 128, seed=0, lazy_decode=lazy, num_swap_blocks=num_swap_blocks)
    itl = scheduler.token_events = InterTokenLatencies()
    token_times_s: dict[int, list[float]] = defaultdict(list)
    clock_s, executor, num_preemptions = 0.0, TokenCountedTime(), 0
    while scheduler.has_work():
        step = scheduler.schedule(clock_s)
        if step is None:
            clock_s = scheduler.next_arrival_time_s()
            continue
        # Every request decoding in a step samples a token; a prefilling one samples one if its
        # prefill completes (it may be preempted by a fork before or after that, in `complete`).
        producing = [g for g in scheduler.running.values() if g.phase is Phase.DECODE] if step.tick else []
        prefilling = {c.seq.group: c.seq.group.num_generated_tokens for c in step.prefills}
        end_s = clock_s + executor.execute(step)
        scheduler.complete(step, end_s)
        producing += [group for group, before in prefilling.items() if group.num_generated_tokens > before]
        itl.step_done(step, end_s)
        for group in producing:
            token_times_s[group.request_id].append(end_s)
        num_preemptions += step.num_preemptions
        clock_s = end_s
    gaps_ms = np.concatenate([np.diff(times) for times in token_times_s.values()]) * 1000
    return itl, gaps_ms, num_preemptions


@pytest.mark.parametrize("config", [CHUNKED, V0], ids=["chunked", "v0"])
@pytest.mark.parametrize(("name", "num_blocks"), [("paged", 160), ("paged_cow", 120), ("paged_prefix", 1000)])
def test_the_aggregated_distribution_equals_numpy_over_every_gap(name, num_blocks, config):
    """Small pools preempt (irregular gaps); parallel samples and beams fork; v0 interleaves prefills."""
    itl, gaps_ms, num_preemptions = run_with_every_token_time(make_strategy(name, num_blocks), mixed_requests(), config)
    if num_blocks < 1000:
        assert num_preemptions > 0, "the pool should be small enough to preempt"
    assert itl.num_gaps == len(gaps_ms) > 0
    assert len(np.unique(gaps_ms)) > 3, "gaps should differ"
    stats = itl.stats_ms(PERCENTILES)
    assert stats["mean_itl_ms"] == pytest.approx(np.mean(gaps_ms), rel=1e-12)
    assert stats["std_itl_ms"] == pytest.approx(np.std(gaps_ms), rel=1e-9)
    assert stats["median_itl_ms"] == pytest.approx(np.median(gaps_ms), rel=1e-12)
    for p in PERCENTILES:
        assert stats[f"p{p}_itl_ms"] == pytest.approx(np.percentile(gaps_ms, p), rel=1e-12), p


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "v0"])
def test_swapped_requests_resume_with_one_gap_from_their_last_token(chunked):
    """A swapped-out request decodes again without a prefill: its gap spans the time it was away."""
    config = dataclasses.replace(CHUNKED if chunked else V0, preemption="swap")
    itl, gaps_ms, num_preemptions = run_with_every_token_time(
        make_strategy("paged", 160), mixed_requests(), config, num_swap_blocks=64
    )
    assert num_preemptions > 0
    stats = itl.stats_ms(PERCENTILES)
    assert itl.num_gaps == len(gaps_ms)
    assert stats["mean_itl_ms"] == pytest.approx(np.mean(gaps_ms), rel=1e-12)
    for p in PERCENTILES:
        assert stats[f"p{p}_itl_ms"] == pytest.approx(np.percentile(gaps_ms, p), rel=1e-12), p


def test_lazy_and_eager_decoding_give_the_same_distribution():
    lazy, _, _ = run_with_every_token_time(make_strategy("paged", 160), mixed_requests(), CHUNKED, lazy=True)
    eager, _, _ = run_with_every_token_time(make_strategy("paged", 160), mixed_requests(), CHUNKED, lazy=False)
    assert lazy.stats_ms(PERCENTILES) == eager.stats_ms(PERCENTILES)


def test_a_prefill_step_between_two_decodes_is_one_longer_gap():
    """Without chunked prefill, a later arrival's prefill step stalls the decoding request."""
    first = Request(0, 0.0, TokenSequence.synthetic("a", 8), num_output_tokens=4)
    second = Request(1, 0.015, TokenSequence.synthetic("b", 8), num_output_tokens=1)
    itl, gaps_ms, _ = run_with_every_token_time(make_strategy("paged", 64), [first, second], V0)
    # Steps: prefill a (0 -> 0.0124), decode (+0.0101), prefill b (+0.0124), decode, decode.
    assert gaps_ms.tolist() == pytest.approx([10.1, 12.4 + 10.1, 10.1])
    assert itl.stats_ms(())["median_itl_ms"] == pytest.approx(10.1)


def test_no_gap_gives_no_figures():
    only_one_token = Request(0, 0.0, TokenSequence.synthetic("a", 8), num_output_tokens=1)
    itl, gaps_ms, _ = run_with_every_token_time(make_strategy("paged", 64), [only_one_token], CHUNKED)
    assert len(gaps_ms) == 0 and itl.stats_ms((99,)) == dict.fromkeys(
        ("mean_itl_ms", "median_itl_ms", "std_itl_ms", "p99_itl_ms"))


def test_a_request_preempted_by_a_fork_right_after_its_first_decode_keeps_both_gaps():
    """Events as the scheduler reports them when a fork in `complete` preempts a request that joined
    decoding in the previous step and has just decoded (its first decode gap and its recompute's)."""
    from kvbench.scheduler import StepPlan
    from kvbench.sequence import RequestState

    itl = InterTokenLatencies()
    group = RequestState(Request(0, 0.0, TokenSequence.synthetic("a", 8), num_output_tokens=9))
    group.phase = Phase.DECODE
    itl.step_done(StepPlan(0, tick=1), 1.0)
    itl.prefill_token(group, 1.5, computed_tick=1, last=False)  # a prefill-only step (v0) after tick 1
    itl.preempted(group, computed_tick=2)  # while completing tick 2, in which it decoded
    itl.step_done(StepPlan(1, tick=2, num_decode_requests=1), 2.25)
    itl.prefill_token(group, 4.0, computed_tick=3, last=False)  # its recompute samples the next token
    stats = itl.stats_ms((0, 100))
    assert itl.num_gaps == 2 and (stats["p0_itl_ms"], stats["p100_itl_ms"]) == pytest.approx((750, 1750))


def test_memory_per_decode_tick_is_a_few_bytes():
    """A million-step run must not hold a float object and list slots per tick (80 MB; issue 16)."""
    import tracemalloc

    from kvbench.scheduler import StepPlan

    itl = InterTokenLatencies()
    num_ticks = 50_000
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    for tick in range(1, num_ticks + 1):
        step = StepPlan(step_index=tick - 1, tick=tick, num_decode_requests=int(tick > 1))
        itl.step_done(step, tick * 0.01 + (tick % 7) * 1e-4)  # gaps that differ from tick to tick
    grown, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert itl.num_gaps == num_ticks - 1
    assert (grown - before) / num_ticks < 40  # three 8-byte entries per tick, with the arrays' headroom
