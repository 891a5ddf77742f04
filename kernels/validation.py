"""Argument checks shared by every kernel launcher and torch implementation.

Kernels index raw memory, so a wrong shape, dtype or device does not fail loudly inside them: it
reads the wrong bytes or faults. Every public entry point therefore checks its arguments here
first and raises a ``ValueError`` (shape, layout, device, value) or ``TypeError`` (dtype) that
names the offending argument. Checks never read tensor *contents*: that would force a device
synchronisation on every call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

# Block (page) sizes a kernel is compiled for: a power of two so that the position -> (block,
# offset) split is a shift and a mask, and at most 256 tokens, the largest page any strategy uses.
MAX_BLOCK_SIZE_TOKENS = 256
# The attention kernels hold a [tile, head_dim] fp32 tile in registers; 256 is the largest head
# size of current models and the largest the register budget allows.
MAX_HEAD_DIM = 256

TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
TORCH_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# An fp8 KV pool (kernels/fp8_kv.py): one byte per element, read by queries of a compute dtype.
FP8_KV_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
# Triton converts fp8 e4m3 natively from Ada/Hopper on.
MIN_FP8_CAPABILITY = (8, 9)


@dataclass(frozen=True)
class KVCacheShape:
    """Geometry of one layer's KV pool ``[num_blocks, block_size, num_kv_heads, head_dim]``."""

    num_blocks: int
    block_size: int
    num_kv_heads: int
    head_dim: int


def check_kv_cache(
    key_cache: torch.Tensor, value_cache: torch.Tensor, allowed_dtypes: tuple[torch.dtype, ...]
) -> KVCacheShape:
    """Check the key/value pools of one layer and return their geometry."""
    if key_cache.dim() != 4:
        raise ValueError(
            "key_cache must be 4-D [num_blocks, block_size, num_kv_heads, head_dim], "
            f"got shape {tuple(key_cache.shape)}"
        )
    if value_cache.shape != key_cache.shape:
        raise ValueError(
            f"value_cache shape {tuple(value_cache.shape)} differs from key_cache shape "
            f"{tuple(key_cache.shape)}"
        )
    if value_cache.dtype != key_cache.dtype:
        raise TypeError(
            f"key_cache and value_cache dtypes differ: {key_cache.dtype} vs {value_cache.dtype}"
        )
    if key_cache.dtype not in allowed_dtypes:
        raise TypeError(f"KV cache dtype {key_cache.dtype} is not one of {allowed_dtypes}")
    if value_cache.device != key_cache.device:
        raise ValueError(
            f"key_cache is on {key_cache.device} but value_cache is on {value_cache.device}"
        )
    if not (key_cache.is_contiguous() and value_cache.is_contiguous()):
        raise ValueError("key_cache and value_cache must be contiguous (slot = block * size + off)")
    num_blocks, block_size, num_kv_heads, head_dim = key_cache.shape
    if block_size < 1 or block_size > MAX_BLOCK_SIZE_TOKENS or block_size & (block_size - 1):
        raise ValueError(
            f"block_size must be a power of two in [1, {MAX_BLOCK_SIZE_TOKENS}], got {block_size}"
        )
    if head_dim < 1 or head_dim > MAX_HEAD_DIM:
        raise ValueError(f"head_dim must be in [1, {MAX_HEAD_DIM}], got {head_dim}")
    if num_kv_heads < 1:
        raise ValueError("num_kv_heads must be at least 1")
    return KVCacheShape(num_blocks, block_size, num_kv_heads, head_dim)


def check_index_tensor(
    name: str, tensor: torch.Tensor, dtype: torch.dtype, ndim: int, device: torch.device
) -> None:
    """Check an integer metadata tensor (slot mapping, block table, lengths...)."""
    if tensor.dtype != dtype:
        raise TypeError(f"{name} must be {dtype}, got {tensor.dtype}")
    if tensor.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(tensor.shape)}")
    if tensor.device != device:
        raise ValueError(f"{name} is on {tensor.device} but the KV cache is on {device}")
    if ndim > 0 and tensor.stride(-1) != 1:
        raise ValueError(f"{name} must have a contiguous last dimension")


