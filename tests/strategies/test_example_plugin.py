"""The example plugin (examples/kvbench-prefix-mru), pip-installed as a user would: kvbench finds it
through its entry point, lists it, runs it from the CLI, and the shared state machine and invariant
checker hold it to the same rules as the built-ins.

It is installed with `pip install --target` into a scratch folder (no network, no build isolation:
setuptools comes with the test extra), which the CLI subprocesses and this process put on their path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kvbench.registry import discover
from kvbench.strategies import STRATEGIES
from kvbench.strategies.invariants import check

PLUGIN = Path(__file__).parents[2] / "examples" / "kvbench-prefix-mru"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("plugin_source") / PLUGIN.name
    shutil.copytree(PLUGIN, source)  # pip builds in place: keep the checkout clean
    target = tmp_path_factory.mktemp("plugin_site")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    result = subprocess.run([*pip, "--target", str(target), str(source)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return target


def kvbench_cli(*args: str, site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "kvbench.cli", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_the_plugin_is_one_module_and_its_packaging():
    assert sorted(p.name for p in PLUGIN.iterdir() if p.name != "__pycache__") == ["kvbench_prefix_mru.py", "pyproject.toml"]


def test_kvbench_lists_and_runs_the_installed_plugin(site, tmp_path):
    listed = kvbench_cli("list", "strategy", site=site, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "prefix_mru" in listed.stdout and "evicts the most recently freed block first" in listed.stdout
    run_dir = tmp_path / "run"
    result = kvbench_cli(
        "run", "strategy=prefix_mru", "workload=synthetic", "workload.num_requests=40", "workload.shared_prefix_tokens=64",
        "workload.prompt.max=200", "workload.output.max=64", "model=tiny", "num_blocks=64", f"hydra.run.dir={run_dir}",
        site=site, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["strategy"] == "prefix_mru" and summary["num_requests"] > 0
    assert summary["prefix_hit_tokens"] > 0 and summary["evicted_blocks"] > 0  # its declared event is a field


@pytest.fixture(scope="module")
def installed(site):
    """The plugin loaded into this process through its entry point, as kvbench does at startup."""
    sys.path.insert(0, str(site))
    try:
        if "prefix_mru" not in STRATEGIES.names():
            discover("kvbench.strategies", [], "kvbench.strategies")
        yield STRATEGIES.get("prefix_mru")
    finally:
        sys.path.remove(str(site))


def test_the_shared_state_machine_covers_the_plugin(installed, strategy_machine):
    strategy_machine("prefix_mru")


def test_mru_evicts_the_most_recently_freed_block(installed, strategy_factory, seq_factory):
    st = strategy_factory("prefix_mru", num_blocks=4, block_size=4)
    first, second = seq_factory(0, prompt=8, final=9), seq_factory(1, prompt=4, final=5)
    assert st.allocate(first, 0, 8) and st.allocate(second, 0, 4)
    st.free(0, 8), st.free(1, 4)
    check(st)
    assert st.snapshot().free_queue == [3, 2, 0, 1]  # fresh first, then newest freed (seq 1's block 2)
    assert st.allocate(seq_factory(2, prompt=4, final=5), 0, 4) and st.block_table(2) == [3]
    assert st.allocate(seq_factory(3, prompt=4, final=5), 0, 4) and st.block_table(3) == [2]
    assert st.counters["evicted_blocks"] == 1
    check(st)
