"""Shared fixtures of the device executor tests: tiny configs, a step loop, the dense oracle.

With --import-mode=importlib test modules cannot import each other, so helpers are fixtures.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

import kvbench.config  # noqa: F401  (registers the schemas)
from kvbench.compose import compose
from kvbench.device.decoder import Decoder
from kvbench.device.dense_reference import dense_logits
from kvbench.device.engine import DeviceEngine
from kvbench.metrics import MetricsRecorder
from kvbench.request import Request
from kvbench.runner import Run, build, simulate
from kvbench.scheduler import Scheduler
from kvbench.sequence import RequestState
from kvbench.step_loop import run_steps

# The tiny model in float64 on CPU: small enough for dozens of requests in a second, and a
# context limit that makes contiguous reservation (orca_max) cost something.
TINY = ["model=tiny", "model.max_model_len=128", "engine=device", "engine.device=cpu"]


@pytest.fixture(autouse=True)
def one_cpu_thread():
    """Tiny matmuls run fastest on one thread, and pytest-xdist already uses every core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def compose_config() -> Callable:
    return compose


@pytest.fixture
def run_device(compose_config) -> Callable[[list[str]], tuple[Run, MetricsRecorder]]:
    """Build and run a config (tiny model, engine=device on CPU, then `overrides`)."""

    def run_(overrides: list[str]) -> tuple[Run, MetricsRecorder]:
        run = build(compose_config([*TINY, *overrides]))
        recorder = simulate(run, progress=False)
        return run, recorder

    return run_


@pytest.fixture
def drive() -> Callable[[Scheduler, object], list[RequestState]]:
    """The runner's step loop for a hand-built scheduler and executor; returns finished requests."""

    def drive_(scheduler: Scheduler, executor) -> list[RequestState]:
        done = []
        for result in run_steps(scheduler, executor):
            for group in result.finished:
                executor.request_fields(group)
            done.extend(result.finished)
        return done

    return drive_


def greedy_dense(engine: DeviceEngine, request: Request) -> str:
    """The request's greedy continuation by the dense model (teacher-forced where it has `output`),
    as generated_token_ids writes one sequence."""
    vocab = engine.model_config.vocab_size
    ids = request.prompt.ids(0, request.num_prompt_tokens, vocab).tolist()
    for i in range(request.num_output_tokens):
        if request.output is not None:
            ids.append(int(request.output.ids(i, i + 1, vocab)[0]))
        else:
            ids.append(int(dense_logits(engine.decoder, ids)[-1].argmax()))
    return " ".join(map(str, ids[request.num_prompt_tokens :]))


@pytest.fixture
def dense_continuations() -> Callable[[DeviceEngine, list[Request]], dict[int, str]]:
    """request_id -> the dense model's greedy continuation (every greedy sample is the same)."""

    def continuations(engine: DeviceEngine, requests: list[Request]) -> dict[int, str]:
        return {r.request_id: greedy_dense(engine, r) for r in requests}

    return continuations


@pytest.fixture
def max_logit_error() -> Callable[..., float]:
    """Largest |device logits - dense logits| over every recorded row; with `relative`, each row's
    largest difference over its largest |dense logit|. The dense model (the engine's own, or
    `reference`) runs on each sequence's own tokens: prompt + what it generated; with
    `quantized`, its K/V go through the engine's KV format (dense_logits' kv_format)."""

    def error_(engine: DeviceEngine, reference: Decoder | None = None, relative: bool = False,
               quantized: bool = False) -> float:
        reference = reference or engine.decoder
        worst = 0.0
        for records in engine.book.finished.values():
            for record in records:
                if not record.logits:
                    continue
                tokens = record.token_ids[: max(record.logits) + 1]
                kv_format = engine.kv_format if quantized else None
                dense = dense_logits(reference, tokens, kv_format).to(torch.float64).cpu().numpy()
                for position, row in record.logits.items():
                    error = float(np.abs(row - dense[position]).max())
                    if relative:
                        error /= float(np.abs(dense[position]).max())
                    worst = max(worst, error)
        return worst

    return error_
