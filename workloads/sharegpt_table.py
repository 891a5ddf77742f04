"""ShareGPT conversation lengths: the per-message token table shipped with kvbench, read and written.

kvbench ships the token length of every message of the ShareGPT V3 conversations (about 300 KB,
``data/sharegpt_v3_cl100k.csv.gz``) so that ``workload=sharegpt`` needs neither a download nor a
tokenizer. The text itself is not shipped. ``scripts/derive_sharegpt_table.py`` rebuilds the table
from the JSON with :mod:`kvbench.workloads.sharegpt_json`, which also reads a user's own file.

Table format (see ``data/README.md``): gzip-compressed CSV with the header
``conversation_id,roles,num_tokens``, one row per conversation, ``roles`` one letter per message
(:data:`ROLE_LETTERS`) and ``num_tokens`` the messages' token counts separated by spaces. A JSON
sidecar beside the table records its provenance and its sha256, which :func:`load_length_table`
checks before trusting the numbers.

Torch-free on purpose: the workload generator must import this on machines without torch.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvbench.workloads.sharegpt_table_cache import read_copy, write_copy

__all__ = [
    "ROLE_LETTERS",
    "TABLE_COLUMNS",
    "TABLE_FILENAME",
    "Conversation",
    "DERIVE_HINT",
    "TableChecksumError",
    "default_table_path",
    "load_length_table",
    "read_table_metadata",
    "role_letter",
    "sidecar_path",
    "table_checksum",
    "write_length_table",
]

TABLE_FILENAME = "sharegpt_v3_cl100k.csv.gz"
TABLE_COLUMNS = ("conversation_id", "roles", "num_tokens")

# ShareGPT's "from" field, lower-cased, to one letter. V3 mostly says human/gpt, but dumps also use
# user/assistant and name the bot (chatgpt, bing, bard); a serving simulator only needs to know who
# spoke: the user's turn is prefill, the bot's turn is decode.
ROLE_LETTERS: Mapping[str, str] = {
    "human": "h",
    "user": "h",
    "gpt": "g",
    "chatgpt": "g",
    "bing": "g",
    "bard": "g",
    "assistant": "g",
    "system": "s",
}
OTHER_ROLE_LETTER = "o"

DERIVE_HINT = "pip install 'kvbench[derive]'"  # what a user needs to tokenize ShareGPT text
_HASH_BLOCK_BYTES = 1 << 20


class TableChecksumError(ValueError):
    """A length table's sha256 differs from the one its sidecar recorded."""


@dataclass(frozen=True)
class Conversation:
    """Token counts of one conversation's messages, in order.

    ``roles[i]`` is the letter (:data:`ROLE_LETTERS`, ``"o"`` for anything else) of the speaker of
    message ``i`` and ``num_tokens[i]`` its token count, without any chat-template overhead.
    """

    conversation_id: str
    roles: str
    num_tokens: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.roles) != len(self.num_tokens):
            raise ValueError(
                f"conversation {self.conversation_id!r}: {len(self.roles)} roles "
                f"but {len(self.num_tokens)} token counts"
            )

    @property
    def num_messages(self) -> int:
        return len(self.roles)


def role_letter(speaker: str) -> str:
    """One letter for a ShareGPT ``from`` value: h(uman), g(pt), s(ystem) or o(ther)."""
    return ROLE_LETTERS.get(speaker.lower(), OTHER_ROLE_LETTER)


# --------------------------------------------------------------------------------------------------
# The table on disk
# --------------------------------------------------------------------------------------------------


def default_table_path() -> Path:
    """The table shipped inside the package."""
    return Path(__file__).resolve().parent / "data" / TABLE_FILENAME


def sidecar_path(table_path: str | Path) -> Path:
    """The JSON metadata file beside a table: ``name.csv.gz`` -> ``name.json``."""
    table_path = Path(table_path)
    stem = table_path.name.removesuffix(".gz").removesuffix(".csv")
    return table_path.with_name(f"{stem}.json")


def table_checksum(path: str | Path | None = None) -> str:
    """The sha256 (hex) of a table file's bytes, as recorded in run manifests and sidecars."""
    path = default_table_path() if path is None else Path(path)
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(_HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def read_table_metadata(path: str | Path | None = None) -> dict[str, Any]:
    """The provenance sidecar of a table (default: the shipped one) as a dict."""
    meta_path = sidecar_path(default_table_path() if path is None else path)
    if not meta_path.is_file():
        raise FileNotFoundError(f"length table sidecar not found: {meta_path}")
    with meta_path.open(encoding="utf-8") as file:
        return json.load(file)


def write_length_table(conversations: Iterable[Conversation], path: str | Path) -> None:
    """Write conversations as the gzip CSV table, byte-identical for identical input.

    The gzip header normally stores the file name and the time of writing; both are blanked so
    that rebuilding the table gives the same bytes and thus the same sha256.
    """
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(TABLE_COLUMNS)
    for conversation in conversations:
        counts = " ".join(map(str, conversation.num_tokens))
        writer.writerow((conversation.conversation_id, conversation.roles, counts))
    with (
        Path(path).open("wb") as file,
        gzip.GzipFile(filename="", mode="wb", fileobj=file, compresslevel=9, mtime=0) as gz,
    ):
        gz.write(text.getvalue().encode("utf-8"))


def load_length_table(path: str | Path | None = None) -> list[Conversation]:
    """Read a length table (default: the shipped one) after checking it against its sidecar.

    Raises:
        FileNotFoundError: the table or its sidecar is missing.
        TableChecksumError: the table's sha256 is not the one the sidecar recorded.
        ValueError: a row is malformed (the message names the file and line).
    """
    path = default_table_path() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"length table not found: {path}")
    expected = read_table_metadata(path)["table_sha256"]
    actual = table_checksum(path)
    if actual != expected:
        raise TableChecksumError(
            f"{path}: sha256 is {actual} but {sidecar_path(path).name} records {expected}; "
            f"the table was modified or corrupted (rebuild it: {DERIVE_HINT} && "
            "python scripts/derive_sharegpt_table.py)"
        )
    columns = read_copy(actual)  # the table parsed by an earlier run, if that table had this sha256
    if columns is not None:
        try:
            return list(map(Conversation, *columns))
        except ValueError:  # a row whose lengths disagree: a copy not to trust, parsed again below
            pass
    with gzip.open(path, "rt", encoding="utf-8", newline="") as file:
        rows = csv.reader(file)
        header = tuple(next(rows, ()))
        if header != TABLE_COLUMNS:
            raise ValueError(f"{path}: header is {header}, expected {TABLE_COLUMNS}")
        parsed = [_parse_row(row, path, rows.line_num) for row in rows]
    write_copy(actual, [c.conversation_id for c in parsed], [c.roles for c in parsed], [c.num_tokens for c in parsed])
    return parsed


def _parse_row(row: list[str], path: Path, line: int) -> Conversation:
    try:
        conversation_id, roles, counts = row
        return Conversation(conversation_id, roles, tuple(map(int, counts.split())))
    except ValueError as err:
        raise ValueError(f"{path}, line {line}: bad row {row!r} ({err})") from err
