"""`length_table`: request lengths from a CSV table, with generated arrivals.

The processed traces of sarathi-serve and vidur (`data/processed_traces/*.csv`, e.g.
`sharegpt_8k_filtered_stats_llama2_tokenizer.csv`, `arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv`)
have one row per request with `num_prefill_tokens,num_decode_tokens` (read by name; other columns
such as `num_total_tokens,pd_ratio` are ignored). They carry no timestamps: requests arrive by
`workload.arrival` (poisson by default). Each prompt is a token stream of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kvbench.tokens import TokenSequence
from kvbench.workloads.arrivals import Arrival
from kvbench.workloads.bad_rows import BadRows, require_counts
from kvbench.workloads.base import WORKLOADS, TraceFileConfig, Workload
from kvbench.workloads.request_table import RequestTable
from kvbench.workloads.trace_files import file_record, read_csv, trace_path

COLUMNS = ("num_prefill_tokens", "num_decode_tokens")
HOW_TO_GET = (
    "download a table from data/processed_traces/ of https://github.com/microsoft/sarathi-serve (Apache-2.0) "
    "or https://github.com/microsoft/vidur (MIT); see docs/workloads.md"
)


@dataclass
class LengthTableConfig(TraceFileConfig):
    name: str = "length_table"
    num_requests: int | None = 1000
    sample: bool = True  # a seeded random sample of the table's rows
    arrival: Arrival = Arrival.poisson


def rows_needed(c: LengthTableConfig) -> int | None:
    """How many rows of the table the run can use: the first num_requests when they are taken in
    order and every row must be valid; None (all of them) to draw a sample, skip bad rows or replay
    the whole table."""
    if c.sample or c.skip_bad_rows or c.num_requests is None:
        return None
    return c.num_requests


@WORKLOADS.register("length_table", LengthTableConfig)
class LengthTableWorkload(Workload):
    config: LengthTableConfig

    def read(self, rng: np.random.Generator) -> RequestTable:
        c = self.config
        file = trace_path(c.path, c.name, HOW_TO_GET)
        bad = BadRows(str(file), c.skip_bad_rows)
        frame, lines = read_csv(file, COLUMNS, bad, max_rows=rows_needed(c))
        prompt_lens, prompt_ok = require_counts(frame, "num_prefill_tokens", lines, bad)
        output_lens, output_ok = require_counts(frame, "num_decode_tokens", lines, bad)
        rows = bad.keep(prompt_ok & output_ok)
        ids = lines[rows] - 2  # 0 for the line after the header: the request's id
        prompt_lens = prompt_lens[rows]
        name = file.name
        return RequestTable(
            num_prompt_tokens=prompt_lens,
            num_output_tokens=output_lens[rows],
            prompt=lambda row: TokenSequence.synthetic(("length_table", name, int(ids[row])), int(prompt_lens[row])),
            request_ids=ids,
            source=str(file),
            num_skipped_rows=bad.num_skipped,
            dataset=file_record(c.name, file),
        )
