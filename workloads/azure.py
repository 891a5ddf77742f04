"""`azure_conv`, `azure_code`: the Azure LLM inference traces (Splitwise, ISCA'24; CC-BY-4.0).

CSV `TIMESTAMP,ContextTokens,GeneratedTokens`, one row per request, columns read by name:

- 2023 (`AzureLLMInferenceTrace_{conv,code}.csv`, about 1 h): `2023-11-16 18:15:46.6805900`, seven
  fractional digits, no time zone, no newline after the last row.
- 2024 (`AzureLLMInferenceTrace_{conv,code}_1week.csv`): `+00:00` offsets and fractional parts of
  varying length, or none.

Both parse as ISO 8601 (a time without a zone is taken as UTC). The trace records lengths only, so
each prompt is a token stream of its own: there is no shared content for prefix caching to find.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kvbench.tokens import TokenSequence
from kvbench.workloads.bad_rows import BadRows, require_counts, shown
from kvbench.workloads.base import WORKLOADS, TraceFileConfig, Workload
from kvbench.workloads.request_table import RequestTable
from kvbench.workloads.trace_files import file_record, read_csv, trace_path

if TYPE_CHECKING:  # pandas (a third of a second) is imported where a table is built, not when a run starts
    import pandas as pd

COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
HOW_TO_GET = (
    "download data/AzureLLMInferenceTrace_{kind}.csv (2023) or AzureLLMInferenceTrace_{kind}_1week.csv (2024) "
    "from https://github.com/Azure/AzurePublicDataset (CC-BY-4.0); see docs/workloads.md"
)


@dataclass
class AzureConvConfig(TraceFileConfig):
    name: str = "azure_conv"


@dataclass
class AzureCodeConfig(TraceFileConfig):
    name: str = "azure_code"


@WORKLOADS.register("azure_code", AzureCodeConfig)
@WORKLOADS.register("azure_conv", AzureConvConfig)
class AzureWorkload(Workload):
    config: TraceFileConfig

    def read(self, rng: np.random.Generator) -> RequestTable:
        import pandas as pd
        c = self.config
        file = trace_path(c.path, c.name, HOW_TO_GET.format(kind=c.name.removeprefix("azure_")))
        bad = BadRows(str(file), c.skip_bad_rows)
        frame, lines = read_csv(file, COLUMNS, bad)
        stamps = frame["TIMESTAMP"].to_numpy()
        times = pd.to_datetime(frame["TIMESTAMP"], format="ISO8601", utc=True, errors="coerce")
        ok = bad.require(
            times.notna().to_numpy(), lines, lambda i: f"TIMESTAMP={shown(stamps[i])} is not an ISO 8601 time"
        )
        prompt_lens, prompt_ok = require_counts(frame, "ContextTokens", lines, bad)
        output_lens, output_ok = require_counts(frame, "GeneratedTokens", lines, bad)
        rows = bad.keep(ok & prompt_ok & output_ok)
        times = times.iloc[rows]
        timestamps_s = (times - times.min()).dt.total_seconds().to_numpy()
        file_rows = lines[rows] - 2  # 0 for the line after the header: the request's id
        prompt_lens = prompt_lens[rows]
        key = c.name
        return RequestTable(
            num_prompt_tokens=prompt_lens,
            num_output_tokens=output_lens[rows],
            prompt=lambda row: TokenSequence.synthetic((key, int(file_rows[row])), int(prompt_lens[row])),
            timestamps_s=timestamps_s,
            request_ids=file_rows,
            source=str(file),
            num_skipped_rows=bad.num_skipped,
            dataset=file_record(c.name, file),
        )
