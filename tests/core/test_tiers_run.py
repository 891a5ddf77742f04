"""Tiers below the GPU pool in a whole simulated run: the plan carries the load time, the executor
charges it, the summary reports it; without a tier capacity nothing changes."""

from __future__ import annotations

import pytest

from kvbench.compose import compose
from kvbench.metrics import event_totals
from kvbench.runner import build, simulate

# A pool too small for the sessions' history, so evicted turns come back from the CPU tier.
RUN = ["strategy=paged_prefix", "workload=sharegpt_multiturn", "workload.num_sessions=40", "model=llama-3-8b",
       "kv_cache_bytes=1073741824"]
CPU_TIER = "strategy.tiers.cpu.capacity_bytes=8589934592"


def run(*overrides):
    built = build(compose([*RUN, *overrides]))
    recorder = simulate(built, progress=False)
    return built, recorder


def test_without_a_tier_the_run_has_no_tier_figures():
    built, recorder = run()
    assert built.strategy.tiers is None
    assert "kv_load_s" not in built.executor.summary_fields()
    assert not any(name.startswith("tier_") for name in event_totals(recorder.step_totals))


@pytest.mark.parametrize("overlap", [False, True])
def test_tier_hits_are_loaded_and_charged(overlap):
    plain, plain_recorder = run()
    built, recorder = run(CPU_TIER, f"strategy.tiers.overlap_load={str(overlap).lower()}")
    totals = event_totals(recorder.step_totals)
    hits = recorder.step_totals.counts["prefix_hit_tokens"]
    assert totals["tier_cpu_hit_tokens"] > 0
    assert hits > plain_recorder.step_totals.counts["prefix_hit_tokens"]  # the tier finds what the pool lost
    assert totals["tier_cpu_load_bytes"] == totals["tier_cpu_hit_tokens"] * built.model.kv_bytes_per_token
    fields = built.executor.summary_fields()
    assert fields["kv_load_s"] == pytest.approx(totals["tier_cpu_load_bytes"] / 25e9)
    if overlap:
        assert 0 <= fields["kv_load_exposed_s"] < fields["kv_load_s"]
    else:
        assert fields["kv_load_exposed_s"] == pytest.approx(fields["kv_load_s"])
