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

if TYPE_CHECKING:  # pandas (a third of a second) is imported where a table is built, not when a run starts
    import pandas as pd

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
        f"median_{name}_ms": float(np.median(values_ms)),
        f"std_{name}_ms": float(np.std(values_ms)),
        **{f"p{p}_{name}_ms": float(np.percentile(values_ms, p)) for p in PERCENTILES},
    }


def output_lengths(requests: pd.DataFrame) -> pd.Series:
    """Tokens each request generated, over all its parallel samples or beams (as summary.json counts)."""
    return requests["num_output_tokens"] * requests[["n", "beam_width"]].max(axis=1)


def good_requests(requests: pd.DataFrame, slo: SLOConfig) -> pd.Series:
    """True for each request that met every objective set (a request with one output token has no TPOT
    and meets a TPOT objective, as in vLLM)."""
    import pandas as pd
    good = pd.Series(True, index=requests.index)
    if slo.ttft_ms is not None:
        good &= requests["ttft_s"] * 1000 <= slo.ttft_ms
    if slo.tpot_ms is not None:
        good &= (requests["tpot_s"] * 1000 <= slo.tpot_ms) | requests["tpot_s"].isna()
    if slo.e2el_ms is not None:
        good &= requests["latency_s"] * 1000 <= slo.e2el_ms
    return good


def vllm_metrics(
    requests: pd.DataFrame, duration_s: float, slo: SLOConfig | None = None, itl: InterTokenLatencies | None = None,
) -> dict:
    """The flat vLLM-named figures for summary.json (see the module docstring); the ITL figures are
    null without the run's `itl`."""
    per_s = (lambda x: x / duration_s) if duration_s > 0 else (lambda x: 0.0)
    output_tokens = int(output_lengths(requests).sum())
    input_tokens = int(requests["num_prompt_tokens"].sum())
    itl_ms = (itl or InterTokenLatencies()).stats_ms(PERCENTILES)
    goodput = None
    if slo is not None and slo.is_set():
        goodput = per_s(int(good_requests(requests, slo).sum()))
    return {
        "completed": len(requests),
        "total_input_tokens": input_tokens,
        "total_output_tokens": output_tokens,
        "request_throughput": per_s(len(requests)),
        "request_goodput": goodput,
        "output_throughput": per_s(output_tokens),
        "total_token_throughput": per_s(output_tokens + input_tokens),
        **_stats("ttft", requests["ttft_s"].to_numpy(dtype=float) * 1000),
        **_stats("tpot", requests["tpot_s"].to_numpy(dtype=float) * 1000),
        **dict(sorted(itl_ms.items())),
        **_stats("e2el", requests["latency_s"].to_numpy(dtype=float) * 1000),
    }


def vllm_result(summary: dict, requests: pd.DataFrame, request_rate: float | None, slo: SLOConfig | None,
                itl: InterTokenLatencies | None = None) -> dict:
    """What `vllm bench serve --save-result` writes, filled from a kvbench run (loads into the same tools).

    Fields vLLM takes from a live server (generated texts) are empty, and so are the per-request
    lists of ITLs (the run keeps their distribution, not every gap); `kvbench` says which run this is.
    """
    duration_s = float(summary.get("duration_s") or 0.0)
    metrics = vllm_metrics(requests, duration_s, slo, itl)
    goodput_config = {k: v for k, v in
                      (("ttft", slo.ttft_ms), ("tpot", slo.tpot_ms), ("e2el", slo.e2el_ms)) if v is not None} \
        if slo is not None else {}
    return {
        "date": time.strftime("%Y%m%d-%H%M%S"),
        "backend": "kvbench-sim" if summary.get("engine") == "sim" else f"kvbench-{summary.get('engine')}",
        "label": f"kvbench {summary.get('strategy')}",
        "model_id": summary.get("model"),
        "tokenizer_id": summary.get("model"),
        "num_prompts": len(requests),
        "request_rate": "inf" if request_rate is None or math.isinf(request_rate) else request_rate,
        "burstiness": 1.0,
        "max_concurrency": None,
        "duration": duration_s,
        "failed": 0,
        **metrics,
        "goodput": goodput_config or None,
        # Per-request columns as arrays (a million requests: 8 MB each, not 32 MB of Python numbers);
        # the empty lists and strings are one shared object repeated.
        "input_lens": requests["num_prompt_tokens"].to_numpy(dtype=np.int64),
        "output_lens": output_lengths(requests).to_numpy(dtype=np.int64),
        "ttfts": requests["ttft_s"].to_numpy(dtype=np.float64),
        "itls": [[]] * len(requests),
        "generated_texts": [""] * len(requests),
        "errors": [""] * len(requests),
        "kvbench": {key: summary.get(key) for key in ("strategy", "workload", "model", "hardware", "engine", "seed")},
    }


def write_vllm_result(run_dir: Path, result: dict) -> Path:
    """Write the vLLM-format result (strict JSON: NaN as null) into the run directory.

    Laid out as `json.dumps(result, indent=1)` would, but a per-request list is written a chunk at a
    time, so a million requests never become one string in memory.
    """

    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value

    def encoded(value, level: int = 1) -> str:
        return json.dumps(clean(value), indent=1, allow_nan=False).replace("\n", "\n" + " " * level)

    path = Path(run_dir) / VLLM_RESULT
    with path.open("w") as out:
        out.write("{")
        for index, (key, value) in enumerate(result.items()):
            out.write(f"{',' if index else ''}\n {json.dumps(key)}: ")
            if not isinstance(value, list | np.ndarray) or not len(value):
                out.write(encoded(value.tolist() if isinstance(value, np.ndarray) else value))
                continue
            out.write("[")
            for start in range(0, len(value), VLLM_RESULT_CHUNK):
                part = value[start : start + VLLM_RESULT_CHUNK]
                items = encoded(part.tolist() if isinstance(value, np.ndarray) else part)
                out.write(("," if start else "") + items[1 : -len("\n ]")])  # the items, without the brackets
            out.write("\n ]")
        out.write("\n}\n")
    return path
