"""Hit rate by tier against the CPU tier's size: the chart and table of docs/tiers.md.

    python scripts/tier_size_chart.py [MOONCAKE_JSONL] [OUT_DIR]    # OUT_DIR default docs/tiers

Llama-3-8B on one A100-40GB (simulator), a 2 GiB GPU pool (16,384 tokens), the first 1,000 rows of
Mooncake's conversation trace (those within 8,192 tokens run), `paged_prefix` with a CPU tier of
each size and, below it, a 1M-token disk tier; write-back, loads not overlapped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from kvbench.compose import compose  # noqa: E402
from kvbench.reporting.markdown import table  # noqa: E402
from kvbench.runner import build, simulate  # noqa: E402

CPU_TOKENS = [0, 64_000, 256_000, 1_000_000, 4_000_000]
DISK_TOKENS = 1_000_000


def main() -> None:
    trace = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/mooncake/conversation_trace.jsonl").resolve()
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/tiers")
    rows = []
    for cpu_tokens in CPU_TOKENS:
        overrides = [
            "strategy=paged_prefix", "workload=mooncake", f"workload.path={trace}", "workload.num_requests=1000",
            "model=llama-3-8b", "kv_cache_bytes=2147483648", "seed=0",
        ]
        run = build(compose(overrides))
        bytes_per_token = run.model.kv_bytes_per_token
        tiers = [f"strategy.tiers.disk.capacity_bytes={DISK_TOKENS * bytes_per_token}"]
        if cpu_tokens:
            tiers.append(f"strategy.tiers.cpu.capacity_bytes={cpu_tokens * bytes_per_token}")
        run = build(compose([*overrides, *tiers]))
        recorder = simulate(run, progress=False)
        steps = recorder.steps_table()
        query = int(steps["prefix_query_tokens"].sum())
        tier_hits = {t: int(steps[f"tier_{t}_hit_tokens"].sum()) if f"tier_{t}_hit_tokens" in steps else 0
                     for t in ("cpu", "disk")}
        gpu_hits = int(steps["prefix_hit_tokens"].sum()) - sum(tier_hits.values())
        ttft = recorder.requests_table()["ttft_s"]
        rows.append({
            "CPU tier (tokens)": cpu_tokens, "GPU": gpu_hits / query, "CPU": tier_hits["cpu"] / query,
            "disk": tier_hits["disk"] / query, "load s": run.executor.kv_load_s, "TTFT p50 s": ttft.median(),
            "duration s": recorder.end_time_s,
        })
    print(table(list(rows[0]), [[f"{v:,}" if k == "CPU tier (tokens)" else f"{v:.1%}" if k in ("GPU", "CPU", "disk")
                                 else f"{v:.1f}" for k, v in row.items()] for row in rows]))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = [f"{r['CPU tier (tokens)'] / 1e3:,.0f}K" for r in rows]
    bottom = [0.0] * len(rows)
    for tier, color in (("GPU", "#4c72b0"), ("CPU", "#dd8452"), ("disk", "#55a868")):
        values = [r[tier] for r in rows]
        ax.bar(labels, values, bottom=bottom, label=f"{tier} hits", color=color)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xlabel("CPU tier size (tokens); a 1M-token disk tier below it")
    ax.set_ylabel("prefix hit rate (share of prompt tokens)")
    ax.set_title("Mooncake conversation, Llama-3-8B, 16K-token GPU pool", fontsize=10)
    ax.legend(frameon=False)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "hit_rate_by_tier.png", dpi=120)


if __name__ == "__main__":
    main()
