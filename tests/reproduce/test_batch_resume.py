"""A batch resumes only runs whose resolved config matches; anything else is rerun and replaced."""

from __future__ import annotations

import json

from kvbench.reproduce.batch import RunSpec, run_all

SMALL = ("workload.num_requests=10",)


def test_a_batch_reruns_a_run_whose_config_changed_and_keeps_one_that_matches(tmp_path):
    quick = [RunSpec("a", SMALL), RunSpec("b", SMALL)]
    run_all(quick, tmp_path, progress=False)
    kept_summary = (tmp_path / "a" / "summary.json").read_bytes()
    kept_mtime = (tmp_path / "a" / "summary.json").stat().st_mtime_ns
    full = [RunSpec("a", SMALL), RunSpec("b", ("workload.num_requests=15",))]  # "b" is now a larger run
    summaries = run_all(full, tmp_path, progress=False)
    assert summaries["b"]["num_requests"] == 15  # rerun, not reused from the smaller config
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["num_requests"] == 15
    assert (tmp_path / "a" / "summary.json").stat().st_mtime_ns == kept_mtime  # matching: not run again
    assert (tmp_path / "a" / "summary.json").read_bytes() == kept_summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
