"""Seeded request lists that exercise prefix caching and preemption, as both engines can read them.

Every request has explicit prompt ids and explicit output ids (the tokens it will generate), so
the two engines compare the same content: vLLM hashes the ids, kvbench keys them. Prompts mix a
few shared system prompts, exact repeats of earlier prompts, and later turns that quote an
earlier request's prompt and output (multi-turn chat), so hits on generated blocks happen too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kvbench.request import Request
from kvbench.tokens import TokenSequence

STEP_S = 0.01  # both replays advance a clock by this per step; arrivals sit between steps
VOCAB = 1 << 30


@dataclass(frozen=True)
class Case:
    seed: int
    block_size: int
    num_blocks: int  # kvbench's pool; vLLM gets one more, its reserved null block
    max_num_seqs: int
    max_num_batched_tokens: int
    max_model_len: int
    requests: tuple[Request, ...]

    @property
    def name(self) -> str:
        return (
            f"seed{self.seed}-bs{self.block_size}-blocks{self.num_blocks}-seqs{self.max_num_seqs}"
            f"-reqs{len(self.requests)}"
        )


def make_requests(rng: np.random.Generator, num_requests: int, block_size: int) -> list[Request]:
    scale = max(block_size, 4)
    systems = [rng.integers(0, VOCAB, int(rng.integers(1, 4)) * scale).tolist() for _ in range(3)]
    done: list[tuple[list[int], list[int]]] = []  # earlier (prompt, output) pairs
    requests = []
    for i in range(num_requests):
        kind = rng.random()
        if done and kind < 0.2:  # an exact repeat of an earlier prompt
            prompt = list(done[int(rng.integers(len(done)))][0])
        elif done and kind < 0.45:  # a later turn: earlier prompt + its reply + a new message
            before, reply = done[int(rng.integers(len(done)))]
            prompt = before + reply + rng.integers(0, VOCAB, int(rng.integers(1, 2 * scale))).tolist()
        else:
            head = systems[int(rng.integers(len(systems)))] if rng.random() < 0.7 else []
            prompt = head + rng.integers(0, VOCAB, int(rng.integers(1, 3 * scale))).tolist()
        num_output = int(rng.integers(1, 3 * scale))
        output = rng.integers(0, VOCAB, num_output).tolist()
        done.append((prompt, output))
        arrival_step = int(rng.integers(0, 2 * num_requests))
        requests.append(Request(
            request_id=i, arrival_time_s=(arrival_step + 0.5) * STEP_S if rng.random() < 0.7 else 0.0,
            prompt=TokenSequence.from_ids(prompt), num_output_tokens=num_output,
            output=TokenSequence.from_ids(output),
        ))
    return requests


def make_case(seed: int, chunked: bool = False) -> Case:
    """Case `seed`: block size 1, 16 or 32, max_num_seqs 1-64, a pool from tight to generous.

    With `chunked`, a token budget small enough that long prompts are split across steps.
    """
    rng = np.random.default_rng(seed)
    block_size = int(rng.choice([1, 16, 32]))
    num_requests = int(rng.integers(4, 40))
    requests = make_requests(rng, num_requests, block_size)
    longest = max(r.max_num_kv_tokens for r in requests)
    min_blocks = -(-longest // block_size) + 1
    total_blocks = sum(-(-r.max_num_kv_tokens // block_size) for r in requests)
    tightness = rng.random()  # 0: just enough for the longest request; 1: everything at once
    num_blocks = int(min_blocks + tightness**2 * max(0, total_blocks - min_blocks))
    max_num_seqs = int(rng.choice([1, 2, 4, 8, 16, 64]))
    if chunked:
        max_num_batched_tokens = max(max_num_seqs, int(rng.choice([8, 16, 32, 64, 128])))
    else:  # a budget that never chunks: every prompt (and recomputed output) fits in one step
        max_num_batched_tokens = max(2048, longest + max_num_seqs + 1)
    return Case(seed, block_size, num_blocks, max_num_seqs, max_num_batched_tokens, 4096, tuple(requests))
