"""kvbench's scheduler + `paged_prefix` against vLLM 0.33.0's own scheduler and block pool, step by step.

Skipped unless the oracle is installed (`scripts/install_vllm_oracle.sh`). Each case is a seeded
request list (shared system prompts, exact repeats, later turns quoting earlier replies; block
size 1, 16 or 32; max_num_seqs 1-64; pools from just enough for the longest request to room for
everything), once with a token budget that never chunks and once with one that splits long
prompts across steps (chunked prefill); every step must agree on prefix hits, preemptions, scheduled tokens, the running and
waiting queues, free blocks and every block table.
"""

from __future__ import annotations

import pytest

from kvbench.oracle.cases import make_case
from kvbench.oracle.compare import first_divergence

from .conftest import NEEDS_ORACLE, NUM_CASES

pytestmark = NEEDS_ORACLE


@pytest.mark.parametrize("chunked", [False, True], ids=["whole-prompts", "chunked"])
@pytest.mark.parametrize("seed", range(NUM_CASES))
def test_step_exact_against_vllm(seed, chunked):
    from kvbench.oracle import kvbench_replay, vllm_replay

    case = make_case(seed, chunked)
    divergence = first_divergence(vllm_replay.replay(case), kvbench_replay.replay(case))
    assert divergence is None, f"{case.name}: {divergence} (vLLM vs kvbench)"
