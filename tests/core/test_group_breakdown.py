"""The memory breakdown per layer group: step columns, summary fields and the text report's lines,
for strategies that keep a block table per group; none of them for every other run."""

from __future__ import annotations

import math

import pandas as pd

from kvbench.compose import compose
from kvbench.metrics import StepTotals, summarize
from kvbench.report_text import summary_table
from kvbench.runner import build, simulate

COMMON = ["model.max_model_len=4096", "hardware=h100-sxm", "workload=sharegpt", "workload.num_requests=30",
          "kv_cache_bytes=2147483648"]


def run(*overrides: str):
    the_run = build(compose([*overrides, *COMMON]))
    records = simulate(the_run, progress=False)
    steps = records.steps_table()
    summary = summarize(StepTotals.of(steps), records.requests_table(), the_run.budget.kv_cache_bytes, records.end_time_s)
    return the_run, steps, summary


def test_each_group_holds_its_share_of_the_held_blocks_at_every_step():
    the_run, steps, summary = run("model=gemma-2-9b", "strategy=paged_prefix")
    groups = ("kv_group0", "kv_group1")  # gemma-2: a full group and a sliding-window group (window 4096)
    held = steps[[f"{g}_held_bytes" for g in groups]].sum(axis=1)
    tokens = steps[[f"{g}_token_bytes" for g in groups]].sum(axis=1)
    pd.testing.assert_series_equal(held, steps[["token_bytes", "reserved_bytes", "internal_frag_bytes"]].sum(axis=1),
                                   check_names=False)
    pd.testing.assert_series_equal(tokens, steps["token_bytes"], check_names=False)
    page_bytes = the_run.budget.kv_bytes_per_token * the_run.budget.block_size
    assert (steps["kv_group0_held_bytes"] % page_bytes == 0).all()
    assert math.isclose(sum(summary[f"{g}_token_frac"] for g in groups), summary["mem_token_frac"], rel_tol=1e-9)
    assert summary["kv_group0_max_held_bytes"] == steps["kv_group0_held_bytes"].max() > 0
    lines = summary_table([{**summary, "strategy": "paged_prefix"}]).splitlines()
    assert lines[-2].startswith("paged_prefix layer group 0: held ") and "layer group 1" in lines[-1]


def test_windows_make_the_sliding_group_hold_less_than_the_full_group():
    _, steps, summary = run("model=gpt-oss-20b", "strategy=paged", "workload.rate=32")  # window 128
    assert (steps["kv_group1_held_bytes"] <= steps["kv_group0_held_bytes"]).all()
    assert summary["kv_group1_held_frac"] < summary["kv_group0_held_frac"]


def test_runs_without_layer_groups_have_no_group_columns():
    _, steps, summary = run("model=gemma-2-9b", "strategy=orca_max")  # keeps every token in one table
    assert not [c for c in steps.columns if c.startswith("kv_group")]
    assert not [k for k in summary if k.startswith("kv_group")]
    assert "layer group" not in summary_table([summary])
