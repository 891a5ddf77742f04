"""Trace files as users hand them over: compressed, a directory, unreadable, not UTF-8, long."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from kvbench.workloads import trace_files
from kvbench.workloads.bad_rows import TraceFormatError
from kvbench.workloads.custom import CustomConfig
from kvbench.workloads.length_table import LengthTableConfig
from kvbench.workloads.mooncake import MooncakeConfig


HEADER = "num_prefill_tokens,num_decode_tokens\n"
ROWS = "".join(f"{10 + i},{5 + i % 7}\n" for i in range(40))
MOONCAKE = "".join(
    json.dumps({"timestamp": 10 * i, "input_length": 20, "output_length": 4, "hash_ids": [i, i + 1]}) + "\n"
    for i in range(30)
)


def zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


@pytest.mark.parametrize("compress", [gzip.compress, zstd], ids=["gzip", "zstd"])
def test_compressed_traces_read_like_plain_ones(tmp_path, compress, load):
    plain, packed = tmp_path / "table.csv", tmp_path / "table.csv.packed"  # recognised by content, not name
    plain.write_text(HEADER + ROWS)
    packed.write_bytes(compress((HEADER + ROWS).encode()))
    options = {"num_requests": 20, "sample": True}
    expected = load(LengthTableConfig(path=str(plain), **options))
    got = load(LengthTableConfig(path=str(packed), **options))
    assert [(r.num_prompt_tokens, r.num_output_tokens) for r in got.requests] == [
        (r.num_prompt_tokens, r.num_output_tokens) for r in expected.requests]
    assert got.dataset["sha256"] == hashlib.sha256(packed.read_bytes()).hexdigest()  # the file as stored

    jsonl = tmp_path / "trace.jsonl.packed"
    jsonl.write_bytes(compress(MOONCAKE.encode()))
    assert len(load(MooncakeConfig(path=str(jsonl), hash_block_tokens=16)).requests) == 30


def test_a_truncated_gzip_file_is_one_line(tmp_path, load):
    path = tmp_path / "table.csv.gz"
    path.write_bytes(gzip.compress((HEADER + ROWS * 50).encode())[:-40])
    with pytest.raises(TraceFormatError, match=r"table.csv.gz: cannot read it"):
        load(LengthTableConfig(path=str(path)))


def test_a_directory_given_as_the_path_says_so(tmp_path, load):
    with pytest.raises(IsADirectoryError, match=rf"workload.path={tmp_path} is a directory"):
        load(LengthTableConfig(path=str(tmp_path)))


def test_an_unreadable_file_is_one_line(tmp_path, monkeypatch, load):
    path = tmp_path / "table.csv"
    path.write_text(HEADER + ROWS)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(trace_files, "open", denied, raising=False)  # the module's own open()
    with pytest.raises(TraceFormatError, match=r"table.csv: cannot read it \(Permission denied\)"):
        load(LengthTableConfig(path=str(path)))


@pytest.mark.parametrize(("name", "config", "body", "line"), [
    ("t.csv", LengthTableConfig, HEADER.encode() + b"10,5\n11,6\n12,\xff\n", 4),
    ("t.json", CustomConfig, b'[\n{"prompt_len": 3, "output_len": 2},\n{"prompt_len": 3, "output_len": 2, "x": "\xe9"}\n]', 3),
    ("t.jsonl", CustomConfig, b'{"prompt_len": 3, "output_len": 2}\n{"prompt_len": 3, "output_len": 2, "x": "\xe9"}\n', 2),
])
def test_text_that_is_not_utf8_names_its_line(tmp_path, name, config, body, line, load):
    path = tmp_path / name
    path.write_bytes(body)
    options = {"arrival": "offline"} if config is CustomConfig else {}
    with pytest.raises(TraceFormatError, match=rf"{name}, line {line}: not UTF-8 text"):
        load(config(path=str(path), **options))


def test_a_trailing_comma_in_a_custom_json_array_is_named(tmp_path, load):
    path = tmp_path / "requests.json"
    path.write_text('[\n  {"prompt_len": 3, "output_len": 2},\n  {"prompt_len": 4, "output_len": 2},\n]\n')
    with pytest.raises(TraceFormatError, match=r"requests.json, line 3: a comma after the last element"):
        load(CustomConfig(path=str(path), arrival="offline"))


@pytest.mark.parametrize(("text", "detail"), [
    ('{\n  "prompt_len": 3,\n  "output_len": 2\n}\n', "the file is one JSON object;"),
    ('{"requests": [{"prompt_len": 3, "output_len": 2}]}\n', "its 'requests' holds a list of objects"),
])
def test_a_custom_file_holding_one_top_level_object_is_named(tmp_path, text, detail, load):
    path = tmp_path / "requests.json"
    path.write_text(text)
    with pytest.raises(TraceFormatError, match=r"requests.json: the file is one JSON object") as err:
        load(CustomConfig(path=str(path), arrival="offline"))
    assert detail in str(err.value) and "JSON Lines" in str(err.value)


def test_the_first_rows_of_a_long_table_are_read_without_the_rest(tmp_path, monkeypatch, load):
    """Taking the first num_requests rows in order stops reading once they are in: a malformed row
    far below is never reached (a sample, drawn over every row, must read them all)."""
    monkeypatch.setattr(trace_files, "CSV_CHUNK_ROWS", 50)
    path = tmp_path / "long.csv"
    path.write_text(HEADER + ROWS * 10 + "1,2,3,4\n")  # line 402: too many fields
    first = load(LengthTableConfig(path=str(path), num_requests=30, sample=False))
    assert len(first.requests) == 30
    with pytest.raises(TraceFormatError, match=r"line 402: expected 2 fields, saw 4"):
        load(LengthTableConfig(path=str(path), num_requests=30, sample=True))
