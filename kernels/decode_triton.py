"""Triton decode attention over the paged KV pool, with split-K (flash-decoding).

One query token per sequence attends to its whole cached context. Launch grid:
``(num_seqs, num_kv_heads, num_splits)``.

* **GQA / MQA.** A program owns one KV head and *all* ``group_size = num_q_heads /
  num_kv_heads`` query heads that share it: they are the rows of its query tile
  ``[BLOCK_G, head_dim]``, so each K/V tile is loaded once and multiplied against the whole group
  with one ``tl.dot``. ``BLOCK_G`` is the group size rounded up to a power of two and at least 16
  (the smallest ``tl.dot`` tile on NVIDIA GPUs); padding rows load zeros and are never stored.
  Decode is bandwidth bound, so the padded rows cost tensor-core cycles, not bytes.
* **Split-K.** With ``num_splits > 1`` program ``s`` handles context tiles
  ``[s * tiles_per_split, (s + 1) * tiles_per_split)`` of its sequence (``tiles_per_split`` is
  computed per sequence, so short and long sequences are both cut evenly), writes its normalised
  fp32 partial output and log2-sum-exp, and ``_combine_splits_kernel`` merges them:
  ``out = sum_s 2^(lse_s - max) * o_s / sum_s 2^(lse_s - max)``. Splits that get no tile write
  ``lse = -inf`` and weigh nothing. With ``num_splits == 1`` the decode kernel writes the output
  directly and no reduction kernel runs. :func:`kvbench.kernels.splits.choose_num_splits` picks
  the factor when the caller does not.
* **Sliding window.** With ``sliding_window`` W > 0 the query sees positions ``ctx_len - W`` on:
  the programs divide only the tiles from the one holding that position, so the tiles before it
  are never loaded. The window's first tile and the context's last are the masked ones.
* **fp8 pool.** With ``kv_scales`` the pool holds fp8 and each tile is dequantized as it is
  loaded (kvbench.kernels.fp8_kv).
* **Paged vs contiguous.** The same kernel body is compiled with ``CONTIGUOUS=True`` for
  sequences whose K/V are one run of slots starting at ``start_slots[seq]`` (see
  :mod:`kvbench.kernels.contiguous`).

Scores use ``exp2`` with ``scale * log2(e)`` folded into the scale; all accumulation is fp32;
the output has the query's dtype. A context length of 0 yields a zero output row (useful for
padded CUDA-graph batches).

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
from kvbench.kernels.splits import (
    MAX_SPLITS,
    choose_num_splits,
    device_parallelism,
)
from kvbench.kernels.validation import (
    FP8_KV_DTYPES,
    TRITON_DTYPES,
    check_block_tables,
    check_decode_args,
    check_fp8_device,
    check_out,
    check_start_slots,
    check_triton_device,
)


@triton.jit
def _decode_kernel(
    out_ptr,
    split_out_ptr,
    split_lse_ptr,
    q_ptr,
    k_cache_ptr,
    v_cache_ptr,
    block_tables_ptr,
    start_slots_ptr,
    context_lens_ptr,
    scale_log2,
    num_splits,
    stride_q_seq,
    stride_q_head,
    stride_o_seq,
    stride_o_head,
    stride_so_seq,
    stride_so_head,
    stride_so_split,
    stride_lse_seq,
    stride_lse_head,
    stride_bt_seq,
    stride_slot,
    stride_head,
    GROUP_SIZE: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    PAGE_SIZE: tl.constexpr,
    BLOCK_G: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    CONTIGUOUS: tl.constexpr,
    SPLIT_K: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    k_scale,
    v_scale,
    KV_FP8: tl.constexpr,
    sliding_window,
):
    seq = tl.program_id(0)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)

    offs_g = tl.arange(0, BLOCK_G)
    offs_d = tl.arange(0, BLOCK_D)
    g_mask = offs_g < GROUP_SIZE
    d_mask = offs_d < HEAD_DIM
    q_heads = kv_head * GROUP_SIZE + offs_g
    q_offs = seq.to(tl.int64) * stride_q_seq + q_heads[:, None] * stride_q_head + offs_d[None, :]
    q = tl.load(q_ptr + q_offs, mask=g_mask[:, None] & d_mask[None, :], other=0.0)

    ctx_len = tl.load(context_lens_ptr + seq)
    if CONTIGUOUS:
        start_slot = tl.load(start_slots_ptr + seq)
        block_table_row_ptr = block_tables_ptr
    else:
        start_slot = 0
        block_table_row_ptr = block_tables_ptr + seq.to(tl.int64) * stride_bt_seq

    # A sliding window of W keys: the query (position ctx_len - 1) sees positions from
    # ctx_len - W on. Tiles wholly before that are never visited, so a windowed decode reads
    # about W keys whatever the context; the splits share the window's tiles only.
    window_start = tl.where(sliding_window > 0, tl.maximum(ctx_len - sliding_window, 0), 0)
    first_window_tile = window_start // BLOCK_N
    num_tiles = tl.cdiv(ctx_len, BLOCK_N)
    tiles_per_split = tl.cdiv(num_tiles - first_window_tile, num_splits)
    first_tile = first_window_tile + split * tiles_per_split
    end_tile = tl.minimum(first_tile + tiles_per_split, num_tiles)
    # Tiles in [first_full_tile, full_tiles) lie entirely inside the window and the context: no
    # score mask there. At most one tile before (where the window starts) and one after (where
    # the context ends) need it.
    first_full_tile = tl.cdiv(window_start, BLOCK_N)
    full_tiles = ctx_len // BLOCK_N
    row_low = tl.zeros([BLOCK_G], dtype=tl.int32) + window_start
    row_limit = tl.zeros([BLOCK_G], dtype=tl.int32) + (ctx_len - 1)

    m_i = tl.full([BLOCK_G], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_G], dtype=tl.float32)
    acc = tl.zeros([BLOCK_G, BLOCK_D], dtype=tl.float32)
    # Three runs in position order (each may be empty): the tile where the window starts, the
    # tiles inside, the tile where the context ends. Every run's first tile holds a position all
    # rows see, so m_i is finite after it.
    masked_head_end = tl.minimum(end_tile, first_full_tile)
    inside_start = tl.maximum(first_tile, first_full_tile)
    inside_end = tl.minimum(end_tile, full_tiles)
    tail_start = tl.maximum(inside_start, full_tiles)
    acc, l_i, m_i = attend_kv_tiles(
        acc, l_i, m_i, first_tile, masked_head_end, q, k_cache_ptr, v_cache_ptr, block_table_row_ptr,
        start_slot, ctx_len, row_low, row_limit, kv_head, scale_log2, stride_slot, stride_head, offs_d, d_mask,
        k_scale, v_scale, PAGE_SIZE, BLOCK_N, CONTIGUOUS, True, DOT_PRECISION, KV_FP8,
    )
    acc, l_i, m_i = attend_kv_tiles(
        acc, l_i, m_i, inside_start, inside_end, q, k_cache_ptr, v_cache_ptr, block_table_row_ptr,
        start_slot, ctx_len, row_low, row_limit, kv_head, scale_log2, stride_slot, stride_head, offs_d, d_mask,
        k_scale, v_scale, PAGE_SIZE, BLOCK_N, CONTIGUOUS, False, DOT_PRECISION, KV_FP8,
    )
    acc, l_i, m_i = attend_kv_tiles(
        acc, l_i, m_i, tail_start, end_tile, q, k_cache_ptr, v_cache_ptr, block_table_row_ptr,
        start_slot, ctx_len, row_low, row_limit, kv_head, scale_log2, stride_slot, stride_head, offs_d, d_mask,
        k_scale, v_scale, PAGE_SIZE, BLOCK_N, CONTIGUOUS, True, DOT_PRECISION, KV_FP8,
    )

    has_keys = l_i > 0.0
    o = acc / tl.where(has_keys, l_i, 1.0)[:, None]
    store_mask = g_mask[:, None] & d_mask[None, :]
    if SPLIT_K:
        so_offs = (
            seq.to(tl.int64) * stride_so_seq
            + q_heads[:, None] * stride_so_head
            + split * stride_so_split
            + offs_d[None, :]
        )
        tl.store(split_out_ptr + so_offs, o, mask=store_mask)
        lse = tl.where(has_keys, m_i + tl.log2(tl.where(has_keys, l_i, 1.0)), float("-inf"))
        lse_offs = seq.to(tl.int64) * stride_lse_seq + q_heads * stride_lse_head + split
        tl.store(split_lse_ptr + lse_offs, lse, mask=g_mask)
    else:
        o_offs = (
            seq.to(tl.int64) * stride_o_seq + q_heads[:, None] * stride_o_head + offs_d[None, :]
        )
        tl.store(out_ptr + o_offs, o.to(out_ptr.dtype.element_ty), mask=store_mask)


@triton.jit
def _combine_splits_kernel(
    out_ptr,
    split_out_ptr,
    split_lse_ptr,
    num_splits,
    stride_o_seq,
    stride_o_head,
    stride_so_seq,
    stride_so_head,
    stride_so_split,
    stride_lse_seq,
    stride_lse_head,
    HEAD_DIM: tl.constexpr,
    BLOCK_S: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    seq = tl.program_id(0)
    head = tl.program_id(1)
    offs_s = tl.arange(0, BLOCK_S)
    offs_d = tl.arange(0, BLOCK_D)
    s_mask = offs_s < num_splits
    d_mask = offs_d < HEAD_DIM

    lse_offs = seq.to(tl.int64) * stride_lse_seq + head * stride_lse_head + offs_s
    lse = tl.load(split_lse_ptr + lse_offs, mask=s_mask, other=float("-inf"))
    lse_max = tl.max(lse, 0)
    # All splits empty (context length 0): weights become 0 and the output row 0, not NaN.
    lse_max = tl.where(lse_max == float("-inf"), 0.0, lse_max)
    weights = tl.exp2(lse - lse_max)

    so_offs = (
        seq.to(tl.int64) * stride_so_seq
        + head * stride_so_head
        + offs_s[:, None] * stride_so_split
        + offs_d[None, :]
    )
    # Empty splits stored o = 0 and weigh 0; masked lanes read 0 as well.
    partial = tl.load(split_out_ptr + so_offs, mask=s_mask[:, None] & d_mask[None, :], other=0.0)
    numerator = tl.sum(weights[:, None] * partial, 0)
    denominator = tl.sum(weights, 0)
    o = numerator / tl.where(denominator > 0.0, denominator, 1.0)
    o_offs = seq.to(tl.int64) * stride_o_seq + head * stride_o_head + offs_d
    tl.store(out_ptr + o_offs, o.to(out_ptr.dtype.element_ty), mask=d_mask)


def _alloc_split_workspace(
    num_seqs: int, num_q_heads: int, num_splits: int, head_dim: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 partial outputs ``[seqs, q_heads, splits, head_dim]`` and log2-sum-exps.

    Left uninitialised: every split program writes its slice (empty splits write o=0, -inf).
    """
    split_out = torch.empty(
        (num_seqs, num_q_heads, num_splits, head_dim), dtype=torch.float32, device=device
    )
    split_lse = torch.empty((num_seqs, num_q_heads, num_splits), dtype=torch.float32, device=device)
    return split_out, split_lse


