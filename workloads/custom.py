"""`custom`: a user's own list of requests, to replay exactly the same requests here and elsewhere.

A JSON array of objects, or JSON Lines (one object per line), each with:

- `prompt_token_ids` (a list of token ids) or `prompt_len` (tokens; the content is then a token
  stream of its own), not both;
- `output_len`: tokens to generate (the true output length, EOS ignored), or `output_token_ids`:
  the tokens it generates (a later prompt that quotes them then hits the cache), or both when they
  agree;
- optionally `arrival_time` (s, any origin) and `id` (unique; a whole number or a string such as
  "req000"): either on every record or on none. A whole-number id is the request's id; with
  string ids or none, a request's id is its position among the valid records (0 first).

Any other field is an error that names it (a misspelt `output_token_ids` must not be ignored).
Explicit token ids are what prefix caching compares, block by block, exactly as a serving engine
given the same ids would. With `arrival_time` on every record the default `workload.arrival=trace`
replays them; without, choose `workload.arrival=offline` (all at t = 0, served in file order) or
poisson / gamma.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from kvbench.tokens import TokenSequence
from kvbench.workloads.bad_rows import TraceFormatError
from kvbench.workloads.base import WORKLOADS, TraceFileConfig, Workload
from kvbench.workloads.request_table import RequestTable
from kvbench.workloads.trace_files import file_record, open_trace, read_json_list, read_jsonl

HOW_TO_GET = "write a JSON or JSON Lines list of requests (see docs/workloads.md, `custom`)"


@dataclass
class CustomConfig(TraceFileConfig):
    name: str = "custom"


def is_whole(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


FIELDS = ("prompt_token_ids", "prompt_len", "output_len", "output_token_ids", "arrival_time", "id")


def is_token_list(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(is_whole(t, 0) for t in value)


def check_record(record: dict) -> str | None:
    """What is wrong with one request record, or None."""
    unknown = [name for name in record if name not in FIELDS]
    if unknown:
        return f"unknown field {unknown[0]!r} (the fields are {', '.join(FIELDS)})"
    ids, prompt_len = record.get("prompt_token_ids"), record.get("prompt_len")
    if (ids is None) == (prompt_len is None):
        return "give prompt_token_ids or prompt_len (exactly one)"
    if ids is not None and not is_token_list(ids):
        return "prompt_token_ids must be a non-empty list of token ids (whole numbers >= 0)"
    if prompt_len is not None and not is_whole(prompt_len, 1):
        return f"prompt_len={prompt_len!r} is not a whole number >= 1"
    output_ids, output_len = record.get("output_token_ids"), record.get("output_len")
    if output_ids is not None and not is_token_list(output_ids):
        return "output_token_ids must be a non-empty list of token ids (whole numbers >= 0)"
    if output_len is None and output_ids is None:
        return "no output_len (or output_token_ids)"
    if output_len is not None and not is_whole(output_len, 1):
        return f"output_len={output_len!r} is not a whole number >= 1"
    if output_len is not None and output_ids is not None and output_len != len(output_ids):
        return f"output_len={output_len} but output_token_ids holds {len(output_ids)} tokens"
    arrival = record.get("arrival_time")
    is_number = isinstance(arrival, int | float) and not isinstance(arrival, bool)
    if arrival is not None and not (is_number and math.isfinite(arrival)):
        return f"arrival_time={arrival!r} is not a number of seconds"
    if "id" in record and not (is_whole(record["id"], 0) or (isinstance(record["id"], str) and record["id"])):
        return f"id={record['id']!r} is neither a whole number >= 0 nor a non-empty string"
    return None


@WORKLOADS.register("custom", CustomConfig)
class CustomWorkload(Workload):
    config: CustomConfig

    def read(self, rng: np.random.Generator) -> RequestTable:
        c = self.config
        file, data, bad = open_trace(c.path, c.name, HOW_TO_GET, c.skip_bad_rows)
        is_array = data.lstrip()[:1] == b"["
        records, lines = read_json_list(file, data, bad) if is_array else read_jsonl(data, bad)
        prompts: list[TokenSequence | int] = []
        outputs: list[TokenSequence | None] = []
        output_lens, arrivals, ids, kept_lines = [], [], [], []
        for record, line in zip(records, lines.tolist(), strict=True):
            problem = check_record(record)
            if problem:
                bad.reject(line, problem)
                continue
            token_ids = record.get("prompt_token_ids")
            prompts.append(TokenSequence.from_ids(token_ids) if token_ids is not None else record["prompt_len"])
            output_ids = record.get("output_token_ids")
            outputs.append(TokenSequence.from_ids(output_ids) if output_ids is not None else None)
            output_lens.append(len(output_ids) if output_ids is not None else record["output_len"])
            arrivals.append(record.get("arrival_time"))
            ids.append(record.get("id"))
            kept_lines.append(line)
        bad.done(len(prompts))
        for field_name, values in (("id", ids), ("arrival_time", arrivals)):
            given = [v is not None for v in values]
            if any(given) and not all(given):
                line = kept_lines[given.index(not given[0])]
                raise TraceFormatError(f"{file}, line {line}: give {field_name} on every request or on none")
        if ids[0] is not None:
            if len({type(i) for i in ids}) > 1:
                raise TraceFormatError(f"{file}: ids mix whole numbers and strings (give one kind)")
            if len(set(ids)) != len(ids):
                counts = Counter(ids)
                repeated = next(i for i in ids if counts[i] > 1)
                raise TraceFormatError(f"{file}: request id {repeated!r} appears more than once (ids must be unique)")
        if ids[0] is None or isinstance(ids[0], str):
            ids = list(range(len(ids)))  # string ids: requests are numbered in file order
        has_times = arrivals[0] is not None

        def prompt(row: int) -> TokenSequence:
            p = prompts[row]
            return p if isinstance(p, TokenSequence) else TokenSequence.synthetic(("custom", ids[row]), p)

        return RequestTable(
            num_prompt_tokens=np.asarray([p if isinstance(p, int) else len(p) for p in prompts], dtype=np.int64),
            num_output_tokens=np.asarray(output_lens, dtype=np.int64),
            prompt=prompt,
            output=(lambda row: outputs[row]) if any(o is not None for o in outputs) else None,
            timestamps_s=np.asarray(arrivals, dtype=np.float64) if has_times else None,
            request_ids=np.asarray(ids, dtype=np.int64),
            source=str(file),
            num_skipped_rows=bad.num_skipped,
            dataset=file_record(c.name, file),
        )
