"""Sweeps with Hydra's basic and joblib launchers both give a sweep directory that `report` reads."""

import pytest
import yaml

from kvbench.reporting.runs import load_runs
from kvbench.reporting.sweeps import expected_jobs


def test_basic_launcher_sweep_is_one_input(rate_sweep):
    multirun = yaml.safe_load((rate_sweep / "multirun.yaml").read_text())
    assert multirun["hydra"]["launcher"]["_target_"].endswith("BasicLauncher")
    run_set = load_runs([rate_sweep])
    assert len(run_set.records) == len(expected_jobs(rate_sweep)) == 8


def test_joblib_launcher_sweep_is_one_input(tmp_path, run_sweep):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="pip install 'kvbench[joblib]'")
    out = tmp_path / "joblib_sweep"
    run_sweep(out, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "strategy=orca_max,paged", "workload.rate=4")
    multirun = yaml.safe_load((out / "multirun.yaml").read_text())
    assert multirun["hydra"]["launcher"]["_target_"].endswith("JoblibLauncher")
    run_set = load_runs([out])
    assert run_set.problems == []
    assert sorted(r.summary["strategy"] for r in run_set.records) == ["orca_max", "paged"]
    assert all(r.command.startswith("kvbench run strategy=") for r in run_set.records)
