"""Compact text tables of run summaries, for the end of a run and for `compare` (with a line per
layer group for strategies that keep a block table per group)."""

from __future__ import annotations

COLUMNS = (
    ("strategy", "strategy", "{}"),
    ("workload", "workload", "{}"),
    ("num_requests", "reqs", "{:d}"),
    ("duration_s", "sim s", "{:.1f}"),
    ("output_tokens_per_s", "out tok/s", "{:.1f}"),
    ("requests_per_s", "req/s", "{:.3f}"),
    ("mean_batch_size", "batch", "{:.2f}"),
    ("mem_token_frac", "KV tokens", "{:.1%}"),
    ("mem_reserved_frac", "reserved", "{:.1%}"),
    ("mem_internal_frag_frac", "int frag", "{:.1%}"),
    ("mem_external_frag_frac", "ext frag", "{:.1%}"),
    ("preemptions", "preempt", "{:d}"),
    ("ttft_p50_s", "TTFT p50 s", "{:.3f}"),
    ("normalized_latency_s", "norm lat s", "{:.4f}"),
)


def _cell(fmt: str, value) -> str:
    if value is None:
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def summary_table(summaries: list[dict], names: list[str] | None = None) -> str:
    """One line per summary; `names` (a sweep's job directories) become a first column."""
    rows = [[title for _, title, _ in COLUMNS]]
    rows += [[_cell(fmt, s.get(key)) for key, _, fmt in COLUMNS] for s in summaries]
    text_columns = 2
    if names is not None:
        rows = [["job", *rows[0]], *([name, *row] for name, row in zip(names, rows[1:]))]
        text_columns = 3
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) if i >= text_columns else cell.ljust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + _group_lines(summaries, names))


def _group_lines(summaries: list[dict], names: list[str] | None) -> list[str]:
    """Runs with a block table per layer group: each group's time-averaged share of the pool held
    and holding K/V, and its peak, one line per run and group."""
    lines = []
    for i, s in enumerate(summaries):
        g = 0
        while f"kv_group{g}_held_frac" in s:
            who = names[i] if names is not None else s.get("strategy", "")
            lines.append(
                f"{who} layer group {g}: held {s[f'kv_group{g}_held_frac']:.1%} of the pool "
                f"(K/V tokens {s[f'kv_group{g}_token_frac']:.1%}), peak {s[f'kv_group{g}_max_held_bytes'] / 2**20:.1f} MiB"
            )
            g += 1
    return [""] + lines if lines else []
