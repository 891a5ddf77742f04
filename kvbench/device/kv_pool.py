"""The KV pool on the device: per layer a key and a value tensor
`[num_blocks, block_size, num_kv_heads, head_dim]`, addressed by the strategy's block ids.

A run's pool starts filled with NaN. A kernel reads only slots below a sequence's context length,
and every one of those must have been written (by this step's `store_kv`, an earlier step, a
block copy or a prefix-cache hit); reading any other slot is a strategy, scheduler or executor
bug, and NaN makes it poison the logits instead of passing silently. The profile's synthetic
steps read contexts nobody wrote, so their pool starts at zero.

An fp8 KV format (`model.kv_dtype=fp8_e4m3|fp8_e5m2`) on the Triton backend stores real fp8
tensors, one byte per element, with one fp32 scale per layer and tensor (the format's per-tensor
scale, kernels/fp8_kv.py): the pool then takes the bytes the simulator counts for that format.
Every other case keeps the engine's dtype (quantized formats store fake-quantized values, see
step_attention.py).
"""

from __future__ import annotations

import torch

from kvbench.kernels import copy_blocks
from kvbench.kernels.quant_reference import FP8_DTYPES, FP8_PER_TENSOR_SCALE
from kvbench.kernels.validation import FP8_KV_DTYPES
from kvbench.kv_format import KVFormat
from kvbench.model_spec import ModelConfig

SCALE_BYTES = 4  # an fp32 k_scale or v_scale


def pool_dtype(kv_format: KVFormat, backend: str, engine_dtype: torch.dtype) -> torch.dtype:
    """The pool tensors' dtype: fp8 for an fp8 format on the Triton kernels, else the engine's."""
    if backend == "triton" and kv_format.dtype in FP8_DTYPES:
        return FP8_DTYPES[kv_format.dtype]
    return engine_dtype


def kv_pool_bytes(config: ModelConfig, num_blocks: int, block_size: int, dtype: torch.dtype) -> int:
    """Bytes of a pool of `dtype` tensors, an fp8 pool's scales included."""
    elements = 2 * config.num_layers * num_blocks * block_size * config.num_kv_heads * config.head_dim
    scales = 2 * config.num_layers * SCALE_BYTES if dtype in FP8_KV_DTYPES else 0
    return elements * dtype.itemsize + scales


class KVPool:
    def __init__(
        self, config: ModelConfig, num_blocks: int, block_size: int, dtype: torch.dtype, device: torch.device,
        fill: float = float("nan"),
    ):
        shape = (num_blocks, block_size, config.num_kv_heads, config.head_dim)
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.key_caches = [torch.full(shape, fill, dtype=dtype, device=device) for _ in range(config.num_layers)]
        self.value_caches = [torch.full(shape, fill, dtype=dtype, device=device) for _ in range(config.num_layers)]
        # Per layer (k_scale, v_scale) of an fp8 pool, None otherwise. Host floats: they are fixed
        # for the run, and passing them by value spares the kernels a load.
        self.kv_scales = [(FP8_PER_TENSOR_SCALE, FP8_PER_TENSOR_SCALE)] * config.num_layers if dtype in FP8_KV_DTYPES else None

    @property
    def num_bytes(self) -> int:
        tensors = sum(t.numel() * t.element_size() for t in (*self.key_caches, *self.value_caches))
        return tensors + (2 * len(self.kv_scales) * SCALE_BYTES if self.kv_scales else 0)

    def fill(self, value: float) -> None:
        for cache in (*self.key_caches, *self.value_caches):
            cache.fill_(value)

    def layer(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.key_caches[index], self.value_caches[index]

    def layer_scales(self, index: int) -> tuple[float, float] | None:
        """The layer's (k_scale, v_scale) when the pool is fp8."""
        return self.kv_scales[index] if self.kv_scales else None

    def copy_blocks(self, src_block_ids: torch.Tensor, dst_block_ids: torch.Tensor, backend: str) -> None:
        """Copy blocks in every layer; the pairs must be independent (see step_inputs.copy_groups).
        An fp8 pool's blocks move as bytes: its scales are per layer, shared by every block."""
        for key_cache, value_cache in zip(self.key_caches, self.value_caches):
            copy_blocks(key_cache, value_cache, src_block_ids, dst_block_ids, backend=backend)
