"""`kvbench` end to end, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from kvbench.compose import compose

import kvbench.config  # noqa: F401
from kvbench import runner
from kvbench.executors.sim import SimExecutor
from kvbench.results import is_complete

SMALL = ["workload.num_requests=40"]
SUMMARY_KEYS = {
    "strategy", "workload", "engine", "num_requests", "duration_s", "output_tokens_per_s", "total_tokens_per_s",
    "requests_per_s", "mean_batch_size", "max_batch_size", "mem_token_frac", "mem_reserved_frac",
    "mem_internal_frag_frac", "mem_external_frag_frac", "mem_free_frac", "mem_cached_frac", "shared_saved_frac",
    "preemptions", "prefix_hit_tokens", "prefix_hit_rate", "cow_copies", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s",
    "normalized_latency_s",
}


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # From a scratch directory, so the checkout's own kvbench/ folder never shadows the installed one.
    return subprocess.run([sys.executable, "-m", "kvbench.cli", *args], cwd=cwd, capture_output=True, text=True)


def test_run_writes_a_complete_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli("run", "strategy=paged", "workload=sharegpt", *SMALL, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"run directory: {run_dir}" in result.stdout and "out tok/s" in result.stdout
    for name in ("config.yaml", "manifest.json", "steps.parquet", "requests.parquet", "summary.json"):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert SUMMARY_KEYS <= summary.keys()
    assert (summary["strategy"], summary["workload"], summary["engine"], summary["num_requests"]) == (
        "paged", "sharegpt", "sim", 40)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["dataset"]["sha256"]
    assert manifest["versions"]["kvbench"] and manifest["seed"] == 0
    assert is_complete(run_dir)


def test_the_same_config_and_seed_give_a_byte_identical_summary(tmp_path):
    summaries = []
    for name in ("a", "b"):
        args = ("run", "strategy=paged_prefix", "workload=synthetic", "workload.shared_prefix_tokens=64", *SMALL)
        assert run_cli(*args, f"hydra.run.dir={tmp_path / name}", cwd=tmp_path).returncode == 0
        summaries.append((tmp_path / name / "summary.json").read_bytes())
    assert summaries[0] == summaries[1]


def test_a_bad_setting_exits_with_a_message_and_leaves_no_summary(tmp_path):
    run_dir = tmp_path / "bad"
    result = run_cli("run", "strategy.block_size=12", *SMALL, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 2
    assert "strategy.block_size=12 must be a power of two" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (run_dir / "summary.json").exists()
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "failed"


def test_multirun_sweeps_the_cartesian_product(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli("run", "-m", "strategy=paged,orca_max", "workload.rate=1,4", *SMALL,
                     f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(runs) == 4 and all(is_complete(run) for run in runs)
    strategies = {json.loads((run / "summary.json").read_text())["strategy"] for run in runs}
    assert strategies == {"paged", "orca_max"}


def test_list_shows_every_group(tmp_path):
    result = run_cli("list", cwd=tmp_path)
    assert result.returncode == 0
    for expected in ("strategies (strategy=...)", "orca_pow2", "paged_prefix", "sharegpt", "llama-3-70b", "h100-sxm"):
        assert expected in result.stdout
    assert run_cli("list", "nonsense", cwd=tmp_path).returncode == 2
    assert run_cli("frobnicate", cwd=tmp_path).returncode == 2


def test_an_interrupted_run_is_marked_and_leaves_no_summary(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = SimExecutor.execute

    def interrupt_after_a_few_steps(self, step):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(self, step)

    monkeypatch.setattr(SimExecutor, "execute", interrupt_after_a_few_steps)
    cfg = compose(SMALL)
    with pytest.raises(KeyboardInterrupt):
        runner.execute(cfg, tmp_path, progress=False)
    assert json.loads((tmp_path / "manifest.json").read_text())["status"] == "interrupted"
    assert not (tmp_path / "summary.json").exists() and not is_complete(tmp_path)
