"""The scheduler over window-aware strategies: lazy decoding stays exact when a sequence's headroom
ends where a sliding-window block leaves the window, and every request finishes."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from kvbench.model_spec import KVGroup
from kvbench.strategies import STRATEGIES

from .conftest import drive
from .test_scheduler import CHUNKED, V0

GROUPS = {
    "gemma-like": [KVGroup(0, 1), KVGroup(8, 1), KVGroup(8, 1)],  # 1 global : 2 local
    "mistral-like": [KVGroup(12, 1)],  # every layer windowed
}
NUM_BLOCKS = {"gemma-like": 150, "mistral-like": 40}  # small enough to preempt


def make(name: str, groups, num_blocks: int):
    config = OmegaConf.to_object(OmegaConf.structured(STRATEGIES.schema(name)))
    config.block_size = 4
    return STRATEGIES.get(name)(config, num_blocks, 128, kv_groups=groups)


@pytest.mark.parametrize("config", [CHUNKED, V0], ids=["chunked", "v0"])
@pytest.mark.parametrize("model", GROUPS)
@pytest.mark.parametrize("name", ["paged", "paged_cow"])
def test_lazy_decoding_matches_syncing_every_token_with_sliding_windows(name, model, config, requests):
    lazy = drive(make(name, GROUPS[model], NUM_BLOCKS[model]), requests, config, lazy=True)
    eager_strategy = make(name, GROUPS[model], NUM_BLOCKS[model])
    eager = drive(eager_strategy, requests, config, lazy=False, check_every_step=True)
    assert lazy.rows() == eager.rows()
    assert sum(s.num_preemptions for s in lazy.steps) > 0, "the pool should be small enough to preempt"
    assert sorted(g.request_id for g in lazy.finished) == [r.request_id for r in requests]
    assert [g.request_id for g in lazy.finished] == [g.request_id for g in eager.finished]
    usage = eager_strategy.usage()
    assert usage.token_slots == usage.reserved_slots == usage.internal_frag_slots == 0


@pytest.mark.parametrize("name", ["paged", "paged_cow"])
def test_releasing_the_window_admits_more_at_once(name, requests):
    """The same pool holds more running sequences when sliding groups release their old blocks."""
    windowed = drive(make(name, GROUPS["gemma-like"], 240), requests, CHUNKED)
    full = drive(make(name, None, 240 // 3), requests, CHUNKED)  # three full groups: a third of the pages each
    assert max(s.batch_size for s in windowed.steps) >= max(s.batch_size for s in full.steps)
    assert sum(s.num_preemptions for s in windowed.steps) < sum(s.num_preemptions for s in full.steps)
