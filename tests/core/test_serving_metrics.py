"""vLLM's metric names and units beside kvbench's, goodput under SLOs, the --save-result JSON, rounding."""

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from kvbench.inter_token_latency import InterTokenLatencies
from kvbench.metrics import SUMMARY_SIGNIFICANT_DIGITS, rounded
from kvbench.scheduler import StepPlan
from kvbench.serving_metrics import VLLM_RESULT, SLOConfig, vllm_metrics

REQUESTS = pd.DataFrame({
    "num_prompt_tokens": [10, 20, 30, 40],
    "num_output_tokens": [5, 1, 11, 3],
    "n": [1, 1, 2, 1], "beam_width": [1, 1, 1, 1],
    "first_token_time_s": [1.0, 2.0, 2.5, 4.0],
    "finish_time_s": [1.4, 2.0, 3.5, 4.1],
    "ttft_s": [0.1, 0.4, 0.2, 1.0],
    "tpot_s": [0.1, np.nan, 0.1, 0.05],
    "latency_s": [0.5, 0.4, 1.2, 1.1],
})


def test_vllm_names_in_milliseconds_with_vllms_statistics():
    m = vllm_metrics(REQUESTS, duration_s=5.0)
    ttft_ms = np.array([100.0, 400.0, 200.0, 1000.0])
    assert m["mean_ttft_ms"] == pytest.approx(ttft_ms.mean())
    assert m["median_ttft_ms"] == pytest.approx(np.median(ttft_ms))
    assert m["std_ttft_ms"] == pytest.approx(ttft_ms.std())  # population std, as vLLM
    assert m["p99_ttft_ms"] == pytest.approx(np.percentile(ttft_ms, 99))
    assert m["p90_e2el_ms"] == pytest.approx(np.percentile([500, 400, 1200, 1100], 90))
    assert m["mean_tpot_ms"] == pytest.approx((100 + 100 + 50) / 3)  # the one-token request has no TPOT
    assert m["completed"] == 4 and m["total_input_tokens"] == 100
    assert m["total_output_tokens"] == 5 + 1 + 22 + 3  # both samples of the n=2 request
    assert m["request_throughput"] == pytest.approx(4 / 5) and m["output_throughput"] == pytest.approx(31 / 5)
    assert m["total_token_throughput"] == pytest.approx(131 / 5)
    assert m["request_goodput"] is None  # no SLO set


def test_itl_figures_come_from_the_runs_distribution_and_are_null_without_it():
    m = vllm_metrics(REQUESTS, duration_s=5.0)
    assert m["mean_itl_ms"] is None and m["median_itl_ms"] is None and m["p99_itl_ms"] is None
    itl = InterTokenLatencies()
    itl.step_done(StepPlan(0, tick=1), 1.0)
    itl.step_done(StepPlan(1, tick=2, num_decode_requests=3), 1.25)
    m = vllm_metrics(REQUESTS, duration_s=5.0, itl=itl)
    assert (m["mean_itl_ms"], m["median_itl_ms"], m["std_itl_ms"], m["p99_itl_ms"]) == (250, 250, 0, 250)


def test_goodput_counts_requests_meeting_every_slo():
    assert vllm_metrics(REQUESTS, 5.0, SLOConfig(ttft_ms=500))["request_goodput"] == pytest.approx(3 / 5)
    both = vllm_metrics(REQUESTS, 5.0, SLOConfig(ttft_ms=500, tpot_ms=80))["request_goodput"]
    assert both == pytest.approx(1 / 5)  # only the one-token request: it has no TPOT and so meets it, as in vLLM
    assert vllm_metrics(REQUESTS, 5.0, SLOConfig(e2el_ms=450))["request_goodput"] == pytest.approx(1 / 5)


def test_summary_floats_are_rounded_to_the_stated_precision():
    summary = rounded({"a": 0.1 + 0.2, "b": 230.19702433800282, "n": 3, "x": math.nan, "s": "paged"})
    assert summary["a"] == 0.3 and summary["b"] == 230.197024338 and summary["n"] == 3
    assert math.isnan(summary["x"]) and summary["s"] == "paged"
    assert SUMMARY_SIGNIFICANT_DIGITS == 12
    # A last-digit difference from another summation order vanishes.
    assert rounded({"v": 0.1234567890123456})["v"] == rounded({"v": 0.1234567890123459})["v"]


