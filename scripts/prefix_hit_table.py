"""The hit-rate table of docs/strategies.md: page granularity and `scheduler.policy=lpm` against
`paged_prefix` at 16-token blocks, on ShareGPT multi-turn sessions and Mooncake conversations.

    python scripts/prefix_hit_table.py [MOONCAKE_JSONL] > table.md

Llama-3-8B, simulator, in two pools: 2 GiB (16,384 tokens), where the cache competes for room, the
queue builds up (where the waiting order matters) and requests are preempted (a recomputed request
queries its prompt again and hits what it inserted before it left, so hit counts then also follow
the preemptions); and the A100-40GB's default pool, where nothing is preempted.
"""

from __future__ import annotations

import sys
from pathlib import Path


from kvbench.compose import compose
from kvbench.reporting.markdown import table
from kvbench.runner import build, simulate

CASES = [  # (label, overrides)
    ("paged_prefix, block 16", ["strategy=paged_prefix"]),
    ("paged_prefix, block 16, lpm", ["strategy=paged_prefix", "scheduler.policy=lpm"]),
    ("paged_radix, page 16", ["strategy=paged_radix", "strategy.block_size=16"]),
    ("paged_radix, page 16, lpm", ["strategy=paged_radix", "strategy.block_size=16", "scheduler.policy=lpm"]),
    ("paged_radix, page 1", ["strategy=paged_radix"]),
    ("paged_radix, page 1, lpm", ["strategy=paged_radix", "scheduler.policy=lpm"]),
]
COMMON = ["model=llama-3-8b", "hardware=a100-40gb", "seed=0"]
POOLS = {"2 GiB": ["kv_cache_bytes=2147483648"], "default": []}  # default: what the A100-40GB leaves for KV


def main() -> None:
    mooncake = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/mooncake/conversation_trace.jsonl")
    workloads = {
        "ShareGPT multi-turn (200 sessions)": ["workload=sharegpt_multiturn", "workload.rate=2"],
        "Mooncake conversation (first 300 rows)": [
            "workload=mooncake", f"workload.path={mooncake.resolve()}", "workload.num_requests=300",
        ],
    }
    rows = []
    for workload, workload_overrides in workloads.items():
        for pool, pool_overrides in POOLS.items():
            for label, overrides in CASES:
                run = build(compose([*COMMON, *pool_overrides, *workload_overrides, *overrides]))
                recorder = simulate(run, progress=False)
                counts = recorder.step_totals.counts
                hit, query = counts["prefix_hit_tokens"], counts["prefix_query_tokens"]
                pool_tokens = run.budget.num_blocks * run.budget.block_size
                rows.append({"workload": workload, "KV pool": f"{pool} ({pool_tokens:,} tokens)", "strategy": label,
                             "hit tokens": hit, "hit rate": f"{hit / query:.1%}",
                             "preemptions": counts["preemptions"], "evicted blocks": counts.get("evicted_blocks", 0),
                             "duration (s)": f"{recorder.end_time_s:.1f}"})
    print(table(list(rows[0]), [list(row.values()) for row in rows]))


if __name__ == "__main__":
    main()
