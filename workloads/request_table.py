"""A workload's candidate requests as columns, before the replay controls pick and time them.

Columns are numpy arrays so that windows, samples and length filters over a whole trace stay
vectorised; a request's token content is built only for the rows a run keeps (`prompt(row)`), so a
trace of long prompts is expanded into segments once per replayed request, never per token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from kvbench.tokens import TokenSequence
from kvbench.workloads.chunked_column import ChunkedColumn


@dataclass
class RequestTable:
    # int64 per row, >= 1; a generated workload's may be made a chunk of rows at a time (chunked_column.py)
    num_prompt_tokens: np.ndarray | ChunkedColumn
    num_output_tokens: np.ndarray | ChunkedColumn
    prompt: Callable[[int], TokenSequence]  # row -> its prompt
    output: Callable[[int], TokenSequence | None] | None = None  # row -> its recorded reply, if any
    timestamps_s: np.ndarray | None = None  # the file's own arrival times (s, any origin); None: none
    request_ids: np.ndarray | None = None  # the file's ids (or row positions); None: numbered in arrival order
    session_ids: np.ndarray | None = None  # int64 per row, rows of one session in turn order
    turns: np.ndarray | None = None  # int64 per row, 0 for a session's first turn
    # Per row, its delay after its session's first turn. With a generated arrival process the
    # sessions arrive by it and their later turns keep these delays; None: every row arrives by it.
    session_offsets_s: np.ndarray | None = None
    source: str = ""  # what messages name: the file, or the workload
    num_skipped_rows: int = 0  # malformed rows skipped while reading
    dataset: dict = field(default_factory=dict)  # the manifest's record of the data

    def __post_init__(self) -> None:
        num_rows = len(self.num_prompt_tokens)
        for name in ("num_output_tokens", "timestamps_s", "request_ids", "session_ids", "turns", "session_offsets_s"):
            column = getattr(self, name)
            if column is not None and len(column) != num_rows:
                raise ValueError(f"RequestTable.{name} has {len(column)} rows, num_prompt_tokens has {num_rows}")
        if self.session_offsets_s is not None and self.session_ids is None:
            raise ValueError("RequestTable.session_offsets_s needs session_ids")
        lengths = [column for column in (self.num_prompt_tokens, self.num_output_tokens) if isinstance(column, np.ndarray)]
        if num_rows and any(column.min() < 1 for column in lengths):  # chunked: generated >= 1
            raise ValueError(f"{self.source}: every request needs >= 1 prompt and >= 1 output token")

    def whole(self) -> RequestTable:
        """This table with its chunked columns made whole arrays (for the controls that need every row at
        once: a seeded sample, sessions, a trace's timestamps)."""
        chunked = {name: column.values(0, len(column)) for name, column in vars(self).items()
                   if isinstance(column, ChunkedColumn)}
        return replace(self, **chunked) if chunked else self

    def __len__(self) -> int:
        return len(self.num_prompt_tokens)


class MadeWhenRead:
    """A `prompt` / `output` column: row -> `make(row)`, made only when its content is first read
    (`TokenSequence.deferred`); `lengths[row]` must be its length.

    Requests are built inside the simulation loop, and strategies without prefix caching read only
    lengths: a workload whose content needs lookups (a conversation's messages, scattered in
    memory) then pays for them only under a strategy that reads tokens. `many(rows)` makes a chunk
    of rows' sequences at once (the request stream's chunks).
    """

    __slots__ = ("make", "lengths")
    # What builds the sequences of rows: deferred on the maker (`SyntheticWhenRead`: on a key).
    _build_many = staticmethod(TokenSequence.deferred_many)

    def __init__(self, make: Callable[[int], TokenSequence], lengths: np.ndarray | ChunkedColumn):
        self.make, self.lengths = make, lengths

    def __call__(self, row: int) -> TokenSequence:
        return self._build_many((self.lengths.item(row),), self.make, (row,))[0]

    def many(self, rows: np.ndarray) -> list[TokenSequence]:
        lengths = self.lengths.take(rows) if isinstance(self.lengths, ChunkedColumn) else self.lengths[rows]
        return self._build_many(lengths.tolist(), self.make, rows.tolist())


class SyntheticWhenRead(MadeWhenRead):
    """A `prompt` / `output` column whose rows are one synthetic segment each: `make(row)` gives its
    key, looked up when the content is first read (`TokenSequence.synthetic_keys_read_later`), so a
    read makes no sequence to convert and check, as a `MadeWhenRead`'s maker does."""

    __slots__ = ()
    _build_many = staticmethod(TokenSequence.synthetic_keys_read_later)