def check_heads_tensor(
    name: str,
    tensor: torch.Tensor,
    cache: KVCacheShape,
    cache_dtype: torch.dtype,
    device: torch.device,
    leading: int | None = None,
) -> int:
    """Check a ``[tokens, heads, head_dim]`` tensor against the cache; return its head count.

    ``leading`` pins the first dimension when it is known (e.g. one query per sequence).
    """
    if tensor.dim() != 3:
        raise ValueError(f"{name} must be 3-D [tokens, heads, head_dim], got {tuple(tensor.shape)}")
    if tensor.shape[2] != cache.head_dim:
        raise ValueError(
            f"{name} head_dim {tensor.shape[2]} differs from the KV cache head_dim {cache.head_dim}"
        )
    if leading is not None and tensor.shape[0] != leading:
        raise ValueError(f"{name} has {tensor.shape[0]} rows, expected {leading}")
    if tensor.dtype != cache_dtype:
        raise TypeError(
            f"{name} dtype {tensor.dtype} differs from the KV cache dtype {cache_dtype}"
        )
    if tensor.device != device:
        raise ValueError(f"{name} is on {tensor.device} but the KV cache is on {device}")
    if tensor.stride(-1) != 1:
        raise ValueError(f"{name} must have a contiguous last (head_dim) dimension")
    return tensor.shape[1]


def compute_dtype_for(name: str, tensor: torch.Tensor, key_cache: torch.Tensor) -> torch.dtype:
    """The dtype a query or new K/V must have: the cache's, or for an fp8 pool the compute dtype
    it is quantized from and dequantized into (any of ``TORCH_DTYPES``)."""
    if key_cache.dtype not in FP8_KV_DTYPES:
        return key_cache.dtype
    if tensor.dtype not in TORCH_DTYPES:
        raise TypeError(f"{name} beside an fp8 KV cache must be one of {TORCH_DTYPES}, got {tensor.dtype}")
    return tensor.dtype


def check_fp8_device(device: torch.device) -> None:
    """An fp8 pool in Triton: refused in one line on GPUs older than compute capability 8.9."""
    if device.type == "cuda" and torch.cuda.get_device_capability(device) < MIN_FP8_CAPABILITY:
        raise ValueError(
            f"an fp8 KV pool in Triton needs compute capability {MIN_FP8_CAPABILITY} or newer, "
            f"this GPU has {torch.cuda.get_device_capability(device)}: use model.kv_dtype=auto or engine.backend=torch"
        )


def check_query_heads(num_q_heads: int, num_kv_heads: int) -> int:
    """Return the GQA group size (query heads per KV head)."""
    if num_q_heads % num_kv_heads:
        raise ValueError(
            f"num_q_heads ({num_q_heads}) must be a multiple of num_kv_heads ({num_kv_heads})"
        )
    return num_q_heads // num_kv_heads


