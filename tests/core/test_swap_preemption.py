"""Swap preemption (scheduler.preemption=swap): requests move whole to the swap space and back."""

from __future__ import annotations

import dataclasses

import pytest

from kvbench.errors import ConfigError
from kvbench.executors.base import Executor
from kvbench.request import Request
from kvbench.scheduler import Scheduler, SchedulerConfig
from kvbench.step_loop import run_steps
from kvbench.strategies import STRATEGIES
from kvbench.strategies.paged_cow import PagedCowConfig, PagedCowStrategy
from kvbench.tokens import TokenSequence

from .test_scheduler import CHUNKED, V0

SWAPPING = [name for name in STRATEGIES.names() if STRATEGIES.get(name).supports_swap]
SWAP_CHUNKED = dataclasses.replace(CHUNKED, preemption="swap")
SWAP_V0 = dataclasses.replace(V0, preemption="swap")


def test_the_paged_family_swaps():
    assert {"paged", "paged_cow", "paged_prefix"} <= set(SWAPPING)


@pytest.mark.parametrize("config", [SWAP_CHUNKED, SWAP_V0], ids=["chunked", "v0"])
@pytest.mark.parametrize("name", SWAPPING)
def test_lazy_decoding_matches_syncing_every_token_with_swap(name, config, requests, strategy_factory, driver):
    """Swapped requests resume in the lazy decode set exactly as if every token were synced."""
    lazy = driver(strategy_factory(name, num_blocks=160), requests, config, num_swap_blocks=200)
    eager_strategy = strategy_factory(name, num_blocks=160)
    eager = driver(eager_strategy, requests, config, lazy=False, check_every_step=True, num_swap_blocks=200)
    assert lazy.rows() == eager.rows()
    stats = eager.scheduler.swap_stats
    assert stats.num_swap_outs > 0, "the pool should be small enough to swap"
    assert stats.num_swap_ins == stats.num_swap_outs and stats.swap_in_blocks == stats.swap_out_blocks
    assert sorted(g.request_id for g in eager.finished) == [r.request_id for r in requests]
    usage = eager_strategy.usage()
    assert usage.token_slots == usage.reserved_slots == usage.internal_frag_slots == 0
    assert eager.scheduler.swap_space.num_free_blocks == 200


def _long_decodes(num_requests: int, output_tokens: int = 40) -> list[Request]:
    return [Request(request_id=i, arrival_time_s=0.0, prompt=TokenSequence.synthetic(("p", i), 8),
                    num_output_tokens=output_tokens) for i in range(num_requests)]


def test_a_swapped_request_resumes_without_recomputing_and_generates_the_same_tokens(strategy_factory, driver):
    requests = _long_decodes(6)
    swap = driver(strategy_factory("paged", num_blocks=40), requests, SWAP_CHUNKED, num_swap_blocks=100,
                  check_every_step=True)
    recompute = driver(strategy_factory("paged", num_blocks=40), requests, CHUNKED)
    assert swap.scheduler.swap_stats.num_swap_outs > 0 and swap.scheduler.swap_stats.swap_fallback_recomputes == 0
    # Only the prompts are ever prefilled: a swapped request picks up its decode where it stopped.
    assert sum(s.num_prefill_tokens for s in swap.steps) == 8 * len(requests)
    assert sum(s.num_prefill_tokens for s in recompute.steps) > 8 * len(requests)
    for trace in (swap, recompute):
        assert all(g.num_generated_tokens == 40 for g in trace.finished)


def test_a_full_swap_space_falls_back_to_recompute_and_counts_it(strategy_factory, driver):
    trace = driver(strategy_factory("paged", num_blocks=40), _long_decodes(6), SWAP_CHUNKED, num_swap_blocks=12,
                   check_every_step=True)
    stats = trace.scheduler.swap_stats
    assert stats.swap_fallback_recomputes > 0 and stats.num_swap_outs > 0
    assert stats.max_swapped_blocks <= 12
    assert sum(s.num_preemptions for s in trace.steps) == stats.num_swap_outs + stats.swap_fallback_recomputes
    assert len(trace.finished) == 6


def test_parallel_samples_swap_their_shared_blocks_once(strategy_factory, driver):
    requests = [Request(request_id=i, arrival_time_s=0.0, prompt=TokenSequence.synthetic(("p", i), 16),
                        num_output_tokens=30, n=3) for i in range(4)]
    trace = driver(strategy_factory("paged_cow", num_blocks=40), requests, SWAP_CHUNKED, num_swap_blocks=100,
                   check_every_step=True, with_block_tables=True)
    swap_outs = [s.swap_out_copies for s in trace.steps if s.swap_out_copies]
    assert swap_outs, "the pool should be small enough to swap"
    for step in trace.steps:
        if step.swap_out_copies:
            # Three samples share the prompt's 4 blocks: a swapped request moves them once.
            assert step.num_swap_out_blocks == len(step.swap_out_copies) == len({src for src, _ in step.swap_out_copies})
        if step.swap_in_copies:
            assert step.num_swap_in_blocks == len(step.swap_in_copies)
    stats = trace.scheduler.swap_stats
    tables_if_unshared = 3 * 4  # at least the prompt's blocks per sample
    assert stats.swap_out_blocks < stats.num_swap_outs * (tables_if_unshared + 3 * 8)
    assert all(g.num_generated_tokens == 90 for g in trace.finished)


