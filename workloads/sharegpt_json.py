"""ShareGPT-format JSON: a streaming parser that stops cleanly at a truncated tail, and token counting.

The PyPI copy of ShareGPT V3 is cut mid-record; :func:`iter_sharegpt_json` yields the complete
records of such a file one by one and says where it was cut. :func:`tokenize_conversations` turns
records into the per-message token counts of :mod:`kvbench.workloads.sharegpt_table`. Both serve
``scripts/derive_sharegpt_table.py`` and a user's own file given as ``workload.path``.
"""

from __future__ import annotations

import codecs
import json
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from kvbench.workloads.sharegpt_table import DERIVE_HINT, Conversation, role_letter

_READ_SIZE_BYTES = 1 << 20
_NOT_JSON_WHITESPACE = re.compile(r"[^ \t\n\r]")
# What may remain at the point of a decode error when the text was merely cut short: part of a
# number or of a literal (true, false, null and Python's NaN/Infinity extensions).
_NUMBER_FRAGMENT = re.compile(r"[-+0-9.eE]*")
_LITERALS = ("true", "false", "null", "NaN", "Infinity", "-Infinity")
_RECORD_ID = re.compile(r'\{\s*"id"\s*:\s*"((?:[^"\\]|\\.)*)"')


class ShareGPTFormatError(ValueError):
    """The input is not ShareGPT-format JSON; the message names the file and the record."""


class TruncatedJSONWarning(UserWarning):
    """A ShareGPT JSON file ended inside its array; only the complete records were kept."""


@dataclass
class ParseReport:
    """What :func:`iter_sharegpt_json` found, filled in as it goes; final once iteration ends.

    ``truncated_at_byte`` and ``truncated_at_line`` (1-based) point at the first thing not kept:
    the start of the unfinished record, or the end of the file when it stops between records.
    """

    path: Path
    num_records: int = 0
    truncated: bool = False
    truncated_at_byte: int | None = None
    truncated_at_line: int | None = None
    num_dropped_bytes: int = 0
    truncated_record_id: str | None = None




