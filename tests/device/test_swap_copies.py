"""Swap preemption on the device executor: the swapped K/V really leaves the pool and comes back
(host copies, kvbench/device/swap_pool.py), and the tokens are those of recompute and of a dense
model (CPU, float64, torch kernels)."""

from __future__ import annotations

import pytest
import torch

from kvbench.device.kv_pool import KVPool
from kvbench.device.swap_pool import HostSwapPool
from kvbench.model_spec import ModelConfig

LOGITS_ATOL = 1e-9
PRESSURE = [  # a pool of 12 blocks of 16 tokens for requests that grow to 120 tokens: preemption
    "workload=synthetic", "workload.num_requests=6", "workload.arrival=offline", "workload.prompt.min=8",
    "workload.prompt.max=40", "workload.output.min=30", "workload.output.max=80", "engine.dtype=float64",
    "engine.record_logits=true", "num_blocks=12", "hardware.cpu_swap_bytes=10000000",
]


@pytest.mark.parametrize(("strategy", "n"), [("paged", 1), ("paged_cow", 2), ("paged_prefix", 1)])
def test_swap_gives_the_tokens_of_recompute_and_of_the_dense_model(
    strategy, n, run_device, dense_continuations, max_logit_error
):
    overrides = [*PRESSURE, f"strategy={strategy}", f"workload.n={n}"]
    swapped, swapped_recorder = run_device([*overrides, "scheduler.preemption=swap"])
    stats = swapped.scheduler.swap_stats
    assert stats.num_swap_outs > 0 and stats.num_swap_ins == stats.num_swap_outs
    engine = swapped.executor.engine
    assert engine.swap_time_s > 0 and swapped.executor.swap_transfer_s == engine.swap_time_s
    dense = dense_continuations(engine, swapped.workload.requests)
    requests = swapped_recorder.requests_table()
    for request_id, text in zip(requests["request_id"], requests["generated_token_ids"]):
        assert text.split("|") == [dense[request_id]] * n
    # The pool starts as NaN: a swapped-in block that was not restored would poison the logits.
    assert max_logit_error(engine) <= LOGITS_ATOL

    recomputed, recomputed_recorder = run_device(overrides)
    assert recomputed_recorder.steps_table()["preemptions"].sum() > 0
    assert recomputed.executor.summary_fields()["tokens_sha256"] == swapped.executor.summary_fields()["tokens_sha256"]


def test_host_copies_round_trip_block_by_block():
    config = ModelConfig(name="t", num_layers=2, hidden_size=8, num_heads=2, num_kv_heads=1, head_dim=4,
                         intermediate_size=16, vocab_size=32, max_model_len=32)
    pool = KVPool(config, num_blocks=4, block_size=2, dtype=torch.float64, device=torch.device("cpu"))
    for layer, (keys, values) in enumerate(zip(pool.key_caches, pool.value_caches)):
        keys.copy_(torch.arange(keys.numel(), dtype=torch.float64).reshape(keys.shape) + 1000 * layer)
        values.copy_(-keys)
    original = [t.clone() for t in (*pool.key_caches, *pool.value_caches)]
    host = HostSwapPool(pool, num_blocks=3)
    host.swap_out([(1, 2), (3, 0)])
    assert host.capacity_blocks == 3
    pool.fill(float("nan"))
    host.swap_in([(2, 0), (0, 2)])  # back into other blocks
    for before, after in zip(original, (*pool.key_caches, *pool.value_caches)):
        assert torch.equal(after[0], before[1]) and torch.equal(after[2], before[3])
        assert after[1].isnan().all() and after[3].isnan().all()
    with pytest.raises(IndexError, match="outside the swap space of 3 blocks"):
        host.swap_out([(0, 3)])
