"""The Triton kernels run a whole device workload like the torch ones (CPU: the interpreter, fp32)."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1", reason="Triton on CPU needs TRITON_INTERPRET=1 (tests/conftest.py)"
)

WORKLOAD = [
    "strategy=paged_prefix", "strategy.block_size=4", "workload=synthetic", "workload.num_requests=4",
    "workload.arrival=offline", "workload.prompt.min=6", "workload.prompt.max=14", "workload.output.min=2",
    "workload.output.max=5", "workload.shared_prefix_tokens=8", "workload.n=2", "engine.dtype=float32",
    "engine.record_logits=true", "num_blocks=48",
]


def recorded_logits(engine) -> dict[tuple[int, int], np.ndarray]:
    return {
        (request_id, position): row
        for request_id, records in engine.book.finished.items()
        for index, record in enumerate(records)
        for position, row in record.logits.items()
        if index == 0  # the root sequence of each request: same seq ids are not guaranteed across runs
    }


def test_triton_kernels_match_the_torch_kernels(run_device):
    triton_run, triton_recorder = run_device([*WORKLOAD, "engine.backend=triton"])
    torch_run, torch_recorder = run_device([*WORKLOAD, "engine.backend=torch"])
    assert triton_run.executor.summary_fields()["attention_backend"] == "triton"
    triton_requests, torch_requests = triton_recorder.requests_table(), torch_recorder.requests_table()
    assert list(triton_requests["generated_token_ids"]) == list(torch_requests["generated_token_ids"])
    assert triton_recorder.steps_table()["prefix_hit_tokens"].sum() > 0
    triton_rows, torch_rows = recorded_logits(triton_run.executor.engine), recorded_logits(torch_run.executor.engine)
    assert triton_rows.keys() == torch_rows.keys()
    worst = max(float(np.abs(triton_rows[k] - torch_rows[k]).max()) for k in triton_rows)
    assert worst <= 1e-4  # fp32 accumulation in a different order
