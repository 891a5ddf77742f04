"""Triton prefill attention over the paged KV pool (FlashAttention-style tiling).

Serves plain prefill, chunked prefill and prefix-cache hits with one kernel: the new tokens of
sequence ``s`` are packed in ``query[query_start_loc[s]:query_start_loc[s+1]]``, their K/V are
already in the pool, and they are the *last* ``q_len`` positions of a context of
``context_lens[s]`` tokens. New token ``t`` sits at position ``context_len - q_len + t`` and sees
every position up to its own: the whole cached prefix plus its causal past.

Launch grid: ``(cdiv(max_query_len, BLOCK_Q), num_kv_heads, num_seqs)``; programs past their
sequence's ``q_len`` exit at once. A program's tile rows are ``BLOCK_Q`` tokens times
``BLOCK_G`` query heads of one GQA group (row ``r`` = token ``r // BLOCK_G``, head
``r % BLOCK_G``), so each K/V tile is read once per KV head for the whole group, as in decode.
The KV loop runs in phases: tiles every row fully sees (the cached prefix and the part of the
causal past before the tile's first token) without a mask, the diagonal tiles with the causal
mask. With a sliding window, tiles before the tile's first window are skipped and those where the
rows' windows start run first, masked.

Importing this module imports triton.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kvbench.kernels.attention_tile import (
    LOG2_E,
    MIN_DOT_SIZE,
    attend_kv_tiles,
    dot_precision,
    pipeline_config,
)
from kvbench.kernels.validation import (
    FP8_KV_DTYPES,
    TRITON_DTYPES,
    check_fp8_device,
    check_out,
    check_prefill_args,
    check_triton_device,
)


@triton.jit
def _prefill_kernel(
    out_ptr,
    q_ptr,
    k_cache_ptr,
    v_cache_ptr,
    block_tables_ptr,
    query_start_loc_ptr,
    context_lens_ptr,
    scale_log2,
    stride_q_token,
    stride_q_head,
    stride_o_token,
    stride_o_head,
    stride_bt_seq,
    stride_slot,
    stride_head,
    GROUP_SIZE: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    PAGE_SIZE: tl.constexpr,
    BLOCK_Q: tl.constexpr,
    BLOCK_G: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    k_scale,
    v_scale,
    KV_FP8: tl.constexpr,
    sliding_window,
):
    q_tile = tl.program_id(0)
    kv_head = tl.program_id(1)
    seq = tl.program_id(2)

    q_start = tl.load(query_start_loc_ptr + seq)
    q_len = tl.load(query_start_loc_ptr + seq + 1) - q_start
    first_tok = q_tile * BLOCK_Q
    if first_tok >= q_len:
        return
    ctx_len = tl.load(context_lens_ptr + seq)
    num_cached = ctx_len - q_len

    rows = tl.arange(0, BLOCK_Q * BLOCK_G)
    tok = first_tok + rows // BLOCK_G
    g = rows % BLOCK_G
    row_ok = (tok < q_len) & (g < GROUP_SIZE)
    q_heads = kv_head * GROUP_SIZE + g
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < HEAD_DIM
    row_mask = row_ok[:, None] & d_mask[None, :]
    q_offs = (q_start + tok).to(tl.int64)[:, None] * stride_q_token
    q = tl.load(
        q_ptr + q_offs + q_heads[:, None] * stride_q_head + offs_d[None, :],
        mask=row_mask,
        other=0.0,
    )
    # Causal limit per row; rows past q_len are clamped into the context so they stay finite.
    row_limit = tl.minimum(num_cached + tok, ctx_len - 1)
    block_table_row_ptr = block_tables_ptr + seq.to(tl.int64) * stride_bt_seq

    # Positions <= first_pos are visible to every row of this tile (causally).
    first_pos = num_cached + first_tok
    last_pos = tl.minimum(first_pos + BLOCK_Q - 1, ctx_len - 1)
    full_tiles = (first_pos + 1) // BLOCK_N
    kv_end = tl.minimum(first_pos + BLOCK_Q, ctx_len)
    end_tile = tl.cdiv(kv_end, BLOCK_N)
    # A sliding window of W keys: row r sees row_limit[r] - W + 1 ..= row_limit[r]. Tiles before
    # the first row's window are never visited; only tiles from the last row's window start on
    # are seen whole by every row. (first_tile <= first_full_tile <= full_tiles as W >= 1.)
    windowed = sliding_window > 0
    row_low = tl.where(windowed, tl.maximum(row_limit - sliding_window + 1, 0), 0)
    first_tile = tl.where(windowed, tl.maximum(first_pos - sliding_window + 1, 0) // BLOCK_N, 0)
    first_full_tile = tl.where(
        windowed, tl.minimum(tl.cdiv(tl.maximum(last_pos - sliding_window + 1, 0), BLOCK_N), full_tiles), 0
    )

    m_i = tl.full([BLOCK_Q * BLOCK_G], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_Q * BLOCK_G], dtype=tl.float32)
    acc = tl.zeros([BLOCK_Q * BLOCK_G, BLOCK_D], dtype=tl.float32)
    # Three runs in position order (each may be empty): tiles where the rows' windows start
    # (masked), tiles every row sees whole (the cached prefix and the causal past before the
    # tile's first token), the diagonal tiles (masked).
    acc, l_i, m_i = attend_kv_tiles(
        acc, l_i, m_i, first_tile, first_full_tile, q, k_cache_ptr, v_cache_ptr, block_table_row_ptr, 0,
        ctx_len, row_low, row_limit, kv_head, scale_log2, stride_slot, stride_head, offs_d, d_mask,
        k_scale, v_scale, PAGE_SIZE, BLOCK_N, False, True, DOT_PRECISION, KV_FP8,
    )
    acc, l_i, m_i = attend_kv_tiles(
        acc, l_i, m_i, first_full_tile, full_tiles, q, k_cache_ptr, v_cache_ptr, block_table_row_ptr, 0,
        ctx_len, row_low, row_limit, kv_head, scale_log2, stride_slot, stride_head, offs_d, d_mask,
        k_scale, v_scale, PAGE_SIZE, BLOCK_N, False, False, DOT_PRECISION, KV_FP8,
    )
    acc, l_i, m_i = attend_kv_tiles(
        acc, l_i, m_i, full_tiles, end_tile, q, k_cache_ptr, v_cache_ptr, block_table_row_ptr, 0,
        ctx_len, row_low, row_limit, kv_head, scale_log2, stride_slot, stride_head, offs_d, d_mask,
        k_scale, v_scale, PAGE_SIZE, BLOCK_N, False, True, DOT_PRECISION, KV_FP8,
    )

    o = acc / l_i[:, None]
    o_offs = (q_start + tok).to(tl.int64)[:, None] * stride_o_token
    tl.store(
        out_ptr + o_offs + q_heads[:, None] * stride_o_head + offs_d[None, :],
        o.to(out_ptr.dtype.element_ty),
        mask=row_mask,
    )


def _tile_config(
    head_dim: int, dtype: torch.dtype, group_size: int
) -> tuple[int, int, int, int, int]:
    """(BLOCK_Q, BLOCK_G, BLOCK_N, num_warps, num_stages) for a head size, dtype and GQA group.

    128 query rows x 64 keys with 8 warps is the usual FlashAttention-2 tile on Ampere/Hopper
    for fp16 head_dim <= 128; wider K/V rows shrink both (see ``pipeline_config``).
    """
    block_n, num_stages = pipeline_config(head_dim, dtype)
    rows = 2 * block_n
    block_g = triton.next_power_of_2(group_size)
    block_q = max(1, rows // block_g)
    num_warps = 8 if block_q * block_g >= 128 else 4
    return block_q, block_g, block_n, num_warps, num_stages


def paged_prefill_attention_triton(
    query: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    block_tables: torch.Tensor,
    query_start_loc: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float,
    *,
    max_query_len: int | None = None,
    out: torch.Tensor | None = None,
    kv_scales: tuple[float, float] | None = None,
    sliding_window: int = 0,
) -> torch.Tensor:
    """Prefill attention through block tables; see :func:`kvbench.kernels.paged_prefill_attention`.

    ``max_query_len`` (host int, the longest ``q_len``) sizes the grid; when None it is read
    from ``query_start_loc`` (one device sync). ``kv_scales`` (k_scale, v_scale): an fp8 pool,
    dequantized per tile (kvbench.kernels.fp8_kv). ``sliding_window`` W > 0: each new token sees
    its last W keys only.
    """
    cache, group_size = check_prefill_args(
        query, key_cache, value_cache, block_tables, query_start_loc, context_lens,
        TRITON_DTYPES if kv_scales is None else FP8_KV_DTYPES,
    )
    if sliding_window < 0:
        raise ValueError(f"sliding_window must be >= 0 (0: none), got {sliding_window}")
    if query.dtype not in TRITON_DTYPES:
        raise TypeError(f"query must be one of {TRITON_DTYPES} for the Triton kernels, got {query.dtype}")
    check_triton_device(key_cache.device, query.dtype)
    if kv_scales is not None:
        check_fp8_device(key_cache.device)
    out = check_out(out, query)
    num_seqs = context_lens.shape[0]
    if num_seqs == 0 or query.shape[0] == 0:
        return out
    if max_query_len is None:
        max_query_len = int((query_start_loc[1:] - query_start_loc[:-1]).max())
    if max_query_len <= 0:
        return out
    # An fp8 pool is dequantized into the query's dtype: tiles are sized for that.
    block_q, block_g, block_n, num_warps, num_stages = _tile_config(cache.head_dim, query.dtype, group_size)
    grid = (triton.cdiv(max_query_len, block_q), cache.num_kv_heads, num_seqs)
    _prefill_kernel[grid](
        out,
        query,
        key_cache,
        value_cache,
        block_tables,
        query_start_loc,
        context_lens,
        scale * LOG2_E,
        query.stride(0),
        query.stride(1),
        out.stride(0),
        out.stride(1),
        block_tables.stride(0),
        key_cache.stride(1),
        key_cache.stride(2),
        GROUP_SIZE=group_size,
        HEAD_DIM=cache.head_dim,
        PAGE_SIZE=cache.block_size,
        BLOCK_Q=block_q,
        BLOCK_G=block_g,
        BLOCK_D=max(MIN_DOT_SIZE, triton.next_power_of_2(cache.head_dim)),
        BLOCK_N=block_n,
        DOT_PRECISION=dot_precision(query.dtype),
        k_scale=1.0 if kv_scales is None else float(kv_scales[0]),
        v_scale=1.0 if kv_scales is None else float(kv_scales[1]),
        KV_FP8=kv_scales is not None,
        sliding_window=sliding_window,
        num_warps=num_warps,
        num_stages=num_stages,
    )
    return out
