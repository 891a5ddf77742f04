"""README's "Adding a strategy" works as written: its one file, dropped into strategies/, is a
strategy that `strategy=NAME` composes (no YAML, no import line), runs, and passes the shared
state machine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import kvbench.strategies
from kvbench.compose import compose
from kvbench.registry import discover
from kvbench.runner import build, simulate
from kvbench.strategies import STRATEGIES

README = Path(__file__).parents[2] / "README.md"


@pytest.fixture(scope="module")
def tutorial_strategy(tmp_path_factory):
    text = README.read_text()
    match = re.search(r"<!-- tutorial: strategies/(\w+)\.py .*?-->\n```python\n(.*?)```", text, re.S)
    assert match, "README lost its tutorial block"
    name, code = match.groups()
    folder = tmp_path_factory.mktemp("strategies")
    (folder / f"{name}.py").write_text(code)
    # As if the file sat in strategies/: discovery imports every module of the package's path.
    kvbench.strategies.__path__.append(str(folder))
    try:
        if name not in STRATEGIES.names():
            discover("kvbench.strategies", [str(folder)], "kvbench.strategies.none")
        yield name
    finally:
        kvbench.strategies.__path__.remove(str(folder))


def test_the_one_file_composes_and_runs(tutorial_strategy):
    workload = ["workload=synthetic", "workload.num_requests=40", "workload.n=2", "model=tiny", "num_blocks=96"]
    cfg = compose([f"strategy={tutorial_strategy}", *workload])
    assert cfg.strategy.name == tutorial_strategy and cfg.strategy.block_size == 16
    recorder = simulate(build(cfg), progress=False)
    steps = recorder.steps_table()
    assert len(recorder.requests_table()) > 0 and steps["fork_copied_blocks"].sum() > 0
    # It holds blocks for tokens still to come, where paged takes them as it goes.
    paged = simulate(build(compose(["strategy=paged", *workload])), progress=False).steps_table()
    assert steps["reserved_bytes"].mean() > paged["reserved_bytes"].mean()


def test_the_shared_state_machine_covers_it(tutorial_strategy, strategy_machine):
    strategy_machine(tutorial_strategy)
