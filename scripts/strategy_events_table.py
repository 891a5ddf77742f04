"""One Markdown row per run of a sweep: memory waste, throughput and the events each strategy counts
(copies, mappings, evictions, prefix hits), read from every summary.json under the given folder.

    python scripts/strategy_events_table.py results/sweeps/strategies/sharegpt > events.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from kvbench.reporting.markdown import table

COLUMNS = {
    "output_tokens_per_s": "output tok/s", "mem_internal_frag_frac": "internal frag", "mem_reserved_frac": "reserved",
    "mem_external_frag_frac": "external frag", "preemptions": "preemptions", "prefix_hit_rate": "prefix hit rate",
    "evicted_blocks": "evicted blocks", "pages_mapped": "pages mapped", "bytes_mapped": "GiB mapped",
    "reallocations": "reallocations", "bytes_copied": "GiB copied",
}
PERCENT = ("mem_internal_frag_frac", "mem_reserved_frac", "mem_external_frag_frac", "prefix_hit_rate")
GIB = ("bytes_mapped", "bytes_copied")


def label(run_dir: Path) -> str:
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    strategy = next(o.split("=", 1)[1] for o in overrides if o.startswith("strategy="))
    options = [o.removeprefix("strategy.") for o in overrides if o.startswith("strategy.")]
    return f"{strategy} ({', '.join(options)})" if options else strategy


def main() -> None:
    rows = []
    for summary_path in sorted(Path(sys.argv[1]).rglob("summary.json")):
        summary = json.loads(summary_path.read_text())
        row = {"strategy": label(summary_path.parent)}
        for key, name in COLUMNS.items():
            value = summary.get(key, 0)
            row[name] = f"{value:.1%}" if key in PERCENT else f"{value / 2**30:.2f}" if key in GIB else (
                f"{value:.1f}" if isinstance(value, float) else value)
        rows.append(row)
    print(table(list(rows[0]), [list(row.values()) for row in rows]))


if __name__ == "__main__":
    main()
