"""`burstgpt`: the BurstGPT trace (Azure OpenAI GPT service at a university; CC-BY-4.0).

CSV with a header, columns read by name: `Timestamp` (s from the trace's start), `Model` (ChatGPT or
GPT-4), `Request tokens`, `Response tokens`, `Total tokens`, `Log Type` (Conversation log or API
log). Release 3 inserts `Session ID` and `Elapsed time` after `Timestamp`; with a `Session ID`
column, requests carry their session and their turn (order of arrival within the session).

A failed request has 0 response tokens. `workload.drop_failed=true` (the default) drops failed rows;
with false they are kept with one output token, the least a request can generate here (their
prefill still loaded the service). Prompts are token streams of their own: the trace records no
content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kvbench.tokens import TokenSequence
from kvbench.workloads.bad_rows import BadRows, parse_floats, require_counts, shown
from kvbench.workloads.base import WORKLOADS, TraceFileConfig, Workload
from kvbench.workloads.request_table import RequestTable
from kvbench.workloads.trace_files import file_record, read_csv, trace_path

if TYPE_CHECKING:  # pandas (a third of a second) is imported where a table is built, not when a run starts
    import pandas as pd

COLUMNS = ("Timestamp", "Model", "Request tokens", "Response tokens", "Log Type")
SESSION_COLUMN = "Session ID"
HOW_TO_GET = (
    "download BurstGPT_1.csv (or BurstGPT_without_fails_1.csv, or a release-3 file) from "
    "https://github.com/HPMLL/BurstGPT (CC-BY-4.0); see docs/workloads.md"
)


@dataclass
class BurstGPTConfig(TraceFileConfig):
    name: str = "burstgpt"
    models: list[str] | None = None  # keep rows whose Model is one of these, e.g. [ChatGPT]; None: all
    log_types: list[str] | None = None  # keep rows whose Log Type is one of these; None: all
    drop_failed: bool = True  # drop failed requests (0 response tokens); false: run them with 1 output token


@WORKLOADS.register("burstgpt", BurstGPTConfig)
class BurstGPTWorkload(Workload):
    config: BurstGPTConfig

    def read(self, rng: np.random.Generator) -> RequestTable:
        c = self.config
        file = trace_path(c.path, c.name, HOW_TO_GET)
        bad = BadRows(str(file), c.skip_bad_rows)
        frame, lines = read_csv(file, COLUMNS, bad, optional=(SESSION_COLUMN,))
        times_raw = frame["Timestamp"].to_numpy()
        timestamps_s, ok = parse_floats(frame["Timestamp"])
        bad.require(ok, lines, lambda i: f"Timestamp={shown(times_raw[i])} is not a number")
        prompt_lens, prompt_ok = require_counts(frame, "Request tokens", lines, bad)
        output_lens, output_ok = require_counts(frame, "Response tokens", lines, bad, minimum=0)
        rows = bad.keep(ok & prompt_ok & output_ok)

        wanted = np.ones(len(rows), dtype=bool)
        for column, values in (("Model", c.models), ("Log Type", c.log_types)):
            if values is not None:
                present = frame[column].to_numpy()[rows]
                wanted &= np.isin(present, list(values))
                if not wanted.any():
                    setting = "models" if column == "Model" else "log_types"
                    raise ValueError(
                        f"{file}: no row has {column} in workload.{setting}={list(values)}; "
                        f"the file has {sorted(set(present.tolist()))}"
                    )
        failed = output_lens[rows] == 0
        if c.drop_failed:
            wanted &= ~failed
            if not wanted.any():
                raise ValueError(f"{file}: every selected request failed (0 response tokens)")
        num_filtered = int(len(rows) - wanted.sum())
        rows = rows[wanted]

        ids = lines[rows] - 2  # 0 for the line after the header: the request's id
        prompt_lens = prompt_lens[rows]
        sessions, turns = None, None
        if SESSION_COLUMN in frame.columns:
            sessions, turns = session_turns(frame[SESSION_COLUMN].to_numpy()[rows], timestamps_s[rows])
        return RequestTable(
            num_prompt_tokens=prompt_lens,
            num_output_tokens=np.maximum(output_lens[rows], 1),
            prompt=lambda row: TokenSequence.synthetic(("burstgpt", int(ids[row])), int(prompt_lens[row])),
            timestamps_s=timestamps_s[rows],
            request_ids=ids,
            session_ids=sessions,
            turns=turns,
            source=str(file),
            num_skipped_rows=bad.num_skipped,
            dataset=file_record(
                c.name, file, num_filtered_out=num_filtered, num_failed=int(failed.sum()),
                drop_failed=c.drop_failed,
            ),
        )


def session_turns(session_labels: np.ndarray, timestamps_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Session numbers (in order of first appearance) and each row's turn, by time within its session.

    A row with an empty Session ID is a session of its own.
    """
    import pandas as pd
    labels = pd.Series(session_labels, dtype=str)
    empty = (labels.str.strip() == "").to_numpy()
    labels[empty] = [f"\0row{i}" for i in np.flatnonzero(empty)]  # NUL: never a real label
    sessions, _ = pd.factorize(labels)
    order = np.lexsort((timestamps_s, sessions))  # by session, then time (stable)
    turns = np.empty(len(sessions), dtype=np.int64)
    turns[order] = pd.Series(sessions[order]).groupby(sessions[order]).cumcount().to_numpy()
    return sessions.astype(np.int64), turns
