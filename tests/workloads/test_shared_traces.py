"""The public traces under ../shared/data load whole, with the figures their sources document
(skipped where that folder is absent)."""

from __future__ import annotations

import csv

import pytest

from kvbench.workloads.arrivals import Arrival
from kvbench.workloads.azure import AzureConvConfig
from kvbench.workloads.length_table import LengthTableConfig
from kvbench.workloads.mooncake import MooncakeConfig


def test_azure_conv_2023(shared_file, load):
    data = load(AzureConvConfig(path=str(shared_file("azure_llm_2023/AzureLLMInferenceTrace_conv.csv"))))
    requests = data.requests
    assert len(requests) == 19366 and data.num_skipped_bad_rows == 0
    # 2023-11-16 18:15:46.6805900 to 19:14:08.4025270, read to the 100 ns.
    assert requests[-1].arrival_time_s == pytest.approx(3501.721937, abs=1e-6)
    assert (requests[0].num_prompt_tokens, requests[0].num_output_tokens) == (374, 44)
    assert (requests[-1].num_prompt_tokens, requests[-1].num_output_tokens) == (197, 183)
    assert max(r.num_prompt_tokens for r in requests) == 14050


def test_mooncake_conversation(shared_file, load):
    data = load(MooncakeConfig(path=str(shared_file("mooncake/conversation_trace.jsonl"))))
    requests = data.requests
    assert len(requests) == 12031
    assert requests[-1].arrival_time_s == pytest.approx(3536.999)
    assert all(len(r.prompt.segments) == -(-r.num_prompt_tokens // 512) for r in requests)
    assert max(r.num_prompt_tokens for r in requests) == 126195


@pytest.mark.parametrize(
    ("relative", "num_rows"),
    [
        ("sharegpt/sharegpt_8k_filtered_stats_llama2_tokenizer.csv", 30731),
        ("arxiv/arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv", 28257),
    ],
)
def test_length_tables(shared_file, load, relative, num_rows):
    path = shared_file(relative)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    data = load(LengthTableConfig(path=str(path), num_requests=None, sample=False, arrival=Arrival.offline))
    assert len(data.requests) == len(rows) == num_rows
    assert [r.num_prompt_tokens for r in data.requests] == [int(row["num_prefill_tokens"]) for row in rows]
    assert [r.num_output_tokens for r in data.requests] == [int(row["num_decode_tokens"]) for row in rows]


def test_mooncake_conversation_hit_rate_grows_with_the_tier_and_saturates(shared_file, load):
    """The shape of Mooncake FAST'25's capacity figure on its first 2,000 requests (the whole
    trace's table is in docs/tiers.md: scripts/mooncake_tier_capacity.py)."""
    from kvbench.tier_replay import replay_hit_rate

    data = load(MooncakeConfig(path=str(shared_file("mooncake/conversation_trace.jsonl")), num_requests=2000),
                max_model_len=131072)
    total = sum(r.num_prompt_tokens for r in data.requests)
    rates = [replay_hit_rate(data.requests, c).hit_rate for c in (500_000, 2_000_000, total)]
    assert 0 < rates[0] < rates[1] < rates[2]
    assert replay_hit_rate(data.requests, 2 * total).hit_rate == rates[2]  # unlimited: nothing is ever pushed out
