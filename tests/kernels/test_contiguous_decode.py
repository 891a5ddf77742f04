"""The contiguous fast path (decode kernel in contiguous mode, and SDPA over pool views) against
the float64 reference on the same tokens laid out as a run of slots."""

from __future__ import annotations

import math

import pytest
import torch

from kvbench.kernels import BACKENDS, contiguous_decode_attention, ref_paged_decode_attention
from kvbench.kernels.synthetic import paged_batch, random_kv_pool, relative_error

pytest.importorskip("triton")

FP32_TOLERANCE = 1e-5


def slot_run_reference(
    query: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    start_slots: list[int],
    context_lens: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """Copy each run of slots into block-aligned private blocks and use the paged reference."""
    block_size = key_cache.shape[1]
    lens = context_lens.tolist()
    batch = paged_batch(lens, block_size, shuffle=False)
    flat_k, flat_v = key_cache.flatten(0, 1), value_cache.flatten(0, 1)
    new_k = torch.zeros((batch.num_blocks * block_size, *key_cache.shape[2:]), dtype=torch.float64)
    new_v = torch.zeros_like(new_k)
    for seq, (start, n) in enumerate(zip(start_slots, lens, strict=True)):
        first = int(batch.block_tables[seq, 0]) * block_size
        new_k[first : first + n] = flat_k[start : start + n]
        new_v[first : first + n] = flat_v[start : start + n]
    shape = (batch.num_blocks, block_size, *key_cache.shape[2:])
    return ref_paged_decode_attention(
        query.double(),
        new_k.view(shape),
        new_v.view(shape),
        batch.block_tables,
        batch.context_lens,
        scale,
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("num_q_heads", "num_kv_heads", "num_splits"), [(4, 4, 1), (8, 2, 3), (4, 1, 2)]
)
def test_contiguous_decode_matches_reference(
    backend: str, num_q_heads: int, num_kv_heads: int, num_splits: int
) -> None:
    gen = torch.Generator().manual_seed(num_splits)
    block_size, head_dim = 16, 32
    key_cache, value_cache = random_kv_pool(
        20, block_size, num_kv_heads, head_dim, dtype=torch.float32, generator=gen
    )
    # Runs start mid-block and out of order: the contiguous path must not assume alignment.
    start_slots = [150, 3, 230, 70]
    context_lens = torch.tensor([1, 64, 90, 77], dtype=torch.int32)
    query = torch.randn((4, num_q_heads, head_dim), generator=gen)
    out = torch.full_like(query, math.nan)
    contiguous_decode_attention(
        query,
        key_cache,
        value_cache,
        torch.tensor(start_slots),
        context_lens,
        0.2,
        num_splits=num_splits,
        out=out,
        backend=backend,
    )
    ref = slot_run_reference(query, key_cache, value_cache, start_slots, context_lens, 0.2)
    assert not out.isnan().any()
    assert relative_error(out, ref) < FP32_TOLERANCE


def test_contiguous_automatic_splits_reads_lengths() -> None:
    gen = torch.Generator().manual_seed(7)
    key_cache, value_cache = random_kv_pool(8, 16, 2, 16, dtype=torch.float32, generator=gen)
    context_lens = torch.tensor([40, 3], dtype=torch.int32)
    query = torch.randn((2, 4, 16), generator=gen)
    start_slots = [0, 64]
    out = contiguous_decode_attention(
        query, key_cache, value_cache, torch.tensor(start_slots), context_lens, 0.25
    )
    ref = slot_run_reference(query, key_cache, value_cache, start_slots, context_lens, 0.25)
    assert relative_error(out, ref) < FP32_TOLERANCE
