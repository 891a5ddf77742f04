"""KV-cache kernels for kvbench: one family over block tables serves every strategy.

Every KV-cache strategy speaks in block tables: a sequence's K/V lives in a list of block ids into
a shared pool, so one set of kernels serves contiguous reservation (a table that is a run of
consecutive ids), vLLM-style paging, copy-on-write and prefix caching.

Layout (per layer)
    ``key_cache``, ``value_cache``: ``[num_blocks, block_size, num_kv_heads, head_dim]``,
    contiguous, fp16/bf16/fp32 (fp64 too with ``backend="torch"``). ``block_size`` is a power of two
    in [1, 256]; ``head_dim`` <= 256. Slot id = ``block_id * block_size + offset_in_block``.
    Block tables: ``int32 [num_seqs, max_num_blocks_per_seq]``, padded with any valid id (entries
    past a sequence's length are never read). Queries: ``[tokens, num_q_heads, head_dim]`` with
    ``num_q_heads % num_kv_heads == 0`` (MHA, GQA, MQA), in the cache dtype.

Public API (every function takes ``backend="triton" | "torch"``)
    ``store_kv(key, value, key_cache, value_cache, slot_mapping, *, kv_scales=None)``
        Scatter new K/V ``[num_tokens, num_kv_heads, head_dim]`` to ``slot_mapping`` (int64;
        negative slots are skipped). ``kv_scales=(k_scale, v_scale)``: an fp8 pool, quantized as
        stored; the attention functions take the same argument and dequantize (see fp8_kv.py).
    ``copy_blocks(key_cache, value_cache, src_block_ids, dst_block_ids)``
        Copy-on-write: copy whole blocks (int64 id lists of equal length) in both pools.
    ``paged_decode_attention(query, key_cache, value_cache, block_tables, context_lens, scale,
    *, num_splits=None, max_context_len=None, out=None, sliding_window=0, kv_scales=None)``
        One query token per sequence over its whole context (its own K/V already stored);
        ``context_lens int32 [num_seqs]``. Split-K (flash-decoding) when ``num_splits > 1``;
        ``None`` picks it (:func:`choose_num_splits`).
    ``paged_prefill_attention(query, key_cache, value_cache, block_tables, query_start_loc,
    context_lens, scale, *, max_query_len=None, out=None, sliding_window=0, kv_scales=None)``
        Packed new tokens of several sequences (``query_start_loc int32 [num_seqs + 1]``), each
        the last ``q_len`` positions of its ``context_len``: attends to the cached prefix and
        causally to itself. Plain prefill, chunked prefill and prefix-cache hits.
        ``sliding_window`` W > 0 (both attention functions): a token sees its last W keys only.
    ``contiguous_decode_attention(query, key_cache, value_cache, start_slots, context_lens,
    scale, *, num_splits=None, max_context_len=None, out=None)``
        Decode for sequences stored as one run of slots from ``start_slots int64 [num_seqs]``:
        the no-paging baseline (see :mod:`kvbench.kernels.contiguous`).
    ``ref_paged_decode_attention``, ``ref_paged_prefill_attention``
        The torch references (same signatures, without the Triton-only launch hints).

``num_splits``, ``max_context_len`` and ``max_query_len`` are launch hints for the Triton
backend (host ints that spare a device sync); the torch backend ignores them. Attention returns
a new tensor in the query dtype, or writes ``out`` (same shape and dtype) and returns it: a
preallocated ``out`` keeps CUDA-graph replays allocation-free.

Importing this package never imports triton (it may be absent, e.g. on macOS): the Triton modules
are imported on the first Triton call. On CPU the Triton backend runs only under the interpreter
(``TRITON_INTERPRET=1`` set before triton is imported, fp32); :func:`default_backend` picks
``"triton"`` for CUDA tensors when triton is installed and ``"torch"`` otherwise.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

import torch

from kvbench.kernels.contiguous import (
    contiguous_decode_attention_torch,
    contiguous_decode_attention_triton,
)
from kvbench.kernels.fp8_kv import dequantize_pool, store_kv_fp8
from kvbench.kernels.reference import (
    copy_blocks_torch,
    ref_paged_decode_attention,
    ref_paged_prefill_attention,
    store_kv_torch,
)
from kvbench.kernels.splits import choose_num_splits

Backend = Literal["triton", "torch"]
BACKENDS: tuple[Backend, ...] = ("triton", "torch")

__all__ = [
    "BACKENDS",
    "Backend",
    "choose_num_splits",
    "contiguous_decode_attention",
    "copy_blocks",
    "default_backend",
    "paged_decode_attention",
    "paged_prefill_attention",
    "ref_paged_decode_attention",
    "ref_paged_prefill_attention",
    "store_kv",
]


def default_backend(device: torch.device | str) -> Backend:
    """``"triton"`` for CUDA devices when triton is installed, else ``"torch"``."""
    has_triton = importlib.util.find_spec("triton") is not None
    return "triton" if torch.device(device).type == "cuda" and has_triton else "torch"


def _use_triton(backend: str) -> bool:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend == "triton"


def store_kv(
    key: torch.Tensor,
    value: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    slot_mapping: torch.Tensor,
    *,
    backend: Backend = "triton",
    kv_scales: tuple[float, float] | None = None,
) -> None:
    """Write ``key[i]``/``value[i]`` to pool slot ``slot_mapping[i]`` (negative: skip).

    ``kv_scales`` (k_scale, v_scale): the pool is fp8 and the values are quantized as stored
    (:mod:`kvbench.kernels.fp8_kv`)."""
    triton = _use_triton(backend)
    if kv_scales is not None:
        store_kv_fp8(key, value, key_cache, value_cache, slot_mapping, *kv_scales, backend=backend)
    elif triton:
        from kvbench.kernels.cache_ops_triton import store_kv_triton

        store_kv_triton(key, value, key_cache, value_cache, slot_mapping)
    else:
        store_kv_torch(key, value, key_cache, value_cache, slot_mapping)


def copy_blocks(
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    src_block_ids: torch.Tensor,
    dst_block_ids: torch.Tensor,
    *,
    backend: Backend = "triton",
) -> None:
    """Copy blocks ``src_block_ids[i] -> dst_block_ids[i]`` in both pools (copy-on-write).

    Destinations must be distinct and not among the sources (the Triton copies run in parallel).
    An fp8 pool's blocks move as bytes; its scales are per tensor, so nothing else moves.
    """
    if _use_triton(backend):
        from kvbench.kernels.cache_ops_triton import copy_blocks_triton

        copy_blocks_triton(key_cache, value_cache, src_block_ids, dst_block_ids)
    else:
        copy_blocks_torch(key_cache, value_cache, src_block_ids, dst_block_ids)


def paged_decode_attention(
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
    backend: Backend = "triton",
    sliding_window: int = 0,
    kv_scales: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Decode attention ``query [num_seqs, H_q, D]`` over each sequence's paged context.

    ``max_context_len`` (host int) only informs the automatic ``num_splits``; without it the
    block-table capacity ``max_num_blocks_per_seq * block_size`` is used (no sync).
    ``sliding_window`` > 0: each query sees only the last that many keys (the Triton kernel
    skips the tiles before them). ``kv_scales`` (k_scale, v_scale): an fp8 pool, dequantized
    as it is read (:mod:`kvbench.kernels.fp8_kv`).
    """
    if _use_triton(backend):
        from kvbench.kernels.decode_triton import paged_decode_attention_triton

        return paged_decode_attention_triton(
            query,
            key_cache,
            value_cache,
            block_tables,
            context_lens,
            scale,
            num_splits=num_splits,
            max_context_len=max_context_len,
            out=out,
            sliding_window=sliding_window,
            kv_scales=kv_scales,
        )
    if kv_scales is not None:  # the reference reads an fp8 pool dequantized
        key_cache, value_cache = dequantize_pool(key_cache, value_cache, query.dtype, kv_scales)
    return ref_paged_decode_attention(
        query, key_cache, value_cache, block_tables, context_lens, scale, out=out, sliding_window=sliding_window
    )


