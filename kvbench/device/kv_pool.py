"""The KV pool on the device: per layer a key and a value tensor
`[num_blocks, block_size, num_kv_heads, head_dim]`, addressed by the strategy's block ids.

A run's pool starts filled with NaN. A kernel reads only slots below a sequence's context length,
and every one of those must have been written (by this step's `store_kv`, an earlier step, a
block copy or a prefix-cache hit); reading any other slot is a strategy, scheduler or executor
bug, and NaN makes it poison the logits instead of passing silently. The profile's synthetic
steps read contexts nobody wrote, so their pool starts at zero.
"""

from __future__ import annotations

import torch

from kvbench.kernels import copy_blocks
from kvbench.model_spec import ModelConfig


def kv_pool_bytes(config: ModelConfig, num_blocks: int, block_size: int, dtype: torch.dtype) -> int:
    return 2 * config.num_layers * num_blocks * block_size * config.num_kv_heads * config.head_dim * dtype.itemsize


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

    @property
    def num_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.key_caches, *self.value_caches))

    def fill(self, value: float) -> None:
        for cache in (*self.key_caches, *self.value_caches):
            cache.fill_(value)

    def layer(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.key_caches[index], self.value_caches[index]

    def copy_blocks(self, src_block_ids: torch.Tensor, dst_block_ids: torch.Tensor, backend: str) -> None:
        """Copy blocks in every layer; the pairs must be independent (see step_inputs.copy_groups)."""
        for key_cache, value_cache in zip(self.key_caches, self.value_caches):
            copy_blocks(key_cache, value_cache, src_block_ids, dst_block_ids, backend=backend)
