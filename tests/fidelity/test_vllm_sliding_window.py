"""kvbench's scheduler + window-aware strategies against vLLM 0.33.0's hybrid KV cache manager, step by step.

Each layer group holds one layer of one page size. Without prefix caching the model has a full
and a sliding-window group (window 3, 8 or 33) and kvbench runs `paged` (vLLM's
`SlidingWindowManager` under its hybrid coordinator, prefix caching off). With prefix caching
kvbench runs `paged_prefix` against vLLM's coordinators with prefix caching on, for three shapes:
every layer sliding (Mistral-like: vLLM's unitary coordinator), full + sliding interleaved
(Gemma-2-like: its hybrid coordinator, one pass) and full + two sliding groups (Gemma-3-like: two
groups looked up together). The cases are the differential suite's request lists (shared system
prompts, repeats, later turns quoting earlier replies) with the pool times the number of groups,
since every token takes a slot in each. Every step must agree on prefix hits, scheduled tokens,
preemptions, the queues, free blocks and every group's block table, with blocks released out of
the window as vLLM's null block (-1). Skipped unless the oracle is installed
(`scripts/install_vllm_oracle.sh`).
"""

from __future__ import annotations

import dataclasses

import pytest

from kvbench.oracle.cases import make_case
from kvbench.oracle.compare import first_divergence

from .conftest import NEEDS_ORACLE, NUM_CASES

WINDOWS = (3, 8, 33)
SHAPES = {"mistral": lambda w: (w,), "gemma2": lambda w: (0, w), "gemma3": lambda w: (0, w, w)}

pytestmark = NEEDS_ORACLE


def _divergence(seed: int, chunked: bool, windows: tuple[int, ...], prefix_caching: bool):
    from kvbench.oracle import kvbench_replay, vllm_replay

    case = make_case(seed, chunked)
    case = dataclasses.replace(case, num_blocks=len(windows) * case.num_blocks)
    divergence = first_divergence(
        vllm_replay.replay(case, windows=windows, prefix_caching=prefix_caching),
        kvbench_replay.replay(case, windows=windows, prefix_caching=prefix_caching),
    )
    return f"{case.name} windows {windows}: {divergence} (vLLM vs kvbench)" if divergence else None


@pytest.mark.parametrize("chunked", [False, True], ids=["whole-prompts", "chunked"])
@pytest.mark.parametrize("seed", range(NUM_CASES))
def test_sliding_window_groups_step_exact_against_vllm(seed, chunked):
    window = WINDOWS[seed % len(WINDOWS)]
    assert _divergence(seed, chunked, (0, window), prefix_caching=False) is None


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("chunked", [False, True], ids=["whole-prompts", "chunked"])
@pytest.mark.parametrize("seed", range(NUM_CASES))
def test_prefix_caching_on_window_groups_step_exact_against_vllm(seed, chunked, shape):
    windows = SHAPES[shape](WINDOWS[seed % len(WINDOWS)])
    assert _divergence(seed, chunked, windows, prefix_caching=True) is None
