"""A parsed copy of a length table, so that a run does not parse its text again.

Every `kvbench run workload=sharegpt` reads the shipped table: 17,545 rows of text whose 129,071
token counts become a `Conversation` each, about a twelfth of a second before the first step. The
first run keeps the parsed columns beside its other caches; later runs load them in about a third
of that time. The copy is named by the table's sha256, which `load_length_table` has checked
against the table's sidecar before it looks for the copy: a different table (a rebuilt one, a
user's) is another name, and never read from an old copy. A copy that cannot be read, or does not
hold exactly what its name says, is ignored and written again.

The format is Python's `marshal` (lists of strings and of tuples of ints; reading it runs no code),
in a folder for this Python's marshal version: `$KVBENCH_CACHE_DIR`, else `$XDG_CACHE_HOME/kvbench`,
else `~/.cache/kvbench`. `KVBENCH_CACHE_DIR=off` keeps no copy; a folder that cannot be written to
keeps none either, silently (the table is parsed as before).
"""

from __future__ import annotations

import marshal
import os
from pathlib import Path

CACHE_DIR_VARIABLE = "KVBENCH_CACHE_DIR"
FORMAT = 1  # what the copy holds: (FORMAT, sha256, ids, roles, token counts)


def cache_dir() -> Path | None:
    """Where parsed copies go; None with KVBENCH_CACHE_DIR=off."""
    chosen = os.environ.get(CACHE_DIR_VARIABLE)
    if chosen == "off":
        return None
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kvbench"


def copy_path(table_sha256: str) -> Path | None:
    folder = cache_dir()
    return None if folder is None else folder / f"length_table_{table_sha256}.marshal{marshal.version}"


def read_copy(table_sha256: str) -> tuple[list[str], list[str], list[tuple[int, ...]]] | None:
    """The columns (conversation ids, roles, token counts) of the table with this sha256, from its
    copy; None without a valid one. (The caller's `Conversation` checks each row's two lengths.)"""
    path = copy_path(table_sha256)
    try:
        data = marshal.loads(path.read_bytes()) if path is not None else None
        version, sha256, ids, roles, counts = data
        if (version, sha256) != (FORMAT, table_sha256) or not len(ids) == len(roles) == len(counts):
            return None
    except (OSError, EOFError, ValueError, TypeError):
        return None
    columns_typed = type(ids) is type(roles) is type(counts) is list
    if not columns_typed or not all(type(row) is tuple for row in counts):
        return None
    return ids, roles, counts


def write_copy(table_sha256: str, ids: list[str], roles: list[str], counts: list[tuple[int, ...]]) -> None:
    """Keep the parsed table's columns for the next run, written whole or not at all."""
    path = copy_path(table_sha256)
    if path is None:
        return
    data = marshal.dumps((FORMAT, table_sha256, ids, roles, counts))
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        os.replace(partial, path)  # two runs writing at once: either copy is whole, and the same
    except OSError:
        try:
            partial.unlink(missing_ok=True)
        except OSError:  # its folder could not be made
            pass
