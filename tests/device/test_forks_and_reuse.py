"""Beams fork every step; a recorded reply quoted by a later turn is reused from the prefix cache.
Both must leave what the model computes unchanged (CPU, float64, torch kernels)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from kvbench.request import Request
from kvbench.runner import build
from kvbench.scheduler import Scheduler
from kvbench.tokens import Synthetic, TokenSequence

LOGITS_ATOL = 1e-9


@pytest.mark.parametrize("strategy", ["paged", "paged_cow", "paged_prefix", "contiguous"])
def test_beams_generate_the_dense_models_tokens(strategy, run_device, dense_continuations, max_logit_error):
    run, recorder = run_device([
        f"strategy={strategy}", "workload=synthetic", "workload.num_requests=6", "workload.arrival=offline",
        "workload.prompt.min=8", "workload.prompt.max=40", "workload.output.min=2", "workload.output.max=12",
        "workload.beam_width=3", "engine.dtype=float64", "engine.record_logits=true", "num_blocks=64",
    ])
    dense = dense_continuations(run.executor.engine, run.workload.requests)
    requests = recorder.requests_table()
    for request_id, text in zip(requests["request_id"], requests["generated_token_ids"]):
        assert text.split("|") == [dense[request_id]] * 3
    assert max_logit_error(run.executor.engine) <= LOGITS_ATOL
    steps = recorder.steps_table()
    assert (steps["cow_copies"] + steps["fork_copied_blocks"]).sum() > 0


def test_a_quoted_reply_is_teacher_forced_and_reused_from_the_cache(
    compose_config, drive, dense_continuations, max_logit_error
):
    cfg = compose_config([
        "model=tiny", "model.max_model_len=128", "engine=device", "engine.device=cpu", "engine.dtype=float64",
        "engine.record_logits=true", "strategy=paged_prefix", "num_blocks=32",
    ])
    run = build(cfg)
    system = Synthetic(("system",), 40)
    first_prompt = TokenSequence((system, Synthetic(("user", 0), 10)))
    reply = TokenSequence.from_ids(range(100, 120))  # what the first turn answered in the trace
    second_prompt = first_prompt + reply + TokenSequence.synthetic(("user", 1), 10)
    requests = [
        Request(0, 0.0, first_prompt, 20, output=reply),
        Request(1, 100.0, second_prompt, 8),  # arrives after the first turn finished
    ]
    scheduler = Scheduler(run.strategy, OmegaConf.to_object(cfg.scheduler), requests, 128, seed=0, with_block_tables=True)
    finished = {group.request_id: group for group in drive(scheduler, run.executor)}
    engine = run.executor.engine

    first_tokens = engine.book.finished[0][0].token_ids[first_prompt.num_tokens :]
    assert first_tokens == list(range(100, 120))
    # The first turn wrote K/V for its prompt and 19 reply tokens: 4 full blocks of 16, so the
    # second turn's hit covers the 50 prompt tokens and 14 tokens of the teacher-forced reply.
    assert finished[1].num_prefix_hit_tokens == 64
    second_tokens = engine.book.finished[1][0].token_ids[second_prompt.num_tokens :]
    assert " ".join(map(str, second_tokens)) == dense_continuations(engine, requests)[1]
    assert max_logit_error(engine) <= LOGITS_ATOL
