"""Prefix-cache hits of replayed traces through `paged_prefix`, checked against numbers worked out
without kvbench: by hand from vLLM v1's rules, and from the Mooncake file itself."""

from __future__ import annotations

import json

from kvbench.metrics import summarize
from kvbench.runner import build, simulate
from kvbench.workloads.prefix_reuse import infinite_cache_hits


def run_summary(cfg):
    run = build(cfg)
    recorder = simulate(run, progress=False)
    requests = recorder.requests_table()
    return run, requests, summarize(recorder.steps_table(), requests, run.budget.kv_cache_bytes, recorder.end_time_s)


def test_custom_list_one_at_a_time_gets_vllm_v1_hits(tmp_path, compose_run):
    """Block size 4, one request at a time, a pool that never evicts. vLLM v1's rules: a hit is a
    run of leading full blocks whose whole prefix was cached (the hash chains the parent), capped
    at prompt - 1 tokens so the last prompt token is computed; a block filled with generated tokens
    holds those tokens (they are in the cache under their own content)."""
    prompts = [
        list(range(1, 11)),  # [1..10]: nothing cached yet                                  -> 0
        list(range(1, 11)),  # same: blocks [1-4], [5-8]; block 3 of #0 holds 9, 10 + its output -> 8
        list(range(1, 9)),  # [1..8]: both blocks cached, but at most 7 tokens may hit      -> 4
        [1, 2, 3, 4, 5, 6, 7, 99, 9, 10, 11, 12],  # diverges in block 2                    -> 4
        [2, 1, 3, 4, 5, 6, 7, 8],  # block 2 has cached content, under another prefix        -> 0
        list(range(1, 13)),  # [1..12]: [9-12] never held without generated tokens before    -> 8
        list(range(1, 13)),  # again: 3 blocks cached, cap (12 - 1) // 4 = 2 blocks          -> 8
        list(range(1, 14)),  # [1..13]: cap (13 - 1) // 4 = 3 blocks                         -> 12
    ]
    records = [{"prompt_token_ids": p, "output_len": 3} for p in prompts] + [{"prompt_len": 8, "output_len": 3}]
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    cfg = compose_run([
        "strategy=paged_prefix", "strategy.block_size=4", "workload=custom", f"workload.path={path}",
        "workload.arrival=offline", "scheduler.max_num_seqs=1", "model=tiny", "num_blocks=256",
    ])
    run, requests, summary = run_summary(cfg)
    expected = [0, 8, 4, 4, 0, 8, 8, 12, 0]
    assert requests["prefix_hit_tokens"].tolist() == expected
    assert summary["prefix_hit_rate"] == sum(expected) / sum(len(p) for p in prompts + [range(8)])
    assert summary["preemptions"] == 0
    # One at a time in arrival order, nothing evicted: the infinite-cache bound is reached.
    assert infinite_cache_hits(run.workload.requests, 4) == (sum(expected), summary["prompt_tokens"])


def test_custom_later_turn_quoting_a_recorded_reply_hits_it(tmp_path, compose_run):
    """Turn 2 quotes turn 1's prompt and its recorded reply (`output_token_ids`); the file lists
    turn 1 first though its id is larger, and offline the file's order is the queue's order."""
    records = [
        {"id": 5, "prompt_token_ids": [1, 2, 3, 4, 5, 6], "output_token_ids": [70, 71, 72, 73]},
        {"id": 1, "prompt_token_ids": [1, 2, 3, 4, 5, 6, 70, 71, 72, 73, 9, 9], "output_len": 2},
    ]
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    cfg = compose_run([
        "strategy=paged_prefix", "strategy.block_size=4", "workload=custom", f"workload.path={path}",
        "workload.arrival=offline", "scheduler.max_num_seqs=1", "model=tiny", "num_blocks=256",
    ])
    _, requests, _ = run_summary(cfg)
    # Request 5 runs first and holds [1-4], [5,6,70,71], [72] (its last sampled token, 73, is never
    # fed back): request 1's 12-token prompt hits both full blocks, 8 tokens (cap (12 - 1) // 4 = 2).
    assert requests.sort_values("first_token_time_s")["request_id"].tolist() == [5, 1]
    assert requests.set_index("request_id")["prefix_hit_tokens"].to_dict() == {5: 0, 1: 8}


def reusable_prompt_tokens(lines: list[str], block_size: int, trace_block_tokens: int = 512) -> tuple[int, int]:
    """From the Mooncake JSONL alone: per request in file order, the leading prompt tokens that an
    earlier request's prompt already held (hash ids are prefix-chained, so a seen id means a seen
    prefix; a shared id covers the tokens both requests have of that block), in whole kvbench
    blocks, capped at input_length - 1. Returns (reusable tokens, prompt tokens)."""
    longest_seen: dict[int, int] = {}  # hash id -> most tokens of its block any earlier prompt held
    reusable = total = 0
    for line in lines:
        row = json.loads(line)
        ids, length = row["hash_ids"], row["input_length"]
        shared = 0
        for i, h in enumerate(ids):
            mine = min(trace_block_tokens, length - i * trace_block_tokens)
            seen = longest_seen.get(h, 0)
            shared = i * trace_block_tokens + min(seen, mine)
            if seen < mine:
                break
        reusable += min(shared // block_size, (length - 1) // block_size) * block_size
        total += length
        for i, h in enumerate(ids):
            longest_seen[h] = max(longest_seen.get(h, 0), min(trace_block_tokens, length - i * trace_block_tokens))
    return reusable, total


def test_mooncake_unlimited_cache_hit_rate_is_the_trace_reuse(shared_file, compose_run):
    """The whole conversation trace, offline (arrival order = file order), whole prompts admitted in
    order, and a pool larger than every block all requests ever hold: nothing is evicted or preempted,
    so paged_prefix's hit rate is exactly the share of reusable prompt tokens in the file."""
    path = shared_file("mooncake/conversation_trace.jsonl")
    lines = path.read_text().splitlines()
    block_size = 256  # the largest kvbench allows: fewer block objects for a 145M-token trace
    rows = [json.loads(line) for line in lines]
    num_blocks = sum(-(-(r["input_length"] + r["output_length"]) // block_size) for r in rows)
    longest = max(r["input_length"] + r["output_length"] for r in rows)
    cfg = compose_run([
        "strategy=paged_prefix", f"strategy.block_size={block_size}", "workload=mooncake", f"workload.path={path}",
        "workload.arrival=offline", "model=tiny", f"model.max_model_len={longest}", f"num_blocks={num_blocks}",
        "scheduler.chunked_prefill=false", f"scheduler.max_num_batched_tokens={longest}", "scheduler.max_num_seqs=1024",
    ])
    run, _, summary = run_summary(cfg)
    reusable, total = reusable_prompt_tokens(lines, block_size)
    assert summary["num_requests"] == len(rows) == 12031 and run.workload.num_dropped_too_long == 0
    assert summary["preemptions"] == 0
    assert summary["prompt_tokens"] == total
    assert summary["prefix_hit_tokens"] == reusable
    assert summary["prefix_hit_rate"] == reusable / total
    assert infinite_cache_hits(run.workload.requests, block_size) == (reusable, total)
