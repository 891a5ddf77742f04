"""Simulator speed: 10,000 ShareGPT requests replayed offline through each strategy.

Reports simulated tokens (prompt + output tokens of the replayed requests) per wall-second of the
step loop; workload loading and config composition are outside the timed region.

    pytest benchmarks/bench_simulator.py --benchmark-enable -s

Without --benchmark-enable (the project default) every case runs once, as a smoke test.
"""

from __future__ import annotations

import pytest
from kvbench.compose import compose
from kvbench.runner import build, simulate

STRATEGIES = [
    "paged", "paged_cow", "paged_prefix", "contiguous", "orca_max", "orca_pow2", "orca_oracle",
    "paged_radix", "paged_radix-16", "vattention", "hf_dynamic", "hf_static",
]
# Overrides a case needs: radix at paged_prefix's granularity; vattention's 64 KiB pages need a
# model whose K per token and layer divides them (Llama-2-13B's 10 KiB does not).
OVERRIDES = {
    "paged_radix-16": ["strategy=paged_radix", "strategy.block_size=16"],
    "vattention": ["strategy=vattention", "model=llama-3-8b"],
}
WORKLOAD = ["workload=sharegpt", "workload.num_requests=10000", "workload.arrival=offline"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_replay_10k_sharegpt_offline(benchmark, strategy):
    cfg = compose([*OVERRIDES.get(strategy, [f"strategy={strategy}"]), *WORKLOAD])
    simulated_tokens = sum(r.num_prompt_tokens + r.num_output_tokens for r in build(cfg).workload.requests)

    def fresh_run():
        return (build(cfg),), {}

    benchmark.pedantic(lambda run: simulate(run, progress=False), setup=fresh_run, rounds=3, iterations=1)
    if benchmark.stats is not None:  # None when benchmarks are disabled
        median_s = benchmark.stats.stats.median
        benchmark.extra_info.update(simulated_tokens=simulated_tokens, tokens_per_wall_s=simulated_tokens / median_s)
        print(f"\n{strategy:>14}: {simulated_tokens:,} tokens in {median_s:.2f} s = "
              f"{simulated_tokens / median_s / 1e6:.2f} M simulated tokens per wall-second")