def launch_decode(
    query: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float,
    *,
    block_tables: torch.Tensor | None,
    start_slots: torch.Tensor | None,
    num_splits: int | None,
    max_context_len: int | None,
    out: torch.Tensor | None,
    kv_scales: tuple[float, float] | None = None,
    sliding_window: int = 0,
) -> torch.Tensor:
    """Check arguments, pick the split factor and grid, and run decode attention.

    Exactly one of ``block_tables`` (paged mode) and ``start_slots`` (contiguous mode) is given.
    ``kv_scales`` (k_scale, v_scale) marks an fp8 pool (see kvbench.kernels.fp8_kv), dequantized
    in the kernel. ``sliding_window`` W > 0: the query sees its last W keys only.
    ``max_context_len`` only feeds the automatic split choice; when it is None the paged mode
    uses the block-table capacity (no device sync) and the contiguous mode reads
    ``context_lens.max()`` (one sync).
    """
    if (block_tables is None) == (start_slots is None):
        raise ValueError("pass exactly one of block_tables (paged) or start_slots (contiguous)")
    if sliding_window < 0:
        raise ValueError(f"sliding_window must be >= 0 (0: none), got {sliding_window}")
    cache, group_size = check_decode_args(
        query, key_cache, value_cache, context_lens, TRITON_DTYPES if kv_scales is None else FP8_KV_DTYPES
    )
    device = key_cache.device
    if query.dtype not in TRITON_DTYPES:
        raise TypeError(f"query must be one of {TRITON_DTYPES} for the Triton kernels, got {query.dtype}")
    check_triton_device(device, query.dtype)
    if kv_scales is not None:
        check_fp8_device(device)
    num_seqs, num_q_heads = query.shape[0], query.shape[1]
    contiguous = start_slots is not None
    if contiguous:
        check_start_slots(start_slots, num_seqs, device)
        table = start_slots  # unread placeholder for the kernel's table pointer
        capacity = None
    else:
        check_block_tables(block_tables, num_seqs, device)
        table = block_tables
        capacity = block_tables.shape[1] * cache.block_size
    out = check_out(out, query)
    if num_seqs == 0:
        return out

    if num_splits is None:
        if max_context_len is None:
            max_context_len = capacity if capacity is not None else int(context_lens.max())
        if sliding_window:  # a program reads at most the window (plus a partial tile)
            max_context_len = min(max_context_len, sliding_window)
        num_splits = choose_num_splits(
            num_seqs, cache.num_kv_heads, max_context_len, device_parallelism(device)
        )
    elif not 1 <= num_splits <= MAX_SPLITS:
        raise ValueError(f"num_splits must be in [1, {MAX_SPLITS}], got {num_splits}")

    split_k = num_splits > 1
    if split_k:
        split_out, split_lse = _alloc_split_workspace(
            num_seqs, num_q_heads, num_splits, cache.head_dim, device
        )
    else:
        # Unread placeholders: the kernel writes straight to `out`.
        split_out, split_lse = out, out
    block_d = max(MIN_DOT_SIZE, triton.next_power_of_2(cache.head_dim))
    # An fp8 pool is dequantized into the query's dtype: tiles are sized for that.
    tile_tokens, num_stages = pipeline_config(cache.head_dim, query.dtype)
    _decode_kernel[(num_seqs, cache.num_kv_heads, num_splits)](
        out,
        split_out,
        split_lse,
        query,
        key_cache,
        value_cache,
        table,
        start_slots if contiguous else context_lens,
        context_lens,
        scale * LOG2_E,
        num_splits,
        query.stride(0),
        query.stride(1),
        out.stride(0),
        out.stride(1),
        split_out.stride(0),
        split_out.stride(1),
        split_out.stride(2),
        split_lse.stride(0),
        split_lse.stride(1),
        0 if contiguous else table.stride(0),
        key_cache.stride(1),
        key_cache.stride(2),
        GROUP_SIZE=group_size,
        HEAD_DIM=cache.head_dim,
        PAGE_SIZE=cache.block_size,
        BLOCK_G=max(MIN_DOT_SIZE, triton.next_power_of_2(group_size)),
        BLOCK_D=block_d,
        BLOCK_N=tile_tokens,
        CONTIGUOUS=contiguous,
        SPLIT_K=split_k,
        DOT_PRECISION=dot_precision(query.dtype),
        k_scale=1.0 if kv_scales is None else float(kv_scales[0]),
        v_scale=1.0 if kv_scales is None else float(kv_scales[1]),
        KV_FP8=kv_scales is not None,
        sliding_window=sliding_window,
        num_warps=4,
        num_stages=num_stages,
    )
    if split_k:
        _combine_splits_kernel[(num_seqs, num_q_heads)](
            out,
            split_out,
            split_lse,
            num_splits,
            out.stride(0),
            out.stride(1),
            split_out.stride(0),
            split_out.stride(1),
            split_out.stride(2),
            split_lse.stride(0),
            split_lse.stride(1),
            HEAD_DIM=cache.head_dim,
            BLOCK_S=triton.next_power_of_2(num_splits),
            BLOCK_D=block_d,
            num_warps=4,
        )
    return out


def paged_decode_attention_triton(
    query: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float,
    *,
    num_splits: int | None = None,
    max_context_len: int | None = None,
    out: torch.Tensor | None = None,
    sliding_window: int = 0,
    kv_scales: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Decode attention through block tables; see :func:`kvbench.kernels.paged_decode_attention`."""
    return launch_decode(
        query,
        key_cache,
        value_cache,
        context_lens,
        scale,
        block_tables=block_tables,
        start_slots=None,
        num_splits=num_splits,
        max_context_len=max_context_len,
        out=out,
        kv_scales=kv_scales,
        sliding_window=sliding_window,
    )
