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


def test_submitit_local_launcher_sweep_runs_each_job_in_its_own_process(tmp_path):
    # The path users take to SLURM (hydra/launcher=submitit_slurm), run here with submitit's local executor.
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install hydra-submitit-launcher")
    import subprocess
    import sys

    out = tmp_path / "submitit_sweep"
    result = subprocess.run(
        [sys.executable, "-m", "kvbench.cli", "run", "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
         "strategy=orca_max,paged", "workload.rate=4", "workload.num_requests=20", f"hydra.sweep.dir={out}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    multirun = yaml.safe_load((out / "multirun.yaml").read_text())
    assert multirun["hydra"]["launcher"]["_target_"].endswith("LocalLauncher")
    run_set = load_runs([out])
    assert run_set.problems == []
    assert sorted(r.summary["strategy"] for r in run_set.records) == ["orca_max", "paged"]
    assert sorted(r.path.name for r in run_set.records) == [
        "0_strategy=orca_max,workload.num_requests=20,workload.rate=4",
        "1_strategy=paged,workload.num_requests=20,workload.rate=4"]
    # One combined table at the end of the sweep, after a progress line per job.
    assert result.stdout.count("out tok/s") == 1 and "sweep directory:" in result.stdout
    assert (out / ".submitit").is_dir()


def test_a_basic_sweep_prints_progress_and_one_combined_table(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, "-m", "kvbench.cli", "run", "-m", "strategy=orca_max,paged", "workload.num_requests=10",
         f"hydra.sweep.dir={out}"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith("[1/2] complete: 0_strategy=orca_max,") for line in lines)
    assert any(line.startswith("[2/2] complete: 1_strategy=paged,") for line in lines)
    assert result.stdout.count("out tok/s") == 1  # one table for the sweep, not one per job
    assert "sweep directory:" in lines[-1] and "(2 complete, 0 not)" in lines[-1]
