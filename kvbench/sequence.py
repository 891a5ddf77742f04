"""The scheduler's view of requests and their sequences."""

from __future__ import annotations

from enum import Enum

from kvbench.request import Request
from kvbench.tokens import TokenSequence


class Phase(Enum):
    WAITING = "waiting"
    PREFILL = "prefill"  # admitted, prompt (or recompute) not fully computed yet
    DECODE = "decode"
    SWAPPED = "swapped"  # preempted by swap: its K/V waits in the swap space (scheduler.preemption=swap)
    FINISHED = "finished"


class Sequence:
    """One token stream of a request (a request has several with parallel sampling or beams).

    While the sequence decodes lazily (see lazy_decode.py), `num_computed_tokens` and
    `num_output_tokens` are its counts as of the end of tick `as_of_tick`; otherwise they are exact.
    `synced_tokens` is the length the strategy was last told.
    """

    __slots__ = (
        "seq_id", "group", "stream", "final_num_kv_tokens", "num_computed_tokens", "num_output_tokens",
        "as_of_tick", "synced_tokens", "alloc_tick", "parent_seq_id",
    )

    def __init__(
        self, seq_id: int, group: RequestState, stream: TokenSequence, num_output_tokens: int,
        parent_seq_id: int | None = None,
    ):
        self.seq_id = seq_id
        self.group = group
        self.stream = stream
        self.final_num_kv_tokens = group.request.max_num_kv_tokens
        self.num_computed_tokens = 0
        self.num_output_tokens = num_output_tokens
        self.as_of_tick = 0
        self.synced_tokens = 0
        self.alloc_tick: int | None = None  # the tick of its next planned allocate (lazy_decode.py)
        self.parent_seq_id = parent_seq_id  # the sequence it was forked from (it shares its tokens)

    def __repr__(self) -> str:
        return f"Sequence({self.seq_id}, computed={self.num_computed_tokens}, out={self.num_output_tokens})"


class RequestState:
    """A request from arrival to finish: its sequences, its timings and what happened to it."""

    __slots__ = (
        "request", "phase", "seqs", "admit_order", "num_preemptions", "first_token_time_s", "finish_time_s",
        "num_prefill_target_tokens", "num_prefix_hit_tokens", "num_prefix_query_tokens", "num_generated_tokens",
        "_next_stream_id", "num_seqs",
    )

    def __init__(self, request: Request):
        self.request = request
        self.num_seqs = request.num_seqs  # sequences it runs at once after its prefill (read per admission)
        self.phase = Phase.WAITING
        self.seqs: list[Sequence] = []
        self.admit_order = -1
        self.num_preemptions = 0
        self.first_token_time_s: float | None = None
        self.finish_time_s: float | None = None
        self.num_prefill_target_tokens = 0  # tokens the current prefill must reach
        self.num_prefix_hit_tokens = 0
        self.num_prefix_query_tokens = 0
        self.num_generated_tokens = 0  # over all sequences and all attempts
        self._next_stream_id = 0

    @property
    def request_id(self) -> int:
        return self.request.request_id

    def branch_stream(self, prefix: TokenSequence) -> TokenSequence:
        """`prefix` followed by the tokens a new sampling branch generates.

        The first branch generates the request's recorded output when it has one (so a later turn
        that quotes it finds it cached); every other branch generates a stream of its own.
        """
        stream_id = self._next_stream_id
        self._next_stream_id += 1
        if stream_id == 0 and self.request.output is not None:
            return prefix + self.request.output
        return prefix + TokenSequence.synthetic(("gen", self.request.request_id, stream_id), None)

    def restart_branches(self) -> None:
        """Forget all branches: a restarted request generates the same streams again."""
        self._next_stream_id = 0
