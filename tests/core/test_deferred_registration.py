"""paged_prefix registers the blocks that decoding fills late, in bulk (the scheduler's decode ticks:
`begin_decode_tick` / `end_decode_tick`); that must give, step by step, what registering each block
at the write that fills it gives, with the same block ids in every table."""

from __future__ import annotations

import numpy as np
import pytest

from kvbench.request import Request
from kvbench.strategies.paged_prefix import PagedPrefixStrategy
from kvbench.tokens import Synthetic, TokenSequence

from .conftest import drive, make_strategy, mixed_requests
from .test_scheduler import CHUNKED, V0


class RegisteringAtEveryFill(PagedPrefixStrategy):
    """paged_prefix blind to the decode ticks: a decoding sequence stops at each write that fills a
    block and registers it there (the reference the deferred registration must equal)."""

    def begin_decode_tick(self, tick: int) -> None:
        pass


def reference_strategy(num_blocks: int, block_size: int) -> RegisteringAtEveryFill:
    config = make_strategy("paged_prefix", num_blocks=num_blocks, block_size=block_size).config
    return RegisteringAtEveryFill(config, num_blocks, 128)


def quoting_requests(seed: int, num_requests: int = 40) -> list[Request]:
    """Conversations whose next turn arrives while the previous reply is still being generated and
    quotes as much of it as the arrival allows: the quote hits the blocks decoding has filled by
    then, so a block registered a tick late (or early) changes the hits."""
    rng = np.random.default_rng(seed)
    requests = []
    for i in range(num_requests):
        if i % 2 == 0:
            prompt = TokenSequence((Synthetic(("system", i % 3), 8), Synthetic(("user", i), int(rng.integers(1, 20)))))
            output = TokenSequence.synthetic(("reply", i), int(rng.integers(8, 48)))
            requests.append(Request(i, i * 0.004, prompt, len(output), output=output))
        else:  # 2 to 60 steps (10 ms each) after the reply it quotes began: before or after it ends
            quoted = requests[-1]
            num_quoted = int(rng.integers(1, len(quoted.output) + 1))
            prompt = TokenSequence((*quoted.prompt.segments, Synthetic(("reply", i - 1), num_quoted),
                                    Synthetic(("user", i), int(rng.integers(1, 8)))))
            arrival_time_s = quoted.arrival_time_s + float(rng.uniform(0.02, 0.6))
            requests.append(Request(i, arrival_time_s, prompt, int(rng.integers(1, 20))))
    return sorted(requests, key=lambda r: r.arrival_time_s)


WORKLOADS = {"mixed": mixed_requests, "quoting": quoting_requests}


def tables_by_step(trace) -> list[dict[int, list[int]]]:
    return [step.block_tables for step in trace.steps]


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("config", [CHUNKED, V0], ids=["chunked", "v0"])
@pytest.mark.parametrize("lazy", [True, False], ids=["lazy", "eager"])
# Pools that evict cached blocks, three of them tight enough to preempt; block size 1: every write fills a block.
@pytest.mark.parametrize(("seed", "num_blocks", "block_size"), [(0, 160, 4), (1, 96, 4), (2, 400, 1), (3, 120, 8)])
def test_deferred_registration_equals_registering_at_every_fill(workload, config, lazy, seed, num_blocks, block_size):
    requests = WORKLOADS[workload]
    deferred = drive(make_strategy("paged_prefix", num_blocks=num_blocks, block_size=block_size),
                     requests(seed=seed), config, lazy=lazy, check_every_step=True, with_block_tables=True)
    reference = drive(reference_strategy(num_blocks, block_size), requests(seed=seed), config, lazy=lazy,
                      check_every_step=True, with_block_tables=True)
    assert deferred.rows() == reference.rows()
    assert tables_by_step(deferred) == tables_by_step(reference)
    assert [g.request_id for g in deferred.finished] == [g.request_id for g in reference.finished]
    assert sum(s.num_prefix_hit_tokens for s in deferred.steps) > 0, "requests should share prefixes"
    assert deferred.scheduler.strategy.counters["evicted_blocks"] > 0, "cached blocks should be reused"
