"""How long loading a whole public trace takes: file to replayable requests (pytest-benchmark).

    pytest benchmarks/bench_trace_loading.py --benchmark-enable

Each benchmark reads, checks and expands the full trace into `Request`s (Mooncake: 12,031 requests,
288,500 hash-block segments; Azure conv 2023: 19,366 requests) and the infinite-cache prefix bound
over Mooncake at 16-token blocks (what `kvbench workload describe` computes). The traces come from
../shared/data beside the checkout; a benchmark skips when its file is absent. Nothing here asserts
anything about time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import kvbench.config  # noqa: F401  (registers the schemas)
from kvbench.workloads import WORKLOADS, WorkloadConfig
from kvbench.workloads.azure import AzureConvConfig
from kvbench.workloads.mooncake import MooncakeConfig
from kvbench.workloads.prefix_reuse import infinite_cache_hits

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
MOONCAKE = SHARED_DATA / "mooncake" / "conversation_trace.jsonl"
AZURE_CONV = SHARED_DATA / "azure_llm_2023" / "AzureLLMInferenceTrace_conv.csv"


def trace(path: Path) -> str:
    if not path.is_file():
        pytest.skip(f"{path.resolve()} not found")
    return str(path)


def load_all(config: WorkloadConfig):
    return WORKLOADS.get(config.name)(config, 0, 1 << 30).load()


def test_load_mooncake_conversation(benchmark):
    data = benchmark(load_all, MooncakeConfig(path=trace(MOONCAKE)))
    assert len(data.requests) == 12031


def test_load_azure_conv_2023(benchmark):
    data = benchmark(load_all, AzureConvConfig(path=trace(AZURE_CONV)))
    assert len(data.requests) == 19366


def test_prefix_bound_mooncake_16_token_blocks(benchmark):
    requests = load_all(MooncakeConfig(path=trace(MOONCAKE))).requests
    hit_tokens, prompt_tokens = benchmark(infinite_cache_hits, requests, 16)
    assert 0 < hit_tokens < prompt_tokens
