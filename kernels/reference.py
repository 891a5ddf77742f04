"""Plain torch implementations of every kernel: the test oracle and the CPU execution path.

They gather each sequence's context through its block table into a dense ``[context_len,
num_kv_heads, head_dim]`` tensor and run textbook softmax attention on it, one sequence at a
time. They accept float64 (tests compute references in float64), compute in
``promote(dtype, float32)`` so fp16/bf16 inputs accumulate in fp32 like the kernels, and return
the query dtype. GQA is expressed by viewing the query heads as ``[num_kv_heads, group_size]``:
no K/V is repeated.

They read lengths on the host (``.tolist()``), so on a GPU they synchronise: fine for tests and
CPU serving, never a benchmark contender.
"""

from __future__ import annotations

import torch

from kvbench.kernels.validation import (
    FP8_KV_DTYPES,
    TORCH_DTYPES,
    check_block_tables,
    check_copy_blocks_args,
    check_decode_args,
    check_out,
    check_prefill_args,
    check_store_kv_args,
)


def store_kv_torch(
    key: torch.Tensor,
    value: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    slot_mapping: torch.Tensor,
) -> None:
    """Write ``key[i]``/``value[i]`` to slot ``slot_mapping[i]``; negative slots are skipped."""
    cache = check_store_kv_args(key, value, key_cache, value_cache, slot_mapping, TORCH_DTYPES)
    keep = slot_mapping >= 0
    slots = slot_mapping[keep]
    flat_shape = (-1, cache.num_kv_heads, cache.head_dim)
    key_cache.view(flat_shape).index_copy_(0, slots, key[keep])
    value_cache.view(flat_shape).index_copy_(0, slots, value[keep])


def copy_blocks_torch(
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    src_block_ids: torch.Tensor,
    dst_block_ids: torch.Tensor,
) -> None:
    """Copy whole blocks ``src_block_ids[i] -> dst_block_ids[i]`` in both pools (copy-on-write)."""
    check_copy_blocks_args(key_cache, value_cache, src_block_ids, dst_block_ids, TORCH_DTYPES + FP8_KV_DTYPES)
    if key_cache.dtype in FP8_KV_DTYPES:  # copied as bytes: index_copy_ has no fp8 kernel on CPU
        key_cache, value_cache = key_cache.view(torch.uint8), value_cache.view(torch.uint8)
    # index_select reads every source before index_copy_ writes: safe even if ids overlap.
    key_cache.index_copy_(0, dst_block_ids, key_cache.index_select(0, src_block_ids))
    value_cache.index_copy_(0, dst_block_ids, value_cache.index_select(0, src_block_ids))


def gather_context(
    cache: torch.Tensor, block_table_row: torch.Tensor, context_len: int
) -> torch.Tensor:
    """Dense ``[context_len, num_kv_heads, head_dim]`` copy of one sequence's cached K or V."""
    block_size = cache.shape[1]
    num_blocks = -(-context_len // block_size)
    block_ids = block_table_row[:num_blocks].long()
    return cache[block_ids].flatten(0, 1)[:context_len]


def attend(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    scale: float,
    num_cached: int,
    sliding_window: int = 0,
) -> torch.Tensor:
    """Softmax attention of ``query [q_len, H_q, D]`` over ``keys/values [ctx, H_kv, D]``.

    Query token ``t`` sits at position ``num_cached + t`` and sees keys at positions ``<=`` that
    (causal); in decode ``q_len == 1`` and ``num_cached == ctx - 1``, so it sees everything.
    With ``sliding_window`` W > 0 it sees only the last W of them (positions > its own - W).
    """
    q_len, num_q_heads, head_dim = query.shape
    ctx_len, num_kv_heads, _ = keys.shape
    compute_dtype = torch.promote_types(query.dtype, torch.float32)
    q = query.to(compute_dtype).view(q_len, num_kv_heads, num_q_heads // num_kv_heads, head_dim)
    k = keys.to(compute_dtype)
    v = values.to(compute_dtype)
    scores = torch.einsum("thgd,nhd->hgtn", q, k) * scale
    q_pos = num_cached + torch.arange(q_len, device=query.device)
    k_pos = torch.arange(ctx_len, device=query.device)
    hidden = k_pos[None, :] > q_pos[:, None]
    if sliding_window:
        hidden |= k_pos[None, :] <= q_pos[:, None] - sliding_window
    scores = scores.masked_fill(hidden, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    out = torch.einsum("hgtn,nhd->thgd", probs, v)
    return out.reshape(q_len, num_q_heads, head_dim).to(query.dtype)


def ref_paged_decode_attention(
    query: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float,
    *,
    out: torch.Tensor | None = None,
    sliding_window: int = 0,
) -> torch.Tensor:
    """Torch version of :func:`kvbench.kernels.paged_decode_attention`."""
    check_decode_args(query, key_cache, value_cache, context_lens, TORCH_DTYPES)
    check_block_tables(block_tables, query.shape[0], key_cache.device)
    out = check_out(out, query)
    for seq, ctx_len in enumerate(context_lens.tolist()):
        if ctx_len == 0:
            out[seq] = 0
            continue
        keys = gather_context(key_cache, block_tables[seq], ctx_len)
        values = gather_context(value_cache, block_tables[seq], ctx_len)
        out[seq] = attend(query[seq : seq + 1], keys, values, scale, ctx_len - 1, sliding_window)[0]
    return out


def ref_paged_prefill_attention(
    query: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    block_tables: torch.Tensor,
    query_start_loc: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float,
    *,
    out: torch.Tensor | None = None,
    sliding_window: int = 0,
) -> torch.Tensor:
    """Torch version of :func:`kvbench.kernels.paged_prefill_attention`."""
    check_prefill_args(
        query, key_cache, value_cache, block_tables, query_start_loc, context_lens, TORCH_DTYPES
    )
    out = check_out(out, query)
    starts = query_start_loc.tolist()
    if starts[0] != 0 or starts[-1] != query.shape[0]:
        raise ValueError(
            f"query_start_loc must run from 0 to num_tokens={query.shape[0]}, got {starts}"
        )
    for seq, ctx_len in enumerate(context_lens.tolist()):
        start, end = starts[seq], starts[seq + 1]
        q_len = end - start
        if not 0 <= q_len <= ctx_len:
            raise ValueError(
                f"sequence {seq}: {q_len} new tokens but context_len {ctx_len} "
                "(need 0 <= q_len <= context_len)"
            )
        if q_len == 0:
            continue
        keys = gather_context(key_cache, block_tables[seq], ctx_len)
        values = gather_context(value_cache, block_tables[seq], ctx_len)
        out[start:end] = attend(query[start:end], keys, values, scale, ctx_len - q_len, sliding_window)
    return out