def test_swap_copies_come_in_the_plan_only_for_an_executor_that_moves_kv(strategy_factory, driver):
    trace = driver(strategy_factory("paged", num_blocks=40), _long_decodes(6), SWAP_CHUNKED, num_swap_blocks=100)
    assert any(s.num_swap_out_blocks for s in trace.steps)
    assert all(s.swap_out_copies is None and s.swap_in_copies is None for s in trace.steps)


def test_beam_search_and_mid_prefill_preemptions_recompute(strategy_factory, driver):
    requests = [Request(request_id=i, arrival_time_s=0.0, prompt=TokenSequence.synthetic(("p", i), 8),
                        num_output_tokens=30, beam_width=3) for i in range(4)]
    trace = driver(strategy_factory("paged_cow", num_blocks=30), requests, SWAP_CHUNKED, num_swap_blocks=100,
                   check_every_step=True)
    stats = trace.scheduler.swap_stats
    assert stats.num_swap_outs == 0 and stats.num_recompute_preemptions > 0
    assert len(trace.finished) == 4


@pytest.mark.parametrize("name", sorted(set(STRATEGIES.names()) - set(SWAPPING)))
def test_a_strategy_that_cannot_swap_says_why(name, strategy_factory):
    strategy = strategy_factory(name, num_blocks=64)
    with pytest.raises(ConfigError, match=f"scheduler.preemption=swap: strategy {name} cannot swap: "):
        Scheduler(strategy, SWAP_CHUNKED, [], 128, seed=0, num_swap_blocks=10)
    with pytest.raises(NotImplementedError, match="cannot swap"):
        strategy.swap_out([])


def test_an_unknown_preemption_mode_names_the_setting(strategy_factory):
    with pytest.raises(ConfigError, match="scheduler.preemption='spill' must be one of recompute, swap"):
        Scheduler(strategy_factory("paged", num_blocks=64), SchedulerConfig(preemption="spill"), [], 128, seed=0)


class SeenAtExecution(Executor):
    """Counts the swap copies a plan carries when it is executed."""

    def __init__(self):
        self.swap_out_blocks = self.swap_in_blocks = 0
        self.last_plan = None

    def execute(self, plan) -> float:
        self.last_plan = plan
        self.swap_out_blocks += plan.num_swap_out_blocks
        self.swap_in_blocks += plan.num_swap_in_blocks
        return 0.01


class ForkNeedsRoom(PagedCowStrategy):
    """Shares on fork, but refuses one unless a copy of the parent's table would fit: the forks of
    beam search, at the end of a step, then preempt the requests admitted after them."""

    def fork(self, parent_id, child, num_computed_tokens):
        if len(self.tables.seqs[parent_id].blocks) > self.pool.num_free_blocks:
            return False
        return super().fork(parent_id, child, num_computed_tokens)


@pytest.mark.parametrize("config", [SWAP_CHUNKED, SWAP_V0], ids=["chunked", "v0"])
def test_every_swap_is_in_a_plan_before_it_runs_even_one_made_while_forking(config):
    """A swap-out made while completing a step (a fork found no room) belongs to the next plan:
    the step already run cannot copy out the blocks the next one may reuse."""
    beams = Request(request_id=0, arrival_time_s=0.0, prompt=TokenSequence.synthetic(("p", 0), 20),
                    num_output_tokens=20, beam_width=3)
    requests = [beams] + [Request(request_id=i, arrival_time_s=0.001 * i, prompt=TokenSequence.synthetic(("p", i), 8),
                                  num_output_tokens=40) for i in range(1, 6)]
    scheduler = Scheduler(ForkNeedsRoom(PagedCowConfig(block_size=4), 40, 128), config, requests, 128, seed=0,
                          num_swap_blocks=100)
    executor = SeenAtExecution()
    completing = []
    swap_out = scheduler._swap_out

    def watched_swap_out(group):  # note swap-outs made inside complete()
        swapped = swap_out(group)
        completing.append(swapped and scheduler._step is executor.last_plan)
        return swapped

    scheduler._swap_out = watched_swap_out
    for _ in run_steps(scheduler, executor):
        pass
    assert any(completing), "a fork should have swapped a request out while a step completed"
    stats = scheduler.swap_stats
    assert executor.swap_out_blocks == stats.swap_out_blocks and executor.swap_in_blocks == stats.swap_in_blocks
