"""ShareGPT conversations as sessions: turn k quotes every earlier message, later turns wait for the
estimated reply and a think time, and a prefix cache finds the conversation so far."""

from __future__ import annotations

from collections import defaultdict

import pytest

from kvbench.runner import build, simulate
from kvbench.tokens import Synthetic
from kvbench.workloads.prefix_reuse import infinite_cache_hits
from kvbench.workloads.sharegpt import load_conversations, message_key
from kvbench.workloads.sharegpt_multiturn import ShareGPTMultiturnConfig, chat_turns
from kvbench.workloads.think_time import ThinkDist, ThinkTimeConfig


def by_session(requests):
    sessions = defaultdict(list)
    for r in requests:
        sessions[r.session_id].append(r)
    return {s: sorted(turns, key=lambda r: r.turn) for s, turns in sessions.items()}


def test_turns_quote_the_conversation_so_far(load):
    data = load(ShareGPTMultiturnConfig(num_sessions=20))
    conversations = {c.conversation_id: c for c in load_conversations(None)[0]}
    sessions = by_session(data.requests)
    assert len(sessions) == 20
    for turns in sessions.values():
        conv = conversations[turns[0].prompt.segments[0].key[1]]
        users = chat_turns(conv)
        assert [r.turn for r in turns] == list(range(len(users)))
        for r, user in zip(turns, users, strict=True):
            expected = tuple(Synthetic(message_key(conv, j), conv.num_tokens[j]) for j in range(user + 1)
                             if conv.num_tokens[j])
            assert r.prompt.segments == expected
            assert r.output.segments == (Synthetic(message_key(conv, user + 1), conv.num_tokens[user + 1]),)
            assert r.num_output_tokens == conv.num_tokens[user + 1]
        for before, after in zip(turns, turns[1:], strict=False):  # the reply is part of the next prompt
            quoted = before.prompt.segments + before.output.segments
            assert after.prompt.segments[: len(quoted)] == quoted


def test_open_loop_timing_reply_estimate_plus_think_time(load):
    think = ThinkTimeConfig(dist=ThinkDist.fixed, mean_s=7.0)
    data = load(ShareGPTMultiturnConfig(num_sessions=10, think_time=think, reply_s_per_token=0.05))
    for turns in by_session(data.requests).values():
        for before, after in zip(turns, turns[1:], strict=False):
            assert after.arrival_time_s - before.arrival_time_s == pytest.approx(0.05 * before.num_output_tokens + 7.0)
    starts = sorted(turns[0].arrival_time_s for turns in by_session(data.requests).values())
    assert starts[0] > 0 and len(set(starts)) == 10  # sessions start by the Poisson process
    assert [r.request_id for r in data.requests] == list(range(len(data.requests)))  # numbered in arrival order


def test_seeded_and_limited(load):
    config = ShareGPTMultiturnConfig(num_sessions=5, max_turns=2, num_requests=7)
    first, again = load(config, seed=3), load(config, seed=3)
    assert list(first.requests) == list(again.requests) and len(first.requests) == 7
    assert max(r.turn for r in first.requests) <= 1
    assert list(load(config, seed=4).requests) != list(first.requests)


def test_paged_prefix_finds_each_session_in_the_cache(compose_run):
    """With a pool that never evicts and think times long enough for every reply to finish, each
    later turn hits the whole conversation so far: the simulator reaches the infinite-cache bound."""
    cfg = compose_run([
        "strategy=paged_prefix", "workload=sharegpt_multiturn", "workload.num_sessions=12", "workload.max_turns=4",
        "workload.think_time.dist=fixed", "workload.think_time.mean_s=600", "model=llama-2-7b", "num_blocks=20000",
    ])
    run = build(cfg)
    recorder = simulate(run, progress=False)
    requests = recorder.requests_table()
    steps = recorder.steps_table()
    assert steps["preemptions"].sum() == 0
    hit_tokens, _ = infinite_cache_hits(run.workload.requests, run.budget.block_size)
    assert requests["prefix_hit_tokens"].sum() == hit_tokens > 0
    first_turns = requests["request_id"].isin([r.request_id for r in run.workload.requests if r.turn == 0])
    assert requests.loc[first_turns, "prefix_hit_tokens"].sum() == 0  # sessions share nothing with each other
