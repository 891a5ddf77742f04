"""`kvbench reproduce vllm-paper [--quick]`: run the paper's experiments, then tabulate and chart them."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from kvbench.reporting.charts.latency_vs_rate import LatencyBound
from kvbench.reporting.report import REPORT, make_report, report_markdown
from kvbench.reporting.runs import load_runs
from kvbench.reproduce import vllm_paper
from kvbench.reproduce.batch import run_all
from kvbench.reproduce.write import markdown_table, write_comparison

PAPERS = ("vllm-paper",)
EXPERIMENTS = {  # folder under runs/ -> what its report shows
    "latency": "Figs. 2, 12, 13a: each system over request rates (ShareGPT)",
    "capacity": "Fig. 2 at saturation and the capacities behind Fig. 12's ratios (offline)",
    "sharing": "Figs. 14-15: parallel sampling and beam search",
    "prefix": "Fig. 16: a shared one-shot or five-shot prefix",
    "block_size": "Fig. 18b: block sizes 1 to 256",
    "swap": "Fig. 19 / §7.3: preemption by recompute against swap over block sizes (ShareGPT 4 req/s)",
    "alpaca": "Fig. 13b: Alpaca at 30 req/s",
    "alpaca_sharing": "Fig. 15 and §6.3 on Alpaca",
}
ALPACA_SKIPPED = (
    "Alpaca (Fig. 13b, Fig. 15's Alpaca bars, §6.3's 1.3x and 2.3x): needs --alpaca PATH to your own "
    "alpaca_data.json (tatsu-lab/stanford_alpaca, CC BY-NC 4.0; see docs/workloads.md)"
)


def parse_args(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kvbench reproduce", description=__doc__)
    parser.add_argument("paper", choices=PAPERS)
    parser.add_argument("--quick", action="store_true",
                        help="a small version (about a minute of CPU time, most of it charts), for a first look")
    parser.add_argument("--out", type=Path, help="output folder (default results/reproduce/<paper>[-quick])")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs in parallel (default: CPUs)")
    parser.add_argument("--alpaca", metavar="PATH", help="alpaca_data.json, for the Alpaca experiments")
    parser.add_argument("--no-charts", action="store_true", help="skip the charts (the table only)")
    return parser.parse_args(args)


def main(args: list[str]) -> int:
    options = parse_args(args)
    if options.alpaca and not Path(options.alpaca).expanduser().is_file():
        raise FileNotFoundError(f"--alpaca {options.alpaca}: no such file")
    scale = vllm_paper.QUICK if options.quick else vllm_paper.FULL
    out_dir = options.out or Path("results/reproduce") / f"{options.paper}{'-quick' if options.quick else ''}"
    out_dir.mkdir(parents=True, exist_ok=True)
    alpaca = str(Path(options.alpaca).expanduser().resolve()) if options.alpaca else None
    skipped = [] if alpaca else [ALPACA_SKIPPED]
    for reason in skipped:
        print(f"kvbench reproduce: skipping {reason}", file=sys.stderr)

    runs_dir = out_dir / "runs"
    runs = run_all(vllm_paper.run_specs(scale, alpaca), runs_dir, jobs=options.jobs)
    rows = vllm_paper.comparison(runs, scale, with_alpaca=alpaca is not None)
    reports = [] if options.no_charts else draw_reports(runs_dir, out_dir / "report")
    command = " ".join(["kvbench reproduce", *args])
    path = write_comparison(rows, out_dir, command, reports, skipped)
    print(markdown_table(rows))
    print(f"\nwritten: {path} (and comparison.csv); runs under {runs_dir}")
    return 0


def draw_reports(runs_dir: Path, report_dir: Path) -> list[tuple[Path, str]]:
    """`kvbench report` of each experiment's runs (charts and report.md), one folder each."""
    written = []
    for experiment, what in EXPERIMENTS.items():
        if not (runs_dir / experiment).is_dir():
            continue
        out = report_dir / experiment
        run_set = load_runs([runs_dir / experiment])
        reports = make_report(run_set, out, LatencyBound.parse("5x"))
        (out / REPORT).write_text(report_markdown(run_set, reports, out))
        written.append((out / REPORT, what))
    return written
