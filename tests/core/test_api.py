"""The Python API (kvbench.run, kvbench.load_runs), one-line composition errors, and each run's log."""

import subprocess
import sys

import pytest

from kvbench.compose_errors import check_run_arguments, compose_or_raise
from kvbench.errors import ConfigError


def test_run_returns_a_result_and_load_runs_a_tidy_table(tmp_path, monkeypatch):
    import kvbench

    monkeypatch.chdir(tmp_path)
    result = kvbench.run(["strategy=orca_max", "workload.num_requests=20"], run_dir=tmp_path / "a")
    assert result.summary["strategy"] == "orca_max" and result.summary["num_requests"] == 20
    assert len(result.requests) == 20 and len(result.steps) == result.summary["num_steps"]
    assert result.config["workload"]["num_requests"] == 20
    kvbench.run("strategy=paged workload.num_requests=20", run_dir=tmp_path / "b")  # one string works too
    runs = kvbench.load_runs(tmp_path)
    assert sorted(runs["strategy"]) == ["orca_max", "paged"]
    assert {"output_tokens_per_s", "cfg.workload.num_requests", "run_dir", "tpot_p99_s"} <= set(runs.columns)
    assert "run directory" in (tmp_path / "a" / "kvbench.log").read_text()
    with pytest.raises(ValueError, match="workload.rat: no such setting"):
        kvbench.run(["workload.rat=2"], run_dir=tmp_path / "c")


def test_importing_kvbench_and_its_reports_leaves_matplotlibs_backend_alone():
    code = ("import matplotlib; matplotlib.use('svg'); import kvbench, kvbench.reporting.report, "
            "kvbench.reporting.charts; import sys; print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["svg", "False"]


@pytest.mark.parametrize("overrides, message", [
    (["workload.rat=1"], "workload.rat: no such setting in workload"),
    (["strategy=pagd"], "strategy=pagd: no such choice; choose from contiguous, hf_dynamic"),
    (["workload.rate=fast"], "workload.rate=fast: 'fast' is not a float"),
    (["seed=abc"], "seed=abc: 'abc' is not an integer"),
    (["workload.rate"], "workload.rate: not an override"),
])
def test_composition_errors_are_one_line_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as info:
        compose_or_raise(overrides)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_a_sweep_is_checked_on_every_swept_value():
    check_run_arguments(["-m", "strategy=paged,orca_max", "workload.rate=1,2"])
    with pytest.raises(ConfigError, match="strategy=pagd: no such choice"):
        check_run_arguments(["-m", "strategy=paged,pagd", "workload.rate=1,2"])
    check_run_arguments(["--help"])  # not overrides: left to Hydra
    check_run_arguments(["-m", "strategy=glob(orca_*)"])  # a glob only Hydra's config loader expands


def test_kvbench_run_prints_one_line_and_exits_2_on_a_bad_override(tmp_path):
    result = subprocess.run([sys.executable, "-m", "kvbench.cli", "run", "workload.rat=1"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "kvbench: error: workload.rat: no such setting in workload (ShareGPTConfig); `kvbench run --help` lists them"]
