"""The proof that a KV-cache strategy never changes what the model computes.

One seeded workload with parallel sampling (n=2: forks, copy-on-write) and shared prefixes
(prefix caching) runs on the device executor (CPU, float64, torch kernels) under every strategy:
every sequence must generate exactly the tokens a dense model with no KV cache generates, and
every logits row it sampled from must equal the dense model's within float64 rounding. In a pool
so small that every strategy preempts and recomputes, each sequence is checked on its own; in a
roomier pool every strategy must also give the same tokens_sha256.
"""

from __future__ import annotations

import hashlib

import pytest
from kvbench.strategies import STRATEGIES

PRESETS = sorted({*STRATEGIES.names(), "orca_max", "orca_pow2", "orca_oracle"})
WORKLOAD = [
    "workload=synthetic", "workload.num_requests=24", "workload.arrival=offline",
    "workload.prompt.min=4", "workload.prompt.max=40", "workload.output.min=1", "workload.output.max=24",
    "workload.shared_prefix_tokens=20", "workload.num_prefix_groups=2", "workload.n=2",
    "engine.dtype=float64", "engine.record_logits=true", "scheduler.max_num_batched_tokens=256",
]
# 781 token slots: too few for every request at once, so every strategy preempts and recomputes.
SMALL_POOL = "kv_cache_bytes=200000"
# 1171 token slots: some strategies preempt, but no request loses a sample to a preemption while
# forking (see test_every_strategy_gives_the_same_tokens_sha256).
ROOMY_POOL = "kv_cache_bytes=300000"
# float64 through two layers and a 512-way softmax: differences are rounding, ~1e-15.
LOGITS_ATOL = 1e-9
# The proof is only as good as its workload: what each built-in strategy must have done in the
# small pool (step-table counters, summed over the run).
EXERCISED = {
    "paged": ("preemptions", "fork_copied_blocks"),
    "paged_cow": ("preemptions", "cow_copies"),
    "paged_prefix": ("preemptions", "cow_copies", "prefix_hit_tokens"),
    "contiguous": ("preemptions", "fork_copied_blocks"),
    "orca_max": ("preemptions", "fork_copied_blocks"),
    "orca_pow2": ("preemptions", "fork_copied_blocks"),
    "orca_oracle": ("preemptions", "fork_copied_blocks"),
    "paged_radix": ("prefix_hit_tokens", "evicted_blocks"),  # token pages: shares too well to preempt, never copies
    "vattention": ("preemptions", "fork_copied_blocks", "pages_mapped", "pages_unmapped"),
    "hf_dynamic": ("preemptions", "fork_copied_blocks", "reallocations", "tokens_copied"),
    "hf_static": ("preemptions", "fork_copied_blocks"),
}
# Settings a strategy needs for the two-layer test model: vattention's smallest real page (64 KiB)
# would hold 1024 of its tokens, more than the pool; 1 KiB pages hold 16.
STRATEGY_OVERRIDES = {"vattention": ["strategy.page_bytes=1024"]}


def sha_of(texts: dict[int, str]) -> str:
    digest = hashlib.sha256()
    for request_id in sorted(texts):
        digest.update(f"{request_id} {texts[request_id]}\n".encode())
    return digest.hexdigest()


def generated_texts(recorder) -> dict[int, str]:
    requests = recorder.requests_table()
    return dict(zip(requests["request_id"], requests["generated_token_ids"]))


@pytest.mark.parametrize("strategy", PRESETS)
def test_every_sequence_generates_the_dense_models_tokens(strategy, run_device, dense_continuations, max_logit_error):
    run, recorder = run_device([f"strategy={strategy}", *STRATEGY_OVERRIDES.get(strategy, []), SMALL_POOL, *WORKLOAD])
    engine = run.executor.engine
    dense = dense_continuations(engine, run.workload.requests)
    generated = generated_texts(recorder)

    for request in run.workload.requests:
        samples = generated[request.request_id].split("|")
        assert samples == [dense[request.request_id]] * len(samples), f"request {request.request_id}"
        recorded = {position for record in engine.book.finished[request.request_id] for position in record.logits}
        first, end = request.num_prompt_tokens - 1, request.num_prompt_tokens + request.num_output_tokens - 1
        assert recorded >= set(range(first, end)), "every generated position has a logits row to check"
    assert run.executor.summary_fields()["tokens_sha256"] == sha_of(generated)
    assert max_logit_error(engine) <= LOGITS_ATOL
    totals = recorder.steps_table().sum(numeric_only=True)
    for counter in EXERCISED.get(strategy, ()):
        assert totals[counter] > 0, f"the workload never made {strategy} do {counter}"


def test_every_strategy_gives_the_same_tokens_sha256(run_device, dense_continuations):
    shas = {}
    for strategy in PRESETS:
        overrides = [f"strategy={strategy}", *STRATEGY_OVERRIDES.get(strategy, []), ROOMY_POOL, *WORKLOAD]
        run, recorder = run_device([*overrides, "engine.record_logits=false"])
        requests_by_id = {r.request_id: r for r in run.workload.requests}
        for request_id, text in generated_texts(recorder).items():
            request = requests_by_id[request_id]
            # A request with one output token finishes at its prefill, before it forks its samples.
            expected = request.num_seqs if request.num_output_tokens > 1 else 1
            assert text.count("|") + 1 == expected, f"{strategy}: request {request_id} lost samples"
        shas[strategy] = run.executor.summary_fields()["tokens_sha256"]
    dense = dense_continuations(run.executor.engine, run.workload.requests)
    expected_texts = {
        r.request_id: "|".join([dense[r.request_id]] * (r.num_seqs if r.num_output_tokens > 1 else 1))
        for r in run.workload.requests
    }
    assert set(shas.values()) == {sha_of(expected_texts)}, shas
