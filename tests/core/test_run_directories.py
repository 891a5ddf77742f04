"""No run is lost or mixed with another: unique directories, a lock, no writing over a finished run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from kvbench.compose import compose

import kvbench.config  # noqa: F401
from kvbench.errors import RunDirectoryError
from kvbench.results import is_complete, read_table
from kvbench.run_claim import RunClaim
from kvbench.runner import execute

SMALL = ["workload.num_requests=20"]


def kvbench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kvbench.cli", *args], cwd=cwd, capture_output=True, text=True)


def start(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kvbench.cli", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def compose_run(*overrides: str):
    return compose([*SMALL, *overrides])


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_two_runs_started_together_get_their_own_directories(tmp_path):
    runs = [start("run", *SMALL, f"seed={seed}", cwd=tmp_path) for seed in (0, 1)]
    for run in runs:
        assert run.wait(timeout=300) == 0, run.stderr.read()
    run_dirs = sorted((tmp_path / "results" / "runs").iterdir())
    assert len(run_dirs) == 2
    for run_dir in run_dirs:
        assert is_complete(run_dir)
        seeds = {json.loads((run_dir / "summary.json").read_text())["seed"],
                 json.loads((run_dir / "manifest.json").read_text())["seed"]}
        assert len(seeds) == 1
    assert {json.loads((d / "summary.json").read_text())["seed"] for d in run_dirs} == {0, 1}


def test_a_directory_another_live_run_holds_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    with RunClaim.acquire(run_dir):  # this process is "the other run"
        result = kvbench("run", *SMALL, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 2
    assert "being written by another run" in result.stderr and "Traceback" not in result.stderr
    assert not (run_dir / "manifest.json").exists()


def test_rerunning_into_a_complete_run_is_refused_and_changes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    assert kvbench("run", *SMALL, f"hydra.run.dir={run_dir}", cwd=tmp_path).returncode == 0
    before = snapshot(run_dir)
    result = kvbench("run", "workload.num_requests=30", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 2
    assert "already holds a complete run" in result.stderr and "--overwrite" in result.stderr
    assert snapshot(run_dir) == before  # .hydra/ included: Hydra never wrote into it
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_overwrite_with_a_bad_config_keeps_the_earlier_run(tmp_path):
    run_dir = tmp_path / "run"
    assert kvbench("run", *SMALL, f"hydra.run.dir={run_dir}", cwd=tmp_path).returncode == 0
    before = snapshot(run_dir)
    result = kvbench("run", "--overwrite", *SMALL, "strategy.block_size=12", f"hydra.run.dir={run_dir}",
                     cwd=tmp_path)
    assert result.returncode == 2 and "strategy.block_size=12" in result.stderr
    assert snapshot(run_dir) == before
    (attempt,) = tmp_path.glob("run.partial-*")  # the failed attempt, beside it and named so
    assert json.loads((attempt / "manifest.json").read_text())["status"] == "failed"


def test_overwrite_replaces_a_run_once_the_new_one_completes(tmp_path):
    run_dir = tmp_path / "run"
    assert kvbench("run", *SMALL, f"hydra.run.dir={run_dir}", cwd=tmp_path).returncode == 0
    result = kvbench("run", "--overwrite", "workload.num_requests=25", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"run directory: {run_dir}" in result.stdout
    assert json.loads((run_dir / "summary.json").read_text())["num_requests"] == 25
    assert len(read_table(run_dir, "requests")) == 25
    assert "num_requests: 25" in (run_dir / ".hydra" / "config.yaml").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no sibling, no lock file left
    assert not (run_dir / ".kvbench.lock").exists()


def test_execute_refuses_a_finished_run_and_replaces_it_when_told(tmp_path):
    execute(compose_run(), tmp_path / "run", progress=False)
    with pytest.raises(RunDirectoryError, match="already holds a complete run"):
        execute(compose_run("seed=1"), tmp_path / "run", progress=False)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["seed"] == 0
    execute(compose_run("seed=1"), tmp_path / "run", progress=False, overwrite=True)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_sweep_into_a_sweep_directory_that_holds_runs_is_refused(tmp_path):
    sweep = tmp_path / "sweep"
    assert kvbench("run", "-m", *SMALL, "seed=0,1", f"hydra.sweep.dir={sweep}", cwd=tmp_path).returncode == 0
    before = snapshot(sweep)
    result = kvbench("run", "-m", *SMALL, "seed=2,3", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 2 and "already holds" in result.stderr
    assert snapshot(sweep) == before
