"""Triton kernels that write the KV pool: ``store_kv`` (scatter new tokens) and ``copy_blocks``
(copy-on-write).

* ``store_kv``: grid ``(num_tokens, cdiv(num_kv_heads, BLOCK_H))``; a program copies one token's
  ``[BLOCK_H, head_dim]`` slab of K and of V to its slot. Keys/values may be strided views (e.g.
  slices of a fused QKV projection) as long as ``head_dim`` is contiguous. A negative slot means
  "padding token, do not store" (the convention of vLLM's slot mappings), so a CUDA-graph batch
  can be padded without a scratch block.
* ``copy_blocks``: grid ``(num_pairs, cdiv(block_numel, BLOCK))``; a block is one contiguous run
  of ``block_size * num_kv_heads * head_dim`` elements, so each program copies a flat chunk of
  it in K and V. Pairs run in parallel: destination ids must be distinct and must not appear
  among the sources (true for copy-on-write, whose destinations are freshly allocated).

Block/slot ids are not range-checked on the device (it would synchronise); out-of-range ids
write out of bounds.

Importing this module imports triton.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kvbench.kernels.validation import (
    TRITON_DTYPES,
    check_copy_blocks_args,
    check_store_kv_args,
    check_triton_device,
)

# Elements per program: 4096 fp16 = 8 KiB per tensor, enough in flight per program to stream.
STORE_TILE_ELEMENTS = 4096
COPY_TILE_ELEMENTS = 4096


@triton.jit
def _store_kv_kernel(
    key_ptr,
    value_ptr,
    key_cache_ptr,
    value_cache_ptr,
    slot_mapping_ptr,
    stride_k_token,
    stride_k_head,
    stride_v_token,
    stride_v_head,
    stride_slot,
    stride_cache_head,
    NUM_KV_HEADS: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    token = tl.program_id(0)
    slot = tl.load(slot_mapping_ptr + token)
    if slot < 0:
        return
    heads = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    offs_d = tl.arange(0, BLOCK_D)
    mask = (heads < NUM_KV_HEADS)[:, None] & (offs_d < HEAD_DIM)[None, :]
    token64 = token.to(tl.int64)
    k = tl.load(
        key_ptr + token64 * stride_k_token + heads[:, None] * stride_k_head + offs_d[None, :],
        mask=mask,
    )
    v = tl.load(
        value_ptr + token64 * stride_v_token + heads[:, None] * stride_v_head + offs_d[None, :],
        mask=mask,
    )
    cache_offs = slot * stride_slot + heads[:, None] * stride_cache_head + offs_d[None, :]
    tl.store(key_cache_ptr + cache_offs, k, mask=mask)
    tl.store(value_cache_ptr + cache_offs, v, mask=mask)


@triton.jit
def _copy_blocks_kernel(
    key_cache_ptr,
    value_cache_ptr,
    src_block_ids_ptr,
    dst_block_ids_ptr,
    block_numel,
    BLOCK: tl.constexpr,
):
    pair = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < block_numel
    src = tl.load(src_block_ids_ptr + pair) * block_numel + offs
    dst = tl.load(dst_block_ids_ptr + pair) * block_numel + offs
    tl.store(key_cache_ptr + dst, tl.load(key_cache_ptr + src, mask=mask), mask=mask)
    tl.store(value_cache_ptr + dst, tl.load(value_cache_ptr + src, mask=mask), mask=mask)


def store_kv_triton(
    key: torch.Tensor,
    value: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    slot_mapping: torch.Tensor,
) -> None:
    """Scatter ``key/value [num_tokens, num_kv_heads, head_dim]`` into the pool at
    ``slot_mapping`` (int64; negative = skip)."""
    cache = check_store_kv_args(key, value, key_cache, value_cache, slot_mapping, TRITON_DTYPES)
    check_triton_device(key_cache.device, key_cache.dtype)
    num_tokens = key.shape[0]
    if num_tokens == 0:
        return
    block_d = triton.next_power_of_2(cache.head_dim)
    block_h = min(
        triton.next_power_of_2(cache.num_kv_heads), max(1, STORE_TILE_ELEMENTS // block_d)
    )
    grid = (num_tokens, triton.cdiv(cache.num_kv_heads, block_h))
    _store_kv_kernel[grid](
        key,
        value,
        key_cache,
        value_cache,
        slot_mapping,
        key.stride(0),
        key.stride(1),
        value.stride(0),
        value.stride(1),
        key_cache.stride(1),
        key_cache.stride(2),
        NUM_KV_HEADS=cache.num_kv_heads,
        HEAD_DIM=cache.head_dim,
        BLOCK_H=block_h,
        BLOCK_D=block_d,
        num_warps=4,
    )


def copy_blocks_triton(
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    src_block_ids: torch.Tensor,
    dst_block_ids: torch.Tensor,
) -> None:
    """Copy whole blocks ``src_block_ids[i] -> dst_block_ids[i]`` (int64) in both pools."""
    cache = check_copy_blocks_args(
        key_cache, value_cache, src_block_ids, dst_block_ids, TRITON_DTYPES
    )
    check_triton_device(key_cache.device, key_cache.dtype)
    num_pairs = src_block_ids.shape[0]
    if num_pairs == 0:
        return
    block_numel = cache.block_size * cache.num_kv_heads * cache.head_dim
    tile = min(COPY_TILE_ELEMENTS, triton.next_power_of_2(block_numel))
    grid = (num_pairs, triton.cdiv(block_numel, tile))
    _copy_blocks_kernel[grid](
        key_cache, value_cache, src_block_ids, dst_block_ids, block_numel, BLOCK=tile, num_warps=4
    )