def test_every_run_directory_holds_a_vllm_save_result_json(tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "kvbench.cli", "run", "workload.num_requests=30",
                             "goodput.ttft_ms=200", "goodput.tpot_ms=40", f"hydra.run.dir={run_dir}"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    saved = json.loads((run_dir / VLLM_RESULT).read_text())  # strict JSON: json.loads would take NaN too
    assert "NaN" not in (run_dir / VLLM_RESULT).read_text()
    for key in ("duration", "completed", "total_input_tokens", "total_output_tokens", "request_throughput",
                "request_goodput", "output_throughput", "total_token_throughput", "input_lens", "output_lens",
                "ttfts", "itls", "mean_ttft_ms", "median_tpot_ms", "p99_itl_ms", "std_e2el_ms", "request_rate",
                "num_prompts", "model_id"):
        assert key in saved, key
    summary = json.loads((run_dir / "summary.json").read_text())
    requests = pd.read_csv(run_dir / "requests.csv") if (run_dir / "requests.csv").is_file() else \
        pd.read_parquet(run_dir / "requests.parquet")
    assert saved["completed"] == summary["completed"] == summary["num_requests"] == 30
    assert summary["mean_ttft_ms"] == pytest.approx(requests["ttft_s"].mean() * 1000)
    assert saved["ttfts"] == pytest.approx(requests["ttft_s"].tolist())
    assert saved["goodput"] == {"ttft": 200.0, "tpot": 40.0} and summary["request_goodput"] is not None
    assert saved["request_rate"] == 2.0
    # Single-sample requests: their gaps add up to first token -> finish, so the mean ITL is that over
    # the number of gaps; the distribution is recorded (exactness: tests/core/test_inter_token_latency.py).
    gaps = requests["num_output_tokens"] - 1
    decode_s = (requests["finish_time_s"] - requests["first_token_time_s"])[gaps > 0].sum()
    assert summary["mean_itl_ms"] == pytest.approx(decode_s / gaps.sum() * 1000, rel=1e-9)
    assert summary["p90_itl_ms"] <= summary["p99_itl_ms"] and summary["std_itl_ms"] >= 0
    assert saved["median_itl_ms"] == pytest.approx(summary["median_itl_ms"], rel=1e-11)


def test_the_vllm_result_is_written_chunk_by_chunk_as_one_json_dumps_would(tmp_path, monkeypatch):
    from kvbench import serving_metrics

    monkeypatch.setattr(serving_metrics, "VLLM_RESULT_CHUNK", 7)
    result = {
        "date": "20261130-000000", "completed": 30, "request_goodput": None, "mean_ttft_ms": math.nan,
        "goodput": {"ttft": 200.0, "tpot": 40.0}, "input_lens": np.arange(30, dtype=np.int64) * 5,
        "ttfts": np.array([0.1 * i if i % 4 else math.nan for i in range(30)]), "itls": [[]] * 30,
        "errors": [""] * 30, "empty": [], "kvbench": {"strategy": "paged", "seed": 0},
        "floats": [0.5 * i if i % 5 else math.inf for i in range(30)], "texts": ["a", "b\n\"c\"", None] * 10,
        "nested": [[0.1, [2, math.nan]], {"k": [1]}, [], ""] * 6, "read_when_written": lambda: np.arange(9),
    }
    path = serving_metrics.write_vllm_result(tmp_path, result)
    values = {k: v() if callable(v) else v for k, v in result.items()}
    as_lists = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in values.items()}
    expected = json.dumps(as_lists, indent=1).replace("NaN", "null").replace("Infinity", "null") + "\n"
    assert path.read_text() == expected


def test_figures_computed_once_give_the_same_metrics_and_result_for_each_duration():
    from kvbench.serving_metrics import vllm_figures, vllm_result

    class CountingTable:  # a table on disk: each column read is counted
        def __init__(self):
            self.reads = 0

        def __len__(self):
            return len(REQUESTS)

        def __getitem__(self, name):
            self.reads += 1
            return REQUESTS[name].to_numpy()

    slo = SLOConfig(ttft_ms=300, tpot_ms=120)
    table = CountingTable()
    figures = vllm_figures(table, slo, None)
    reads_for_figures = table.reads
    for duration_s in (5.0, 0.0):
        assert vllm_metrics(table, duration_s, slo, None, figures) == vllm_metrics(REQUESTS, duration_s, slo)
    assert table.reads == reads_for_figures  # nothing read again
    summary = {"duration_s": 5.0, "engine": "sim"}
    with_figures = vllm_result(summary, REQUESTS, None, slo, None, figures)
    without = vllm_result(summary, REQUESTS, None, slo)
    assert with_figures.keys() == without.keys()
    assert {k: v for k, v in with_figures.items() if not callable(v) and k != "date"} == {
        k: v for k, v in without.items() if not callable(v) and k != "date"}
    assert with_figures["request_goodput"] == pytest.approx(2 / 5)  # 0.1 s / 0.2 s TTFT, TPOT within 120 ms
