"""Runs one step on the device: block copies, the forward pass over the pool, greedy sampling.

The timed region is what a serving engine's step does on the device: moving the step's inputs to
it, the copies, every layer, the logits and their argmax. Building the inputs from the schedule
happens before (host time, reported apart), reading the sampled ids back after.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kvbench.device.decoder import Decoder
from kvbench.device.kv_pool import KVPool
from kvbench.device.step_attention import StepAttention
from kvbench.model_spec import sliding_windows
from kvbench.device.step_inputs import StepInputs
from kvbench.device.timing import StepTimer
from kvbench.kv_format import KVFormat


@dataclass
class StepOutput:
    token_ids: np.ndarray  # int64 [num_sampled]: argmax of each sampled row
    finite: np.ndarray  # bool [num_sampled]: the row's logits are all finite
    logits: np.ndarray | None  # [num_sampled, vocab] when asked for
    duration_s: float


class StepRunner:
    def __init__(self, decoder: Decoder, pool: KVPool, backend: str, device: torch.device,
                 kv_format: KVFormat | None = None):
        self.decoder = decoder
        self.kv_format = kv_format
        self.pool = pool
        self.backend = backend
        self.device = device
        self.timer = StepTimer(device)
        self.num_copied_blocks = 0

    @torch.inference_mode()
    def run(self, inputs: StepInputs, keep_logits: bool = False) -> StepOutput:
        timer = self.timer
        timer.start()
        device_inputs = inputs.to(self.device)
        if device_inputs.copy_groups:
            with timer.section("copy_blocks"):
                for src, dst in device_inputs.copy_groups:
                    self.pool.copy_blocks(src, dst, self.backend)
        attention = StepAttention(
            self.pool, device_inputs, self.decoder.scale, self.backend, timer, self.kv_format,
            sliding_windows(self.decoder.config),
        )
        logits = self.decoder.forward(
            device_inputs.token_ids, device_inputs.positions, attention, device_inputs.sample_rows
        )
        token_ids = logits.argmax(dim=-1)
        finite = torch.isfinite(logits).all(dim=-1)
        duration_s = timer.stop()
        self.num_copied_blocks += len(inputs.block_copies)
        return StepOutput(
            token_ids=token_ids.cpu().numpy(),
            finite=finite.cpu().numpy(),
            logits=logits.to(torch.float64).cpu().numpy() if keep_logits else None,
            duration_s=duration_s,
        )
