"""How a fleet's router moves its hit rate and TTFT: the table and chart of docs/tiers.md.

    python scripts/fleet_router_table.py [MOONCAKE_JSONL] [OUT_DIR]    # OUT_DIR default docs/tiers

Four replicas of Llama-3-8B on one A100-40GB each (simulator, `paged_prefix`), behind each router:
the first 2,000 rows of Mooncake's conversation trace (max_model_len 32,768) with the GPU pools
alone, with a 64 GiB CPU tier per replica, and with one 1 TiB remote tier all four share; and
ShareGPT multi-turn sessions at 8 requests/s.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from kvbench.compose import compose  # noqa: E402
from kvbench.reporting.markdown import table  # noqa: E402
from kvbench.runner import execute  # noqa: E402

ROUTERS = ["round_robin", "least_loaded", "prefix_aware"]
GIB = 2**30
COMMON = ["strategy=paged_prefix", "model=llama-3-8b", "fleet.num_replicas=4", "seed=0"]


def main() -> None:
    trace = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/mooncake/conversation_trace.jsonl").resolve()
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/tiers")
    mooncake = ["workload=mooncake", f"workload.path={trace}", "workload.num_requests=2000",
                "model.max_model_len=32768"]
    cases = [  # (workload, tiers, overrides)
        ("Mooncake", "GPU only", mooncake),
        ("Mooncake", "+ 64 GiB CPU each", [*mooncake, f"strategy.tiers.cpu.capacity_bytes={64 * GIB}"]),
        ("Mooncake", "+ 1 TiB remote, shared", [*mooncake, f"strategy.tiers.remote.capacity_bytes={1024 * GIB}"]),
        ("ShareGPT multi-turn", "GPU only", ["workload=sharegpt_multiturn", "workload.rate=8"]),
    ]
    rows = []
    runs_dir = Path("results/runs/fleet_router_table")
    for workload, tiers, overrides in cases:
        for router in ROUTERS:
            run_dir = runs_dir / f"{workload.split()[0].lower()}_{tiers.split()[-1]}_{router}"
            summary = execute(compose([*COMMON, *overrides, f"fleet.router={router}"]), run_dir, progress=False,
                              overwrite=True)
            rows.append({"workload": workload, "tiers": tiers, "router": router, "requests": summary["num_requests"],
                         "hit rate": summary["prefix_hit_rate"], "TTFT p50 s": summary["ttft_p50_s"],
                         "TTFT p99 s": summary["ttft_p99_s"], "out tok/s": summary["output_tokens_per_s"]})
    data = pd.DataFrame(rows)
    print(table(list(data.columns), [
        [r["workload"], r["tiers"], r["router"], r["requests"], f"{r['hit rate']:.1%}", f"{r['TTFT p50 s']:.3f}",
         f"{r['TTFT p99 s']:.3f}", f"{r['out tok/s']:.0f}"] for r in rows
    ]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric, label in ((axes[0], "hit rate", "fleet-wide prefix hit rate"), (axes[1], "TTFT p50 s", "TTFT p50 (s)")):
        pivot = data.assign(setup=data["workload"] + " (" + data["tiers"] + ")").pivot(
            index="setup", columns="router", values=metric).loc[data["workload"].add(" (" + data["tiers"] + ")").unique(), ROUTERS]
        pivot.plot.bar(ax=ax, rot=0, legend=ax is axes[0])
        ax.set_ylabel(label)
        ax.set_xlabel("")
        ax.set_xticklabels([t.get_text().replace(" (", "\n(") for t in ax.get_xticklabels()], fontsize=7)
    axes[1].set_yscale("log")
    fig.suptitle("Four replicas of Llama-3-8B (A100-40GB each), paged_prefix", fontsize=10)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "fleet_routers.png", dpi=120)


if __name__ == "__main__":
    main()
