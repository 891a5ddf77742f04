"""The memory experiments of the PagedAttention paper, rerun in kvbench's simulator.

Kwon et al., "Efficient Memory Management for Large Language Model Serving with PagedAttention",
SOSP 2023, arXiv 2309.06180. The setup comes from the paper's text (conf/experiment/vllm_paper*.yaml):
OPT-13B on one A100-40GB with 12 GB of KV cache, maximum sequence length 2048, Poisson arrivals;
Orca re-implemented over a buddy allocator reserving 2048 tokens (Max), the true length rounded up
to a power of two (Pow2) or the true length (Oracle); vLLM paged with 16-token blocks. Nothing is
tuned toward a published number.

Every step also costs the CPU time of the paper's engine, vLLM v0 (`engine.cpu_overhead=vllm-2023`,
kvbench/cpu_overhead.py): 8.2 ms, taken from vLLM's own profiles of a later v0 release on another
model and GPU (its blogs of 2024-09-05 and 2025-01-27), none of the figures below. Each row names
what calibrated it; Fig. 13a is also shown on the pure roofline (`engine.cpu_overhead=none`).

Where the paper reports "sustains k× higher request rates" or "k× higher throughput", kvbench
compares capacities: the request rate each system completes when every request arrives at once
(an offline run), which is where its latency curve turns up. The latency-against-rate sweeps are
charted as well.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import OmegaConf

from kvbench.hardware import GiB, kv_budget
from kvbench.model_spec import ModelSpec
from kvbench.reproduce import vllm_paper_swap
from kvbench.reproduce.batch import RunSpec, compose_run

CPU_OVERHEAD = "vllm-2023"
CALIBRATED = f"engine.cpu_overhead={CPU_OVERHEAD}"
PAPER = ("experiment=vllm_paper", CALIBRATED)
PREFIX = ("experiment=vllm_paper_prefix", CALIBRATED)
ROOFLINE = ("experiment=vllm_paper", "engine.cpu_overhead=none")
# What each figure's prediction rests on besides the paper's own setup.
CALIBRATION = f"CPU {CPU_OVERHEAD}: vLLM blogs 2024-09-05 + 2025-01-27"
NO_CALIBRATION = "none (memory arithmetic)"
SYSTEMS = {"orca_max": "Orca (Max)", "orca_pow2": "Orca (Pow2)", "orca_oracle": "Orca (Oracle)", "paged": "vLLM"}
# Not the paper's setup: Oracle's reservation from a first-fit allocator, which does not round runs up
# to a power of two as the buddy allocator the paper names does.
ORACLE_FIRST_FIT = ("strategy=orca_oracle", "strategy.allocator=first_fit")
SHARING_SYSTEMS = {"orca_oracle": "Orca (Oracle)", "paged_cow": "vLLM"}
PREFIX_SYSTEMS = {"orca_oracle": "Orca (Oracle)", "paged_prefix": "vLLM"}
SHOTS = {1: 80, 5: 341}  # examples in the shared prefix -> its tokens (paper §6.4)
FIG13_RATE = 2.0  # ShareGPT requests/s of Fig. 13 (the paper's Fig. 13 caption)
ALPACA_RATE = 30.0  # Alpaca requests/s of Fig. 13


@dataclass(frozen=True)
class Published:
    """Figures quoted from the paper's text (the section is given where each is used)."""

    kv_token_slots: float = 15.7e3  # Table 1, OPT-13B, 12 GB
    token_share: tuple[tuple[str, float], ...] = (  # §3 / Fig. 2: share of KV memory holding tokens
        ("orca_max", 0.204), ("orca_pow2", 0.268), ("orca_oracle", 0.382), ("paged", 0.963))
    batch_orca_max: float = 7.00  # Fig. 13a, ShareGPT at 2 req/s
    batch_ratio_vs_oracle: float = 2.2  # §6.2: "vLLM processes 2.2x more requests at the same time"
    batch_ratio_vs_max: float = 4.3
    rate_ratio_vs_oracle: tuple[float, float] = (1.7, 2.7)  # §6.2, over OPT-13B/66B/175B on ShareGPT
    rate_ratio_vs_max: tuple[float, float] = (2.7, 8.0)
    saving_parallel_sharegpt: tuple[float, float] = (0.162, 0.305)  # §6.3, n = 2..6
    saving_beam_sharegpt: tuple[float, float] = (0.443, 0.663)  # §6.3, width 2..6
    saving_parallel_alpaca: tuple[float, float] = (0.061, 0.098)  # §6.3 / Fig. 15
    saving_beam_alpaca: tuple[float, float] = (0.376, 0.552)
    alpaca_gain_basic: float = 1.3  # §6.3: vLLM over Orca (Oracle), OPT-13B on Alpaca
    alpaca_gain_beam6: float = 2.3
    prefix_gain: tuple[tuple[int, float], ...] = ((1, 1.67), (5, 3.58))  # §6.4, throughput over Orca (Oracle)
    sharegpt_mean_tokens: tuple[float, float] = (161.31, 337.99)  # §6.1, input and output


