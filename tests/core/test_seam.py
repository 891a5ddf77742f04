"""The seam between scheduler, strategies and executors holds: executors see only the plan, the
plan carries what the strategy declares, declared events reach the tables, big pools are cheap."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kvbench
from kvbench.compose import compose
from kvbench.metrics import STEP_COLUMNS
from kvbench.results import read_table
from kvbench.runner import build, simulate

PACKAGE = Path(kvbench.__file__).parent
SMALL = ["workload=synthetic", "workload.num_requests=30", "workload.prompt.max=200", "workload.output.max=64",
         "model=tiny"]


def _imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


@pytest.mark.parametrize("path", sorted([*PACKAGE.glob("executors/*.py"), *PACKAGE.glob("device/*.py")]),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_executors_import_nothing_of_the_scheduler_or_strategies_but_the_plan(path):
    reached = {m for m in _imports(path) if m.startswith(("kvbench.strategies", "kvbench.scheduler"))}
    assert reached <= {"kvbench.scheduler.StepPlan"}, f"{path.name} reaches into {sorted(reached)}"


@pytest.mark.parametrize(("strategy", "layout"), [("paged", "paged"), ("orca_pow2", "contiguous")])
def test_the_plan_carries_the_layout_the_strategy_declares(strategy, layout):
    run = build(compose([f"strategy={strategy}", *SMALL]))
    plans = []
    execute = run.executor.execute
    run.executor.execute = lambda plan: plans.append(plan) or execute(plan)
    simulate(run, progress=False)
    assert plans and {plan.layout for plan in plans} == {layout}
    # The simulator needs no tables: plans carry them only for executors that move K/V.
    assert not any(plan.block_tables or plan.decodes or plan.block_copies for plan in plans)


def test_declared_events_become_step_columns_and_summary_fields(tmp_path):
    from kvbench.runner import execute

    overrides = ["strategy=paged_prefix", "workload.shared_prefix_tokens=64", "num_blocks=48", *SMALL]
    summary = execute(compose(overrides), tmp_path / "prefix", progress=False)
    steps = read_table(tmp_path / "prefix", "steps")
    assert list(steps.columns) == [*STEP_COLUMNS, "evicted_blocks"]
    assert steps["evicted_blocks"].sum() == summary["evicted_blocks"] > 0
    plain = execute(compose(["strategy=paged", *SMALL]), tmp_path / "paged", progress=False)
    assert "evicted_blocks" not in plain
    assert list(read_table(tmp_path / "paged", "steps").columns) == list(STEP_COLUMNS)


def test_a_huge_pool_materialises_only_the_blocks_a_run_uses():
    # model=tiny on the default GPU: millions of blocks, of which a small workload touches a few.
    run = build(compose(["strategy=paged_prefix", *SMALL]))
    assert run.budget.num_blocks > 1_000_000
    assert len(run.strategy.pool.blocks) == 0
    recorder = simulate(run, progress=False)
    used = len(run.strategy.pool.blocks)
    assert 0 < used <= sum(-(-(r.num_prompt_tokens + r.num_output_tokens) // 16) for r in run.workload.requests)
    assert recorder.end_time_s > 0
