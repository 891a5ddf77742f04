"""Every chart is drawn on small real runs, and the numbers written beside it are the runs' numbers."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from kvbench.reporting.charts.latency_vs_rate import LatencyBound
from kvbench.reporting.charts.timeline import sample_steps
from kvbench.reporting.latency import sustained_rate
from kvbench.reporting.stats import mean_ci
from kvbench.results import read_table

SHAREGPT_CHARTS = {"memory_breakdown", "throughput", "latency_vs_rate", "latency_vs_throughput",
                   "fragmentation_vs_rate", "timeline", "latency_cdf", "batch_size_cdf"}
SYNTHETIC_CHARTS = {"memory_breakdown", "throughput", "timeline", "latency_cdf", "batch_size_cdf", "sharing",
                    "block_size_sweep"}


def figures(report_dir: Path, workload: str) -> Path:
    (found,) = (report_dir / "figures").glob(f"{workload}_*")
    return found


def summaries(sweep: Path) -> pd.DataFrame:
    rows = []
    for run in sorted(p for p in sweep.iterdir() if (p / "summary.json").is_file()):
        config = yaml.safe_load((run / "config.yaml").read_text())
        rows.append({**json.loads((run / "summary.json").read_text()), "rate": config["workload"]["rate"],
                     "run": run})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("workload, charts", [("sharegpt", SHAREGPT_CHARTS), ("synthetic", SYNTHETIC_CHARTS)])
def test_every_chart_is_a_png_and_a_pdf_with_its_numbers(report_dir, workload, charts):
    folder = figures(report_dir, workload)
    assert {p.stem for p in folder.glob("*.png")} == charts
    for name in charts:
        png, pdf, csv = (folder / f"{name}.{ext}" for ext in ("png", "pdf", "csv"))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
        assert pdf.read_bytes()[:5] == b"%PDF-"
        assert len(pd.read_csv(csv)) > 0


def test_charts_that_do_not_fit_the_runs_say_why(report_dir):
    text = (report_dir / "report.md").read_text()
    synthetic = text[text.index("## synthetic"):]
    assert "`latency_vs_rate`: needs runs at two or more values of workload.rate" in synthetic
    sharegpt = text[text.index("## sharegpt"):text.index("## synthetic")]
    assert "`sharing`: no run reused a cached prefix" in sharegpt
    assert "`block_size_sweep`: no strategy ran at two or more block sizes" in sharegpt


def test_memory_breakdown_is_the_seed_mean_of_each_runs_pool_shares(report_dir, rate_sweep):
    data = pd.read_csv(figures(report_dir, "sharegpt") / "memory_breakdown.csv")
    runs = summaries(rate_sweep)
    assert len(data) == 4  # 2 strategies x 2 rates
    for row in data.itertuples():
        these = runs[(runs["strategy"] == row.series) & (runs["rate"] == row.rate)]
        assert len(these) == 2
        assert row.token == pytest.approx(these["mem_token_frac"].mean())
        assert row.internal_frag == pytest.approx(these["mem_internal_frag_frac"].mean())
        total = row.token + row.reserved + row.internal_frag + row.external_frag + row.cached + row.free
        assert total == pytest.approx(1.0, abs=1e-6)
    # The point of the chart: reserving max_model_len wastes what paging keeps for tokens.
    orca = data[data["series"] == "orca_max"]["internal_frag"].mean()
    paged = data[data["series"] == "paged"]["internal_frag"].mean()
    assert orca > 10 * paged


def test_throughput_bars_carry_a_bootstrap_interval_over_the_two_seeds(report_dir, rate_sweep):
    data = pd.read_csv(figures(report_dir, "sharegpt") / "throughput.csv")
    runs = summaries(rate_sweep)
    for row in data.itertuples():
        values = runs[(runs["strategy"] == row.series) & (runs["rate"] == row.rate)]["output_tokens_per_s"]
        assert row.output_tokens_per_s == pytest.approx(values.mean())
        interval = mean_ci(values.tolist())
        assert (row.output_tokens_per_s_low, row.output_tokens_per_s_high) == pytest.approx((interval.low, interval.high))
        assert values.min() <= row.output_tokens_per_s_low <= row.output_tokens_per_s_high <= values.max()
        assert row.num_runs == 2


def test_latency_points_come_from_each_runs_requests(report_dir, rate_sweep):
    data = pd.read_csv(figures(report_dir, "sharegpt") / "latency_vs_rate.csv")
    runs = summaries(rate_sweep)
    row = data[(data["series"] == "paged") & (data["rate"] == 16)].iloc[0]
    these = runs[(runs["strategy"] == "paged") & (runs["rate"] == 16)]
    tpot_p99 = [np.percentile(read_table(r, "requests")["tpot_s"].dropna(), 99) for r in these["run"]]
    assert row["tpot_p99_s"] == pytest.approx(np.mean(tpot_p99))
    assert row["ttft_p50_s"] == pytest.approx(these["ttft_p50_s"].mean())
    assert row["normalized_latency_s"] == pytest.approx(these["normalized_latency_s"].mean())


def test_the_sustained_rate_and_every_lower_rate_meet_the_bound(report_dir):
    folder = figures(report_dir, "sharegpt")
    data = pd.read_csv(folder / "latency_vs_rate.csv")
    sustained = pd.read_csv(folder / "latency_vs_rate_sustained_rate.csv")
    best = data["normalized_latency_s"].min()
    assert sustained["latency_bound_s"].tolist() == pytest.approx([5 * best] * len(sustained))  # default: 5x best
    for row in sustained.itertuples():
        curve = data[data["series"] == row.series].sort_values("rate")
        passing = curve["normalized_latency_s"] <= row.latency_bound_s
        if math.isnan(row.sustained_rate_req_s):
            assert not passing.iloc[0]
        else:
            assert passing[curve["rate"] <= row.sustained_rate_req_s].all()
            assert row.every_rate_met == passing.all()


def test_sustained_rate_rules():
    rates = pd.Series([1.0, 2.0, 4.0, 8.0])
    assert sustained_rate(rates, pd.Series([0.1, 0.2, 0.9, 0.3]), 0.5) == (2.0, False)  # a lucky point past the knee
    assert sustained_rate(rates, pd.Series([0.1, 0.1, 0.1, 0.1]), 0.5) == (8.0, True)
    rate, every = sustained_rate(rates, pd.Series([0.9, 0.1, 0.1, 0.1]), 0.5)
    assert math.isnan(rate) and not every
    assert sustained_rate(pd.Series([4.0, 1.0]), pd.Series([0.9, 0.1]), 0.5) == (1.0, False)  # order-free


def test_latency_bound_accepts_seconds_or_a_multiple():
    assert LatencyBound.parse("0.25").resolve(0.01) == 0.25
    assert LatencyBound.parse("4x").resolve(0.01) == pytest.approx(0.04)
    for bad in ("fast", "-1", "0x"):
        with pytest.raises(ValueError, match="--latency-bound"):
            LatencyBound.parse(bad)


def test_timeline_samples_are_exact_step_states_and_fill_the_pool(report_dir, rate_sweep):
    data = pd.read_csv(figures(report_dir, "sharegpt") / "timeline.csv")
    assert set(data["series"]) == {"orca_max", "paged"}  # one figure, every strategy
    data = data[data["series"] == "paged"]
    memory = data[["token_bytes", "reserved_bytes", "internal_frag_bytes", "external_frag_bytes", "cached_bytes",
                   "free_bytes"]].sum(axis=1)
    assert memory.nunique() == 1  # every state of the pool adds up to the pool
    assert data["time_s"].is_monotonic_increasing and len(data) <= 2000

    steps = pd.DataFrame({"time_s": [0.0, 1.0, 1.5], "duration_s": [1.0, 0.5, 0.5], "batch_size": [1, 3, 2],
                          "num_waiting": [0, 0, 1], **{c: [1, 2, 3] for c in (
                              "token_bytes", "reserved_bytes", "internal_frag_bytes", "external_frag_bytes",
                              "cached_bytes", "free_bytes")}})
    exact = sample_steps(steps, max_points=5)  # fewer steps than points: every step start, then the end
    assert exact["time_s"].tolist() == [0.0, 1.0, 1.5, 2.0]
    assert exact["batch_size"].tolist() == [1, 3, 2, 2]
    grid = sample_steps(steps, max_points=3)  # an even grid, each point the state of the step running then
    assert grid["time_s"].tolist() == [0.0, 1.0, 2.0]
    assert grid["num_waiting"].tolist() == [0, 0, 1]


def test_batch_size_cdf_is_weighted_by_step_time(report_dir, rate_sweep):
    data = pd.read_csv(figures(report_dir, "sharegpt") / "batch_size_cdf.csv")
    for _, curve in data.groupby("series"):
        assert curve["share_of_time"].is_monotonic_increasing
        assert curve["share_of_time"].iloc[-1] == pytest.approx(1.0)
    runs = summaries(rate_sweep)
    (run,) = runs[(runs["strategy"] == "paged") & (runs["rate"] == 16) & (runs["seed"] == 0)]["run"]
    steps = read_table(run, "steps")
    share_at_most_4 = steps.loc[steps["batch_size"] <= 4, "duration_s"].sum() / steps["duration_s"].sum()
    paged = data[(data["series"] == "paged") & (data["batch_size"] <= 4)]
    assert paged["share_of_time"].iloc[-1] == pytest.approx(share_at_most_4)


def test_sharing_chart_shows_prefix_hits_and_cow_copies(report_dir, sharing_sweep):
    data = pd.read_csv(figures(report_dir, "synthetic") / "sharing.csv").set_index("series")
    runs = summaries(sharing_sweep).set_index("strategy")
    assert data.loc["paged_prefix", "prefix_hit_rate"] == pytest.approx(runs.loc["paged_prefix", "prefix_hit_rate"])
    assert data.loc["paged_prefix", "prefix_hit_rate"] > 0
    assert data.loc["paged_cow", "cow_copies"] == runs.loc["paged_cow", "cow_copies"] > 0
    assert data.loc["paged_cow", "shared_saved_frac"] > 0
    assert data.loc["paged (block_size=16)", "prefix_hit_rate"] == 0


def test_block_size_curve_follows_the_block_size_runs(report_dir, sharing_sweep, block_sweep):
    data = pd.read_csv(figures(report_dir, "synthetic") / "block_size_sweep.csv")
    assert data["preset"].unique().tolist() == ["paged"]
    assert data["block_size"].tolist() == [8, 16, 32]
    runs = pd.concat([summaries(sharing_sweep), summaries(block_sweep)])
    paged = runs[runs["strategy"] == "paged"].set_index("block_size")
    for row in data.itertuples():
        assert row.mem_internal_frag_frac == pytest.approx(paged.loc[row.block_size, "mem_internal_frag_frac"])
