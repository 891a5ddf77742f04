"""An fp8 KV pool: store K/V with a per-tensor scale, dequantize them in the decode kernel.

The pool tensors are ``torch.float8_e4m3fn`` (or ``float8_e5m2``) of the usual shape
``[num_blocks, block_size, num_kv_heads, head_dim]``; a stored value is ``x / scale`` saturated at
the format's largest finite value, and the kernel reads back ``stored * scale`` in the query's
dtype (vLLM's ``kv_cache_dtype=fp8`` with ``k_scale``/``v_scale``). The Triton decode kernel does
the dequantization per tile (``KV_FP8`` in attention_tile.py), so the pool moves one byte per
element; the torch backend dequantizes the pool first and runs the reference (a test oracle, not
a fast path). Storing is a torch scatter on either backend.

On CUDA, Triton converts fp8 e4m3 natively from compute capability 8.9 (Ada, Hopper) on; older GPUs
are refused in one line. Under ``TRITON_INTERPRET=1`` the kernel runs on CPU with fp32 queries.
"""

from __future__ import annotations

import torch

from kvbench.kernels.reference import ref_paged_decode_attention
from kvbench.kernels.validation import FP8_KV_DTYPES, check_fp8_decode_args, check_index_tensor, check_kv_cache

def quantize_fp8(x: torch.Tensor, fp8: torch.dtype, scale: float) -> torch.Tensor:
    """``x / scale`` in `fp8`, saturated at its largest finite value."""
    limit = torch.finfo(fp8).max
    return (x / scale).clamp(-limit, limit).to(fp8)


def store_kv_fp8(
    key: torch.Tensor, value: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
    slot_mapping: torch.Tensor, k_scale: float, v_scale: float,
) -> None:
    """Quantize ``key[i]``/``value[i]`` and write them to slot ``slot_mapping[i]`` (negative: skipped)."""
    cache = check_kv_cache(key_cache, value_cache, FP8_KV_DTYPES)
    check_index_tensor("slot_mapping", slot_mapping, torch.int64, 1, key_cache.device)
    keep = slot_mapping >= 0
    slots = slot_mapping[keep]
    flat_shape = (-1, cache.num_kv_heads, cache.head_dim)
    # Scattered as bytes: index_copy_ has no fp8 kernel on CPU, and a byte copy is exact anyway.
    for cache_tensor, x, kv_scale in ((key_cache, key, k_scale), (value_cache, value, v_scale)):
        stored = quantize_fp8(x[keep], cache_tensor.dtype, kv_scale)
        cache_tensor.view(torch.uint8).view(flat_shape).index_copy_(0, slots, stored.view(torch.uint8))


def paged_decode_attention_fp8(
    query: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float,
    k_scale: float,
    v_scale: float,
    *,
    num_splits: int | None = None,
    max_context_len: int | None = None,
    out: torch.Tensor | None = None,
    backend: str = "triton",
) -> torch.Tensor:
    """Decode attention over an fp8 paged pool: as kvbench.kernels.paged_decode_attention, with
    the pool's per-tensor scales."""
    if backend == "triton":
        from kvbench.kernels.decode_triton import launch_decode

        return launch_decode(
            query, key_cache, value_cache, context_lens, scale, block_tables=block_tables, start_slots=None,
            num_splits=num_splits, max_context_len=max_context_len, out=out, kv_scales=(k_scale, v_scale),
        )
    check_fp8_decode_args(query, key_cache, value_cache, context_lens)
    return ref_paged_decode_attention(
        query, key_cache.to(query.dtype) * k_scale, value_cache.to(query.dtype) * v_scale, block_tables,
        context_lens, scale, out=out,
    )
