"""Generators under the names vLLM's and SGLang's benchmark tools use, so a study reads the same:

- `random` (vLLM `--dataset-name random`): prompts of `input_len` tokens and outputs of `output_len`,
  each drawn uniformly from [len·(1 − range_ratio), len·(1 + range_ratio)], after a prefix of
  `prefix_len` tokens every prompt shares.
- `prefix_repetition` (vLLM `--dataset-name prefix_repetition`): `num_prefixes` distinct prefixes of
  `prefix_len` tokens, each followed by its own `suffix_len` tokens; requests spread evenly over the
  prefixes and shuffled, `output_len` tokens out.
- `generated-shared-prefix` (SGLang `--dataset-name generated-shared-prefix`): `num_groups` system
  prompts of `system_prompt_len` tokens, `prompts_per_group` questions of `question_len` tokens
  each, `output_len` tokens out; `num_requests` null takes every group's every question, shuffled.

Token contents are synthetic streams (kvbench/tokens.py): equal prefixes are equal tokens, so prefix
caching sees exactly the sharing these tools build with random token ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kvbench.tokens import Synthetic, TokenSequence
from kvbench.workloads.base import WORKLOADS, Workload, WorkloadConfig
from kvbench.workloads.request_table import RequestTable


def _ranged(length: int, range_ratio: float, num: int, rng: np.random.Generator, what: str) -> np.ndarray:
    if length < 1:
        raise ValueError(f"workload.{what}={length} must be >= 1")
    if not 0 <= range_ratio < 1:
        raise ValueError(f"workload.range_ratio={range_ratio} must be in [0, 1)")
    low, high = max(1, int(np.floor(length * (1 - range_ratio)))), int(np.ceil(length * (1 + range_ratio)))
    return rng.integers(low, high + 1, num)


def _need(value: int, setting: str, minimum: int = 1) -> None:
    if value < minimum:
        raise ValueError(f"workload.{setting}={value} must be >= {minimum}")


@dataclass
class RandomConfig(WorkloadConfig):
    name: str = "random"
    input_len: int = 1024
    output_len: int = 128
    range_ratio: float = 0.0
    prefix_len: int = 0


@WORKLOADS.register("random", RandomConfig)
class RandomWorkload(Workload):
    config: RandomConfig

    def read(self, rng: np.random.Generator) -> RequestTable:
        c, seed = self.config, self.seed
        if c.num_requests is None:
            raise ValueError("workload.num_requests must be set for the random workload")
        _need(c.prefix_len, "prefix_len", 0)
        prompt_lens = _ranged(c.input_len, c.range_ratio, c.num_requests, rng, "input_len")
        output_lens = _ranged(c.output_len, c.range_ratio, c.num_requests, rng, "output_len")

        def prompt(row: int) -> TokenSequence:
            return TokenSequence((Synthetic(("random-prefix", seed), c.prefix_len),
                                  Synthetic(("random", seed, row), int(prompt_lens[row]))))

        return RequestTable(num_prompt_tokens=prompt_lens + c.prefix_len, num_output_tokens=output_lens,
                            prompt=prompt, source="random", dataset={"name": "random", "seed": seed})


@dataclass
class PrefixRepetitionConfig(WorkloadConfig):
    name: str = "prefix_repetition"
    prefix_len: int = 256
    suffix_len: int = 256
    num_prefixes: int = 10
    output_len: int = 128


@WORKLOADS.register("prefix_repetition", PrefixRepetitionConfig)
class PrefixRepetitionWorkload(Workload):
    config: PrefixRepetitionConfig

    def read(self, rng: np.random.Generator) -> RequestTable:
        c, seed = self.config, self.seed
        if c.num_requests is None:
            raise ValueError("workload.num_requests must be set for the prefix_repetition workload")
        for setting in ("prefix_len", "suffix_len", "num_prefixes", "output_len"):
            _need(getattr(c, setting), setting, 0 if setting in ("prefix_len", "suffix_len") else 1)
        if c.prefix_len + c.suffix_len < 1:
            raise ValueError("workload.prefix_len + workload.suffix_len must be >= 1")
        prefixes = rng.permutation(np.arange(c.num_requests) % c.num_prefixes)  # even spread, shuffled

        def prompt(row: int) -> TokenSequence:
            return TokenSequence((Synthetic(("repeated-prefix", seed, int(prefixes[row])), c.prefix_len),
                                  Synthetic(("suffix", seed, row), c.suffix_len)))

        return RequestTable(num_prompt_tokens=np.full(c.num_requests, c.prefix_len + c.suffix_len, dtype=np.int64),
                            num_output_tokens=np.full(c.num_requests, c.output_len, dtype=np.int64), prompt=prompt,
                            source="prefix_repetition", dataset={"name": "prefix_repetition", "seed": seed})


@dataclass
class GeneratedSharedPrefixConfig(WorkloadConfig):
    name: str = "generated-shared-prefix"
    num_requests: int | None = None  # null: num_groups x prompts_per_group
    num_groups: int = 64
    prompts_per_group: int = 16
    system_prompt_len: int = 2048
    question_len: int = 128
    output_len: int = 256


@WORKLOADS.register("generated-shared-prefix", GeneratedSharedPrefixConfig)
class GeneratedSharedPrefixWorkload(Workload):
    config: GeneratedSharedPrefixConfig

    def read(self, rng: np.random.Generator) -> RequestTable:
        c, seed = self.config, self.seed
        for setting in ("num_groups", "prompts_per_group", "question_len", "output_len"):
            _need(getattr(c, setting), setting)
        _need(c.system_prompt_len, "system_prompt_len", 0)
        num = c.num_groups * c.prompts_per_group
        order = rng.permutation(num)  # requests of all groups interleaved, as SGLang shuffles them
        groups = order // c.prompts_per_group

        def prompt(row: int) -> TokenSequence:
            return TokenSequence((Synthetic(("system-prompt", seed, int(groups[row])), c.system_prompt_len),
                                  Synthetic(("question", seed, int(order[row])), c.question_len)))

        return RequestTable(num_prompt_tokens=np.full(num, c.system_prompt_len + c.question_len, dtype=np.int64),
                            num_output_tokens=np.full(num, c.output_len, dtype=np.int64), prompt=prompt,
                            source="generated-shared-prefix",
                            dataset={"name": "generated-shared-prefix", "seed": seed})