PUBLISHED = Published()


@dataclass(frozen=True)
class Scale:
    """How much to run: the full reproduction, or a small one for tests."""

    num_requests: int
    sharegpt_rates: tuple[float, ...]  # must include FIG13_RATE
    sharing_rates: tuple[float, ...]
    prefix_rates: tuple[float, ...]
    widths: tuple[int, ...]  # parallel samples and beam widths
    block_sizes: tuple[int, ...]
    # Fig. 19 (recompute against swap, vllm_paper_swap.py): block sizes and ShareGPT requests per run.
    swap_block_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
    swap_requests: int = 1000


FULL = Scale(1000, (0.5, 1, 1.5, 2, 3, 4, 6, 8), (0.25, 0.5, 1, 2), (5, 10, 20, 40), (2, 4, 6),
             (1, 2, 4, 8, 16, 32, 64, 128, 256))
QUICK = Scale(50, (2,), (), (), (2,), (1, 256), swap_block_sizes=(1, 32), swap_requests=200)


def _rate(rate: float) -> str:
    return f"rate_{rate:g}"


def run_specs(scale: Scale, alpaca_path: str | None) -> list[RunSpec]:
    """Every run of the reproduction, named by experiment / system / operating point."""
    n = f"workload.num_requests={scale.num_requests}"
    offline = "workload.arrival=offline"
    specs = []
    for system in SYSTEMS:
        specs.append(RunSpec(f"capacity/{system}", (*PAPER, f"strategy={system}", n, offline)))
        specs += [
            RunSpec(f"latency/{system}/{_rate(r)}", (*PAPER, f"strategy={system}", n, f"workload.rate={r}"))
            for r in scale.sharegpt_rates
        ]
    specs.append(RunSpec("capacity/orca_oracle_first_fit", (*PAPER, *ORACLE_FIRST_FIT, n, offline)))
    specs.append(RunSpec(f"latency/orca_oracle_first_fit/{_rate(FIG13_RATE)}",
                         (*PAPER, *ORACLE_FIRST_FIT, n, f"workload.rate={FIG13_RATE}")))
    for system in ("orca_max", "paged"):  # Fig. 13a on the pure roofline, for comparison
        specs.append(RunSpec(f"roofline/{system}/{_rate(FIG13_RATE)}",
                             (*ROOFLINE, f"strategy={system}", n, f"workload.rate={FIG13_RATE}")))
    for kind, key in (("n", "workload.n"), ("beam", "workload.beam_width")):
        for width in scale.widths:
            for system in SHARING_SYSTEMS:
                base = (*PAPER, f"strategy={system}", n, f"{key}={width}")
                specs.append(RunSpec(f"sharing/{kind}{width}/{system}/offline", (*base, offline)))
                specs += [RunSpec(f"sharing/{kind}{width}/{system}/{_rate(r)}", (*base, f"workload.rate={r}"))
                          for r in scale.sharing_rates]
    for shots, tokens in SHOTS.items():
        for system in PREFIX_SYSTEMS:
            base = (*PREFIX, f"strategy={system}", n, f"workload.shared_prefix_tokens={tokens}")
            specs.append(RunSpec(f"prefix/shot_{shots}/{system}/offline", (*base, offline)))
            specs += [RunSpec(f"prefix/shot_{shots}/{system}/{_rate(r)}", (*base, f"workload.rate={r}"))
                      for r in scale.prefix_rates]
    for block_size in scale.block_sizes:
        specs.append(RunSpec(f"block_size/bs_{block_size}",
                             (*PAPER, "strategy=paged", f"strategy.block_size={block_size}", n, offline)))
    specs += vllm_paper_swap.run_specs(PAPER, scale.swap_block_sizes, scale.swap_requests)
    if alpaca_path:
        alpaca = ("workload=alpaca", f"workload.path={alpaca_path}", n)
        for system in SYSTEMS:
            specs.append(RunSpec(f"alpaca/{system}/{_rate(ALPACA_RATE)}",
                                 (*PAPER, *alpaca, f"strategy={system}", f"workload.rate={ALPACA_RATE}")))
        for system in SHARING_SYSTEMS:
            specs.append(RunSpec(f"alpaca_sharing/basic/{system}", (*PAPER, *alpaca, f"strategy={system}", offline)))
            for width in scale.widths:
                for kind, key in (("n", "workload.n"), ("beam", "workload.beam_width")):
                    specs.append(RunSpec(f"alpaca_sharing/{kind}{width}/{system}",
                                         (*PAPER, *alpaca, f"strategy={system}", f"{key}={width}", offline)))
    return specs


