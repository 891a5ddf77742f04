"""store_kv and copy_blocks: Triton (interpreter on CPU) and torch against an explicit oracle."""

from __future__ import annotations

import pytest
import torch

from kvbench.kernels import BACKENDS, copy_blocks, store_kv
from kvbench.kernels.synthetic import random_kv_pool

pytest.importorskip("triton")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("block_size", "num_kv_heads", "head_dim"), [(1, 2, 16), (16, 3, 24), (64, 1, 32)]
)
def test_store_kv_scatters_to_slots(
    backend: str, block_size: int, num_kv_heads: int, head_dim: int
) -> None:
    gen = torch.Generator().manual_seed(block_size)
    num_blocks, num_tokens = 12, 9
    key_cache, value_cache = random_kv_pool(
        num_blocks, block_size, num_kv_heads, head_dim, dtype=torch.float32, generator=gen
    )
    # New K/V as strided views of a fused [K | V | extra] projection, as a model produces them.
    fused = torch.randn((num_tokens, 2 * num_kv_heads + 1, head_dim), generator=gen)
    key, value = fused[:, :num_kv_heads], fused[:, num_kv_heads : 2 * num_kv_heads]
    slots = torch.randperm(num_blocks * block_size, generator=gen)[:num_tokens]
    slots[4] = -1  # padding token: must not be stored anywhere
    expected_k, expected_v = key_cache.clone().flatten(0, 1), value_cache.clone().flatten(0, 1)
    for token, slot in enumerate(slots.tolist()):
        if slot >= 0:
            expected_k[slot] = key[token]
            expected_v[slot] = value[token]
    store_kv(key, value, key_cache, value_cache, slots, backend=backend)
    assert torch.equal(key_cache.flatten(0, 1), expected_k)
    assert torch.equal(value_cache.flatten(0, 1), expected_v)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("block_size", [1, 16, 64])
def test_copy_blocks_copies_whole_blocks(backend: str, block_size: int) -> None:
    gen = torch.Generator().manual_seed(block_size)
    key_cache, value_cache = random_kv_pool(
        10, block_size, 2, 16, dtype=torch.float32, generator=gen
    )
    src = torch.tensor([7, 0, 3, 3])  # a source may be copied twice (two forks of one block)
    dst = torch.tensor([1, 9, 5, 2])
    expected_k, expected_v = key_cache.clone(), value_cache.clone()
    expected_k[dst] = key_cache[src]
    expected_v[dst] = value_cache[src]
    copy_blocks(key_cache, value_cache, src, dst, backend=backend)
    assert torch.equal(key_cache, expected_k)
    assert torch.equal(value_cache, expected_v)


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_batches_are_no_ops(backend: str) -> None:
    key_cache, value_cache = random_kv_pool(2, 4, 1, 16, dtype=torch.float32)
    before = key_cache.clone()
    empty = torch.empty((0, 1, 16))
    store_kv(
        empty, empty, key_cache, value_cache, torch.empty(0, dtype=torch.int64), backend=backend
    )
    no_ids = torch.empty(0, dtype=torch.int64)
    copy_blocks(key_cache, value_cache, no_ids, no_ids, backend=backend)
    assert torch.equal(key_cache, before)
