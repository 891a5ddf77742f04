"""Bad trace files fail before anything runs, naming the file and line; skip_bad_rows skips and counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvbench.workloads.arrivals import Arrival
from kvbench.workloads.azure import AzureConvConfig
from kvbench.workloads.bad_rows import SkippedRowsWarning, TraceFormatError
from kvbench.workloads.burstgpt import BurstGPTConfig
from kvbench.workloads.custom import CustomConfig
from kvbench.workloads.length_table import LengthTableConfig
from kvbench.workloads.mooncake import MooncakeConfig
from kvbench.workloads.replay import UnsortedTraceWarning

AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
GOOD = "2023-11-16 18:15:46.6805900,374,44\n"


def azure(tmp_path: Path, body: str, **options) -> AzureConvConfig:
    path = tmp_path / "trace.csv"
    path.write_text(AZURE_HEADER + body)
    return AzureConvConfig(path=str(path), **options)


@pytest.mark.parametrize(
    ("bad_row", "problem"),
    [
        ("2023-11-16 18:15:47.0,abc,44", "ContextTokens='abc' is not a whole number >= 1"),
        ("2023-11-16 18:15:47.0,0,44", "ContextTokens=0 is not a whole number >= 1"),
        ("2023-11-16 18:15:47.0,12,-3", "GeneratedTokens=-3 is not a whole number >= 1"),
        ("2023-11-16 18:15:47.0,12.5,3", "ContextTokens=12.5 is not a whole number"),
        ("2023-11-16 18:15:47.0,1e400,3", "ContextTokens=inf is not a whole number"),
        ("2023-11-16 18:15:47.0,12", "GeneratedTokens is empty"),
        ("yesterday,12,3", "TIMESTAMP='yesterday' is not an ISO 8601 time"),
        ("2023-11-16 18:15:47.0,12,3,99", "expected 3 fields, saw 4"),
    ],
)
def test_a_malformed_row_names_the_file_and_line(tmp_path, load, bad_row, problem):
    config = azure(tmp_path, GOOD + GOOD + bad_row + "\n" + GOOD)
    with pytest.raises(TraceFormatError, match=rf"trace.csv, line 4: {problem}.*skip_bad_rows=true"):
        load(config)


def test_skip_bad_rows_skips_counts_and_warns(tmp_path, load):
    body = GOOD + "2023-11-16 18:15:47.0,abc,44\n" + GOOD + "2023-11-16 18:15:48.0,12,3,99\n" + "x,1,1\n" + GOOD
    with pytest.warns(SkippedRowsWarning, match="skipped 3 malformed rows"):
        data = load(azure(tmp_path, body, skip_bad_rows=True))
    assert data.num_skipped_bad_rows == 3
    assert [r.request_id for r in data.requests] == [0, 2, 5]  # ids are the rows' positions in the file


def test_blank_lines_are_not_rows(tmp_path, load):
    data = load(azure(tmp_path, GOOD + "\n" + GOOD + "\n\n"))
    assert len(data.requests) == 2 and data.num_skipped_bad_rows == 0


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "the file is empty"),
        ("\n  \n", "the file is empty"),
        (AZURE_HEADER, "a header and no rows"),
        ("TIMESTAMP,Context,GeneratedTokens\n" + GOOD, "no column ContextTokens; the header has TIMESTAMP, Context"),
    ],
)
def test_empty_files_and_missing_columns(tmp_path, load, text, problem):
    path = tmp_path / "trace.csv"
    path.write_text(text)
    with pytest.raises(TraceFormatError, match=problem):
        load(AzureConvConfig(path=str(path)))


def test_every_row_bad_is_an_error_even_when_skipping(tmp_path, load):
    with pytest.raises(TraceFormatError, match="no valid request"):
        load(azure(tmp_path, "x,1,1\n2023-11-16 18:15:47.0,0,1\n", skip_bad_rows=True))


def test_unsorted_timestamps_are_sorted_with_a_warning(tmp_path, load):
    body = "2023-11-16 18:15:50.0,10,1\n2023-11-16 18:15:46.0,20,1\n2023-11-16 18:15:48.0,30,1\n"
    with pytest.warns(UnsortedTraceWarning, match="trace.csv: timestamps are not in order"):
        data = load(azure(tmp_path, body))
    assert [(r.request_id, r.arrival_time_s) for r in data.requests] == [(1, 0.0), (2, 2.0), (0, 4.0)]


def test_burstgpt_missing_column_is_named(tmp_path, load):
    path = tmp_path / "b.csv"
    path.write_text("Timestamp,Model,Request tokens,Total tokens,Log Type\n1,ChatGPT,5,10,API log\n")
    with pytest.raises(TraceFormatError, match="no column Response tokens"):
        load(BurstGPTConfig(path=str(path)))


def test_length_table_zero_prefill_names_the_line(tmp_path, load):
    path = tmp_path / "t.csv"
    path.write_text("num_prefill_tokens,num_decode_tokens\n5,5\n0,3\n")
    with pytest.raises(TraceFormatError, match="t.csv, line 3: num_prefill_tokens=0 is not a whole number >= 1"):
        load(LengthTableConfig(path=str(path)))


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"timestamp": 0, "input_length": 600, "output_length": 3}', "no field hash_ids"),
        ('{"timestamp": 0, "input_length": 600, "output_length": 0, "hash_ids": [1, 2]}', "output_length=0"),
        ('{"timestamp": "soon", "input_length": 600, "output_length": 3, "hash_ids": [1, 2]}', "timestamp='soon'"),
        ('{"timestamp": 0, "input_length": 600, "output_length": 3, "hash_ids": [1]}',
         "1 hash_ids for input_length=600: expected 2 blocks of workload.hash_block_tokens=512"),
        ('{"timestamp": 0, "input_length": 600, "output_length": 3, "hash_ids": [1, "a"]}', "hash_ids is not a list"),
    ],
)
def test_mooncake_bad_lines(tmp_path, load, line, problem):
    good = json.dumps({"timestamp": 0, "input_length": 10, "output_length": 3, "hash_ids": [0]})
    path = tmp_path / "trace.jsonl"
    path.write_text(f"{good}\n{line}\n{good}\n")
    with pytest.raises(TraceFormatError, match=rf"trace.jsonl, line 2: {problem}"):
        load(MooncakeConfig(path=str(path)))
    with pytest.warns(SkippedRowsWarning, match="skipped 1 malformed rows"):
        data = load(MooncakeConfig(path=str(path), skip_bad_rows=True))
    assert data.num_skipped_bad_rows == 1 and [r.request_id for r in data.requests] == [0, 2]


@pytest.mark.parametrize(
    ("records", "problem"),
    [
        ([{"prompt_len": 3}], "line 2: no output_len"),
        ([{"prompt_len": 3, "output_len": 1, "output_ids": [4]}], "line 2: unknown field 'output_ids'"),
        ([{"prompt_len": 3, "output_len": 2, "output_token_ids": [4]}],
         "line 2: output_len=2 but output_token_ids holds 1 tokens"),
        ([{"prompt_len": 3, "output_token_ids": []}], "line 2: output_token_ids must be a non-empty list"),
        ([{"prompt_len": 3, "output_len": 1, "id": ""}], "line 2: id='' is neither"),
        ([{"prompt_len": 3, "output_len": 1, "id": 1}, {"prompt_len": 3, "output_len": 1, "id": "b"}],
         "ids mix whole numbers and strings"),
        ([{"prompt_len": 3, "output_len": 1, "id": "a"}, {"prompt_len": 3, "output_len": 1, "id": "a"}],
         "request id 'a' appears more than once"),
        ([{"prompt_len": 3, "prompt_token_ids": [1, 2, 3], "output_len": 1}],
         "line 2: give prompt_token_ids or prompt_len"),
        ([{"prompt_token_ids": [], "output_len": 1}], "line 2: prompt_token_ids must be a non-empty list"),
        ([{"prompt_token_ids": [1, -2], "output_len": 1}], "line 2: prompt_token_ids must be"),
        ([{"prompt_len": 3, "output_len": 1, "arrival_time": "now"}], "line 2: arrival_time='now'"),
        ([{"prompt_len": 3, "output_len": 1, "id": 1}, {"prompt_len": 3, "output_len": 1}], "line 3: give id on every"),
        ([{"prompt_len": 3, "output_len": 1, "id": 1}, {"prompt_len": 3, "output_len": 1, "id": 1}],
         "request id 1 appears more than once"),
        ([{"prompt_len": 3, "output_len": 1, "arrival_time": 0}, {"prompt_len": 3, "output_len": 1}],
         "line 3: give arrival_time on every"),
        ([], "an empty JSON array"),
    ],
)
def test_custom_bad_records(tmp_path, load, records, problem):
    path = tmp_path / "requests.json"
    path.write_text("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n")
    with pytest.raises(TraceFormatError, match=problem):
        load(CustomConfig(path=str(path), arrival=Arrival.offline))


def test_custom_json_syntax_error_names_the_line(tmp_path, load):
    path = tmp_path / "requests.json"
    path.write_text('[\n {"prompt_len": 3, "output_len": 1},\n {"prompt_len": 3 "output_len": 1}\n]')
    with pytest.raises(TraceFormatError, match="requests.json, line 3: not JSON"):
        load(CustomConfig(path=str(path), arrival=Arrival.offline))
