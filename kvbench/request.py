"""The unit a workload produces and the scheduler serves."""

from __future__ import annotations

from dataclasses import dataclass

from kvbench.tokens import TokenSequence


# Not frozen, though nothing changes a request once built: a frozen dataclass sets each field
# through object.__setattr__, and requests are built inside the simulation loop (about a microsecond
# of the few that building a request costs).
@dataclass(slots=True)
class Request:
    """One request of a trace or generator.

    `num_output_tokens` is the true output length (EOS ignored, as serving benchmarks do). With
    `n > 1` the prompt is sampled n times (parallel sampling); with `beam_width > 1` it is decoded
    by beam search. `output` optionally fixes the generated tokens (a recorded reply that a later
    turn of the same conversation quotes), so that prefix caching sees the reuse the trace had.
    """

    request_id: int
    arrival_time_s: float
    prompt: TokenSequence
    num_output_tokens: int
    n: int = 1
    beam_width: int = 1
    session_id: int | None = None
    turn: int | None = None
    output: TokenSequence | None = None

    def __post_init__(self) -> None:
        if self.prompt.num_tokens is None or self.prompt.num_tokens < 1:
            raise ValueError(f"request {self.request_id}: the prompt needs at least one token")
        if self.num_output_tokens < 1:
            raise ValueError(f"request {self.request_id}: num_output_tokens must be >= 1")
        if self.n < 1 or self.beam_width < 1:
            raise ValueError(f"request {self.request_id}: n and beam_width must be >= 1")
        if self.n > 1 and self.beam_width > 1:
            raise ValueError(f"request {self.request_id}: choose parallel sampling or beam search, not both")
        if self.output is not None and self.output.num_tokens is not None:
            if self.output.num_tokens < self.num_output_tokens:
                raise ValueError(f"request {self.request_id}: `output` is shorter than num_output_tokens")

    @property
    def num_prompt_tokens(self) -> int:
        return self.prompt.num_tokens  # bounded: checked at construction

    @property
    def num_seqs(self) -> int:
        """Sequences the request runs at once after its prefill."""
        return max(self.n, self.beam_width)

    @property
    def max_num_kv_tokens(self) -> int:
        """KV slots one of its sequences holds at the end: the last sampled token is never fed back."""
        return self.prompt.num_tokens + self.num_output_tokens - 1
