"""The torch references against an independent dense formulation (SDPA over K/V gathered slot by
slot, GQA by repeating heads), so the oracle every kernel test trusts is itself checked."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kvbench.kernels import ref_paged_decode_attention, ref_paged_prefill_attention
from kvbench.kernels.synthetic import paged_batch, random_kv_pool, relative_error


def dense_attention(
    query: torch.Tensor,  # [q_len, H_q, D]
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    table_row: list[int],
    context_len: int,
    scale: float,
) -> torch.Tensor:
    block_size, num_kv_heads = key_cache.shape[1], key_cache.shape[2]
    slots = [table_row[p // block_size] * block_size + p % block_size for p in range(context_len)]
    keys = key_cache.flatten(0, 1)[slots]  # [ctx, H_kv, D]
    values = value_cache.flatten(0, 1)[slots]
    group = query.shape[1] // num_kv_heads
    keys = keys.repeat_interleave(group, dim=1).transpose(0, 1)
    values = values.repeat_interleave(group, dim=1).transpose(0, 1)
    q_len = query.shape[0]
    q_pos = torch.arange(context_len - q_len, context_len)
    visible = torch.arange(context_len)[None, :] <= q_pos[:, None]
    out = F.scaled_dot_product_attention(
        query.transpose(0, 1), keys, values, attn_mask=visible, scale=scale
    )
    return out.transpose(0, 1)


def test_reference_decode_matches_dense() -> None:
    gen = torch.Generator().manual_seed(0)
    batch = paged_batch([1, 16, 37], 4, spare_blocks=2, generator=gen)
    key_cache, value_cache = random_kv_pool(
        batch.num_blocks, 4, 2, 8, dtype=torch.float64, generator=gen
    )
    query = torch.randn((3, 6, 8), generator=gen, dtype=torch.float64)
    out = ref_paged_decode_attention(
        query, key_cache, value_cache, batch.block_tables, batch.context_lens, 0.4
    )
    assert out.dtype == torch.float64
    for seq, ctx_len in enumerate(batch.context_lens.tolist()):
        expected = dense_attention(
            query[seq : seq + 1],
            key_cache,
            value_cache,
            batch.block_tables[seq].tolist(),
            ctx_len,
            0.4,
        )
        assert relative_error(out[seq : seq + 1], expected) < 1e-12


def test_reference_prefill_matches_dense() -> None:
    gen = torch.Generator().manual_seed(1)
    context_lens, q_lens = [9, 30, 4], [9, 5, 1]
    batch = paged_batch(context_lens, 8, spare_blocks=2, generator=gen)
    key_cache, value_cache = random_kv_pool(
        batch.num_blocks, 8, 1, 8, dtype=torch.float64, generator=gen
    )
    query = torch.randn((sum(q_lens), 4, 8), generator=gen, dtype=torch.float64)
    starts = torch.tensor([0, 9, 14, 15], dtype=torch.int32)
    out = ref_paged_prefill_attention(
        query, key_cache, value_cache, batch.block_tables, starts, batch.context_lens, 0.3
    )
    for seq, ctx_len in enumerate(context_lens):
        rows = slice(starts[seq].item(), starts[seq + 1].item())
        expected = dense_attention(
            query[rows], key_cache, value_cache, batch.block_tables[seq].tolist(), ctx_len, 0.3
        )
        assert relative_error(out[rows], expected) < 1e-12


def test_reference_low_precision_accumulates_in_fp32() -> None:
    """fp16 inputs give an fp16 output close to the float64 result (fp32 accumulation)."""
    gen = torch.Generator().manual_seed(2)
    batch = paged_batch([300], 16, generator=gen)
    key_cache, value_cache = random_kv_pool(
        batch.num_blocks, 16, 1, 16, dtype=torch.float16, generator=gen
    )
    query = torch.randn((1, 2, 16), generator=gen).half()
    args = (batch.block_tables, batch.context_lens, 0.25)
    out = ref_paged_decode_attention(query, key_cache, value_cache, *args)
    ref = ref_paged_decode_attention(
        query.double(), key_cache.double(), value_cache.double(), *args
    )
    assert out.dtype == torch.float16
    assert relative_error(out, ref) < 2e-3