def check_out(out: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """Return ``out`` after checking it can hold a result shaped like ``like``, or allocate one."""
    if out is None:
        return torch.empty_like(like, memory_format=torch.contiguous_format)
    if out.shape != like.shape or out.dtype != like.dtype or out.device != like.device:
        raise ValueError(
            f"out must be {tuple(like.shape)} {like.dtype} on {like.device}, "
            f"got {tuple(out.shape)} {out.dtype} on {out.device}"
        )
    if out.stride(-1) != 1:
        raise ValueError("out must have a contiguous last dimension")
    return out


def check_triton_device(device: torch.device, dtype: torch.dtype) -> None:
    """Triton runs CUDA tensors, or CPU tensors when the interpreter was enabled before import."""
    interpreted = os.environ.get("TRITON_INTERPRET", "0") == "1"
    if device.type == "cuda":
        return
    if device.type == "cpu" and interpreted:
        if dtype == torch.bfloat16:
            raise TypeError("the Triton interpreter does not support bfloat16; use float32 on CPU")
        return
    raise ValueError(
        f"the Triton backend needs CUDA tensors (got {device}); on CPU use backend='torch' or set "
        "TRITON_INTERPRET=1 before triton is imported"
    )


def check_store_kv_args(
    key: torch.Tensor,
    value: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    slot_mapping: torch.Tensor,
    allowed_dtypes: tuple[torch.dtype, ...],
) -> KVCacheShape:
    """Arguments of ``store_kv``: new K/V rows, the pool, and one int64 slot per row."""
    cache = check_kv_cache(key_cache, value_cache, allowed_dtypes)
    device = key_cache.device
    kv_dtype = compute_dtype_for("key", key, key_cache)
    num_kv_heads = check_heads_tensor("key", key, cache, kv_dtype, device)
    if num_kv_heads != cache.num_kv_heads:
        raise ValueError(f"key has {num_kv_heads} heads, the KV cache has {cache.num_kv_heads}")
    if value.shape != key.shape:
        raise ValueError(f"value shape {tuple(value.shape)} differs from key {tuple(key.shape)}")
    check_heads_tensor("value", value, cache, kv_dtype, device)
    check_index_tensor("slot_mapping", slot_mapping, torch.int64, 1, device)
    if slot_mapping.shape[0] != key.shape[0]:
        raise ValueError(
            f"slot_mapping has {slot_mapping.shape[0]} entries, key has {key.shape[0]} tokens"
        )
    return cache


def check_copy_blocks_args(
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    src_block_ids: torch.Tensor,
    dst_block_ids: torch.Tensor,
    allowed_dtypes: tuple[torch.dtype, ...],
) -> KVCacheShape:
    """Arguments of ``copy_blocks``: the pool and equally long int64 source/destination ids."""
    cache = check_kv_cache(key_cache, value_cache, allowed_dtypes)
    check_index_tensor("src_block_ids", src_block_ids, torch.int64, 1, key_cache.device)
    check_index_tensor("dst_block_ids", dst_block_ids, torch.int64, 1, key_cache.device)
    if src_block_ids.shape != dst_block_ids.shape:
        raise ValueError(
            f"src_block_ids ({src_block_ids.shape[0]}) and dst_block_ids "
            f"({dst_block_ids.shape[0]}) differ in length"
        )
    return cache


def check_decode_args(
    query: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    context_lens: torch.Tensor,
    allowed_dtypes: tuple[torch.dtype, ...],
) -> tuple[KVCacheShape, int]:
    """Arguments common to paged and contiguous decode attention (one query row per sequence).

    Returns the cache geometry and the GQA group size.
    """
    cache = check_kv_cache(key_cache, value_cache, allowed_dtypes)
    device = key_cache.device
    num_q_heads = check_heads_tensor("query", query, cache, compute_dtype_for("query", query, key_cache), device)
    group_size = check_query_heads(num_q_heads, cache.num_kv_heads)
    check_index_tensor("context_lens", context_lens, torch.int32, 1, device)
    if context_lens.shape[0] != query.shape[0]:
        raise ValueError(
            f"context_lens has {context_lens.shape[0]} entries, query has {query.shape[0]} rows"
        )
    return cache, group_size


def check_block_tables(block_tables: torch.Tensor, num_seqs: int, device: torch.device) -> None:
    """``int32 [num_seqs, max_num_blocks_per_seq]``, one row per sequence."""
    check_index_tensor("block_tables", block_tables, torch.int32, 2, device)
    if block_tables.shape[0] != num_seqs:
        raise ValueError(f"block_tables has {block_tables.shape[0]} rows, expected {num_seqs}")


def check_start_slots(start_slots: torch.Tensor, num_seqs: int, device: torch.device) -> None:
    """``int64 [num_seqs]``: first slot of each sequence's contiguous run (contiguous path)."""
    check_index_tensor("start_slots", start_slots, torch.int64, 1, device)
    if start_slots.shape[0] != num_seqs:
        raise ValueError(f"start_slots has {start_slots.shape[0]} entries, expected {num_seqs}")


def check_prefill_args(
    query: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    block_tables: torch.Tensor,
    query_start_loc: torch.Tensor,
    context_lens: torch.Tensor,
    allowed_dtypes: tuple[torch.dtype, ...],
) -> tuple[KVCacheShape, int]:
    """Arguments of paged prefill attention; returns the cache geometry and the GQA group size.

    The per-sequence relation ``0 <= q_len <= context_len`` lives in device memory and is not
    checked here (that would synchronise); the torch implementation checks it on the host.
    """
    cache = check_kv_cache(key_cache, value_cache, allowed_dtypes)
    device = key_cache.device
    num_q_heads = check_heads_tensor("query", query, cache, compute_dtype_for("query", query, key_cache), device)
    group_size = check_query_heads(num_q_heads, cache.num_kv_heads)
    check_index_tensor("context_lens", context_lens, torch.int32, 1, device)
    num_seqs = context_lens.shape[0]
    check_index_tensor("query_start_loc", query_start_loc, torch.int32, 1, device)
    if query_start_loc.shape[0] != num_seqs + 1:
        raise ValueError(
            f"query_start_loc must have num_seqs + 1 = {num_seqs + 1} entries, "
            f"got {query_start_loc.shape[0]}"
        )
    check_block_tables(block_tables, num_seqs, device)
    return cache, group_size