@dataclass(frozen=True)
class Row:
    """One line of the published-against-kvbench table."""

    figure: str
    quantity: str
    published: str
    kvbench: str
    agreement: str
    note: str = ""
    calibration: str = CALIBRATION  # what the prediction rests on besides the paper's setup


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def times(x: float) -> str:
    return f"{x:.2f}×"


def waste_parts(s: dict) -> dict[str, float]:
    """The paper's Fig. 2 categories, as shares of the KV pool."""
    return {
        "token states": s["mem_token_frac"],
        "reservation": s["mem_reserved_frac"],
        "internal fragmentation": s["mem_internal_frag_frac"],
        "external fragmentation & others": s["mem_external_frag_frac"] + s["mem_free_frac"] + s["mem_cached_frac"],
    }


def sharing_saving(s: dict) -> float:
    """Memory saved by sharing over memory without sharing (paper §6.3): saved / (held + saved)."""
    held = s["mem_token_frac"] + s["mem_reserved_frac"] + s["mem_internal_frag_frac"]
    return s["shared_saved_frac"] / (held + s["shared_saved_frac"]) if held + s["shared_saved_frac"] else 0.0


def within(value: float, bounds: tuple[float, float]) -> str:
    lo, hi = bounds
    return "inside" if lo <= value <= hi else f"outside ({value / (lo if value < lo else hi):.2f}× the nearer end)"


def table1_row() -> Row:
    cfg, _ = compose_run(PAPER)
    model = ModelSpec(OmegaConf.to_object(cfg.model))
    budget = kv_budget(OmegaConf.to_object(cfg.hardware), model, 1, kv_cache_bytes=cfg.kv_cache_bytes)
    slots = budget.num_token_slots
    return Row("Table 1", "KV token slots, OPT-13B in 12 GB", "15.7K", f"{slots:,}",
               times(slots / PUBLISHED.kv_token_slots),
               f"{budget.kv_bytes_per_token // 1024} KiB per token; {cfg.kv_cache_bytes / GiB:g} GiB",
               NO_CALIBRATION)


