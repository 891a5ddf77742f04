"""`kvbench run engine=device` end to end: the run directory of a device run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from kvbench.results import read_table

# Tiny matmuls on a busy machine: torch's thread pool only adds contention.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# Subprocesses run from a scratch folder: from the checkout, `python -m` would import its kvbench/
# folder instead of the installed package.
RUN = [
    sys.executable, "-m", "kvbench.cli", "run", "model=tiny", "engine=device", "engine.device=cpu",
    "engine.dtype=float32", "strategy=paged_cow", "workload=synthetic", "workload.num_requests=6",
    "workload.prompt.max=30", "workload.output.min=2", "workload.output.max=8", "workload.n=2", "num_blocks=64",
]


def test_a_device_run_writes_tokens_and_kernel_times(tmp_path):
    result = subprocess.run(
        [*RUN, f"hydra.run.dir={tmp_path}"], capture_output=True, text=True, timeout=300, env=ENV, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["engine"] == "device" and summary["device"] == "cpu" and summary["dtype"] == "float32"
    assert len(summary["tokens_sha256"]) == 64
    assert summary["num_requests"] == 6
    for field in ("kernel_prefill_attention_s", "kernel_decode_attention_s", "kernel_store_kv_s", "device_time_s"):
        assert summary[field] > 0
    assert summary["kernel_copy_blocks_s"] >= 0 and summary["copied_blocks"] == summary["cow_copies"]
    requests = read_table(tmp_path, "requests")
    for text, num_output in zip(requests["generated_token_ids"], requests["num_output_tokens"]):
        samples = text.split("|")
        assert all(len(sample.split()) == num_output for sample in samples)
    steps = read_table(tmp_path, "steps")
    assert steps["duration_s"].sum() == pytest.approx(summary["device_time_s"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without CUDA")
def test_cuda_without_cuda_fails_with_one_line(tmp_path):
    command = [arg for arg in RUN if arg != "engine.device=cpu"]
    result = subprocess.run(
        [*command, f"hydra.run.dir={tmp_path}"], capture_output=True, text=True, timeout=300, env=ENV, cwd=tmp_path
    )
    assert result.returncode == 2
    assert "kvbench: error: engine.device=cuda but CUDA is not available" in result.stderr
    assert json.loads((tmp_path / "manifest.json").read_text())["status"] == "failed"
