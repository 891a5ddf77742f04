"""Requests, pools and a minimal step loop for scheduler tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from omegaconf import OmegaConf

from kvbench.executors.base import Executor
from kvbench.request import Request
from kvbench.scheduler import Scheduler, SchedulerConfig, StepPlan
from kvbench.sequence import RequestState
from kvbench.strategies import STRATEGIES
from kvbench.strategies.base import PoolUsage
from kvbench.step_loop import run_steps
from kvbench.strategies.invariants import check, check_swap
from kvbench.tokens import Synthetic, TokenSequence

STEP_TIME_S = 0.01


def mixed_requests(num_requests: int = 60, seed: int = 0) -> list[Request]:
    """Short requests arriving fast: some share a prefix, some sample in parallel, some use beams."""
    rng = np.random.default_rng(seed)
    requests = []
    for i in range(num_requests):
        prompt = TokenSequence((Synthetic(("system", i % 3), 12), Synthetic(("user", i), int(rng.integers(1, 40)))))
        requests.append(Request(
            request_id=i, arrival_time_s=i * 0.005, prompt=prompt, num_output_tokens=int(rng.integers(1, 50)),
            n=2 if i % 5 == 0 else 1, beam_width=3 if i % 7 == 3 and i % 5 else 1,
        ))
    return requests


def make_strategy(name: str, num_blocks: int, block_size: int = 4, max_model_len: int = 128, **options):
    config = OmegaConf.to_object(OmegaConf.structured(STRATEGIES.schema(name)))
    config.block_size = block_size
    for key, value in options.items():
        setattr(config, key, value)
    return STRATEGIES.get(name)(config, num_blocks, max_model_len)


@dataclass
class Trace:
    steps: list[StepPlan] = field(default_factory=list)
    usages: list[PoolUsage] = field(default_factory=list)
    finished: list[RequestState] = field(default_factory=list)
    scheduler: Scheduler | None = None

    def rows(self) -> list[tuple]:
        """What must not depend on how the scheduler tracks decodes."""
        return [
            (s.step_index, s.tick, s.batch_size, s.num_decode_seqs, s.decode_context_tokens, s.num_prefill_tokens,
             s.num_preemptions, s.num_prefix_hit_tokens, s.num_waiting_requests,
             u.token_slots, u.reserved_slots, u.internal_frag_slots, u.external_frag_slots, u.free_slots,
             u.cached_slots, u.logical_slots)
            for s, u in zip(self.steps, self.usages)
        ]


class FixedStepTime(Executor):
    def execute(self, plan) -> float:
        return STEP_TIME_S


def drive(strategy, requests, config: SchedulerConfig, lazy: bool = True, check_every_step: bool = False,
          max_model_len: int = 128, num_swap_blocks: int = 0, with_block_tables: bool = False) -> Trace:
    """Run the scheduler to the end with a fixed step time (the swap space: `num_swap_blocks`)."""
    scheduler = Scheduler(strategy, config, requests, max_model_len, seed=0, lazy_decode=lazy,
                          num_swap_blocks=num_swap_blocks, with_block_tables=with_block_tables)
    trace = Trace(scheduler=scheduler)
    for result in run_steps(scheduler, FixedStepTime()):
        trace.steps.append(result.step)
        trace.usages.append(result.usage)
        trace.finished.extend(result.finished)
        if check_every_step:
            check(strategy)
            if scheduler.swap_space is not None:
                check_swap(strategy, [(e.kv, e.host_block_ids) for e in scheduler.swapped],
                           scheduler.swap_space.num_blocks, scheduler.swap_space.free_block_ids())
    return trace


@pytest.fixture
def requests():
    return mixed_requests()


@pytest.fixture
def strategy_factory():
    return make_strategy


@pytest.fixture
def driver():
    return drive