def basic_rows(runs: dict[str, dict]) -> list[Row]:
    at = {s: runs[f"latency/{s}/{_rate(FIG13_RATE)}"] for s in SYSTEMS}
    cap = {s: runs[f"capacity/{s}"] for s in SYSTEMS}
    rows = []
    prompt_mean = cap["paged"]["prompt_tokens"] / cap["paged"]["num_requests"]
    output_mean = cap["paged"]["output_tokens"] / cap["paged"]["num_requests"]
    rows.append(Row("§6.1", "ShareGPT mean input / output tokens", "161.31 / 337.99",
                    f"{prompt_mean:.2f} / {output_mean:.2f}",
                    f"{prompt_mean / PUBLISHED.sharegpt_mean_tokens[0]:.2f}× / "
                    f"{output_mean / PUBLISHED.sharegpt_mean_tokens[1]:.2f}×",
                    "cl100k_base counts of ShareGPT V3, first user turn and reply (see the README)", NO_CALIBRATION))
    for system, published in PUBLISHED.token_share:
        parts = waste_parts(at[system])
        saturated = waste_parts(cap[system])["token states"]
        rows.append(Row("Fig. 2", f"{SYSTEMS[system]}: share of KV memory holding tokens", pct(published),
                        pct(parts["token states"]), f"{100 * (parts['token states'] - published):+.1f} pp",
                        f"at {FIG13_RATE:g} req/s; {pct(saturated)} when saturated (offline)"))
    batch = {s: at[s]["mean_batch_size"] for s in SYSTEMS}
    rows.append(Row("Fig. 13a", "Orca (Max): average batched requests, 2 req/s", f"{PUBLISHED.batch_orca_max:.2f}",
                    f"{batch['orca_max']:.2f}", times(batch["orca_max"] / PUBLISHED.batch_orca_max)))
    for other, published in (("orca_oracle", PUBLISHED.batch_ratio_vs_oracle), ("orca_max", PUBLISHED.batch_ratio_vs_max)):
        ratio = batch["paged"] / batch[other]
        rows.append(Row("Fig. 13a", f"vLLM ÷ {SYSTEMS[other]}: batched requests, 2 req/s", times(published),
                        times(ratio), times(ratio / published),
                        f"vLLM {batch['paged']:.2f}, {SYSTEMS[other]} {batch[other]:.2f}"))
    capacity = {s: cap[s]["requests_per_s"] for s in SYSTEMS}
    for other, bounds in (("orca_oracle", PUBLISHED.rate_ratio_vs_oracle), ("orca_max", PUBLISHED.rate_ratio_vs_max)):
        ratio = capacity["paged"] / capacity[other]
        rows.append(Row("Fig. 12", f"vLLM ÷ {SYSTEMS[other]}: sustainable request rate",
                        f"{bounds[0]:g}–{bounds[1]:g}×", times(ratio), within(ratio, bounds),
                        "paper: range over OPT-13B/66B/175B; kvbench: OPT-13B capacity "
                        f"(vLLM {capacity['paged']:.2f} req/s, {SYSTEMS[other]} {capacity[other]:.2f} req/s)"))
    first_fit = runs[f"latency/orca_oracle_first_fit/{_rate(FIG13_RATE)}"]
    rows.append(Row("Fig. 2", "Orca (Oracle) on first fit (not the paper's buddy): token share", pct(0.382),
                    pct(first_fit["mem_token_frac"]), f"{100 * (first_fit['mem_token_frac'] - 0.382):+.1f} pp",
                    f"batch {first_fit['mean_batch_size']:.2f}; a buddy allocator rounds Oracle's runs up "
                    "like Pow2's, so under buddy the two are the same"))
    # The paper's Pow2 and Oracle batches differ, which a rounding buddy allocator cannot give:
    # both readings of Oracle, and which one the published ratio matches.
    readings = {"buddy": batch["orca_oracle"], "exact-size (first fit)": first_fit["mean_batch_size"]}
    errors = {name: abs(batch["paged"] / b / PUBLISHED.batch_ratio_vs_oracle - 1) for name, b in readings.items()}
    rows.append(Row("Fig. 13a", "vLLM ÷ Orca (Oracle) batched requests: buddy / exact-size reading",
                    times(PUBLISHED.batch_ratio_vs_oracle),
                    " / ".join(times(batch["paged"] / b) for b in readings.values()),
                    f"closer: {min(errors, key=errors.get)}",
                    f"Oracle batch {readings['buddy']:.2f} (buddy, = Pow2 {batch['orca_pow2']:.2f}) / "
                    f"{readings['exact-size (first fit)']:.2f} (exact size)"))
    roofline = {s: runs[f"roofline/{s}/{_rate(FIG13_RATE)}"]["mean_batch_size"] for s in ("orca_max", "paged")}
    rows.append(Row("Fig. 13a", "Pure roofline (no CPU time): Orca (Max) batch / vLLM ÷ Orca (Max)",
                    f"{PUBLISHED.batch_orca_max:.2f} / {times(PUBLISHED.batch_ratio_vs_max)}",
                    f"{roofline['orca_max']:.2f} / {times(roofline['paged'] / roofline['orca_max'])}",
                    times(roofline["paged"] / roofline["orca_max"] / PUBLISHED.batch_ratio_vs_max),
                    f"vLLM batch {roofline['paged']:.2f} without CPU time, {batch['paged']:.2f} with it",
                    "none (engine.cpu_overhead=none)"))
    return rows


def sharing_rows(runs: dict[str, dict], widths: tuple[int, ...]) -> list[Row]:
    rows = []
    for kind, label, bounds in (("n", "parallel sampling", PUBLISHED.saving_parallel_sharegpt),
                                ("beam", "beam search", PUBLISHED.saving_beam_sharegpt)):
        savings = [sharing_saving(runs[f"sharing/{kind}{w}/paged_cow/offline"]) for w in widths]
        gains = [runs[f"sharing/{kind}{w}/paged_cow/offline"]["requests_per_s"]
                 / runs[f"sharing/{kind}{w}/orca_oracle/offline"]["requests_per_s"] for w in widths]
        rows.append(Row("Fig. 15 / §6.3", f"ShareGPT, {label} ({'/'.join(map(str, widths))}): memory saved by sharing",
                        f"{pct(bounds[0])}–{pct(bounds[1])}", f"{pct(min(savings))}–{pct(max(savings))}",
                        "inside" if bounds[0] <= min(savings) and max(savings) <= bounds[1] else "outside",
                        "saved blocks ÷ blocks without sharing, time-averaged, saturated; "
                        + ", ".join(f"{w}: {pct(s)}" for w, s in zip(widths, savings))))
        rows.append(Row("Fig. 14", f"ShareGPT, {label}: vLLM ÷ Orca (Oracle) capacity", "not stated",
                        ", ".join(f"{w}: {times(g)}" for w, g in zip(widths, gains)), "n/a",
                        "the paper states this ratio for Alpaca only"))
    return rows


