"""kvbench's scheduler + window-aware `paged` against vLLM 0.33.0's hybrid KV cache manager, step by step.

The model has two layer groups of one page size each: full attention and a sliding window of 3,
8 or 33 tokens (vLLM's `SlidingWindowManager` under its hybrid coordinator, prefix caching off).
The cases are the differential suite's request lists with twice the pool, since every token now
takes a slot in each group. Every step must agree on scheduled tokens, preemptions, the queues,
free blocks and every group's block table, with blocks released out of the window as vLLM's
null block (-1). Skipped unless the oracle is installed (`scripts/install_vllm_oracle.sh`).
"""

from __future__ import annotations

import dataclasses

import pytest

from kvbench.oracle.cases import make_case
from kvbench.oracle.compare import first_divergence

from .conftest import NEEDS_ORACLE, NUM_CASES

WINDOWS = (3, 8, 33)

pytestmark = NEEDS_ORACLE


@pytest.mark.parametrize("chunked", [False, True], ids=["whole-prompts", "chunked"])
@pytest.mark.parametrize("seed", range(NUM_CASES))
def test_sliding_window_groups_step_exact_against_vllm(seed, chunked):
    from kvbench.oracle import kvbench_replay, vllm_replay

    case = make_case(seed, chunked)
    case = dataclasses.replace(case, num_blocks=2 * case.num_blocks)
    window = WINDOWS[seed % len(WINDOWS)]
    divergence = first_divergence(
        vllm_replay.replay(case, sliding_window=window), kvbench_replay.replay(case, sliding_window=window)
    )
    assert divergence is None, f"{case.name} window {window}: {divergence} (vLLM vs kvbench)"