def paged_prefill_attention(
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
    backend: Backend = "triton",
    sliding_window: int = 0,
    kv_scales: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Prefill attention for packed new tokens ``query [num_new_tokens_total, H_q, D]``.

    ``max_query_len`` (host int) sizes the Triton grid; without it it is read from
    ``query_start_loc`` (one sync). ``sliding_window`` > 0: each query sees only the last that
    many keys (the Triton kernel skips the tiles before them). ``kv_scales``: an fp8 pool, as in
    :func:`paged_decode_attention`.
    """
    if _use_triton(backend):
        from kvbench.kernels.prefill_triton import paged_prefill_attention_triton

        return paged_prefill_attention_triton(
            query,
            key_cache,
            value_cache,
            block_tables,
            query_start_loc,
            context_lens,
            scale,
            max_query_len=max_query_len,
            out=out,
            sliding_window=sliding_window,
            kv_scales=kv_scales,
        )
    if kv_scales is not None:  # the reference reads an fp8 pool dequantized
        key_cache, value_cache = dequantize_pool(key_cache, value_cache, query.dtype, kv_scales)
    return ref_paged_prefill_attention(
        query, key_cache, value_cache, block_tables, query_start_loc, context_lens, scale, out=out,
        sliding_window=sliding_window,
    )


def contiguous_decode_attention(
    query: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    start_slots: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float,
    *,
    num_splits: int | None = None,
    max_context_len: int | None = None,
    out: torch.Tensor | None = None,
    backend: Backend = "triton",
) -> torch.Tensor:
    """Decode attention for sequences stored at slots ``[start, start + context_len)``.

    ``max_context_len`` (host int) informs the automatic ``num_splits``; without it
    ``context_lens.max()`` is read (one sync).
    """
    if _use_triton(backend):
        return contiguous_decode_attention_triton(
            query,
            key_cache,
            value_cache,
            start_slots,
            context_lens,
            scale,
            num_splits=num_splits,
            max_context_len=max_context_len,
            out=out,
        )
    return contiguous_decode_attention_torch(
        query, key_cache, value_cache, start_slots, context_lens, scale, out=out
    )
