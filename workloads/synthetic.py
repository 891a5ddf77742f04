"""`synthetic`: generated arrivals and lengths, optionally with shared-prefix groups.

Each request's prompt is its own synthetic token stream; with `shared_prefix_tokens > 0` it is
preceded by the prefix of one of `num_prefix_groups` groups (a system prompt, a few-shot header),
drawn uniformly, so prefix caching has something to share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kvbench.tokens import TokenSequence
from kvbench.workloads.base import WORKLOADS, Workload, WorkloadConfig
from kvbench.workloads.request_table import RequestTable
from kvbench.workloads.chunked_column import ChunkedColumn, drawn_column
from kvbench.workloads.lengths import LengthConfig, LengthDist, length_draw


@dataclass
class SyntheticConfig(WorkloadConfig):
    name: str = "synthetic"
    prompt: LengthConfig = field(default_factory=lambda: LengthConfig(LengthDist.uniform, min=16, max=1024))
    output: LengthConfig = field(default_factory=lambda: LengthConfig(LengthDist.uniform, min=16, max=512))
    shared_prefix_tokens: int = 0
    num_prefix_groups: int = 1


@WORKLOADS.register("synthetic", SyntheticConfig)
class SyntheticWorkload(Workload):
    config: SyntheticConfig

    def read(self, rng: np.random.Generator) -> RequestTable:
        c = self.config
        if c.num_requests is None:
            raise ValueError("workload.num_requests must be set for a synthetic workload")
        if c.shared_prefix_tokens < 0 or c.num_prefix_groups < 1:
            raise ValueError("workload.shared_prefix_tokens must be >= 0 and workload.num_prefix_groups >= 1")
        # Drawn in chunks, kept as the generator's states (a million requests hold a chunk).
        prompt_lens = drawn_column(rng, c.num_requests, length_draw(c.prompt, "workload.prompt"))
        output_lens = drawn_column(rng, c.num_requests, length_draw(c.output, "workload.output"))
        groups = drawn_column(rng, c.num_requests, lambda rng, num: rng.integers(0, c.num_prefix_groups, num))
        prompt = SyntheticPrompts(self.seed, c.shared_prefix_tokens, groups, prompt_lens)
        return RequestTable(
            num_prompt_tokens=prompt_lens.map(lambda lengths: lengths + c.shared_prefix_tokens),
            num_output_tokens=output_lens,
            prompt=prompt,
            source="synthetic",
            dataset={"name": "synthetic", "seed": self.seed},
        )


class SyntheticPrompts:
    """The `prompt` column: row -> its group's shared prefix, then its own synthetic stream.

    Made when first read, as `TokenSequence.synthetic` and `+` are: the length is known, the
    segments are built only for a strategy that reads tokens. `many(rows)` makes a request stream's
    chunk of prompts at once.
    """

    __slots__ = ("seed", "shared_prefix_tokens", "groups", "prompt_lens")

    def __init__(self, seed: int, shared_prefix_tokens: int, groups: ChunkedColumn, prompt_lens: ChunkedColumn):
        self.seed, self.shared_prefix_tokens, self.groups, self.prompt_lens = seed, shared_prefix_tokens, groups, prompt_lens

    def __call__(self, row: int) -> TokenSequence:
        return self._prompt(row, self.groups.item(row), self.prompt_lens.item(row))

    def many(self, rows: np.ndarray) -> list[TokenSequence]:
        return list(map(self._prompt, rows.tolist(), self.groups.take(rows).tolist(), self.prompt_lens.take(rows).tolist()))

    def _prompt(self, row: int, group: int, num_tokens: int) -> TokenSequence:
        own = TokenSequence.synthetic(("synthetic", self.seed, row), num_tokens)
        if not self.shared_prefix_tokens:
            return own
        return TokenSequence.synthetic(("prefix", self.seed, group), self.shared_prefix_tokens) + own
