"""Every trace format, written small into a temporary folder, loads into the requests it describes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kvbench.tokens import Explicit, Synthetic, TokenSequence
from kvbench.workloads.alpaca import AlpacaConfig
from kvbench.workloads.arrivals import Arrival
from kvbench.workloads.azure import AzureCodeConfig, AzureConvConfig
from kvbench.workloads.burstgpt import BurstGPTConfig
from kvbench.workloads.custom import CustomConfig
from kvbench.workloads.length_table import LengthTableConfig
from kvbench.workloads.mooncake import MooncakeConfig
from kvbench.workloads.replay import UnsortedTraceWarning


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def arrivals(data) -> list[float]:
    return [r.arrival_time_s for r in data.requests]


def test_azure_2023_seven_fractional_digits_no_trailing_newline(tmp_path, load):
    path = write(tmp_path / "conv.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                 "2023-11-16 18:15:46.6805900,374,44\n"
                 "2023-11-16 18:15:50.9951690,396,109\n"
                 "2023-11-16 18:16:46.6805901,91,16")
    data = load(AzureConvConfig(path=path))
    assert [r.num_prompt_tokens for r in data.requests] == [374, 396, 91]
    assert [r.num_output_tokens for r in data.requests] == [44, 109, 16]
    assert arrivals(data) == pytest.approx([0.0, 4.314579, 60.0000001], abs=1e-9)
    assert [r.request_id for r in data.requests] == [0, 1, 2]
    assert data.dataset["name"] == "azure_conv" and len(data.dataset["sha256"]) == 64


def test_azure_2024_offsets_and_mixed_fractions(tmp_path, load):
    path = write(tmp_path / "code_1week.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                 "2024-05-10 00:00:00.004000+00:00,2048,28\n"
                 "2024-05-10 00:00:01+00:00,1500,3\n"
                 "2024-05-10 00:00:01.5+00:00,10,1\n")
    data = load(AzureCodeConfig(path=path))
    assert arrivals(data) == pytest.approx([0.0, 0.996, 1.496])
    assert data.requests[0].prompt.segments[0].key == ("azure_code", 0)
    # Lengths only: every prompt is a stream of its own.
    assert len({r.prompt.segments[0].key for r in data.requests}) == 3


BURSTGPT_V1 = (
    "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
    "5,ChatGPT,472,18,490,Conversation log\n"
    "45,ChatGPT,1087,0,1087,Conversation log\n"
    "118,GPT-4,417,276,693,API log\n"
    "130,ChatGPT,1360,30,1390,API log\n"
)


def test_burstgpt_drops_failed_rows_and_filters(tmp_path, load):
    path = write(tmp_path / "BurstGPT_1.csv", BURSTGPT_V1)
    data = load(BurstGPTConfig(path=path))
    assert [r.request_id for r in data.requests] == [0, 2, 3]  # row 1 failed (0 response tokens)
    assert arrivals(data) == [0.0, 113.0, 125.0]
    assert data.dataset["num_failed"] == 1 and data.dataset["num_filtered_out"] == 1

    kept_failed = load(BurstGPTConfig(path=path, drop_failed=False))
    assert [r.num_output_tokens for r in kept_failed.requests] == [18, 1, 276, 30]

    chatgpt_api = load(BurstGPTConfig(path=path, models=["ChatGPT"], log_types=["API log"]))
    assert [r.request_id for r in chatgpt_api.requests] == [3]
    with pytest.raises(ValueError, match=r"workload.models=\['GPT4'\].*'ChatGPT', 'GPT-4'"):
        load(BurstGPTConfig(path=path, models=["GPT4"]))


def test_burstgpt_release3_columns_by_name_with_sessions(tmp_path, load):
    path = write(tmp_path / "BurstGPT_v3.csv",
                 "Timestamp,Session ID,Elapsed time,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                 "1.5,s-a,0.5,ChatGPT,100,10,110,Conversation log\n"
                 "2.0,s-b,0.4,ChatGPT,200,20,220,Conversation log\n"
                 "9.0,s-a,0.7,ChatGPT,150,15,165,Conversation log\n"
                 "9.5,,0.7,GPT-4,50,5,55,API log\n")
    data = load(BurstGPTConfig(path=path))
    assert [r.num_prompt_tokens for r in data.requests] == [100, 200, 150, 50]
    assert [(r.session_id, r.turn) for r in data.requests] == [(0, 0), (1, 0), (0, 1), (2, 0)]
    assert arrivals(data) == [0.0, 0.5, 7.5, 8.0]


def test_mooncake_expands_hash_ids_into_shared_segments(tmp_path, load):
    rows = [
        {"timestamp": 0, "input_length": 1100, "output_length": 5, "hash_ids": [0, 1, 2]},
        {"timestamp": 250, "input_length": 600, "output_length": 7, "hash_ids": [0, 3]},
        {"timestamp": 1000, "input_length": 512, "output_length": 1, "hash_ids": [0]},
    ]
    path = write(tmp_path / "trace.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    data = load(MooncakeConfig(path=path))
    first = data.requests[0].prompt
    assert first.segments == (Synthetic(("mooncake", 0), 512), Synthetic(("mooncake", 1), 512),
                              Synthetic(("mooncake", 2), 76))
    assert len(first) == 1100
    assert arrivals(data) == [0.0, 0.25, 1.0]
    # Equal ids, equal tokens: the first 512 tokens are shared at any kvbench block size.
    second = data.requests[1].prompt
    assert first.ids(0, 512, 32000).tolist() == second.ids(0, 512, 32000).tolist()
    assert first.block_key(256, 512) == second.block_key(256, 512)
    assert first.block_key(512, 600) != second.block_key(512, 600)


def test_mooncake_block_size_is_a_setting(tmp_path, load):
    path = write(tmp_path / "bailian.jsonl",
                 json.dumps({"timestamp": 3, "input_length": 40, "output_length": 2, "hash_ids": [7, 8, 9]}) + "\n")
    data = load(MooncakeConfig(path=path, hash_block_tokens=16, timestamp_unit_s=1.0))
    assert [s.num_tokens for s in data.requests[0].prompt.segments] == [16, 16, 8]


def test_length_table_reads_columns_by_name_with_generated_arrivals(tmp_path, load):
    path = write(tmp_path / "table.csv", "num_prefill_tokens,num_decode_tokens,num_total_tokens,pd_ratio\n"
                 + "".join(f"{10 + i},{1 + i},{11 + 2 * i},1.0\n" for i in range(50)))
    first = load(LengthTableConfig(path=path, num_requests=20, sample=False, arrival=Arrival.poisson, rate=5.0))
    assert [r.num_prompt_tokens for r in first.requests] == list(range(10, 30))
    assert np.all(np.diff(arrivals(first)) >= 0) and arrivals(first)[0] > 0
    sampled = load(LengthTableConfig(path=path, num_requests=20))
    assert list(sampled.requests) != list(first.requests) and len(sampled.requests) == 20
    assert all(r.num_output_tokens == r.num_prompt_tokens - 9 for r in sampled.requests)
    assert list(load(LengthTableConfig(path=path, num_requests=20)).requests) == list(sampled.requests)  # seeded


def test_custom_json_with_token_ids_ids_and_times(tmp_path, load):
    records = [
        {"id": 7, "prompt_token_ids": [1, 2, 3], "output_len": 4, "arrival_time": 10.5},
        {"id": 3, "prompt_len": 20, "output_len": 2, "arrival_time": 10.0},
    ]
    path = write(tmp_path / "requests.json", json.dumps(records, indent=2))
    with pytest.warns(UnsortedTraceWarning, match="requests.json: timestamps are not in order"):
        data = load(CustomConfig(path=path))
    assert [r.request_id for r in data.requests] == [3, 7]  # arrival order
    assert arrivals(data) == [0.0, 0.5]
    assert data.requests[1].prompt == TokenSequence((Explicit((1, 2, 3)),))
    assert data.requests[0].prompt.segments == (Synthetic(("custom", 3), 20),)


def test_custom_string_ids_outputs_and_file_order_offline(tmp_path, load):
    records = [
        {"id": "req002", "prompt_token_ids": [1, 2, 3], "output_token_ids": [7, 8]},
        {"id": "req000", "prompt_token_ids": [1, 2, 3, 7, 8, 4], "output_len": 1},
    ]
    path = write(tmp_path / "requests.json", json.dumps(records))
    data = load(CustomConfig(path=path, arrival=Arrival.offline))
    assert [(r.request_id, r.num_output_tokens) for r in data.requests] == [(0, 2), (1, 1)]  # file order
    assert data.requests[0].output == TokenSequence.from_ids([7, 8]) and data.requests[1].output is None
    # Integer ids out of order: offline, the file's order is still the queue's order.
    records = [{"id": 9, "prompt_len": 4, "output_len": 1}, {"id": 2, "prompt_len": 5, "output_len": 1}]
    path = write(tmp_path / "ints.json", json.dumps(records))
    data = load(CustomConfig(path=path, arrival=Arrival.offline))
    assert [r.request_id for r in data.requests] == [9, 2]


def test_custom_jsonl_without_times_needs_a_generated_arrival(tmp_path, load):
    path = write(tmp_path / "requests.jsonl",
                 '{"prompt_len": 5, "output_len": 1}\n\n{"prompt_len": 6, "output_len": 2}\n')
    with pytest.raises(ValueError, match="no timestamps.*workload.arrival=poisson"):
        load(CustomConfig(path=path))
    data = load(CustomConfig(path=path, arrival=Arrival.offline))
    assert [(r.request_id, r.num_prompt_tokens, r.arrival_time_s) for r in data.requests] == [(0, 5, 0.0), (1, 6, 0.0)]


def test_alpaca_tokenises_instruction_and_input(tmp_path, load):
    bpe_openai = pytest.importorskip("bpe_openai")
    encoder = bpe_openai.get_encoding("cl100k_base")
    records = [
        {"instruction": "Give three tips for staying healthy.", "input": "", "output": "1. Eat well."},
        {"instruction": "Give three tips for staying healthy.", "input": "For a student.", "output": "Sleep."},
    ]
    path = write(tmp_path / "alpaca_data.json", json.dumps(records))
    data = load(AlpacaConfig(path=path, num_requests=None, sample=False, arrival=Arrival.offline))
    assert [r.prompt.segments[0].ids for r in data.requests] == [
        tuple(encoder.encode_ordinary("Give three tips for staying healthy.")),
        tuple(encoder.encode_ordinary("Give three tips for staying healthy.\n\nFor a student.")),
    ]
    assert [r.num_output_tokens for r in data.requests] == [len(encoder.encode_ordinary(r["output"])) for r in records]


@pytest.mark.parametrize(
    ("config", "where"),
    [
        (AzureConvConfig(), "github.com/Azure/AzurePublicDataset"),
        (BurstGPTConfig(), "github.com/HPMLL/BurstGPT"),
        (MooncakeConfig(), "github.com/kvcache-ai/Mooncake"),
        (LengthTableConfig(), "sarathi-serve"),
        (AlpacaConfig(), "non-commercial.*github.com/tatsu-lab/stanford_alpaca"),
        (CustomConfig(), "docs/workloads.md"),
    ],
)
def test_without_a_path_the_error_says_where_to_get_the_file(config, where, load):
    with pytest.raises(FileNotFoundError, match=f"workload.path=.*{where}"):
        load(config)


def test_a_missing_file_is_named(tmp_path, load):
    with pytest.raises(FileNotFoundError, match="workload.path=.*nope.csv: no such file"):
        load(AzureConvConfig(path=str(tmp_path / "nope.csv")))
