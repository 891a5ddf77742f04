"""The swap space on the host: copies of swapped-out blocks, in pinned memory beside a CUDA pool.

Per layer a key and a value tensor shaped like the device pool's, `[num_blocks, block_size,
num_kv_heads, head_dim]`, of its dtype (an fp8 pool's blocks move as their bytes, its per-layer
scales stay with the pool), addressed by the scheduler's host block ids. Each block of each layer's
K and V moves as its own copy, as vLLM v0's `swap_blocks` does with one cudaMemcpyAsync per block:
the timings then show what many small transfers cost. The tensors grow (doubling) to the highest
host block id used, so a run that never swaps pins no host memory and one that swaps little pins
little; they start as NaN, like the device pool, so restoring a block that was never copied out
poisons the logits instead of passing silently.
"""

from __future__ import annotations

import torch

from kvbench.device.kv_pool import KVPool


class HostSwapPool:
    def __init__(self, pool: KVPool, num_blocks: int):
        self.pool = pool
        self.num_blocks = num_blocks
        self._key_caches: list[torch.Tensor] = []
        self._value_caches: list[torch.Tensor] = []

    @property
    def capacity_blocks(self) -> int:
        return self._key_caches[0].shape[0] if self._key_caches else 0

    def _ensure(self, host_block_ids: list[int]) -> None:
        """Grow the host tensors to hold these block ids (at least doubling, at most num_blocks)."""
        needed = max(host_block_ids) + 1
        if needed <= self.capacity_blocks:
            return
        if needed > self.num_blocks:
            raise IndexError(f"host block {needed - 1} is outside the swap space of {self.num_blocks} blocks")
        capacity = min(self.num_blocks, max(needed, 2 * self.capacity_blocks))
        device_cache = self.pool.key_caches[0]
        shape = (capacity, *device_cache.shape[1:])
        pin = device_cache.device.type == "cuda"  # page-locked, so copies run as DMA
        for caches in (self._key_caches, self._value_caches):
            for layer in range(len(self.pool.key_caches)):
                grown = torch.full(shape, float("nan"), dtype=device_cache.dtype, pin_memory=pin)
                if layer < len(caches):
                    grown[: caches[layer].shape[0]] = caches[layer]
                    caches[layer] = grown
                else:
                    caches.append(grown)

    @property
    def num_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self._key_caches, *self._value_caches))

    def swap_out(self, pairs: list[tuple[int, int]]) -> None:
        """Copy (device block, host block) pairs to the host."""
        self._ensure([host for _, host in pairs])
        self._copy(self.pool.key_caches, self._key_caches, pairs)
        self._copy(self.pool.value_caches, self._value_caches, pairs)

    def swap_in(self, pairs: list[tuple[int, int]]) -> None:
        """Copy (host block, device block) pairs back to the device."""
        self._ensure([host for host, _ in pairs])
        self._copy(self._key_caches, self.pool.key_caches, pairs)
        self._copy(self._value_caches, self.pool.value_caches, pairs)

    @staticmethod
    def _copy(sources: list[torch.Tensor], destinations: list[torch.Tensor], pairs: list[tuple[int, int]]) -> None:
        # Asynchronous on CUDA (pinned host memory); the step's timer waits for the stream.
        for source, destination in zip(sources, destinations):
            for src, dst in pairs:
                destination[dst].copy_(source[src], non_blocking=True)
