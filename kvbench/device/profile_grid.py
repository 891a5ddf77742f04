"""Synthetic steps of a chosen shape, and their timing: what `kvbench profile` measures.

A step's shape is the four numbers the profile cost model interpolates over:

- `num_decode_seqs` decoding sequences, each with `decode_context_len` tokens of context (its new
  token included);
- `num_prefill_tokens` prefill tokens whose queries attend on average to `prefill_keys_per_token`
  keys (themselves included): the prefill attention work is num_prefill_tokens x that.

The prefill tokens are cut into sequences of q = min(N, 2K - 1) new tokens (the last one takes the
rest), each after a cached prefix of round(K - (q + 1) / 2) tokens: a sequence of q tokens after p
cached ones attends to p + (q + 1) / 2 keys per token on average, so short means come from many
short prompts and long ones from chunks after a long prefix, as chunked prefill and prefix caching
produce them.

Block tables come from the pool in a shuffled order (`paged`: every block anywhere, as after a
long run) or as consecutive runs (`contiguous`). A grid point larger than the pool reuses blocks
(timing needs the bytes moved, not distinct contents); the pool is far larger than the L2 cache,
so reused blocks are not found there.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from kvbench.device.step_inputs import StepInputs, StepInputsBuilder
from kvbench.device.step_runner import StepRunner
from kvbench.profile_table import grid_points

LAYOUTS = ("paged", "contiguous")


@dataclass(frozen=True)
class StepShape:
    num_decode_seqs: int
    decode_context_len: int
    num_prefill_tokens: int
    prefill_keys_per_token: int

    def __post_init__(self) -> None:
        if self.num_decode_seqs < 0 or self.num_prefill_tokens < 0:
            raise ValueError(f"{self}: token counts must be >= 0")
        if self.num_decode_seqs and self.decode_context_len < 1:
            raise ValueError(f"{self}: decoding sequences need a context of at least 1 token")
        if self.num_prefill_tokens and self.prefill_keys_per_token < 1:
            raise ValueError(f"{self}: prefill tokens attend to at least 1 key")
        if not self.num_decode_seqs and not self.num_prefill_tokens:
            raise ValueError(f"{self}: a step computes at least one token")


def prefill_pieces(num_tokens: int, keys_per_token: int) -> list[tuple[int, int]]:
    """(cached prefix, new tokens) of the sequences that make up a prefill of this shape."""
    q = min(num_tokens, max(1, 2 * keys_per_token - 1))
    full, rest = divmod(num_tokens, q)

    def prefix(num_new: int) -> int:
        return max(0, round(keys_per_token - (num_new + 1) / 2))

    return [(prefix(q), q)] * full + ([(prefix(rest), rest)] if rest else [])


class BlockSupply:
    """Hands out block ids for synthetic tables: shuffled (`paged`) or in runs (`contiguous`)."""

    def __init__(self, num_blocks: int, layout: str, rng: np.random.Generator):
        if layout not in LAYOUTS:
            raise ValueError(f"layout {layout!r} must be one of {', '.join(LAYOUTS)}")
        self.num_blocks = num_blocks
        self.layout = layout
        self._order = rng.permutation(num_blocks) if layout == "paged" else np.arange(num_blocks)
        self._cursor = 0

    def take(self, num_blocks: int) -> np.ndarray:
        if self.layout == "contiguous":
            if num_blocks > self.num_blocks:
                raise ValueError(f"a run of {num_blocks} blocks does not fit in a pool of {self.num_blocks}")
            if self._cursor + num_blocks > self.num_blocks:
                self._cursor = 0  # a run never wraps around the pool's end
        ids = self._order[(self._cursor + np.arange(num_blocks)) % self.num_blocks]
        self._cursor = (self._cursor + num_blocks) % self.num_blocks
        return ids


def synthetic_step(
    shape: StepShape, block_size: int, num_pool_blocks: int, layout: str, vocab_size: int, rng: np.random.Generator
) -> StepInputs:
    supply = BlockSupply(num_pool_blocks, layout, rng)
    builder = StepInputsBuilder(block_size)

    def table(num_tokens: int) -> np.ndarray:
        return supply.take(-(-num_tokens // block_size))

    if shape.num_prefill_tokens:
        for prefix, num_new in prefill_pieces(shape.num_prefill_tokens, shape.prefill_keys_per_token):
            ids = rng.integers(0, vocab_size, num_new)
            builder.add_prefill(ids, prefix, table(prefix + num_new), sample=True, what="synthetic prefill")
    for _ in range(shape.num_decode_seqs):
        context = shape.decode_context_len
        builder.add_decode(int(rng.integers(vocab_size)), context - 1, table(context), what="synthetic decode")
    return builder.build([])


def grid_shapes(
    decode_seqs: list[int], decode_contexts: list[int], prefill_tokens: list[int], prefill_keys: list[int]
) -> Iterator[StepShape]:
    """Every distinct shape of the product grid (`profile_table.grid_points`)."""
    for point in grid_points(decode_seqs, decode_contexts, prefill_tokens, prefill_keys):
        yield StepShape(*point)


def time_step(runner: StepRunner, inputs: StepInputs, cpu_reps: int) -> float:
    """Median step time in seconds: on CUDA `triton.testing.do_bench` (L2 flushed before every
    call), on CPU the median wall time of `cpu_reps` runs after one warm-up run."""
    if runner.device.type == "cuda":
        from triton.testing import do_bench

        return do_bench(lambda: runner.run(inputs), warmup=25, rep=200, return_mode="median") / 1e3
    runner.run(inputs)
    times = []
    for _ in range(cpu_reps):
        started = time.perf_counter()
        runner.run(inputs)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def warm_up(runner: StepRunner) -> None:
    """Compile the Triton kernel variants a run uses before its first timed step: prefill,
    decode without and with split-K, store and copy. Writes garbage into the pool."""
    pool, vocab = runner.pool, runner.decoder.config.vocab_size
    rng = np.random.default_rng(0)
    long_context = min(4096, pool.num_blocks * pool.block_size)
    for shape in (StepShape(4, 64, 64, 32), StepShape(1, long_context, 0, 0), StepShape(2, long_context, 0, 0)):
        runner.run(synthetic_step(shape, pool.block_size, pool.num_blocks, "paged", vocab, rng))
    copy = synthetic_step(StepShape(1, 1, 0, 0), pool.block_size, pool.num_blocks, "paged", vocab, rng)
    if pool.num_blocks >= 2:
        copy.block_copies = [(0, 1)]
    runner.run(copy)
    runner.timer.reset()
    runner.num_copied_blocks = 0
    if runner.device.type == "cuda":
        torch.cuda.synchronize(runner.device)
