"""The same sweep through Hydra's basic and joblib launchers gives byte-identical summaries."""

from __future__ import annotations

import subprocess
import sys

import pytest

SWEEP = ["strategy=orca_max,paged_prefix", "workload.num_requests=60", "workload.rate=8"]


def test_basic_and_joblib_launchers_give_byte_identical_summaries(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="pip install 'kvbench[joblib]'")
    launchers = {"basic": [], "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]}
    for name, options in launchers.items():
        result = subprocess.run(
            [sys.executable, "-m", "kvbench.cli", "run", "-m", *options, *SWEEP, f"hydra.sweep.dir={tmp_path / name}"],
            cwd=tmp_path, capture_output=True, text=True,
        )
        assert result.returncode == 0, result.stderr[-3000:]
    for job in ("0", "1"):
        basic = (tmp_path / "basic" / job / "summary.json").read_bytes()
        assert basic == (tmp_path / "joblib" / job / "summary.json").read_bytes()
