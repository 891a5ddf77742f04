"""Finding runs, loading the complete ones into one table, and naming every run that is not complete."""

import json
import shutil

import pytest
import yaml
from omegaconf import OmegaConf

import kvbench.runner
from kvbench.reporting.runs import InputError, load_runs
from kvbench.reporting.sweeps import expected_jobs
from kvbench.results import RunDirectory
from kvbench.reporting.sweeps import job_dir


def test_a_sweep_loads_as_one_row_per_run_with_summary_and_config(rate_sweep):
    run_set = load_runs([rate_sweep])
    assert run_set.problems == []
    table = run_set.table()
    assert len(table) == 8
    assert sorted(table["run_name"]) == sorted(f"rate_sweep/{job_dir(rate_sweep, i).name}" for i in range(8))
    assert all(name.split("/")[1].split("_")[0].isdigit() for name in table["run_name"])  # named by number + overrides
    for _, row in table.iterrows():
        summary = json.loads((rate_sweep / row["run_name"].split("/")[1] / "summary.json").read_text())
        assert row["output_tokens_per_s"] == summary["output_tokens_per_s"]
        assert row["strategy"] == summary["strategy"]
        assert row["mem_waste_frac"] == pytest.approx(
            summary["mem_reserved_frac"] + summary["mem_internal_frag_frac"] + summary["mem_external_frag_frac"])
    assert set(table["cfg.workload.rate"]) == {2.0, 16.0}
    assert set(table["cfg.seed"]) == {0, 1}
    assert set(table["scheduler"]) == {"default"}


def test_each_run_knows_the_command_that_reproduces_it(rate_sweep):
    record = load_runs([job_dir(rate_sweep, 0)]).records[0]
    overrides = yaml.safe_load((job_dir(rate_sweep, 0) / ".hydra" / "overrides.yaml").read_text())
    assert record.command == "kvbench run " + " ".join(overrides)
    assert "strategy=orca_max" in record.command and "seed=0" in record.command


def test_runs_that_did_not_complete_are_named_with_what_happened(tmp_path, rate_sweep, execute_run, monkeypatch):
    shutil.copytree(job_dir(rate_sweep, 0), tmp_path / "complete")
    with pytest.raises(kvbench.runner.ConfigError):
        execute_run(tmp_path / "failed", "strategy=paged", "num_blocks=10")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(kvbench.runner, "simulate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        execute_run(tmp_path / "interrupted", "strategy=paged")
    RunDirectory(tmp_path / "running").start(OmegaConf.create({"seed": 0}), {})  # then killed: no end recorded
    (tmp_path / "killed_early" / ".hydra").mkdir(parents=True)

    run_set = load_runs([tmp_path])
    assert [r.path.name for r in run_set.records] == ["complete"]
    problems = {p.path.name: p for p in run_set.problems}
    assert problems["failed"].status == "failed" and "num_blocks" in problems["failed"].detail
    assert problems["interrupted"].status == "interrupted"
    assert problems["running"].status == "running"
    assert problems["killed_early"].status == "incomplete" and "manifest.json" in problems["killed_early"].detail


def test_sweep_jobs_that_never_ran_are_named_by_their_overrides(tmp_path, rate_sweep):
    partial = shutil.copytree(rate_sweep, tmp_path / "partial")
    shutil.rmtree(job_dir(partial, 5))
    shutil.rmtree(job_dir(partial, 7))
    jobs = expected_jobs(partial)
    assert len(jobs) == 8
    run_set = load_runs([partial])
    assert len(run_set.records) == 6
    missing = [p for p in run_set.problems if p.status == "missing"]
    assert [p.path.name for p in missing] == ["5", "7"]
    assert " ".join(jobs[5]) in missing[0].detail


def test_a_simulator_run_found_twice_counts_once(tmp_path, rate_sweep):
    shutil.copytree(job_dir(rate_sweep, 3), tmp_path / "copy_of_3")
    run_set = load_runs([rate_sweep, tmp_path])
    assert len(run_set.records) == 8
    assert [p.status for p in run_set.problems] == ["duplicate"]


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(InputError, match="no such directory"):
        load_runs([tmp_path / "absent"])
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        load_runs([tmp_path / "file.txt"])
    (tmp_path / "empty").mkdir()
    run_set = load_runs([tmp_path / "empty"])
    assert run_set.records == [] and "no run directories" in run_set.problems[0].detail


MALFORMED = {
    "summary.json": ["null", "[1, 2]", '"complete"', '{"strategy": "paged"}',
                     None],  # None: the strategy's throughput replaced by text
    "manifest.json": ["null", "[]", '"complete"', '{"status": ["complete"]}'],
}


@pytest.mark.parametrize("file_name, content", [(f, c) for f, cs in MALFORMED.items() for c in cs])
def test_a_malformed_summary_or_manifest_is_named_and_skipped(tmp_path, rate_sweep, file_name, content, capsys):
    from kvbench.reporting.appendix import main as appendix_main
    from kvbench.reporting.compare import main as compare_main
    from kvbench.reporting.report import main as report_main

    sweep = shutil.copytree(rate_sweep, tmp_path / "sweep")
    job_5 = job_dir(sweep, 5)
    path = job_5 / file_name
    if content is None:
        summary = json.loads(path.read_text())
        summary["output_tokens_per_s"] = "fast"
        content = json.dumps(summary)
    path.write_text(content)
    run_set = load_runs([sweep])
    assert len(run_set.records) == 7
    (problem,) = [p for p in run_set.problems if p.path == job_5]
    assert file_name in problem.detail or problem.status in ("incomplete",)
    if content not in ("null", "[1, 2]"):
        return  # the commands are exercised on two kinds; loading covers the rest
    assert report_main([str(sweep), "--out", str(tmp_path / "report")]) == 0
    assert appendix_main([str(sweep), "--out", str(tmp_path / "appendix")]) == 0
    assert compare_main([str(rate_sweep), str(sweep), "--out", str(tmp_path / "cmp")]) == 1  # base run 5 unmatched
    assert compare_main([str(sweep), str(rate_sweep), "--out", str(tmp_path / "cmp"), "--allow-missing"]) == 0
    assert "sweep/5_" in capsys.readouterr().err
