"""Simulator speed: ShareGPT requests replayed offline through each strategy, in the configuration
the README and docs/performance.md quote (`model=llama-2-7b hardware=a100-80gb`, 10,000 requests).

Reports simulated tokens (prompt + output tokens of the replayed requests) per second of the step
loop (steps streamed to Parquet as a run streams them); workload loading and config composition
are outside the timed region. `KVBENCH_BENCH_REQUESTS` sets the request count (CI: 1,000).

    pytest benchmarks/bench_simulator.py --benchmark-enable -s

Without --benchmark-enable (the project default) every case runs once, as a smoke test. CI runs it
in tracking mode (.ci/run): the figures are saved as JSON and compared with the committed ones
(`--benchmark-compare`), reported and never failing. benchmarks/speed_table.py makes the tables of
docs/performance.md (CPU time, whole processes, scale, vLLM beside).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from kvbench.compose import compose
from kvbench.results import TableFormat, TableWriter
from kvbench.runner import build, simulate
from kvbench.commands.listing import choices

NUM_REQUESTS = int(os.environ.get("KVBENCH_BENCH_REQUESTS", "10000"))
STRATEGY_NAMES = [*choices("strategy"), "paged_radix-16"]  # every strategy `kvbench list` shows
# Overrides a case needs: radix at paged_prefix's granularity; hf_static with the static batching it models.
OVERRIDES = {
    "paged_radix-16": ["strategy=paged_radix", "strategy.block_size=16"],
    "hf_static": ["strategy=hf_static", "scheduler.batching=static"],
}
WORKLOAD = ["workload=sharegpt", f"workload.num_requests={NUM_REQUESTS}", "workload.arrival=offline",
            "model=llama-2-7b", "hardware=a100-80gb"]


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_replay_sharegpt_offline(benchmark, strategy):
    cfg = compose([*OVERRIDES.get(strategy, [f"strategy={strategy}"]), *WORKLOAD])
    simulated_tokens = sum(r.num_prompt_tokens + r.num_output_tokens for r in build(cfg).workload.requests)

    def fresh_run():
        return (build(cfg),), {}

    def streamed(run):
        with tempfile.TemporaryDirectory() as tmp:
            writer = TableWriter(Path(tmp), "steps", TableFormat.parquet)
            simulate(run, progress=False, step_sink=writer.write)
            writer.close()

    benchmark.pedantic(streamed, setup=fresh_run, rounds=3, iterations=1)
    if benchmark.stats is not None:  # None when benchmarks are disabled
        median_s = benchmark.stats.stats.median
        benchmark.extra_info.update(simulated_tokens=simulated_tokens, tokens_per_wall_s=simulated_tokens / median_s)
        print(f"\n{strategy:>14}: {simulated_tokens:,} tokens in {median_s:.2f} s = "
              f"{simulated_tokens / median_s / 1e6:.2f} M simulated tokens per wall-second")
