"""`alpaca`: Stanford Alpaca's instruction data (alpaca_data.json) as single requests.

Not shipped: its licence (CC BY-NC 4.0) forbids commercial use, so a user downloads it and passes
`workload.path=`. Each record `{"instruction", "input", "output"}` gives one request: the prompt is
the instruction, then a blank line and the input when there is one, tokenised with a real tokenizer
(`workload.encoding`, cl100k_base by default; needs `pip install 'kvbench[derive]'`), so requests
that begin alike share their first blocks under prefix caching as they would in a serving engine;
the output's token count is the output length. No chat template is added. Requests arrive by
`workload.arrival` (poisson by default): the data has no timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version

import numpy as np

from kvbench.tokens import TokenSequence
from kvbench.workloads.arrivals import Arrival
from kvbench.workloads.bad_rows import BadRows
from kvbench.workloads.base import WORKLOADS, TraceFileConfig, Workload
from kvbench.workloads.request_table import RequestTable
from kvbench.workloads.trace_files import file_record, read_json_list, read_trace_bytes, trace_path

HOW_TO_GET = (
    "kvbench does not ship it (licence CC BY-NC 4.0, non-commercial use only): download alpaca_data.json from "
    "https://github.com/tatsu-lab/stanford_alpaca and pass its path; see docs/workloads.md"
)


@dataclass
class AlpacaConfig(TraceFileConfig):
    name: str = "alpaca"
    num_requests: int | None = 1000
    sample: bool = True  # a seeded random sample of the records
    arrival: Arrival = Arrival.poisson
    encoding: str = "cl100k_base"  # bpe-openai encoding that tokenises the text


def check_record(record: dict) -> str | None:
    for key in ("instruction", "output"):
        if not isinstance(record.get(key), str) or not record[key].strip():
            return f"{key} is missing or empty" if key in record else f"no {key}"
    if not isinstance(record.get("input", ""), str):
        return "input is not text"
    return None


@WORKLOADS.register("alpaca", AlpacaConfig)
class AlpacaWorkload(Workload):
    config: AlpacaConfig

    def read(self, rng: np.random.Generator) -> RequestTable:
        c = self.config
        file = trace_path(c.path, c.name, HOW_TO_GET)
        try:
            import bpe_openai  # optional: only workloads that tokenise text need it
        except ImportError as err:
            raise ImportError("workload=alpaca tokenises text with bpe-openai: pip install 'kvbench[derive]'") from err
        encoder = bpe_openai.get_encoding(c.encoding)
        data = read_trace_bytes(file)
        bad = BadRows(str(file), c.skip_bad_rows)
        records, lines = read_json_list(file, data, bad)
        prompts, outputs, kept_lines = [], [], []
        for record, line in zip(records, lines.tolist(), strict=True):
            problem = check_record(record)
            if problem:
                bad.reject(line, problem)
                continue
            extra = record.get("input", "")
            prompts.append(record["instruction"] + (f"\n\n{extra}" if extra.strip() else ""))
            outputs.append(record["output"])
            kept_lines.append(line)
        bad.done(len(prompts))
        prompt_ids = [TokenSequence.from_ids(ids) for ids in encoder.encode_ordinary_batch(prompts)]
        output_lens = np.asarray([len(ids) for ids in encoder.encode_ordinary_batch(outputs)], dtype=np.int64)
        return RequestTable(
            num_prompt_tokens=np.asarray([len(p) for p in prompt_ids], dtype=np.int64),
            num_output_tokens=output_lens,
            prompt=prompt_ids.__getitem__,
            source=str(file),
            num_skipped_rows=bad.num_skipped,
            dataset=file_record(c.name, file, tokenizer=f"bpe-openai=={version('bpe-openai')} {c.encoding}"),
        )
