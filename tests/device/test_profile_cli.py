"""`kvbench profile` on CPU (tiny grid, wall clock), and a simulation that uses its table."""

from __future__ import annotations

import json
from importlib import metadata

import pandas as pd
import pytest
import torch

from kvbench.cost_model import StepWork
from kvbench.cli import main as kvbench
from kvbench.runner import build, simulate

TINY_PROFILE = [
    "--grid", "tiny", "--cpu-reps", "1", "--no-progress", "model=tiny", "engine.device=cpu",
    "engine.dtype=float32", "num_blocks=128", "hardware=h100-sxm",
]


@pytest.fixture
def profile_path(tmp_path):
    path = tmp_path / "tiny.csv"
    assert kvbench(["profile", "--out", str(path), *TINY_PROFILE]) == 0
    return path


def test_the_profile_table_and_its_sidecar(profile_path):
    rows = pd.read_csv(profile_path)
    # tiny grid: decodes {1, 4} x contexts {16, 64} x (no prefill, or {16, 64} x keys {8, 32}),
    # plus prefill-only steps {16, 64} x {8, 32}: 24 shapes, in each of two layouts.
    assert len(rows) == 48 and set(rows["layout"]) == {"paged", "contiguous"}
    assert (rows["step_time_s"] > 0).all()
    meta = json.loads(profile_path.with_suffix(".json").read_text())
    assert meta["model"]["name"] == "tiny" and meta["hardware"]["name"] == "h100-sxm"
    assert meta["dtype"] == "float32" and meta["device"] == "cpu" and meta["attention_backend"] == "torch"
    assert meta["command"].startswith("kvbench profile --out ")
    assert meta["versions"]["torch"] == metadata.version("torch")


def test_a_simulation_costs_its_steps_from_the_profile(profile_path, compose_config):
    cfg = compose_config([
        "model=tiny", "hardware=h100-sxm", "num_blocks=128", "engine.cost_model=profile",
        f"engine.profile_path={profile_path}", "engine.step_overhead_s=0.001", "workload=synthetic",
        "workload.num_requests=5", "workload.prompt.max=40", "workload.output.min=1", "workload.output.max=8",
    ])
    run = build(cfg)
    cost = run.executor.profile
    steps_seen = []
    execute = run.executor.execute

    def spy(step):
        duration_s = execute(step)
        steps_seen.append((StepWork.of(step), duration_s))
        return duration_s

    run.executor.execute = spy
    simulate(run, progress=False)
    grid = cost.table.grid("paged", 16)
    for work, duration_s in steps_seen:
        b, n = work.num_decode_seqs, work.num_prefill_tokens
        c = work.decode_context_tokens / b if b else 16
        k = work.prefill_attention_pairs / n if n else 8
        assert duration_s == pytest.approx(grid(b, c, n, k) + 0.001)
    summary = run.executor.summary_fields()
    assert summary["cost_model"] == "profile" and summary["profile_dtype"] == "float32"


def test_bad_options_fail_with_one_line(tmp_path, capsys):
    assert kvbench(["profile", "--out", str(tmp_path / "x.csv"), "--layouts", "ragged", *TINY_PROFILE]) == 2
    assert "--layouts ragged: choose among paged, contiguous" in capsys.readouterr().err
    assert kvbench(["profile", "--out", str(tmp_path / "x.csv"), "model=nonexistent"]) == 2
    assert "nonexistent" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without CUDA")
def test_profiling_cuda_without_cuda_says_so(tmp_path, capsys):
    assert kvbench(["profile", "--out", str(tmp_path / "x.csv"), "--grid", "tiny", "model=tiny"]) == 2
    assert "kvbench: error: engine.device=cuda but CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
