"""The parsed copy of a length table (kvbench/workloads/sharegpt_table_cache.py): the same
conversations as parsing the text, used only for the table whose sha256 names it, rebuilt when it
cannot be trusted, and never required."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvbench.workloads import sharegpt_table as st
from kvbench.workloads import sharegpt_table_cache as cache
from kvbench.workloads.sharegpt_table import Conversation, load_length_table, sidecar_path, table_checksum

SMALL = [Conversation("a_0", "hg", (3, 5)), Conversation("b,0", "hgh", (1, 0, 7))]


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(cache.CACHE_DIR_VARIABLE, str(folder))
    return folder


@pytest.fixture
def no_parsing(monkeypatch):
    """Parsing a row fails: a table can only come from its copy."""
    def refuse(*args):
        raise AssertionError("the table was parsed again")

    monkeypatch.setattr(st, "_parse_row", refuse)


def small_table(folder: Path, conversations=SMALL) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "small.csv.gz"
    st.write_length_table(conversations, path)
    sidecar_path(path).write_text(json.dumps({"table_sha256": table_checksum(path)}))
    return path


def test_the_shipped_table_from_its_copy_is_the_parsed_table(cache_dir, monkeypatch):
    parsed = load_length_table()
    sha256 = table_checksum(st.default_table_path())
    assert [p.name for p in cache_dir.iterdir()] == [cache.copy_path(sha256).name]
    monkeypatch.setattr(st, "_parse_row", lambda *args: pytest.fail("parsed again"))
    from_copy = load_length_table()
    assert from_copy == parsed and len(from_copy) == 17_545
    assert all(type(c.num_tokens) is tuple and type(c.roles) is str for c in from_copy)


def test_each_table_has_its_own_copy(cache_dir, tmp_path):
    first = small_table(tmp_path / "one")
    changed = [SMALL[0], Conversation("b,0", "hgh", (1, 0, 8))]
    second = small_table(tmp_path / "two", changed)
    assert load_length_table(first) == SMALL
    assert load_length_table(second) == changed  # not the first table's copy
    assert load_length_table(first) == SMALL
    assert len(list(cache_dir.iterdir())) == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated", "another table's", "rows disagree", "wrong types"])
def test_a_copy_that_cannot_be_trusted_is_ignored_and_written_again(cache_dir, tmp_path, damage):
    import marshal

    path = small_table(tmp_path)
    sha256 = table_checksum(path)
    load_length_table(path)
    copy = cache.copy_path(sha256)
    good = copy.read_bytes()
    ids, roles, counts = ["a_0", "b,0"], ["hg", "hgh"], [(3, 5), (1, 0, 7)]
    copy.write_bytes({
        "garbage": b"\x00not marshal",
        "truncated": good[: len(good) // 2],
        "another table's": marshal.dumps((cache.FORMAT, "0" * 64, ids, roles, counts)),
        "rows disagree": marshal.dumps((cache.FORMAT, sha256, ids, roles, [(3, 5), (1, 0)])),
        "wrong types": marshal.dumps((cache.FORMAT, sha256, ids, roles, [[3, 5], [1, 0, 7]])),
    }[damage])
    if damage != "rows disagree":  # (a row whose two lengths disagree is caught by Conversation)
        assert cache.read_copy(sha256) is None
    assert load_length_table(path) == SMALL
    assert copy.read_bytes() == good


def test_no_copy_when_turned_off_or_unwritable(tmp_path, monkeypatch):
    path = small_table(tmp_path)
    monkeypatch.setenv(cache.CACHE_DIR_VARIABLE, "off")
    assert load_length_table(path) == SMALL
    assert cache.copy_path(table_checksum(path)) is None
    blocked = tmp_path / "a_file"
    blocked.write_text("not a folder")
    monkeypatch.setenv(cache.CACHE_DIR_VARIABLE, str(blocked / "cache"))
    assert load_length_table(path) == SMALL
    assert blocked.read_text() == "not a folder"


def test_a_tampered_table_is_refused_even_with_a_copy_of_the_original(cache_dir, tmp_path):
    path = small_table(tmp_path)
    load_length_table(path)
    signed = sidecar_path(path).read_text()
    st.write_length_table([SMALL[0]], path)  # the text changed, the sidecar did not
    sidecar_path(path).write_text(signed)
    with pytest.raises(st.TableChecksumError):
        load_length_table(path)


def test_the_default_folder_follows_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.delenv(cache.CACHE_DIR_VARIABLE)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "kvbench"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "kvbench"
