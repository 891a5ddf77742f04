"""A step's attention over the KV pool, layer by layer: store every new token's K/V, then attend.

All stores of a layer come before any attention of that layer: requests admitted in the same step
may share prefix-cache blocks that an earlier request of the step is writing, and a sequence's
prefill attends to its own new tokens through the pool. Prefill tokens attend with the prefill
kernel (chunks, cached prefixes), decode tokens with the decode kernel.

In a quantized KV format (model.kv_dtype) either the pool is fp8 (an fp8 format on the Triton
kernels, kv_pool.py): the store kernel quantizes with the layer's scales and the attention kernels
dequantize as they read; or the new K/V go through the format's reference quantize/dequantize
before they are stored (kernels/quant_reference.py), and the pool, in the engine's dtype, holds
exactly the values the quantized cache would return. The two give the same values to attention.
"""

from __future__ import annotations

import torch

from kvbench.device.kv_pool import KVPool
from kvbench.device.step_inputs import DeviceStepInputs
from kvbench.device.timing import StepTimer
from kvbench.kernels import paged_decode_attention, paged_prefill_attention, store_kv
from kvbench.kernels.quant_reference import fake_quantize
from kvbench.kv_format import KVFormat


class StepAttention:
    """The `AttentionFn` of one step: called once per layer by the decoder."""

    def __init__(
        self, pool: KVPool, inputs: DeviceStepInputs, scale: float, backend: str, timer: StepTimer,
        kv_format: KVFormat | None = None, sliding_windows: list[int] | None = None,
    ):
        self.sliding_windows = sliding_windows  # per layer, 0: full attention (None: every layer full)
        self.pool = pool
        # The reference quantizer, for a quantized format the pool does not store natively.
        fake = kv_format is not None and kv_format.is_quantized and pool.kv_scales is None
        self.fake_quantized_format = kv_format if fake else None
        self.inputs = inputs
        self.scale = scale
        self.backend = backend
        self.timer = timer

    def __call__(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        inputs, backend = self.inputs, self.backend
        key_cache, value_cache = self.pool.layer(layer)
        window = self.sliding_windows[layer] if self.sliding_windows else 0
        kv_scales = self.pool.layer_scales(layer)
        with self.timer.section("store_kv"):
            if self.fake_quantized_format is not None:  # store what the quantized cache would give back
                k, v = fake_quantize(k, self.fake_quantized_format), fake_quantize(v, self.fake_quantized_format)
            store_kv(k, v, key_cache, value_cache, inputs.slot_mapping, backend=backend, kv_scales=kv_scales)
        out = torch.empty_like(q)
        num_prefill = inputs.num_prefill_tokens
        if num_prefill:
            with self.timer.section("prefill_attention"):
                paged_prefill_attention(
                    q[:num_prefill], key_cache, value_cache, inputs.prefill_block_tables,
                    inputs.prefill_query_start_loc, inputs.prefill_context_lens, self.scale,
                    max_query_len=inputs.max_query_len, out=out[:num_prefill], backend=backend,
                    sliding_window=window, kv_scales=kv_scales,
                )
        if num_prefill < q.shape[0]:
            with self.timer.section("decode_attention"):
                paged_decode_attention(
                    q[num_prefill:], key_cache, value_cache, inputs.decode_block_tables, inputs.decode_context_lens,
                    self.scale, max_context_len=inputs.max_decode_context_len, out=out[num_prefill:], backend=backend,
                    sliding_window=window, kv_scales=kv_scales,
                )
        return out