def iter_sharegpt_json(
    path: str | Path, report: ParseReport | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the records of a ShareGPT JSON array one by one, without loading the whole file.

    A file that ends inside the array (the PyPI copy of ShareGPT V3 is cut mid-record) is not an
    error: iteration stops after the last complete record, the unfinished tail is dropped, a
    :class:`TruncatedJSONWarning` says so, and ``report`` (if given) records where. Each yielded
    record has been checked to hold a ``conversations`` list of ``{"from": str, "value": str}``.

    Raises:
        FileNotFoundError: no such file (raised here, not at the first ``next``).
        ShareGPTFormatError: not a JSON array, invalid JSON before the end, or a malformed record;
            the message names the file, the record index and, where known, its id.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ShareGPT JSON file not found: {path}")
    return _iter_records(path, report if report is not None else ParseReport(path))


def _iter_records(path: Path, report: ParseReport) -> Iterator[dict[str, Any]]:
    decoder = json.JSONDecoder()
    with path.open("rb") as raw:
        scanner = _Scanner(raw, path)
        first = scanner.next_significant_char()
        if first == "\ufeff":  # tolerate a byte-order mark, which some editors write
            scanner.pos += 1
            first = scanner.next_significant_char()
        if first != "[":
            found = "an empty file" if first is None else f"{first!r}"
            raise ShareGPTFormatError(f"{path}: expected a JSON array ('['), found {found}")
        scanner.pos += 1

        expect_record = True
        while True:
            char = scanner.next_significant_char()
            if char is None:  # cut between records
                _stop_at_truncation(scanner, report)
                return
            if char == "]" and (not expect_record or report.num_records == 0):
                scanner.pos += 1
                scanner.expect_only_whitespace_left()
                return
            if not expect_record:
                if char != ",":
                    raise scanner.format_error(
                        scanner.pos, f"expected ',' or ']' after record #{report.num_records - 1}"
                    )
                scanner.pos += 1
                expect_record = True
                continue
            try:
                record, end = decoder.raw_decode(scanner.buffer, scanner.pos)
            except json.JSONDecodeError as err:
                if not _cut_short(err, scanner.buffer):
                    raise scanner.format_error(
                        err.pos, f"record #{report.num_records}: invalid JSON ({err.msg})"
                    ) from err
                if scanner.fill():
                    continue  # the record straddles a read boundary: retry with more text
                _stop_at_truncation(scanner, report)  # cut inside this record
                return
            _check_record(record, report.num_records, str(path))
            scanner.pos = end
            report.num_records += 1
            expect_record = False
            yield record


def _cut_short(err: json.JSONDecodeError, text: str) -> bool:
    """Whether a decode error would go away with more text, i.e. the text merely ended too soon."""
    if err.msg.startswith("Unterminated string"):
        return True  # the string runs to the end of the text
    if err.msg.startswith("Invalid \\uXXXX escape"):
        # err.pos is the "u"; the scanner also wants a character after the four hex digits.
        return err.pos + 5 >= len(text)
    rest = text[err.pos :].strip(" \t\n\r")
    return _NUMBER_FRAGMENT.fullmatch(rest) is not None or any(
        literal.startswith(rest) for literal in _LITERALS
    )


def _stop_at_truncation(scanner: _Scanner, report: ParseReport) -> None:
    scanner.record_truncation(report)
    message = (
        f"{report.path}: file ends inside the JSON array (cut at byte {report.truncated_at_byte}, "
        f"line {report.truncated_at_line}); kept {report.num_records} complete records and dropped "
        f"an unfinished tail of {report.num_dropped_bytes} bytes"
    )
    # stacklevel 3: past this helper and the generator, to the code that consumes the records.
    warnings.warn(message, TruncatedJSONWarning, stacklevel=3)


class _Scanner:
    """A window of decoded text over a UTF-8 file, refilled in chunks as the parser asks.

    Decoding incrementally lets a file cut inside a multi-byte character end without an error: the
    partial character simply stays in the decoder and counts as dropped tail.
    """

    def __init__(self, raw: BinaryIO, path: Path) -> None:
        self.raw = raw
        self.path = path
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.buffer = ""
        self.pos = 0  # index into buffer of the next character to parse
        self.num_bytes_read = 0
        self.num_lines_discarded = 0  # newlines in text already dropped from the buffer's front
        self.eof = False

    def fill(self) -> bool:
        """Append the next chunk of the file to the buffer; False once the file is exhausted."""
        if self.eof:
            return False
        # Drop parsed text first, so the buffer stays about one chunk plus one record long.
        self.num_lines_discarded += self.buffer.count("\n", 0, self.pos)
        self.buffer = self.buffer[self.pos :]
        self.pos = 0
        chunk = self.raw.read(_READ_SIZE_BYTES)
        self.num_bytes_read += len(chunk)
        if not chunk:
            self.eof = True
            return False
        try:
            self.buffer += self.decoder.decode(chunk)
        except UnicodeDecodeError as err:
            bad_byte = self.num_bytes_read - len(chunk) + err.start
            raise ShareGPTFormatError(f"{self.path}: not UTF-8 text near byte {bad_byte}") from err
        return True

    def next_significant_char(self) -> str | None:
        """Skip JSON whitespace (reading on as needed); the next character, or None at the end."""
        while True:
            found = _NOT_JSON_WHITESPACE.search(self.buffer, self.pos)
            if found:
                self.pos = found.start()
                return self.buffer[self.pos]
            self.pos = len(self.buffer)
            if not self.fill():
                return None

    def expect_only_whitespace_left(self) -> None:
        char = self.next_significant_char()
        if char is not None:
            raise self.format_error(self.pos, "unexpected text after the closing ']'")

    def line_at(self, index: int) -> int:
        return self.num_lines_discarded + self.buffer.count("\n", 0, index) + 1

    def format_error(self, index: int, problem: str) -> ShareGPTFormatError:
        return ShareGPTFormatError(f"{self.path}, line {self.line_at(index)}: {problem}")

    def record_truncation(self, report: ParseReport) -> None:
        tail = self.buffer[self.pos :]
        pending_bytes, _ = self.decoder.getstate()
        report.num_dropped_bytes = len(tail.encode("utf-8")) + len(pending_bytes)
        report.truncated = True
        report.truncated_at_byte = self.num_bytes_read - report.num_dropped_bytes
        report.truncated_at_line = self.line_at(self.pos)
        match = _RECORD_ID.match(tail)
        report.truncated_record_id = json.loads(f'"{match.group(1)}"') if match else None


def _check_record(record: Any, index: int, source: str) -> None:
    """Raise ShareGPTFormatError unless ``record`` is ``{"conversations": [{"from", "value"}]}``."""
    where = f"{source}: record #{index}"
    if not isinstance(record, dict):
        raise ShareGPTFormatError(f"{where} is a {type(record).__name__}, not an object")
    if "id" in record:
        where += f" (id {record['id']!r})"
    messages = record.get("conversations")
    if not isinstance(messages, list):
        problem = (
            "has no 'conversations' list" if messages is None else "'conversations' is not a list"
        )
        raise ShareGPTFormatError(f"{where} {problem}")
    for position, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ShareGPTFormatError(f"{where}: message #{position} is not an object")
        for key in ("from", "value"):
            if not isinstance(message.get(key), str):
                problem = "has no" if key not in message else "has a non-string"
                raise ShareGPTFormatError(f"{where}: message #{position} {problem} '{key}'")



def tokenize_conversations(
    records: Iterable[Mapping[str, Any]], encoding: str = "cl100k_base"
) -> list[Conversation]:
    """Count the tokens of every message of ShareGPT records with a tiktoken-style encoding.

    Text that spells a special token (``<|endoftext|>``) is counted as ordinary text, and no
    chat-template tokens are added: the counts are the messages' own. Conversations with no
    messages are dropped (they carry no request); empty messages are kept, with 0 tokens. A record
    without an ``id`` gets its position in ``records`` as id.

    Raises:
        ImportError: ``bpe_openai`` is not installed (``pip install 'kvbench[derive]'``).
        ShareGPTFormatError: a record is not ShareGPT-shaped (named by index and id).
    """
    try:
        import bpe_openai  # optional: only needed to tokenize text, not to load the shipped table
    except ImportError as err:
        raise ImportError(
            f"tokenizing ShareGPT text needs the bpe-openai tokenizer: {DERIVE_HINT}"
        ) from err
    tokenizer = bpe_openai.get_encoding(encoding)

    conversations = []
    for index, record in enumerate(records):
        _check_record(record, index, "records")
        messages = record["conversations"]
        if not messages:
            continue
        conversations.append(
            Conversation(
                conversation_id=str(record.get("id", index)),
                roles="".join(role_letter(message["from"]) for message in messages),
                num_tokens=tuple(len(tokenizer.encode_ordinary(m["value"])) for m in messages),
            )
        )
    return conversations
