"""Per-step CPU time outside the GPU kernels: scheduling, input preparation, sampling, output
processing, API server. A synchronous engine adds it to every step; an engine that overlaps it
with the GPU hides it.

`fixed_s + per_seq_s * sequences + per_token_s * tokens` per step. Each preset's values come from a
published measurement of the engine it names, never from a figure kvbench then predicts; a term no
publication separates is 0 (its share is inside `fixed_s`). Add to a preset with
`engine.step_overhead_s`, `engine.cpu_overhead_per_seq_s` and `engine.cpu_overhead_per_token_s`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvbench.errors import ConfigError

# vLLM's blog, 2024-09-05 ("vLLM v0.6.0: 2.7x Throughput Improvement and 5x Latency Reduction",
# blog.vllm.ai/2024/09/05/perf-update.html), profiling v0.5.3 with Llama 3 8B on one H100: GPU
# execution is 38% of the time, the HTTP API server 33%, scheduling and input preparation 29%.
# vLLM's V1 blog, 2025-01-27 (blog.vllm.ai/2025/01/27/v1-alpha-release.html): on that setup a
# step's GPU execution is "as low as ~5 ms". So a v0 step lasts about 5 ms / 0.38 = 13.2 ms, of
# which 8.2 ms is CPU time (4.3 ms API server, 3.8 ms scheduling and input preparation).
_V0_GPU_STEP_S = 5e-3
_V0_GPU_SHARE = 0.38
_V0_STEP_S = _V0_GPU_STEP_S / _V0_GPU_SHARE
_V0_SCHEDULING_SHARE = 0.29


@dataclass(frozen=True)
class CpuOverhead:
    fixed_s: float
    per_seq_s: float
    per_token_s: float
    source: str  # the measurement the values come from

    def step_time_s(self, num_seqs: int, num_tokens: int) -> float:
        return self.fixed_s + self.per_seq_s * num_seqs + self.per_token_s * num_tokens


PRESETS: dict[str, CpuOverhead] = {
    "none": CpuOverhead(0.0, 0.0, 0.0, "none: the pure roofline (GPU time only)"),
    "vllm-2023": CpuOverhead(
        _V0_STEP_S * (1 - _V0_GPU_SHARE), 0.0, 0.0,
        "vLLM v0 (the engine of the PagedAttention paper): 8.2 ms per step, the CPU share (62%) of a "
        "~13.2 ms step of Llama-3-8B on an H100 profiled in vLLM's v0.6.0 blog (2024-09-05) on v0.5.3, "
        "with the ~5 ms GPU step of vLLM's V1 blog (2025-01-27)",
    ),
    "vllm-v1": CpuOverhead(
        _V0_STEP_S * _V0_SCHEDULING_SHARE, 0.0, 0.0,
        "vLLM V1: 3.8 ms per step, an upper bound: V1 moves the API server and detokenisation out of "
        "the engine loop (V1 blog, 2025-01-27), leaving at most v0.5.3's scheduling and input "
        "preparation share (29% of ~13.2 ms, v0.6.0 blog)",
    ),
    "sglang": CpuOverhead(
        0.0, 0.0, 0.0,
        "SGLang >= 0.4: 0, its overlap scheduler prepares the next batch while the GPU runs; Nsight "
        "shows no GPU idle time between consecutive decode batches (SGLang v0.4 blog, 2024-12-04)",
    ),
}


def cpu_overhead(preset: str, extra_fixed_s: float = 0.0, extra_per_seq_s: float = 0.0,
                 extra_per_token_s: float = 0.0) -> CpuOverhead:
    """A preset by name, with the given terms added; a ConfigError naming the setting otherwise."""
    if preset not in PRESETS:
        raise ConfigError(f"engine.cpu_overhead={preset!r} is not one of {', '.join(PRESETS)}")
    for name, value in (("step_overhead_s", extra_fixed_s), ("cpu_overhead_per_seq_s", extra_per_seq_s),
                        ("cpu_overhead_per_token_s", extra_per_token_s)):
        if value < 0:
            raise ConfigError(f"engine.{name}={value} must be >= 0")
    base = PRESETS[preset]
    if not (extra_fixed_s or extra_per_seq_s or extra_per_token_s):
        return base
    return CpuOverhead(base.fixed_s + extra_fixed_s, base.per_seq_s + extra_per_seq_s,
                       base.per_token_s + extra_per_token_s, base.source + " (plus engine.* terms)")
