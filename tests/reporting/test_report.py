"""`kvbench report`: the Markdown summary, and what it says about partial and empty inputs."""

import re
import shutil

import pandas as pd
import pytest

import kvbench.runner
from kvbench.cli import main as kvbench_cli
from kvbench.reporting.report import main
from kvbench.reporting.sweeps import job_dir


def test_report_links_every_figure_and_tabulates_every_run(report_dir):
    text = (report_dir / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == len(list((report_dir / "figures").rglob("*.png")))
    assert all((report_dir / link).is_file() for link in links)
    runs = pd.read_csv(report_dir / "runs.csv")
    assert len(runs) == 8 + 3 + 2  # rate, sharing and block sweeps
    assert set(runs["scenario"]) == {"sharegpt · llama-2-13b · a100-40gb · sim",
                                     "synthetic · llama-2-13b · a100-40gb · sim"}
    assert "| orca_max | 16 req/s | 2 |" in text  # summary table rows: strategy, rate, seeds
    assert "### Highest request rate under the latency bound" in text


def test_a_partial_sweep_lists_what_is_missing_and_charts_the_rest(tmp_path, rate_sweep, execute_run, monkeypatch,
                                                                   capsys):
    partial = shutil.copytree(rate_sweep, tmp_path / "partial")
    shutil.rmtree(job_dir(partial, 7))  # the sweep stopped before its last job
    job_6 = job_dir(partial, 6)
    shutil.rmtree(job_6)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(kvbench.runner, "simulate", interrupted)
    with pytest.raises(KeyboardInterrupt):  # job 6 was interrupted instead
        execute_run(job_6, "strategy=paged", "workload.rate=16", "seed=0")

    assert main([str(partial), "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    left_out = text[text.index("## Runs left out"):text.index("## sharegpt")]
    assert "| interrupted |" in left_out and f"partial/{job_6.name}" in left_out
    assert "| missing | sweep job 7 never ran (strategy=paged workload.rate=16 seed=1" in left_out
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert len(runs) == 6 and not runs["run_dir"].str.contains("/6_|/7_").any()
    # The paged point at 16 req/s has no complete run, so it is not drawn as if it had one.
    throughput = pd.read_csv(tmp_path / "out" / "figures" / "throughput.csv")
    assert throughput[(throughput["series"] == "paged") & (throughput["rate"] == 16)].empty
    assert "left out: " in capsys.readouterr().err


def test_an_empty_directory_is_bad_input_and_says_so(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert kvbench_cli(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "no complete run" in capsys.readouterr().err
    text = (tmp_path / "out" / "report.md").read_text()
    assert "No complete run was found" in text and "no run directories here" in text


def test_bad_arguments_exit_2(tmp_path, capsys):
    assert kvbench_cli(["report", str(tmp_path / "absent")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert kvbench_cli(["report", str(tmp_path), str(tmp_path)]) == 2
    assert "--out" in capsys.readouterr().err
    assert kvbench_cli(["report", str(tmp_path), "--latency-bound", "soon"]) == 2


def test_reports_read_parquet_tables_as_they_read_csv(tmp_path, rate_sweep):
    from kvbench.results import read_table

    sweep = shutil.copytree(rate_sweep, tmp_path / "csv_sweep")  # the fixture's runs wrote Parquet
    for run in (p for p in sweep.iterdir() if p.is_dir()):
        for table in ("steps", "requests"):
            pd.read_parquet(run / f"{table}.parquet").to_csv(run / f"{table}.csv", index=False)
            (run / f"{table}.parquet").unlink()
    assert read_table(job_dir(sweep, 0), "steps", ["batch_size"]).equals(
        pd.read_parquet(job_dir(rate_sweep, 0) / "steps.parquet", columns=["batch_size"]))
    assert main([str(rate_sweep), "--out", str(tmp_path / "parquet")]) == 0
    assert main([str(sweep), "--out", str(tmp_path / "csv")]) == 0
    for name in ("latency_vs_rate.csv", "timeline.csv", "latency_cdf.csv", "batch_size_cdf.csv"):
        parquet = pd.read_csv(tmp_path / "parquet" / "figures" / name).drop(columns=["run_name"], errors="ignore")
        csv = pd.read_csv(tmp_path / "csv" / "figures" / name).drop(columns=["run_name"], errors="ignore")
        pd.testing.assert_frame_equal(parquet, csv, check_exact=False)
