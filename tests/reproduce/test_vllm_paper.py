"""`kvbench reproduce vllm-paper --quick`: every experiment runs, is tabulated and charted, and resumes."""

from __future__ import annotations

import csv
import json

import pytest

from kvbench.cli import main as kvbench_cli
from kvbench.reproduce.cli import main
from kvbench.reproduce.vllm_paper import QUICK, run_specs, sharing_saving, waste_parts, within
from kvbench.results import SUMMARY, is_complete

EXPECTED_FIGURES = {"Table 1", "§6.1", "Fig. 2", "Fig. 13a", "Fig. 12", "Fig. 15 / §6.3", "Fig. 14", "Fig. 16",
                    "Fig. 18b", "Fig. 13b", "Fig. 15", "§6.3", "Fig. 19a", "Fig. 19b", "§7.3"}


@pytest.fixture(scope="module")
def alpaca_file(tmp_path_factory):
    pytest.importorskip("bpe_openai")
    path = tmp_path_factory.mktemp("alpaca") / "alpaca_data.json"
    records = [
        {"instruction": f"Give {i} reasons to learn a language.", "input": "" if i % 2 else f"Language number {i}.",
         "output": " ".join(["Because it opens doors."] * (1 + i % 5))}
        for i in range(80)  # more than the quick reproduction samples
    ]
    path.write_text(json.dumps(records))
    return path


@pytest.fixture(scope="module")
def reproduction(tmp_path_factory, alpaca_file):
    out = tmp_path_factory.mktemp("vllm-paper")
    assert main(["vllm-paper", "--quick", "--out", str(out), "--alpaca", str(alpaca_file), "--jobs", "2"]) == 0
    return out


def test_the_quick_reproduction_tabulates_every_experiment(reproduction):
    rows = list(csv.DictReader((reproduction / "comparison.csv").open()))
    assert {row["figure"] for row in rows} == EXPECTED_FIGURES
    table1 = next(row for row in rows if row["figure"] == "Table 1")
    assert (table1["published"], table1["kvbench"]) == ("15.7K", "15,728")
    orca_max = next(row for row in rows if row["quantity"].startswith("Orca (Max): average batched"))
    assert float(orca_max["kvbench"]) > 0
    markdown = (reproduction / "comparison.md").read_text()
    assert "| Table 1 |" in markdown and "Not run" not in markdown  # Alpaca was given
    # Fig. 19: swapping many small blocks costs more than recomputing; larger blocks cost less.
    swap_micro = next(row for row in rows if row["figure"] == "Fig. 19a" and row["quantity"].startswith("swap out"))
    assert swap_micro["agreement"] == "same trend"
    swap_runs = [json.loads((reproduction / "runs" / "swap" / "swap" / f"bs_{b}" / SUMMARY).read_text())
                 for b in QUICK.swap_block_sizes]
    assert all(s["num_swap_outs"] > 0 for s in swap_runs)


def test_every_run_is_a_complete_kvbench_run_and_charts_exist(reproduction):
    specs = run_specs(QUICK, alpaca_path="given")
    assert all(is_complete(reproduction / "runs" / spec.name) for spec in specs)
    report = reproduction / "report"
    for chart in ("latency/figures/memory_breakdown.png", "capacity/figures/throughput.png",
                  "block_size/figures/block_size_sweep.png"):
        assert (report / chart).is_file(), chart
    assert len(list((report / "sharing").rglob("sharing.png"))) == 2  # parallel sampling and beam search
    assert all((report / e / "report.md").is_file() for e in ("latency", "capacity", "sharing", "prefix", "alpaca", "swap"))


def test_a_second_run_resumes_without_running_again(reproduction, alpaca_file):
    summary = reproduction / "runs" / "capacity" / "paged" / SUMMARY
    before = summary.stat().st_mtime_ns
    assert main(["vllm-paper", "--quick", "--out", str(reproduction), "--alpaca", str(alpaca_file), "--no-charts"]) == 0
    assert summary.stat().st_mtime_ns == before


def test_a_missing_alpaca_file_is_an_error(tmp_path, capsys):
    assert kvbench_cli(["reproduce", "vllm-paper", "--quick", "--out", str(tmp_path), "--alpaca", str(tmp_path / "nope.json")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_the_paper_categories_and_sharing_saving():
    summary = {"mem_token_frac": 0.3, "mem_reserved_frac": 0.2, "mem_internal_frag_frac": 0.1,
               "mem_external_frag_frac": 0.05, "mem_free_frac": 0.3, "mem_cached_frac": 0.05, "shared_saved_frac": 0.2}
    parts = waste_parts(summary)
    assert sum(parts.values()) == pytest.approx(1.0)
    assert parts["external fragmentation & others"] == pytest.approx(0.4)
    assert sharing_saving(summary) == pytest.approx(0.2 / 0.8)
    assert within(2.0, (1.7, 2.7)) == "inside" and within(3.0, (1.7, 2.7)).startswith("outside")
