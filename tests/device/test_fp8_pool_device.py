"""The fp8 KV pool on the device executor (model.kv_dtype=fp8_*, Triton kernels; CPU: the
interpreter, fp32): real float8 storage gives the tokens of the fake-quantized reference path.

The reference is the torch backend, whose pool keeps float32 values passed through the format's
reference quantize/dequantize (kernels/quant_reference.py). With the format's per-tensor scale the
fp8 pool dequantizes to exactly those values, so the only difference left is the order of fp32
accumulation between the Triton kernels and the torch ones: tokens must be equal, logits within
1e-4 (as tests/device/test_triton_backend.py bounds Triton against torch without a format).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from kvbench.device.kv_pool import SCALE_BYTES, KVPool
from kvbench.device.swap_pool import HostSwapPool
from kvbench.model_spec import ModelConfig

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1", reason="Triton on CPU needs TRITON_INTERPRET=1 (tests/conftest.py)"
)

LOGITS_ATOL = 1e-4
# 4 requests with shared prefixes and 2 samples each: prefix hits and copy-on-write.
SHARING = [
    "strategy.block_size=4", "workload=synthetic", "workload.num_requests=4", "workload.arrival=offline",
    "workload.prompt.min=6", "workload.prompt.max=14", "workload.output.min=2", "workload.output.max=5",
    "workload.shared_prefix_tokens=8", "workload.n=2", "engine.dtype=float32", "engine.record_logits=true",
    # 48 blocks of 4 tokens at 128 bytes a token (2 layers x K and V x 2 heads x 16 x 1 byte)
    "kv_cache_bytes=24576",
]
# Requests that outgrow a pool of 10 blocks: swap preemption moves fp8 blocks out and back.
SWAPPING = [
    "strategy=paged", "strategy.block_size=4", "workload=synthetic", "workload.num_requests=4",
    "workload.arrival=offline", "workload.prompt.min=6", "workload.prompt.max=10", "workload.output.min=10",
    "workload.output.max=14", "engine.dtype=float32", "engine.record_logits=true", "num_blocks=10",
    "hardware.cpu_swap_bytes=100000", "scheduler.preemption=swap", "model.max_model_len=32",
]


def root_logits(engine) -> dict[tuple[int, int], np.ndarray]:
    """(request, position) -> logits of each request's root sequence (seq ids differ across runs)."""
    return {
        (request_id, position): row
        for request_id, records in engine.book.finished.items()
        for position, row in records[0].logits.items()
    }


def assert_same_computation(fp8_run, fp8_recorder, reference_run, reference_recorder):
    fp8_texts = list(fp8_recorder.requests_table()["generated_token_ids"])
    assert fp8_texts == list(reference_recorder.requests_table()["generated_token_ids"])
    fp8_rows, reference_rows = root_logits(fp8_run.executor.engine), root_logits(reference_run.executor.engine)
    assert fp8_rows.keys() == reference_rows.keys()
    assert max(float(np.abs(fp8_rows[k] - reference_rows[k]).max()) for k in fp8_rows) <= LOGITS_ATOL


@pytest.mark.parametrize("strategy, kv_dtype", [("paged_prefix", "fp8_e4m3"), ("paged_cow", "fp8_e5m2")])
def test_an_fp8_pool_gives_the_fake_quantized_reference_tokens(strategy, kv_dtype, run_device):
    overrides = [f"strategy={strategy}", f"model.kv_dtype={kv_dtype}", *SHARING]
    fp8_run, fp8_recorder = run_device([*overrides, "engine.backend=triton"])
    reference_run, reference_recorder = run_device([*overrides, "engine.backend=torch"])
    summary = fp8_run.executor.summary_fields()
    assert summary["device_kv_pool_dtype"] == {"fp8_e4m3": "float8_e4m3fn", "fp8_e5m2": "float8_e5m2"}[kv_dtype]
    assert reference_run.executor.summary_fields()["device_kv_pool_dtype"] == "float32"
    # One byte per element plus an fp32 k_scale and v_scale per layer: the simulator's blocks.
    budget = fp8_run.budget
    assert budget.num_blocks == 48
    assert summary["device_kv_pool_bytes"] == budget.num_blocks * budget.block_bytes + 2 * 2 * SCALE_BYTES
    steps = fp8_recorder.steps_table()
    assert steps["prefix_hit_tokens"].sum() > 0 or strategy != "paged_prefix"
    assert steps["cow_copies"].sum() > 0
    assert_same_computation(fp8_run, fp8_recorder, reference_run, reference_recorder)


def test_swapped_fp8_blocks_come_back(run_device):
    fp8_run, fp8_recorder = run_device([*SWAPPING, "model.kv_dtype=fp8_e4m3", "engine.backend=triton"])
    stats = fp8_run.scheduler.swap_stats
    assert stats.num_swap_outs > 0 and stats.num_swap_ins == stats.num_swap_outs
    reference_run, reference_recorder = run_device([*SWAPPING, "model.kv_dtype=fp8_e4m3", "engine.backend=torch"])
    assert_same_computation(fp8_run, fp8_recorder, reference_run, reference_recorder)


def test_host_copies_of_an_fp8_pool_round_trip_its_bytes():
    config = ModelConfig(name="t", num_layers=2, hidden_size=8, num_heads=2, num_kv_heads=1, head_dim=4,
                         intermediate_size=16, vocab_size=32, max_model_len=32)
    pool = KVPool(config, num_blocks=4, block_size=2, dtype=torch.float8_e4m3fn, device=torch.device("cpu"))
    assert pool.kv_scales == [(1.0, 1.0), (1.0, 1.0)]
    assert pool.num_bytes == 2 * 2 * 4 * 2 * 4 + 2 * 2 * SCALE_BYTES
    for keys, values in zip(pool.key_caches, pool.value_caches):
        keys.view(torch.uint8).copy_(torch.randint(0, 126, keys.shape, dtype=torch.uint8))
        values.view(torch.uint8).copy_(torch.randint(128, 254, keys.shape, dtype=torch.uint8))
    original = [t.view(torch.uint8).clone() for t in (*pool.key_caches, *pool.value_caches)]
    host = HostSwapPool(pool, num_blocks=3)
    host.swap_out([(1, 2), (3, 0)])
    pool.fill(float("nan"))
    host.swap_in([(2, 0), (0, 2)])
    for before, after in zip(original, (*pool.key_caches, *pool.value_caches)):
        assert torch.equal(after.view(torch.uint8)[0], before[1]) and torch.equal(after.view(torch.uint8)[2], before[3])
        assert after[1].float().isnan().all()
