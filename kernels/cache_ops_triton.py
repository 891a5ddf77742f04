"""Triton kernels that write the KV pool: ``store_kv`` (scatter new tokens) and ``copy_blocks``
(copy-on-write).

* ``store_kv``: grid ``(num_tokens, cdiv(num_kv_heads, BLOCK_H))``; a program copies one token's
  ``[BLOCK_H, head_dim]`` slab of K and of V to its slot. Keys/values may be strided views (e.g.
  slices of a fused QKV projection) as long as ``head_dim`` is contiguous. A negative slot means
  "padding token, do not store" (the convention of vLLM's slot mappings), so a CUDA-graph batch
  can be padded without a scratch block.
  With an fp8 pool (``kv_scales`` given) the kernel quantizes as it stores: ``x / scale``,
  saturated at the format's largest finite value, rounded to nearest even (see ``_fp8_bits``).
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
    FP8_KV_DTYPES,
    TRITON_DTYPES,
    check_copy_blocks_args,
    check_fp8_device,
    check_store_kv_args,
    check_triton_device,
)

# Elements per program: 4096 fp16 = 8 KiB per tensor, enough in flight per program to stream.
STORE_TILE_ELEMENTS = 4096
COPY_TILE_ELEMENTS = 4096


# (mantissa bits, exponent bias) of the fp8 formats a pool may hold.
FP8_LAYOUTS = {torch.float8_e4m3fn: (3, 7), torch.float8_e5m2: (2, 15)}
# Adding and subtracting 1.5 * 2^23 rounds an fp32 in [0, 2^22) to an integer, to nearest even.
ROUND_TO_INTEGER = 12582912.0


@triton.jit
def _fp8_bits(x, MANTISSA_BITS: tl.constexpr, EXPONENT_BIAS: tl.constexpr, MAX_FINITE: tl.constexpr):
    """The fp8 bit pattern (as uint8) of fp32 ``x``: saturated at +-MAX_FINITE, rounded to nearest
    even, subnormals included; what torch's ``.to(float8)`` gives after the same clamp.

    Written out in integer arithmetic rather than ``x.to(fp8)``: the interpreter's fp8 downcast
    truncates and drops the carry into the exponent, so CPU runs would store other values than a
    GPU. The same code on both keeps the CPU tests a proof of the GPU store (and costs the
    bandwidth-bound store nothing measurable). K/V are finite: NaN is not preserved.
    """
    x = tl.minimum(tl.maximum(x, -MAX_FINITE), MAX_FINITE)
    sign = (x.to(tl.int32, bitcast=True) >> 24) & 0x80  # fp32's sign bit, -0.0 included
    magnitude = tl.abs(x)
    bits = magnitude.to(tl.int32, bitcast=True)
    # Normal range: round the fp32 mantissa to MANTISSA_BITS (a carry moves into the exponent),
    # then re-bias the exponent from fp32's 127 to the format's.
    drop: tl.constexpr = 23 - MANTISSA_BITS
    rounded = (bits + ((1 << (drop - 1)) - 1) + ((bits >> drop) & 1)) >> drop
    normal = rounded - ((127 - EXPONENT_BIAS) << MANTISSA_BITS)
    # Subnormal range: a multiple of the smallest subnormal, 2^(1 - bias - mantissa bits); a value
    # that rounds up to 2^MANTISSA_BITS of them is the smallest normal, whose bits are the same.
    # (Clamped first, so that normal values, whose result is not used, stay in int32's range.)
    min_normal: tl.constexpr = 2.0 ** (1 - EXPONENT_BIAS)
    units = tl.minimum(magnitude, min_normal) * (2.0 ** (EXPONENT_BIAS - 1 + MANTISSA_BITS))
    subnormal = ((units + ROUND_TO_INTEGER) - ROUND_TO_INTEGER).to(tl.int32)
    is_normal = magnitude >= min_normal
    return (tl.where(is_normal, normal, subnormal) | sign).to(tl.uint8)


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
    k_scale,
    v_scale,
    KV_FP8: tl.constexpr,
    FP8_MANTISSA_BITS: tl.constexpr,
    FP8_EXPONENT_BIAS: tl.constexpr,
    FP8_MAX_FINITE: tl.constexpr,
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
    if KV_FP8:  # the pool pointers are byte views of the fp8 tensors
        k = _fp8_bits(k.to(tl.float32) / k_scale, FP8_MANTISSA_BITS, FP8_EXPONENT_BIAS, FP8_MAX_FINITE)
        v = _fp8_bits(v.to(tl.float32) / v_scale, FP8_MANTISSA_BITS, FP8_EXPONENT_BIAS, FP8_MAX_FINITE)
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
    kv_scales: tuple[float, float] | None = None,
) -> None:
    """Scatter ``key/value [num_tokens, num_kv_heads, head_dim]`` into the pool at
    ``slot_mapping`` (int64; negative = skip). ``kv_scales`` (k_scale, v_scale): an fp8 pool,
    quantized as stored."""
    fp8 = kv_scales is not None
    cache = check_store_kv_args(
        key, value, key_cache, value_cache, slot_mapping, FP8_KV_DTYPES if fp8 else TRITON_DTYPES
    )
    check_triton_device(key_cache.device, key.dtype)
    if fp8:
        check_fp8_device(key_cache.device)
        mantissa_bits, exponent_bias = FP8_LAYOUTS[key_cache.dtype]
        max_finite = torch.finfo(key_cache.dtype).max
        key_cache, value_cache = key_cache.view(torch.uint8), value_cache.view(torch.uint8)
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
        k_scale=float(kv_scales[0]) if fp8 else 1.0,
        v_scale=float(kv_scales[1]) if fp8 else 1.0,
        KV_FP8=fp8,
        FP8_MANTISSA_BITS=mantissa_bits if fp8 else 0,
        FP8_EXPONENT_BIAS=exponent_bias if fp8 else 0,
        FP8_MAX_FINITE=max_finite if fp8 else 0.0,
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
        key_cache, value_cache, src_block_ids, dst_block_ids, TRITON_DTYPES + FP8_KV_DTYPES
    )
    if key_cache.dtype in FP8_KV_DTYPES:  # bytes move as they are: no conversion on any GPU
        key_cache, value_cache = key_cache.view(torch.uint8), value_cache.view(torch.uint8)
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
