"""benchmarks/bench_kernels.py --smoke runs end to end (tiny fp32 shapes; interpreter on CPU)
and writes its CSV and Markdown report. Checks structure and agreement, never time."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_kernels.py"


def test_bench_smoke_writes_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("bench_kernels", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_kernels", bench)  # dataclasses look themselves up
    spec.loader.exec_module(bench)

    assert bench.main(["--smoke", "--out", str(tmp_path)]) == 0

    with open(tmp_path / "kernels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["suite"] for r in rows} == {"decode", "block_size", "cow", "prefill", "kv_variants"}
    assert not [r for r in rows if r["note"]], "a kernel failed in the smoke run"
    # The baselines compute what the paged kernels compute.
    assert all(float(r["max_abs_diff"]) < 1e-4 for r in rows if r["max_abs_diff"])
    assert (tmp_path / "kernels.md").read_text().startswith("# Kernel benchmarks")
