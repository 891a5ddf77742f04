"""The inner step shared by the decode and prefill kernels: attend one tile of cached K/V.

Both kernels keep, per query row, an fp32 running max ``m`` (in log2 units), running softmax
denominator ``l`` and un-normalised output ``acc``, and fold in ``BLOCK_N`` context positions at a
time (online softmax, as in FlashAttention). Only how rows map to (token, head) and which tiles a
program visits differ, so the tile step lives here once.

Positions become pool slots through the block table: ``slot = table[pos // PAGE_SIZE] *
PAGE_SIZE + pos % PAGE_SIZE``. ``PAGE_SIZE`` is a power of two and a compile-time constant, so
this is a shift and a mask, and a tile may span several pages (block size 1..BLOCK_N) or sit
inside one (block size >= BLOCK_N). In ``CONTIGUOUS`` mode the sequence owns one run of slots
starting at ``start_slot`` and the table is never read: the only difference between the paged
kernel and its contiguous baseline is that indirection.

Importing this module imports triton.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

# The smallest M, N and K of a tl.dot tile on NVIDIA tensor cores: the kernels pad their head
# and row tiles up to it.
MIN_DOT_SIZE = 16
# Kernels take scale * log2(e) and use exp2: one multiply fewer per score than exp.
LOG2_E = math.log2(math.e)
# KV tile height and software-pipeline depth by K/V row width in bytes (head_dim * itemsize):
# wider rows get shorter tiles and fewer stages so that the K and V tiles in flight fit the
# shared memory of A100-class GPUs (164 KiB), not only H100 (228 KiB).
PIPELINE_BY_ROW_BYTES = ((256, 64, 3), (512, 32, 2))  # (max row bytes, tile tokens, stages)
WIDEST_ROW_PIPELINE = (16, 2)


def dot_precision(dtype: torch.dtype) -> str:
    """``tl.dot`` input precision: exact ("ieee") for fp32, or fp32 results would be TF32-rounded;
    fp16/bf16 ignore it (kept at Triton's default)."""
    return "ieee" if dtype == torch.float32 else "tf32"


def pipeline_config(head_dim: int, dtype: torch.dtype) -> tuple[int, int]:
    """(KV tile tokens, num_stages) for a K/V row of ``head_dim`` elements of ``dtype``."""
    row_bytes = head_dim * dtype.itemsize
    for max_row_bytes, tile_tokens, num_stages in PIPELINE_BY_ROW_BYTES:
        if row_bytes <= max_row_bytes:
            return tile_tokens, num_stages
    return WIDEST_ROW_PIPELINE


@triton.jit
def attend_kv_tile(
    acc,
    l_i,
    m_i,
    q,
    k_cache_ptr,
    v_cache_ptr,
    block_table_row_ptr,
    start_slot,
    tile_start,
    kv_len,
    row_low,
    row_limit,
    kv_head,
    scale_log2,
    stride_slot,
    stride_head,
    offs_d,
    d_mask,
    PAGE_SIZE: tl.constexpr,
    BLOCK_N: tl.constexpr,
    CONTIGUOUS: tl.constexpr,
    MASKED: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    k_scale,
    v_scale,
    KV_FP8: tl.constexpr,
):
    """Fold context positions ``[tile_start, tile_start + BLOCK_N)`` into (acc, l_i, m_i).

    Row ``r`` sees positions ``row_low[r] ..= row_limit[r]`` (causality, and a sliding window:
    ``row_low`` is 0 without one); ``MASKED`` is False for tiles the caller knows are fully
    visible to every row, which skips the score mask. With ``KV_FP8`` the pool holds fp8 values
    and a tile is dequantized as it is loaded (value x the per-tensor ``k_scale``/``v_scale``, in
    the query's dtype); otherwise the scales are unread.
    """
    pos = tile_start + tl.arange(0, BLOCK_N)
    pos_ok = pos < kv_len
    if CONTIGUOUS:
        slots = start_slot + pos.to(tl.int64)
    else:
        # Padding entries past the context are never loaded (mask), so any id there is harmless.
        block_ids = tl.load(block_table_row_ptr + pos // PAGE_SIZE, mask=pos_ok, other=0)
        slots = block_ids.to(tl.int64) * PAGE_SIZE + pos % PAGE_SIZE
    # int64 slot arithmetic: a pool of > 2^31 elements per layer is realistic on 80 GB devices.
    kv_offs = slots[:, None] * stride_slot + kv_head * stride_head + offs_d[None, :]
    kv_mask = pos_ok[:, None] & d_mask[None, :]
    k = tl.load(k_cache_ptr + kv_offs, mask=kv_mask, other=0.0)
    if KV_FP8:
        k = (k.to(tl.float32) * k_scale).to(q.dtype)
    scores = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale_log2
    if MASKED:
        visible = (pos[None, :] >= row_low[:, None]) & (pos[None, :] <= row_limit[:, None]) & pos_ok[None, :]
        scores = tl.where(visible, scores, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(scores, 1))
    if MASKED:
        # A row may see nothing yet (in a windowed prefill tile, later rows' windows start past
        # the first tile): its max stays -inf, and exponents are taken against 0 so that alpha and
        # p are 0, not exp2(-inf + inf) = NaN. Unmasked tiles are seen whole: m_new is finite.
        m_ref = tl.where(m_new == float("-inf"), 0.0, m_new)
    else:
        m_ref = m_new
    alpha = tl.exp2(m_i - m_ref)
    p = tl.exp2(scores - m_ref[:, None])
    l_i = l_i * alpha + tl.sum(p, 1)
    v = tl.load(v_cache_ptr + kv_offs, mask=kv_mask, other=0.0)
    if KV_FP8:
        v = (v.to(tl.float32) * v_scale).to(q.dtype)
    # p is cast to the cache dtype so fp16/bf16 use tensor cores; accumulation stays fp32.
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
    return acc, l_i, m_new


@triton.jit
def attend_kv_tiles(
    acc, l_i, m_i, first_tile, end_tile, q, k_cache_ptr, v_cache_ptr, block_table_row_ptr, start_slot,
    kv_len, row_low, row_limit, kv_head, scale_log2, stride_slot, stride_head, offs_d, d_mask, k_scale, v_scale,
    PAGE_SIZE: tl.constexpr, BLOCK_N: tl.constexpr, CONTIGUOUS: tl.constexpr, MASKED: tl.constexpr,
    DOT_PRECISION: tl.constexpr, KV_FP8: tl.constexpr,
):
    """attend_kv_tile over the tiles ``[first_tile, end_tile)`` (an empty range does nothing).

    The kernels split their tiles into runs that need the score mask and runs that do not, and
    call this once per run: ``MASKED`` is a compile-time constant, so each run is its own loop.
    """
    for tile in range(first_tile, end_tile):
        acc, l_i, m_i = attend_kv_tile(
            acc, l_i, m_i, q, k_cache_ptr, v_cache_ptr, block_table_row_ptr, start_slot, tile * BLOCK_N, kv_len,
            row_low, row_limit, kv_head, scale_log2, stride_slot, stride_head, offs_d, d_mask, PAGE_SIZE,
            BLOCK_N, CONTIGUOUS, MASKED, DOT_PRECISION, k_scale, v_scale, KV_FP8,
        )
    return acc, l_i, m_i
