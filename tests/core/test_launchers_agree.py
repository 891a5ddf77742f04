"""The same run through Hydra's basic and joblib launchers, with different BLAS thread counts, gives
byte-identical summaries (a BLAS dot product over the steps used to round differently per thread count)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kvbench.reporting.sweeps import job_dir

# Over 10^5 steps: long enough for a multithreaded BLAS to split a dot product.
RUN = ["model=tiny", "num_blocks=2048", "workload=synthetic", "workload.num_requests=3000", "workload.rate=50"]


def test_basic_and_joblib_launchers_give_byte_identical_summaries(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="pip install 'kvbench[joblib]'")
    launchers = {"basic": ([], "1"), "joblib": (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], "2")}
    for name, (options, threads) in launchers.items():
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        result = subprocess.run(
            [sys.executable, "-m", "kvbench.cli", "run", "-m", *options, *RUN, f"hydra.sweep.dir={tmp_path / name}"],
            cwd=tmp_path, capture_output=True, text=True, env=env,
        )
        assert result.returncode == 0, result.stderr[-3000:]
    assert (job_dir(tmp_path / "basic", 0) / "summary.json").read_bytes() == (
        job_dir(tmp_path / "joblib", 0) / "summary.json").read_bytes()
