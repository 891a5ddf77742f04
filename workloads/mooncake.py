"""`mooncake`: Mooncake's traces (FAST'25; Apache-2.0), JSON Lines with prefix-chained block hashes.

Each line is `{"timestamp": ms, "input_length": tokens, "output_length": tokens, "hash_ids": [...]}`.
`hash_ids[i]` names the content of the prompt's i-th block of `hash_block_tokens` tokens (512 in
Mooncake's traces; other traces in this format use 16) and, being chained, everything before it:
two requests with the same id at position i have the same first (i + 1) blocks.

Expansion: hash id h becomes the segment `Synthetic(("mooncake", h), hash_block_tokens)` (the last
block shorter, to make up `input_length`), so equal ids give equal tokens and different ids
different ones, and `paged_prefix` finds exactly the trace's reuse at any block size of its own;
a kvbench block that straddles two trace blocks is shared when both are. Outputs are generated
tokens of their own (the trace does not say what the replies were).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kvbench.tokens import Synthetic, TokenSequence
from kvbench.workloads.base import WORKLOADS, TraceFileConfig, Workload
from kvbench.workloads.request_table import RequestTable
from kvbench.workloads.trace_files import file_record, open_trace, read_jsonl

HOW_TO_GET = (
    "download FAST25-release/traces/conversation_trace.jsonl (or toolagent_trace.jsonl, synthetic_trace.jsonl) "
    "from https://github.com/kvcache-ai/Mooncake (Apache-2.0); see docs/workloads.md"
)


@dataclass
class MooncakeConfig(TraceFileConfig):
    name: str = "mooncake"
    hash_block_tokens: int = 512  # tokens per hash id in the trace
    timestamp_unit_s: float = 0.001  # seconds per timestamp unit (Mooncake's are milliseconds)


def is_count(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


@WORKLOADS.register("mooncake", MooncakeConfig)
class MooncakeWorkload(Workload):
    config: MooncakeConfig

    def read(self, rng: np.random.Generator) -> RequestTable:
        c = self.config
        if c.hash_block_tokens < 1:
            raise ValueError(f"workload.hash_block_tokens={c.hash_block_tokens} must be >= 1")
        if not c.timestamp_unit_s > 0:
            raise ValueError(f"workload.timestamp_unit_s={c.timestamp_unit_s} must be > 0")
        file, data, bad = open_trace(c.path, c.name, HOW_TO_GET, c.skip_bad_rows)
        records, lines = read_jsonl(data, bad)
        block = c.hash_block_tokens
        timestamps, prompt_lens, output_lens, hash_ids, kept_lines = [], [], [], [], []
        for record, line in zip(records, lines.tolist(), strict=True):
            problem = check_record(record, block)
            if problem:
                bad.reject(line, problem)
                continue
            timestamps.append(record["timestamp"])
            prompt_lens.append(record["input_length"])
            output_lens.append(record["output_length"])
            hash_ids.append(record["hash_ids"])
            kept_lines.append(line)
        bad.done(len(hash_ids))
        prompt_lens_array = np.asarray(prompt_lens, dtype=np.int64)
        full_blocks: dict[int, Synthetic] = {}  # one segment object per hash id, shared by its requests

        def full_block(h: int) -> Synthetic:
            segment = full_blocks.get(h)
            if segment is None:
                segment = full_blocks[h] = Synthetic(("mooncake", h), block)
            return segment

        def prompt(row: int) -> TokenSequence:
            ids = hash_ids[row]
            last_block_tokens = prompt_lens[row] - block * (len(ids) - 1)
            segments = [full_block(h) for h in ids[:-1]]
            segments.append(Synthetic(("mooncake", ids[-1]), last_block_tokens))
            return TokenSequence(segments)

        return RequestTable(
            num_prompt_tokens=prompt_lens_array,
            num_output_tokens=np.asarray(output_lens, dtype=np.int64),
            prompt=prompt,
            timestamps_s=np.asarray(timestamps, dtype=np.float64) * c.timestamp_unit_s,
            request_ids=np.asarray(kept_lines, dtype=np.int64) - 1,  # 0 for the first line
            source=str(file),
            num_skipped_rows=bad.num_skipped,
            dataset=file_record(c.name, file, hash_block_tokens=block),
        )


def check_record(record: dict, block_tokens: int) -> str | None:
    """What is wrong with one trace line, or None."""
    missing = [k for k in ("timestamp", "input_length", "output_length", "hash_ids") if k not in record]
    if missing:
        return f"no field {', '.join(missing)}"
    timestamp, prompt_len, output_len, ids = (
        record["timestamp"], record["input_length"], record["output_length"], record["hash_ids"]
    )
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float) or not math.isfinite(timestamp):
        return f"timestamp={timestamp!r} is not a number"
    if not is_count(prompt_len, 1):
        return f"input_length={prompt_len!r} is not a whole number >= 1"
    if not is_count(output_len, 1):
        return f"output_length={output_len!r} is not a whole number >= 1"
    if not isinstance(ids, list) or not all(type(h) is int for h in ids) or (ids and min(ids) < 0):
        return "hash_ids is not a list of whole numbers"
    num_blocks = -(-prompt_len // block_tokens)
    if len(ids) != num_blocks:
        return (f"{len(ids)} hash_ids for input_length={prompt_len}: expected {num_blocks} blocks of "
                f"workload.hash_block_tokens={block_tokens}")
    return None
