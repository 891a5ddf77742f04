"""How much cache the Mooncake conversation trace needs: kvbench's tiered prefix cache against
the FAST'25 paper's figures (a 3M-token cache reaches about 41% of an unlimited cache's hit rate;
about 50M tokens nearly all of it). The table in docs/tiers.md.

    python scripts/mooncake_tier_capacity.py [MOONCAKE_JSONL] > table.md

Every request's prompt in arrival order (kvbench.tier_replay): a CPU tier of each capacity below
a GPU pool that holds one prompt, 256-token blocks (half a trace block).
"""

from __future__ import annotations

import sys
from pathlib import Path

from kvbench.compose import compose
from kvbench.reporting.markdown import table
from kvbench.tier_replay import replay_hit_rate
from kvbench.workloads import WORKLOADS

CAPACITIES_TOKENS = [1_000_000, 3_000_000, 10_000_000, 20_000_000, 50_000_000]


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/mooncake/conversation_trace.jsonl")
    cfg = compose(["workload=mooncake", f"workload.path={path.resolve()}", "model=llama-3-8b",
                   "model.max_model_len=131072"])
    from omegaconf import OmegaConf

    workload_cfg = OmegaConf.to_object(cfg.workload)
    requests = WORKLOADS.get("mooncake")(workload_cfg, 0, cfg.model.max_model_len).load().requests
    total_tokens = sum(r.num_prompt_tokens for r in requests)
    unlimited = replay_hit_rate(requests, total_tokens)
    rows = []
    for capacity in CAPACITIES_TOKENS:
        result = replay_hit_rate(requests, capacity)
        rows.append([f"{capacity / 1e6:g}M", f"{result.hit_rate:.1%}", f"{result.hit_rate / unlimited.hit_rate:.0%}"])
    rows.append([f"unlimited ({total_tokens / 1e6:.0f}M)", f"{unlimited.hit_rate:.1%}", "100%"])
    print(table(["cache capacity (tokens)", "hit rate", "share of unlimited"], rows))


if __name__ == "__main__":
    main()