def prefix_rows(runs: dict[str, dict]) -> list[Row]:
    rows = []
    for shots, published in PUBLISHED.prefix_gain:
        vllm = runs[f"prefix/shot_{shots}/paged_prefix/offline"]
        oracle = runs[f"prefix/shot_{shots}/orca_oracle/offline"]
        gain = vllm["requests_per_s"] / oracle["requests_per_s"]
        rows.append(Row("Fig. 16", f"{shots}-shot prefix ({SHOTS[shots]} tokens): vLLM ÷ Orca (Oracle) throughput",
                        times(published), times(gain), times(gain / published),
                        f"prefix hit rate {pct(vllm['prefix_hit_rate'])}; translation lengths assumed (see the preset)"))
    return rows


def block_size_rows(runs: dict[str, dict], block_sizes: tuple[int, ...]) -> list[Row]:
    capacity = {b: runs[f"block_size/bs_{b}"]["requests_per_s"] for b in block_sizes}
    best = max(capacity, key=capacity.get)
    waste = {b: runs[f"block_size/bs_{b}"]["mem_internal_frag_frac"] for b in block_sizes}
    return [Row("Fig. 18b", "block size with the highest capacity (ShareGPT)", "no figure quoted", str(best), "n/a",
                "capacity req/s: " + ", ".join(f"{b}: {capacity[b]:.2f}" for b in block_sizes)
                + "; internal fragmentation: " + ", ".join(f"{b}: {pct(waste[b])}" for b in block_sizes)
                + ". The roofline does not model the GPU inefficiency of small blocks the paper names")]


def alpaca_rows(runs: dict[str, dict], widths: tuple[int, ...]) -> list[Row]:
    rows = []
    batch = {s: runs[f"alpaca/{s}/{_rate(ALPACA_RATE)}"]["mean_batch_size"] for s in SYSTEMS}
    rows.append(Row("Fig. 13b", "Alpaca 30 req/s: batched requests (Max / Pow2 / Oracle / vLLM)", "see the paper",
                    " / ".join(f"{batch[s]:.2f}" for s in SYSTEMS), "n/a"))
    for kind, label, bounds in (("n", "parallel sampling", PUBLISHED.saving_parallel_alpaca),
                                ("beam", "beam search", PUBLISHED.saving_beam_alpaca)):
        savings = [sharing_saving(runs[f"alpaca_sharing/{kind}{w}/paged_cow"]) for w in widths]
        rows.append(Row("Fig. 15", f"Alpaca, {label}: memory saved by sharing", f"{pct(bounds[0])}–{pct(bounds[1])}",
                        f"{pct(min(savings))}–{pct(max(savings))}",
                        "inside" if bounds[0] <= min(savings) and max(savings) <= bounds[1] else "outside"))

    def gain(case: str) -> float:
        return (runs[f"alpaca_sharing/{case}/paged_cow"]["requests_per_s"]
                / runs[f"alpaca_sharing/{case}/orca_oracle"]["requests_per_s"])

    rows.append(Row("§6.3", "Alpaca: vLLM ÷ Orca (Oracle), basic sampling", times(PUBLISHED.alpaca_gain_basic),
                    times(gain("basic")), times(gain("basic") / PUBLISHED.alpaca_gain_basic)))
    if 6 in widths:
        rows.append(Row("§6.3", "Alpaca: vLLM ÷ Orca (Oracle), beam width 6", times(PUBLISHED.alpaca_gain_beam6),
                        times(gain("beam6")), times(gain("beam6") / PUBLISHED.alpaca_gain_beam6)))
    return rows


def ms(seconds: float) -> str:
    return f"{1e3 * seconds:.1f} ms"


def comparison(runs: dict[str, dict], scale: Scale, with_alpaca: bool) -> list[Row]:
    rows = [table1_row(), *basic_rows(runs), *sharing_rows(runs, scale.widths), *prefix_rows(runs),
            *block_size_rows(runs, scale.block_sizes),
            *vllm_paper_swap.rows(runs, PAPER, scale.swap_block_sizes, Row, ms, times)]
    if with_alpaca:
        rows += alpaca_rows(runs, scale.widths)
    return rows
