"""Triton paged prefill attention vs the float64 torch reference: plain prefill (no cached
prefix), prefix-cache hits and chunked prefill (q_len < context_len), mixed in one packed batch,
over MHA / GQA 4:1 / MQA and block sizes 1, 16, 64 with shuffled block tables."""

from __future__ import annotations

import math

import pytest
import torch

from kvbench.kernels import paged_prefill_attention, ref_paged_prefill_attention
from kvbench.kernels.synthetic import paged_batch, random_kv_pool, relative_error

pytest.importorskip("triton")

FP32_TOLERANCE = 1e-5


def run_prefill_case(
    num_q_heads: int,
    num_kv_heads: int,
    head_dim: int,
    block_size: int,
    context_lens: list[int],
    q_lens: list[int],
    *,
    pass_max_query_len: bool = False,
    seed: int = 0,
) -> None:
    gen = torch.Generator().manual_seed(seed)
    batch = paged_batch(context_lens, block_size, spare_blocks=2, generator=gen)
    key_cache, value_cache = random_kv_pool(
        batch.num_blocks, block_size, num_kv_heads, head_dim, dtype=torch.float32, generator=gen
    )
    query = torch.randn((sum(q_lens), num_q_heads, head_dim), generator=gen)
    starts = torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32)
    scale = head_dim**-0.5
    out = torch.full_like(query, math.nan)
    paged_prefill_attention(
        query,
        key_cache,
        value_cache,
        batch.block_tables,
        starts,
        batch.context_lens,
        scale,
        max_query_len=max(q_lens) if pass_max_query_len else None,
        out=out,
    )
    ref = ref_paged_prefill_attention(
        query.double(),
        key_cache.double(),
        value_cache.double(),
        batch.block_tables,
        starts,
        batch.context_lens,
        scale,
    )
    assert not out.isnan().any(), "some output elements were never written"
    assert relative_error(out, ref) < FP32_TOLERANCE


# (q heads, kv heads, head_dim, block_size)
HEADS = {
    "mha-bs16": (4, 4, 32, 16),
    "gqa4-bs1": (8, 2, 32, 1),
    "mqa-bs64": (4, 1, 32, 64),
}
# (context lens, new-token counts): prefix = context - new.
BATCHES = {
    "no-prefix": ([5, 70, 1], [5, 70, 1]),
    "cached-prefix": ([64, 150, 17], [3, 20, 1]),
    "chunked": ([130, 40, 200], [66, 40, 150]),
}


@pytest.mark.parametrize("batch", BATCHES.values(), ids=BATCHES.keys())
@pytest.mark.parametrize("heads", HEADS.values(), ids=HEADS.keys())
def test_prefill_matches_reference(
    heads: tuple[int, int, int, int], batch: tuple[list[int], list[int]]
) -> None:
    run_prefill_case(*heads, *batch)


@pytest.mark.parametrize("head_dim", [80, 160])
def test_prefill_wide_odd_head_dim_and_idle_sequence(head_dim: int) -> None:
    """Non-power-of-two head_dim with wide fp32 rows (64- and 32-row tiles), and a sequence
    with no new tokens in the batch."""
    run_prefill_case(8, 2, head_dim, 16, [33, 12, 80], [33, 0, 17], pass_max_query_len=True)
