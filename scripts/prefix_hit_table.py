"""The hit-rate table of docs/strategies.md: page granularity and `scheduler.policy=lpm` against
`paged_prefix` at 16-token blocks, on ShareGPT multi-turn sessions and Mooncake conversations.

    python scripts/prefix_hit_table.py [MOONCAKE_JSONL] > table.md

Llama-3-8B, simulator; a 2 GiB KV pool (16,384 tokens) so the cache competes for room and the
queue builds up (where the waiting order matters).
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
COMMON = ["model=llama-3-8b", "kv_cache_bytes=2147483648", "seed=0"]


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
        for label, overrides in CASES:
            recorder = simulate(build(compose([*COMMON, *workload_overrides, *overrides])), progress=False)
            steps = recorder.steps_table()
            hit, query = int(steps["prefix_hit_tokens"].sum()), int(steps["prefix_query_tokens"].sum())
            evicted = int(steps["evicted_blocks"].sum()) if "evicted_blocks" in steps else 0
            rows.append({"workload": workload, "strategy": label, "hit tokens": hit,
                         "hit rate": f"{hit / query:.1%}", "evicted blocks": evicted,
                         "duration (s)": f"{recorder.end_time_s:.1f}"})
    print(table(list(rows[0]), [list(row.values()) for row in rows]))


if __name__ == "__main__":
    main()
