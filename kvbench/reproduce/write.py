"""The reproduction's table of published against kvbench figures, as CSV and Markdown."""

from __future__ import annotations

import csv
from dataclasses import asdict, fields
from pathlib import Path

from kvbench.reporting import markdown as md
from kvbench.reproduce.vllm_paper import Row

COMPARISON = "comparison"


def markdown_table(rows: list[Row]) -> str:
    names = [f.name for f in fields(Row)]
    return md.table(names, [[getattr(row, name) for name in names] for row in rows])


def write_comparison(
    rows: list[Row], out_dir: Path, command: str, reports: list[tuple[Path, str]], skipped: list[str]
) -> Path:
    with (out_dir / f"{COMPARISON}.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=[f.name for f in fields(Row)])
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
    parts = [
        "# The PagedAttention paper's memory experiments, rerun in kvbench\n",
        "Kwon et al., *Efficient Memory Management for Large Language Model Serving with PagedAttention*, "
        "SOSP 2023 (arXiv 2309.06180), against kvbench's simulator (roofline cost model). Published figures "
        "are quoted from the paper's text; the README's reproduction section discusses every difference.\n",
        f"Command: `{command}`\n",
        markdown_table(rows),
        "",
    ]
    if skipped:
        parts += ["## Not run\n", *[f"- {reason}" for reason in skipped], ""]
    if reports:
        parts += ["## Charts\n", *[f"- [{path.parent.name}]({path.relative_to(out_dir)}): {what}"
                                    for path, what in reports], ""]
    path = out_dir / f"{COMPARISON}.md"
    path.write_text("\n".join(parts))
    return path
