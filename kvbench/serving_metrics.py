"""Results in the field's formats: vLLM's benchmark metric names and units, goodput under SLOs, and a
`vllm bench serve --save-result`-compatible JSON.

`vllm_metrics` gives, beside kvbench's own figures, the names `vllm bench serve` reports (times in
milliseconds): `mean_ttft_ms`, `median_ttft_ms`, `std_ttft_ms`, `p90_ttft_ms`, `p99_ttft_ms` and the
same for `tpot` (time per output token after the first), `itl` (inter-token latency) and `e2el`
(end-to-end latency); `request_throughput`, `output_throughput`, `total_token_throughput`; and
`request_goodput`, the requests per second that met every SLO set under `goodput` (as
`vllm bench serve --goodput ttft:500 tpot:50`), null when no SLO is set. Statistics follow vLLM:
numpy's linear-interpolation percentiles, the population standard deviation.

ITL: the scheduler advances decoding sequences in bulk and keeps no per-token times; the run's
`InterTokenLatencies` (kvbench.inter_token_latency) aggregates the gaps per step, from which the
mean, std, median and percentiles are exact, as numpy computes them over every gap.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kvbench.inter_token_latency import InterTokenLatencies
from kvbench.percentiles import median, percentiles

if TYPE_CHECKING:
    from typing import TypeAlias

    import pandas as pd

    from kvbench.results import TableColumns

    # The requests table (kvbench.request_rows.REQUEST_COLUMNS): in memory, or on disk read a column
    # at a time. The figures take its columns through numpy only, so both give the same bits.
    RequestsTable: TypeAlias = pd.DataFrame | TableColumns

PERCENTILES = (90, 99)
VLLM_RESULT = "vllm_bench_serve.json"
VLLM_RESULT_CHUNK = 65_536  # per-request values encoded at a time


@dataclass
class SLOConfig:
    """Service-level objectives for goodput, in milliseconds (null: no objective on that metric)."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2el_ms: float | None = None

    def is_set(self) -> bool:
        return any(v is not None for v in (self.ttft_ms, self.tpot_ms, self.e2el_ms))


def _stats(name: str, values_ms: np.ndarray) -> dict[str, float | None]:
    values_ms = values_ms[np.isfinite(values_ms)]
    if not len(values_ms):
        return {f"{kind}_{name}_ms": None for kind in ("mean", "median", "std", *(f"p{p}" for p in PERCENTILES))}
    return {
        f"mean_{name}_ms": float(np.mean(values_ms)),
        f"median_{name}_ms": median(values_ms),
        f"std_{name}_ms": float(np.std(values_ms)),
        **{f"p{p}_{name}_ms": value for p, value in zip(PERCENTILES, percentiles(values_ms, PERCENTILES))},
    }


def output_lengths(requests: RequestsTable) -> np.ndarray:
    """Tokens each request generated, over all its parallel samples or beams (as summary.json counts)."""
    samples = np.maximum(np.asarray(requests["n"], dtype=np.int64), np.asarray(requests["beam_width"], dtype=np.int64))
    return np.asarray(requests["num_output_tokens"], dtype=np.int64) * samples


def good_requests(requests: RequestsTable, slo: SLOConfig) -> np.ndarray:
    """True for each request that met every objective set (a request with one output token has no TPOT
    and meets a TPOT objective, as in vLLM)."""
    good = np.ones(len(requests), dtype=bool)
    if slo.ttft_ms is not None:
        good &= _ms(requests["ttft_s"]) <= slo.ttft_ms
    if slo.tpot_ms is not None:
        tpot_s = np.asarray(requests["tpot_s"], dtype=np.float64)
        good &= (tpot_s * 1000 <= slo.tpot_ms) | np.isnan(tpot_s)
    if slo.e2el_ms is not None:
        good &= _ms(requests["latency_s"]) <= slo.e2el_ms
    return good


def _ms(values_s) -> np.ndarray:
    return np.asarray(values_s, dtype=np.float64) * 1000


def vllm_figures(requests: RequestsTable, slo: SLOConfig | None = None,
                 itl: InterTokenLatencies | None = None) -> dict:
    """What `vllm_metrics` computes from the requests, before dividing by a duration: a run gives
    it to both `vllm_metrics` and `vllm_result` (two durations: the run's and summary.json's rounded
    one) so that the columns are read back and sorted once."""
    return {
        "completed": len(requests),
        "total_input_tokens": int(np.asarray(requests["num_prompt_tokens"], dtype=np.int64).sum()),
        "total_output_tokens": int(output_lengths(requests).sum()),
        "good_requests": int(good_requests(requests, slo).sum()) if slo is not None and slo.is_set() else None,
        "latencies": {
            **_stats("ttft", _ms(requests["ttft_s"])),
            **_stats("tpot", _ms(requests["tpot_s"])),
            **dict(sorted((itl or InterTokenLatencies()).stats_ms(PERCENTILES).items())),
            **_stats("e2el", _ms(requests["latency_s"])),
        },
    }


