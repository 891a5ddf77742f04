"""Decode attention for sequences stored as one contiguous run of slots: the no-paging baseline.

A contiguous-reservation strategy gives each sequence the slots
``[start_slots[s], start_slots[s] + context_lens[s])`` of the pool (its block table would be a
run of consecutive block ids). Reading it needs no block-table indirection, so it measures what
paging costs. Two implementations, because "the best contiguous kernel" must be both fast and a
fair comparison:

* ``backend="triton"`` (**the baseline kvbench uses**): the paged decode kernel of
  :mod:`kvbench.kernels.decode_triton` compiled with ``CONTIGUOUS=True``: slot = start + position.
  Same tiles, same GQA packing, same split-K policy and reduction, same fp32 accumulation; only the
  address computation differs. Paged minus contiguous time is therefore the cost of paging alone
  (the extra table load and the loss of address contiguity across pages), not of two different
  kernels. It handles ragged batches in one launch and is CUDA-graph capturable.
* ``backend="torch"``: ``torch.nn.functional.scaled_dot_product_attention`` over *views* into the
  pool (no gather copy), via :func:`sdpa_decode_over_views`. GQA needs no K/V repeat: one decode
  token's ``group_size`` query heads are passed as a query of length ``group_size`` against its
  KV head (no causal mask in decode, so this is exact). On CUDA, SDPA dispatches fp16/bf16 to
  FlashAttention-2, the strongest vendor-neutral contiguous kernel in torch. But SDPA takes one
  length per call: a ragged batch needs one call per sequence (launch bound) or padding plus a
  mask (which disables FlashAttention). The CPU path here loops per sequence; the benchmark
  calls it once over a uniform batch laid out at evenly spaced starts, where it is at its best.

``benchmarks/bench_kernels.py`` times both on uniform batches and reports the faster as "best
contiguous" next to the paged kernel: the Triton mode isolates the paging overhead, SDPA shows
how far the Triton kernels are from FlashAttention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kvbench.kernels.validation import (
    TORCH_DTYPES,
    check_decode_args,
    check_out,
    check_start_slots,
)


def sdpa_decode_over_views(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scale: float
) -> torch.Tensor:
    """SDPA for one decode token per sequence over strided K/V views.

    ``query [B, H_q, D]``, ``keys/values [B, L, H_kv, D]`` (any strides with a contiguous last
    dimension, e.g. views into the pool); returns ``[B, H_q, D]``.
    """
    batch, num_q_heads, head_dim = query.shape
    num_kv_heads = keys.shape[2]
    q = query.reshape(batch, num_kv_heads, num_q_heads // num_kv_heads, head_dim)
    out = F.scaled_dot_product_attention(
        q, keys.transpose(1, 2), values.transpose(1, 2), scale=scale
    )
    return out.reshape(batch, num_q_heads, head_dim)


def contiguous_decode_attention_torch(
    query: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    start_slots: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """SDPA over pool views, one sequence at a time (lengths are read on the host)."""
    cache, _ = check_decode_args(query, key_cache, value_cache, context_lens, TORCH_DTYPES)
    check_start_slots(start_slots, query.shape[0], key_cache.device)
    out = check_out(out, query)
    flat_shape = (-1, cache.num_kv_heads, cache.head_dim)
    keys_flat = key_cache.view(flat_shape)
    values_flat = value_cache.view(flat_shape)
    for seq, (start, ctx_len) in enumerate(
        zip(start_slots.tolist(), context_lens.tolist(), strict=True)
    ):
        if ctx_len == 0:
            out[seq] = 0
            continue
        run = slice(start, start + ctx_len)
        out[seq] = sdpa_decode_over_views(
            query[seq : seq + 1], keys_flat[None, run], values_flat[None, run], scale
        )[0]
    return out


def contiguous_decode_attention_triton(
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
) -> torch.Tensor:
    """The decode kernel in contiguous mode (imports triton on first call)."""
    from kvbench.kernels.decode_triton import launch_decode

    return launch_decode(
        query,
        key_cache,
        value_cache,
        context_lens,
        scale,
        block_tables=None,
        start_slots=start_slots,
        num_splits=num_splits,
        max_context_len=max_context_len,
        out=out,
    )
