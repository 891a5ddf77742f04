"""`kvbench workload describe`: what a workload holds, before anything runs.

    kvbench workload describe workload=mooncake workload.path=conversation_trace.jsonl model=mistral-7b
    kvbench workload describe workload=sharegpt_multiturn strategy.block_size=32 --plot results/plots

The overrides are `kvbench run`'s, composed the same way (Hydra), so the description is of exactly
the requests that run would replay: their count, duration and arrival rate, prompt and output
length percentiles, sessions and turns, the requests the model's max_model_len drops (and which
model presets would keep them all), and the upper bound on prefix reuse: the infinite-cache hit
rate at the configured `strategy.block_size` (`workloads/prefix_reuse.py`). `--plot DIR` writes
length and arrival histograms as PNG files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from kvbench.compose import compose
from kvbench.request import Request

PERCENTILES = (50, 90, 99)


def main(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="kvbench workload describe",
        description="Describe the requests a workload replays (the overrides are those of kvbench run).",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. workload=mooncake workload.path=FILE")
    parser.add_argument("--plot", metavar="DIR", help="write length and arrival histograms (PNG) to DIR")
    options = parser.parse_args(args)
    description, requests = describe(compose(options.overrides))  # input errors: commands/errors.py
    print(format_description(description))
    if options.plot:
        for path in plot(requests, description["workload"], Path(options.plot)):
            print(f"wrote {path}")
    return 0


def describe(cfg: DictConfig) -> tuple[dict, list[Request]]:
    """The description (a flat dict of figures) and the requests the run would replay."""
    from kvbench.commands.listing import presets
    from kvbench.workloads import WORKLOADS
    from kvbench.workloads.arrivals import Arrival
    from kvbench.workloads.prefix_reuse import infinite_cache_hits

    workload_cfg = OmegaConf.to_object(cfg.workload)
    data = WORKLOADS.get(workload_cfg.name)(workload_cfg, cfg.seed, sys.maxsize).load()  # no length filter yet
    every = data.requests
    total_lens = np.asarray([r.num_prompt_tokens + r.num_output_tokens for r in every], dtype=np.int64)
    max_model_len = cfg.model.max_model_len
    requests = [r for r, total in zip(every, total_lens, strict=True) if total <= max_model_len]
    block_size = cfg.strategy.block_size
    hit_tokens, prompt_tokens = infinite_cache_hits(requests, block_size)
    arrivals_s = np.asarray([r.arrival_time_s for r in requests])
    duration_s = float(arrivals_s.max() - arrivals_s.min()) if requests else 0.0
    session_rows = [r for r in requests if r.session_id is not None]
    sessions = {r.session_id for r in session_rows}
    description = {
        "workload": workload_cfg.name,
        "source": data.dataset.get("source", data.dataset.get("name", "")),
        "arrival": Arrival(workload_cfg.arrival).value,
        "num_requests": len(every),
        "max_total_tokens": int(total_lens.max()) if len(every) else 0,
        "num_skipped_bad_rows": data.num_skipped_bad_rows,
        "model": cfg.model.name,
        "max_model_len": max_model_len,
        "num_kept": len(requests),
        "num_dropped_too_long": len(every) - len(requests),
        "duration_s": duration_s,
        "arrival_rate_per_s": (len(requests) - 1) / duration_s if duration_s > 0 else 0.0,
        **length_stats("prompt_tokens", [r.num_prompt_tokens for r in requests]),
        **length_stats("output_tokens", [r.num_output_tokens for r in requests]),
        "num_sessions": len(sessions),
        "max_turns": max((r.turn for r in session_rows if r.turn is not None), default=-1) + 1,
        "mean_turns_per_session": len(session_rows) / len(sessions) if sessions else 0.0,
        "block_size": block_size,
        "prefix_hit_tokens_bound": hit_tokens,
        "prefix_hit_rate_bound": hit_tokens / prompt_tokens if prompt_tokens else 0.0,
        "models_keeping_all": {
            name: int((total_lens <= body["max_model_len"]).sum())
            for name, (_, body) in presets("model").items()
        },
    }
    return description, requests


def length_stats(name: str, lengths: list[int]) -> dict:
    if not lengths:
        return {f"{name}_mean": float("nan"), **{f"{name}_p{q}": float("nan") for q in PERCENTILES}, f"{name}_max": 0}
    values = np.asarray(lengths)
    return {
        f"{name}_mean": float(values.mean()),
        **{f"{name}_p{q}": float(np.percentile(values, q)) for q in PERCENTILES},
        f"{name}_max": int(values.max()),
    }


def format_description(d: dict) -> str:
    def lengths(name: str) -> str:
        return (f"mean {d[f'{name}_mean']:,.0f}  " + "  ".join(f"p{q} {d[f'{name}_p{q}']:,.0f}" for q in PERCENTILES)
                + f"  max {d[f'{name}_max']:,}")

    sessions = (f"{d['num_sessions']:,} sessions, {d['mean_turns_per_session']:.2f} turns each on average, "
                f"at most {d['max_turns']}") if d["num_sessions"] else "none (single requests)"
    presets = "  ".join(
        f"{name} {kept:,}/{d['num_requests']:,}" for name, kept in sorted(d["models_keeping_all"].items())
    )
    fitting = [name for name, kept in d["models_keeping_all"].items() if kept == d["num_requests"]]
    lines = [
        f"workload        {d['workload']}  ({d['source']})",
        f"requests        {d['num_requests']:,} after the replay controls"
        + (f", {d['num_skipped_bad_rows']:,} malformed rows skipped" if d["num_skipped_bad_rows"] else ""),
        f"model           {d['model']} (max_model_len {d['max_model_len']:,}): keeps {d['num_kept']:,}, "
        f"drops {d['num_dropped_too_long']:,} longer than that",
        *(
            [
                f"arrivals        {d['arrival']}: "
                + (f"{d['duration_s']:,.1f} s from first to last, {d['arrival_rate_per_s']:.3g} requests/s"
                   if d["duration_s"] > 0 else "all at once"),
                f"prompt tokens   {lengths('prompt_tokens')}",
                f"output tokens   {lengths('output_tokens')}",
            ]
            if d["num_kept"] else ["(no request fits this model: nothing to describe beyond the counts)"]
        ),
        f"sessions        {sessions}",
        f"prefix reuse    at most {d['prefix_hit_rate_bound']:.2%} of prompt tokens hit the cache "
        f"(infinite cache, block_size {d['block_size']})",
        f"model presets   requests each keeps: {presets}",
        "                keep every request: "
        + (", ".join(fitting) if fitting
           else f"none (the longest request needs model.max_model_len >= {d['max_total_tokens']:,})"),
    ]
    return "\n".join(lines)


def plot(requests: list[Request], name: str, directory: Path) -> list[Path]:
    """Length histograms and the arrival rate over time, as PNG files in `directory`."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    directory.mkdir(parents=True, exist_ok=True)
    lengths = Figure(figsize=(10, 4), layout="constrained")
    for ax, label, values in zip(  # noqa: B905  (two of each by construction)
        lengths.subplots(1, 2),
        ("prompt tokens", "output tokens"),
        ([r.num_prompt_tokens for r in requests], [r.num_output_tokens for r in requests]),
    ):
        ax.hist(values, bins=60)
        ax.set_xlabel(label)
        ax.set_ylabel("requests")
    lengths.suptitle(f"{name}: {len(requests):,} requests")
    arrivals = Figure(figsize=(10, 4), layout="constrained")
    ax = arrivals.subplots()
    times_s = np.asarray([r.arrival_time_s for r in requests])
    span_s = float(times_s.max() - times_s.min()) if len(times_s) else 0.0
    num_bins = max(1, min(120, len(times_s) // 20))
    counts, edges = np.histogram(times_s, bins=num_bins)
    widths_s = np.diff(edges) if span_s > 0 else np.ones(len(counts))
    ax.stairs(counts / widths_s, edges, fill=True)
    ax.set_xlabel("arrival time (s)")
    ax.set_ylabel("requests/s")
    arrivals.suptitle(f"{name}: arrivals")
    paths = [directory / f"{name}_lengths.png", directory / f"{name}_arrivals.png"]
    lengths.savefig(paths[0], dpi=100)
    arrivals.savefig(paths[1], dpi=100)
    return paths
