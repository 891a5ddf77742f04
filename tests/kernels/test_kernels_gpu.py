"""GPU variants: fp16 / bf16 (and exact fp32) kernels at realistic head sizes against the float64
reference, plus CUDA-graph capture of decode. Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch

from kvbench.kernels import (
    contiguous_decode_attention,
    copy_blocks,
    paged_decode_attention,
    paged_prefill_attention,
    ref_paged_decode_attention,
    ref_paged_prefill_attention,
    store_kv,
)
from kvbench.kernels.synthetic import paged_batch, random_kv_pool, relative_error

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
pytest.importorskip("triton")

TOLERANCE = {torch.float16: 1e-2, torch.bfloat16: 2e-2, torch.float32: 1e-5}
DTYPES = list(TOLERANCE)
# (q heads, kv heads): MHA, GQA 8:1, MQA
HEADS = [(32, 32), (32, 4), (16, 1)]


def _inputs(
    context_lens: list[int],
    block_size: int,
    num_q_heads: int,
    num_kv_heads: int,
    head_dim: int,
    dtype: torch.dtype,
    num_query_rows: int,
    seed: int = 0,
):
    gen = torch.Generator().manual_seed(seed)
    batch = paged_batch(context_lens, block_size, spare_blocks=4, generator=gen, device="cuda")
    key_cache, value_cache = random_kv_pool(
        batch.num_blocks,
        block_size,
        num_kv_heads,
        head_dim,
        dtype=dtype,
        device="cuda",
        generator=gen,
    )
    query = torch.randn((num_query_rows, num_q_heads, head_dim), generator=gen).to("cuda", dtype)
    return batch, key_cache, value_cache, query


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("heads", HEADS, ids=lambda h: f"{h[0]}q{h[1]}kv")
@pytest.mark.parametrize("block_size", [1, 16, 256])
@pytest.mark.parametrize("num_splits", [1, 4, None])
def test_decode_gpu(
    dtype: torch.dtype, heads: tuple[int, int], block_size: int, num_splits: int | None
) -> None:
    context_lens = [1, 16, 257, 3000, 4096]
    batch, kc, vc, q = _inputs(context_lens, block_size, *heads, 128, dtype, len(context_lens))
    out = torch.full_like(q, float("nan"))
    paged_decode_attention(
        q, kc, vc, batch.block_tables, batch.context_lens, 128**-0.5, num_splits=num_splits, out=out
    )
    ref = ref_paged_decode_attention(
        q.double(), kc.double(), vc.double(), batch.block_tables, batch.context_lens, 128**-0.5
    )
    assert relative_error(out, ref) < TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("heads", HEADS, ids=lambda h: f"{h[0]}q{h[1]}kv")
@pytest.mark.parametrize("head_dim", [64, 128, 256])
def test_prefill_gpu(dtype: torch.dtype, heads: tuple[int, int], head_dim: int) -> None:
    context_lens, q_lens = [700, 1024, 300, 65], [700, 200, 1, 64]
    batch, kc, vc, q = _inputs(context_lens, 16, *heads, head_dim, dtype, sum(q_lens))
    starts = torch.tensor(
        [0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32, device="cuda"
    )
    out = torch.full_like(q, float("nan"))
    paged_prefill_attention(
        q, kc, vc, batch.block_tables, starts, batch.context_lens, head_dim**-0.5, out=out
    )
    ref = ref_paged_prefill_attention(
        q.double(),
        kc.double(),
        vc.double(),
        batch.block_tables,
        starts,
        batch.context_lens,
        head_dim**-0.5,
    )
    assert relative_error(out, ref) < TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_contiguous_gpu_matches_paged(dtype: torch.dtype, backend: str) -> None:
    context_lens = [5, 2048, 777]
    batch = paged_batch(context_lens, 16, shuffle=False, device="cuda")
    gen = torch.Generator().manual_seed(3)
    kc, vc = random_kv_pool(batch.num_blocks, 16, 4, 128, dtype=dtype, device="cuda", generator=gen)
    q = torch.randn((3, 32, 128), generator=gen).to("cuda", dtype)
    start_slots = batch.block_tables[:, 0].long() * 16
    out = contiguous_decode_attention(
        q, kc, vc, start_slots, batch.context_lens, 0.1, backend=backend
    )
    ref = ref_paged_decode_attention(
        q.double(), kc.double(), vc.double(), batch.block_tables, batch.context_lens, 0.1
    )
    assert relative_error(out, ref) < TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_cache_ops_gpu(dtype: torch.dtype) -> None:
    kc, vc = random_kv_pool(64, 16, 8, 128, dtype=dtype, device="cuda")
    key = torch.randn(100, 8, 128, device="cuda", dtype=dtype)
    value = torch.randn(100, 8, 128, device="cuda", dtype=dtype)
    slots = torch.randperm(64 * 16, device="cuda")[:100]
    ref_k, ref_v = kc.clone(), vc.clone()
    store_kv(key, value, kc, vc, slots)
    store_kv(key, value, ref_k, ref_v, slots, backend="torch")
    src, dst = torch.arange(0, 20, device="cuda"), torch.arange(40, 60, device="cuda")
    copy_blocks(kc, vc, src, dst)
    copy_blocks(ref_k, ref_v, src, dst, backend="torch")
    assert torch.equal(kc, ref_k) and torch.equal(vc, ref_v)


def test_decode_is_cuda_graph_capturable() -> None:
    """Split-K decode with host-side hints captures and replays with new lengths (no sync)."""
    batch, kc, vc, q = _inputs([2000, 100], 16, 32, 4, 128, torch.float16, 2)
    context_lens = batch.context_lens.clone()
    out = torch.empty_like(q)

    def step() -> None:
        paged_decode_attention(
            q, kc, vc, batch.block_tables, context_lens, 0.1, num_splits=4, out=out
        )

    step()  # compile outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    context_lens.copy_(torch.tensor([1500, 7], dtype=torch.int32))
    graph.replay()
    torch.cuda.synchronize()
    ref = ref_paged_decode_attention(
        q.double(), kc.double(), vc.double(), batch.block_tables, context_lens, 0.1
    )
    assert relative_error(out, ref) < TOLERANCE[torch.float16]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("window", [128, 1000, 4096])
@pytest.mark.parametrize("num_splits", [1, 4, None])
def test_windowed_decode_gpu(dtype: torch.dtype, window: int, num_splits: int | None) -> None:
    context_lens = [1, 100, 1500, 4096, 9000]
    batch, kc, vc, q = _inputs(context_lens, 16, 32, 8, 128, dtype, len(context_lens))
    out = paged_decode_attention(
        q, kc, vc, batch.block_tables, batch.context_lens, 128**-0.5, num_splits=num_splits, sliding_window=window
    )
    ref = ref_paged_decode_attention(
        q.double(), kc.double(), vc.double(), batch.block_tables, batch.context_lens, 128**-0.5, sliding_window=window
    )
    assert relative_error(out, ref) < TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("window", [128, 1000])
def test_windowed_prefill_gpu(dtype: torch.dtype, window: int) -> None:
    context_lens, q_lens = [2000, 1024, 300, 65], [2000, 200, 1, 64]
    batch, kc, vc, q = _inputs(context_lens, 16, 32, 8, 128, dtype, sum(q_lens))
    starts = torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32, device="cuda")
    out = paged_prefill_attention(
        q, kc, vc, batch.block_tables, starts, batch.context_lens, 128**-0.5, sliding_window=window
    )
    ref = ref_paged_prefill_attention(
        q.double(), kc.double(), vc.double(), batch.block_tables, starts, batch.context_lens, 128**-0.5,
        sliding_window=window,
    )
    assert relative_error(out, ref) < TOLERANCE[dtype]
