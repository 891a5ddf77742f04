"""The device executor's work: build the model and the pool, run each planned step, keep tokens.

Weights are seeded random (the run's seed), the pool holds `budget.num_blocks` blocks, the same
number the simulator uses, so the same schedule gives the same block tables on both. Step
durations are the timed device region of `StepRunner.run`; building the inputs from the schedule
is host time, reported apart (`host_prepare_s`).
"""

from __future__ import annotations

import time

import torch

from kvbench.device.decoder import Decoder
from kvbench.device.kv_pool import KVPool, kv_pool_bytes, pool_dtype
from kvbench.device.plan_inputs import plan_step_inputs
from kvbench.device.profile_grid import warm_up
from kvbench.device.settings import (
    attention_backend,
    check_memory_fits,
    device_description,
    torch_device,
    torch_dtype,
)
from kvbench.device.step_runner import StepRunner
from kvbench.device.swap_pool import HostSwapPool
from kvbench.device.timing import StepTimer
from kvbench.device.token_book import TokenBook
from kvbench.device.weights import random_weights, weight_bytes
from kvbench.hardware import HardwareConfig, KVBudget, num_swap_blocks
from kvbench.kernels.validation import FP8_KV_DTYPES, check_fp8_device
from kvbench.model_spec import ModelSpec
from kvbench.scheduler import StepPlan

# summary.json names of the timed sections (seconds summed over the run).
SECTION_FIELDS = {
    "prefill_attention": "kernel_prefill_attention_s",
    "decode_attention": "kernel_decode_attention_s",
    "store_kv": "kernel_store_kv_s",
    "copy_blocks": "kernel_copy_blocks_s",
}


class DeviceEngine:
    def __init__(
        self, *, device: str, dtype: str, backend: str, warmup: bool, record_logits: bool,
        model: ModelSpec, hardware: HardwareConfig, budget: KVBudget, seed: int,
    ):
        """The `engine=device` settings as plain values (see executors/device.py for their meaning)."""
        if hardware.tensor_parallel != 1:
            raise ValueError(
                f"engine=device runs the model on one device: hardware.tensor_parallel={hardware.tensor_parallel} "
                "must be 1 (shrink the model with model.num_layers=... to fit one GPU)"
            )
        if model.is_mla or model.config.num_experts:
            raise ValueError(
                f"engine=device builds a dense decoder with K/V heads: model={model.config.name} "
                "(model.attention=mla or model.num_experts > 0) runs in the simulator only (engine=sim)"
            )
        started = time.perf_counter()
        c = model.config
        self.device = torch_device(device)
        self.dtype = torch_dtype(dtype)
        self.backend = attention_backend(backend, self.device, self.dtype)
        self.kv_format = model.kv_format
        kv_dtype = pool_dtype(self.kv_format, self.backend, self.dtype)
        if kv_dtype in FP8_KV_DTYPES:
            check_fp8_device(self.device)
        check_memory_fits(
            self.device, weight_bytes(c, self.dtype), kv_pool_bytes(c, budget.num_blocks, budget.block_size, kv_dtype)
        )
        self.model_config = c
        self.decoder = Decoder(c, random_weights(c, self.dtype, self.device, seed))
        self.block_size = budget.block_size
        self.pool = KVPool(c, budget.num_blocks, budget.block_size, kv_dtype, self.device)
        self.runner = StepRunner(self.decoder, self.pool, self.backend, self.device, self.kv_format)
        self.book = TokenBook(c.vocab_size, record_logits)
        self.swap_pool = HostSwapPool(self.pool, num_swap_blocks(hardware, budget))
        self.swap_timer = StepTimer(self.device)
        self.swap_time_s = 0.0
        self.record_logits = record_logits
        self.warmup_s = 0.0
        if warmup and self.device.type == "cuda":
            warmup_started = time.perf_counter()
            warm_up(self.runner)
            self.pool.fill(float("nan"))  # forget what the warm-up wrote
            self.warmup_s = time.perf_counter() - warmup_started
        self.setup_s = time.perf_counter() - started
        self.host_prepare_s = 0.0
        self.device_time_s = 0.0

    def execute(self, step: StepPlan) -> float:
        swap_s = self._swap(step) if step.swap_out_copies or step.swap_in_copies else 0.0
        started = time.perf_counter()
        planned = plan_step_inputs(step, self.block_size, self.book)
        self.host_prepare_s += time.perf_counter() - started
        out = self.runner.run(planned.inputs, keep_logits=self.record_logits)
        if not out.finite.all():
            bad = [f"seq {seq.seq_id} (request {seq.group.request_id}) after position {position}"
                   for (seq, position), ok in zip(planned.sampled, out.finite) if not ok]
            raise FloatingPointError(
                f"step {step.step_index}: non-finite logits for {', '.join(bad)}: a kernel read a KV slot that "
                "was never written (the pool starts as NaN), or the activations overflowed engine.dtype"
            )
        for i, (seq, position) in enumerate(planned.sampled):
            logits = out.logits[i] if out.logits is not None else None
            self.book.sampled(seq, position, int(out.token_ids[i]), logits)
        self.device_time_s += out.duration_s + swap_s
        return out.duration_s + swap_s

    def _swap(self, step: StepPlan) -> float:
        """The step's swap copies, before anything else touches the pool: out first (the blocks
        they free may be reused in this step), then in. Timed apart, and waited for, as vLLM v0 ran
        them before the model."""
        self.swap_timer.start()
        if step.swap_out_copies:
            self.swap_pool.swap_out(step.swap_out_copies)
        if step.swap_in_copies:
            self.swap_pool.swap_in(step.swap_in_copies)
        swap_s = self.swap_timer.stop()
        self.swap_time_s += swap_s
        return swap_s

    def summary_fields(self) -> dict:
        sections = self.runner.timer.section_totals_s
        return {
            "device": device_description(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "attention_backend": self.backend,
            "model_num_layers": self.model_config.num_layers,
            "tokens_sha256": self.book.tokens_sha256(),
            "device_time_s": self.device_time_s,
            **{field: sections.get(name, 0.0) for name, field in SECTION_FIELDS.items()},
            "copied_blocks": self.runner.num_copied_blocks,
            **({"host_swap_pool_bytes": self.swap_pool.num_bytes} if self.swap_pool.num_bytes else {}),
            "host_prepare_s": self.host_prepare_s,
            "setup_s": self.setup_s,
            "warmup_s": self.warmup_s,
            "weights_bytes": sum(t.numel() * t.element_size() for t in _unique(self.decoder.weights.tensors())),
            "device_kv_pool_bytes": self.pool.num_bytes,
            "device_kv_pool_dtype": str(self.pool.key_caches[0].dtype).removeprefix("torch."),
        }


def _unique(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Tensors counted once per storage (tied embeddings share one)."""
    seen: dict[int, torch.Tensor] = {}
    for t in tensors:
        seen.setdefault(t.untyped_storage().data_ptr(), t)
    return list(seen.values())