def vllm_metrics(
    requests: RequestsTable, duration_s: float, slo: SLOConfig | None = None, itl: InterTokenLatencies | None = None,
    figures: dict | None = None,
) -> dict:
    """The flat vLLM-named figures for summary.json (see the module docstring); the ITL figures are
    null without the run's `itl`. `figures`: `vllm_figures` of the same requests, SLOs and ITLs,
    when already computed."""
    per_s = (lambda x: x / duration_s) if duration_s > 0 else (lambda x: 0.0)
    figures = figures or vllm_figures(requests, slo, itl)
    input_tokens, output_tokens = figures["total_input_tokens"], figures["total_output_tokens"]
    good = figures["good_requests"]
    return {
        "completed": figures["completed"],
        "total_input_tokens": input_tokens,
        "total_output_tokens": output_tokens,
        "request_throughput": per_s(figures["completed"]),
        "request_goodput": None if good is None else per_s(good),
        "output_throughput": per_s(output_tokens),
        "total_token_throughput": per_s(output_tokens + input_tokens),
        **figures["latencies"],
    }


def vllm_result(summary: dict, requests: RequestsTable, request_rate: float | None, slo: SLOConfig | None,
                itl: InterTokenLatencies | None = None, figures: dict | None = None) -> dict:
    """What `vllm bench serve --save-result` writes, filled from a kvbench run (loads into the same tools).

    Fields vLLM takes from a live server (generated texts) are empty, and so are the per-request
    lists of ITLs (the run keeps their distribution, not every gap); `kvbench` says which run this is.
    A per-request list is given as a function that reads it, so that `write_vllm_result` holds one
    at a time (a million requests: 8 MB each).
    """
    duration_s = float(summary.get("duration_s") or 0.0)
    metrics = vllm_metrics(requests, duration_s, slo, itl, figures)  # over summary.json's (rounded) duration
    num_requests = len(requests)
    goodput_config = {k: v for k, v in
                      (("ttft", slo.ttft_ms), ("tpot", slo.tpot_ms), ("e2el", slo.e2el_ms)) if v is not None} \
        if slo is not None else {}
    return {
        "date": time.strftime("%Y%m%d-%H%M%S"),
        "backend": "kvbench-sim" if summary.get("engine") == "sim" else f"kvbench-{summary.get('engine')}",
        "label": f"kvbench {summary.get('strategy')}",
        "model_id": summary.get("model"),
        "tokenizer_id": summary.get("model"),
        "num_prompts": num_requests,
        "request_rate": "inf" if request_rate is None or math.isinf(request_rate) else request_rate,
        "burstiness": 1.0,
        "max_concurrency": None,
        "duration": duration_s,
        "failed": 0,
        **metrics,
        "goodput": goodput_config or None,
        # Per-request columns as arrays (not 32 MB of Python numbers a million requests); the empty
        # lists and strings are one shared object repeated.
        "input_lens": lambda: np.asarray(requests["num_prompt_tokens"], dtype=np.int64),
        "output_lens": lambda: output_lengths(requests),
        "ttfts": lambda: np.asarray(requests["ttft_s"], dtype=np.float64),
        "itls": lambda: [[]] * num_requests,
        "generated_texts": lambda: [""] * num_requests,
        "errors": lambda: [""] * num_requests,
        "kvbench": {key: summary.get(key) for key in ("strategy", "workload", "model", "hardware", "engine", "seed")},
    }


def write_vllm_result(run_dir: Path, result: dict) -> Path:
    """Write the vLLM-format result (strict JSON: NaN as null) into the run directory.

    Laid out as `json.dumps(result, indent=1)` would, but a per-request list is written a chunk at a
    time, so a million requests never become one string in memory. A value given as a function
    (vllm_result's per-request lists) is asked for when its turn comes.
    """
    path = Path(run_dir) / VLLM_RESULT
    with path.open("w") as out:
        out.write("{")
        for index, (key, value) in enumerate(result.items()):
            out.write(f"{',' if index else ''}\n {json.dumps(key)}: ")
            if callable(value):
                value = value()
            if not isinstance(value, list | np.ndarray) or not len(value):
                out.write(_encoded(value.tolist() if isinstance(value, np.ndarray) else value))
                continue
            out.write("[")
            for start in range(0, len(value), VLLM_RESULT_CHUNK):
                out.write(("," if start else "") + _items(value[start : start + VLLM_RESULT_CHUNK]))
            out.write("\n ]")
        out.write("\n}\n")
    return path


def _clean(value):
    """`value` with every non-finite float as None (JSON's null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def _encoded(value, level: int = 1) -> str:
    """`value` as `json.dumps(..., indent=1)` writes it `level` deep."""
    return json.dumps(_clean(value), indent=1, allow_nan=False).replace("\n", "\n" + " " * level)


_SCALARS = {int, float, str, bool, type(None)}


def _items(part: list | np.ndarray) -> str:
    """The items of a per-request list's chunk, without its brackets, as `_encoded` lays them out.

    Items that are numbers, strings or empty lists take one line each; for them json's C encoder,
    with the line break and indent as the item separator, writes the same text several times
    faster than the indenting encoder (pure Python)."""
    if isinstance(part, np.ndarray):
        finite = part.dtype.kind != "f" or bool(np.isfinite(part).all())
        part = part.tolist() if finite else _clean(part.tolist())
    elif any(part):  # (items all empty, zero or None, as the ITL lists' [[]] * n, are written as they are)
        if not set(map(type, part)) <= _SCALARS:
            return _encoded(part)[1 : -len("\n ]")]  # an item over several lines
        part = _clean(part)
    # (one-line items hold no container to guard against cycles: check_circular=False saves a dict per item)
    return "\n  " + json.dumps(part, separators=(",\n  ", ": "), allow_nan=False, check_circular=False)[1:-1]
