"""The fp8 KV path: the store kernel quantizes with a per-tensor scale, the decode and prefill
kernels dequantize, block copies move the bytes.

On CPU the kernels run under TRITON_INTERPRET=1 with fp32 queries (tests/conftest.py sets it); the
attention oracle is the float64 reference over the dequantized pool, so the kernels' only allowed
error is fp32 rounding, and the store must write torch's very bytes. The GPU variants (fp16/bf16
queries, realistic heads) skip without CUDA; no GPU was lent when this was written, so they are
unmeasured (scripts/gpu_measure.sh runs them)."""

from __future__ import annotations

import math

import pytest
import torch

from kvbench.kernels import (
    copy_blocks, paged_decode_attention, paged_prefill_attention, ref_paged_decode_attention, ref_paged_prefill_attention,
    store_kv,
)
from kvbench.kernels.fp8_kv import store_kv_fp8
from kvbench.kernels.quant_reference import quantize_fp8
from kvbench.kernels.synthetic import paged_batch, random_kv_pool, relative_error

pytest.importorskip("triton")

FP32_TOLERANCE = 1e-5
FP8 = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}


def fp8_pool(batch, block_size, num_kv_heads, head_dim, fp8, k_scale, v_scale, gen, device="cpu"):
    key, value = random_kv_pool(batch.num_blocks, block_size, num_kv_heads, head_dim, dtype=torch.float32,
                                generator=gen)
    return quantize_fp8(key, fp8, k_scale).to(device), quantize_fp8(value, fp8, v_scale).to(device)


def expected(query, key_cache, value_cache, batch, scale, k_scale, v_scale):
    return ref_paged_decode_attention(
        query.double(), key_cache.double() * k_scale, value_cache.double() * v_scale,
        batch.block_tables.to(query.device), batch.context_lens.to(query.device), scale)


@pytest.mark.parametrize("fp8", FP8.values(), ids=FP8.keys())
@pytest.mark.parametrize("num_splits", [1, 3])
@pytest.mark.parametrize("heads, block_size", [((4, 4), 16), ((8, 2), 1), ((4, 1), 64)])
def test_triton_fp8_decode_matches_the_dequantized_reference(fp8, num_splits, heads, block_size):
    gen = torch.Generator().manual_seed(0)
    batch = paged_batch([1, 16, 33, 130], block_size, spare_blocks=2, generator=gen)
    k_scale, v_scale = 0.05, 0.02  # random values of about +-3 become about +-60 and +-150 in fp8
    key_cache, value_cache = fp8_pool(batch, block_size, heads[1], 32, fp8, k_scale, v_scale, gen)
    query = torch.randn((4, heads[0], 32), generator=gen)
    out = torch.full_like(query, math.nan)
    paged_decode_attention(query, key_cache, value_cache, batch.block_tables, batch.context_lens, 32**-0.5,
                           kv_scales=(k_scale, v_scale), num_splits=num_splits, out=out, backend="triton")
    assert relative_error(out, expected(query, key_cache, value_cache, batch, 32**-0.5, k_scale, v_scale)) < FP32_TOLERANCE
    torch_out = paged_decode_attention(query, key_cache, value_cache, batch.block_tables, batch.context_lens,
                                       32**-0.5, kv_scales=(k_scale, v_scale), backend="torch")
    assert relative_error(torch_out, out) < FP32_TOLERANCE


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_store_quantizes_with_the_scale_and_skips_negative_slots(backend):
    key_cache = torch.zeros((2, 4, 1, 2), dtype=torch.float8_e4m3fn)
    value_cache = torch.zeros_like(key_cache)
    key = torch.tensor([[[1.0, -2.0]], [[900.0, 0.3]], [[5.0, 5.0]]])
    store_kv_fp8(key, key * 2, key_cache, value_cache, torch.tensor([5, 0, -1]), 2.0, 4.0, backend=backend)
    assert key_cache.view(-1, 2)[5].float().tolist() == [0.5, -1.0]
    assert key_cache.view(-1, 2)[0].float().tolist() == [448.0, 0.15625]  # 450 saturates; 0.15 rounds
    assert value_cache.view(-1, 2)[5].float().tolist() == [0.5, -1.0]
    assert int((key_cache.float() != 0).sum()) == 4  # the third token (slot -1) was not written


def awkward_values(num_tokens, gen, num_heads=2, head_dim=32):
    """K/V rows that hit every rounding case: ties and carries into the exponent (124.5 rounds to
    128 in e4m3), subnormals and the smallest normals, values past the largest finite, zeros."""
    x = torch.randn((num_tokens, num_heads, head_dim), generator=gen) * torch.logspace(-12, 17, head_dim, base=2.0)
    x.view(-1)[:12] = torch.tensor([124.5, -31.9, 7.75, 2.0**-9 * 1.5, 2.0**-7 * 0.99, 2.0**-17, 1e6, -1e6, 0.0,
                                    -0.0, 3.0 * 2.0**-9, 448.5])
    return x


@pytest.mark.parametrize("fp8", FP8.values(), ids=FP8.keys())
@pytest.mark.parametrize("kv_scale", [1.0, 0.03])
def test_the_triton_store_writes_torchs_bytes(fp8, kv_scale):
    gen = torch.Generator().manual_seed(1)
    key, value = awkward_values(40, gen), awkward_values(40, gen)
    slots = torch.randperm(64, generator=gen)[:40]
    slots[3] = -1
    caches = {}
    for backend in ("triton", "torch"):
        key_cache = torch.zeros((4, 16, 2, 32), dtype=fp8)
        value_cache = torch.zeros_like(key_cache)
        store_kv(key, value, key_cache, value_cache, slots, kv_scales=(kv_scale, 2 * kv_scale), backend=backend)
        caches[backend] = (key_cache.view(torch.uint8), value_cache.view(torch.uint8))
    assert torch.equal(caches["triton"][0], caches["torch"][0])
    assert torch.equal(caches["triton"][1], caches["torch"][1])


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_block_copies_move_fp8_bytes(backend):
    gen = torch.Generator().manual_seed(2)
    key_cache, value_cache = (quantize_fp8(t, torch.float8_e5m2, 0.5) for t in random_kv_pool(6, 4, 2, 16,
                                                                                            dtype=torch.float32, generator=gen))
    before_k, before_v = key_cache.clone(), value_cache.clone()
    copy_blocks(key_cache, value_cache, torch.tensor([0, 2]), torch.tensor([5, 1]), backend=backend)
    for after, before in ((key_cache, before_k), (value_cache, before_v)):
        expected = before.clone()
        expected[5], expected[1] = before[0], before[2]
        assert torch.equal(after.view(torch.uint8), expected.view(torch.uint8))


@pytest.mark.parametrize("fp8", FP8.values(), ids=FP8.keys())
@pytest.mark.parametrize("window", [0, 7])
def test_triton_fp8_prefill_matches_the_dequantized_reference(fp8, window):
    gen = torch.Generator().manual_seed(3)
    context_lens, q_lens = [70, 33, 5], [70, 9, 1]  # a plain prefill, a prefix hit, one token
    batch = paged_batch(context_lens, 16, spare_blocks=2, generator=gen)
    k_scale, v_scale = 0.05, 0.02
    key_cache, value_cache = fp8_pool(batch, 16, 2, 32, fp8, k_scale, v_scale, gen)
    query = torch.randn((sum(q_lens), 8, 32), generator=gen)
    starts = torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32)
    out = torch.full_like(query, math.nan)
    paged_prefill_attention(query, key_cache, value_cache, batch.block_tables, starts, batch.context_lens, 32**-0.5,
                            out=out, kv_scales=(k_scale, v_scale), sliding_window=window)
    ref = ref_paged_prefill_attention(query.double(), key_cache.double() * k_scale, value_cache.double() * v_scale,
                                      batch.block_tables, starts, batch.context_lens, 32**-0.5, sliding_window=window)
    assert relative_error(out, ref) < FP32_TOLERANCE
    torch_out = paged_prefill_attention(query, key_cache, value_cache, batch.block_tables, starts, batch.context_lens,
                                        32**-0.5, kv_scales=(k_scale, v_scale), sliding_window=window, backend="torch")
    assert relative_error(torch_out, out) < FP32_TOLERANCE


def test_an_fp8_pool_with_a_query_of_another_shape_is_refused():
    gen = torch.Generator().manual_seed(0)
    batch = paged_batch([3], 16, generator=gen)
    key_cache, value_cache = fp8_pool(batch, 16, 2, 16, torch.float8_e4m3fn, 1.0, 1.0, gen)
    with pytest.raises(ValueError):
        paged_decode_attention(torch.randn(1, 4, 32), key_cache, value_cache, batch.block_tables,
                               batch.context_lens, 0.25, kv_scales=(1.0, 1.0), backend="torch")
    with pytest.raises(TypeError):
        paged_decode_attention(torch.randn(1, 4, 16, dtype=torch.float64), key_cache.float(),
                               value_cache.float(), batch.block_tables, batch.context_lens, 0.25, kv_scales=(1.0, 1.0))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype, tolerance", [(torch.float16, 1e-2), (torch.bfloat16, 2e-2)], ids=str)
@pytest.mark.parametrize("fp8", FP8.values(), ids=FP8.keys())
@pytest.mark.parametrize("num_splits", [1, 4, None])
def test_gpu_fp8_decode_matches_the_dequantized_reference(dtype, tolerance, fp8, num_splits):
    if torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("fp8 in Triton needs compute capability 8.9+")
    gen = torch.Generator().manual_seed(0)
    batch = paged_batch([1, 17, 256, 1000], 16, spare_blocks=4, generator=gen, device="cuda")
    key_cache, value_cache = fp8_pool(batch, 16, 8, 128, fp8, 0.05, 0.02, gen, device="cuda")
    query = torch.randn((4, 32, 128), generator=gen).to("cuda", dtype)
    out = paged_decode_attention(query, key_cache, value_cache, batch.block_tables, batch.context_lens,
                                 128**-0.5, kv_scales=(0.05, 0.02), num_splits=num_splits)
    assert relative_error(out, expected(query, key_cache, value_cache, batch, 128**-0.5, 0.05, 0.02)) < tolerance


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("fp8", FP8.values(), ids=FP8.keys())
def test_gpu_fp8_store_writes_torchs_bytes(dtype, fp8):
    if torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("fp8 in Triton needs compute capability 8.9+")
    gen = torch.Generator().manual_seed(0)
    key, value = (awkward_values(512, gen, 4, 128).to("cuda", dtype) for _ in range(2))
    slots = torch.randperm(64 * 16, generator=gen)[:512].to("cuda")
    caches = {}
    for backend in ("triton", "torch"):
        key_cache = torch.zeros((64, 16, 4, 128), dtype=fp8, device="cuda")
        value_cache = torch.zeros_like(key_cache)
        store_kv(key, value, key_cache, value_cache, slots, kv_scales=(0.05, 0.02), backend=backend)
        caches[backend] = (key_cache.view(torch.uint8), value_cache.view(torch.uint8))
    assert torch.equal(caches["triton"][0], caches["torch"][0])
    assert torch.equal(caches["triton"][1], caches["torch"][1])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype, tolerance", [(torch.float16, 1e-2), (torch.bfloat16, 2e-2)], ids=str)
@pytest.mark.parametrize("fp8", FP8.values(), ids=FP8.keys())
@pytest.mark.parametrize("window", [0, 128])
def test_gpu_fp8_prefill_matches_the_dequantized_reference(dtype, tolerance, fp8, window):
    if torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("fp8 in Triton needs compute capability 8.9+")
    gen = torch.Generator().manual_seed(0)
    context_lens, q_lens = [700, 300, 65], [700, 64, 1]
    batch = paged_batch(context_lens, 16, spare_blocks=4, generator=gen, device="cuda")
    key_cache, value_cache = fp8_pool(batch, 16, 8, 128, fp8, 0.05, 0.02, gen, device="cuda")
    starts = torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32, device="cuda")
    query = torch.randn((sum(q_lens), 32, 128), generator=gen).to("cuda", dtype)
    out = paged_prefill_attention(query, key_cache, value_cache, batch.block_tables, starts, batch.context_lens,
                                  128**-0.5, kv_scales=(0.05, 0.02), sliding_window=window)
    ref = ref_paged_prefill_attention(query.double(), key_cache.double() * 0.05, value_cache.double() * 0.02,
                                      batch.block_tables, starts, batch.context_lens, 128**-0.5, sliding_window=window)
    assert relative_error(out, ref) < tolerance
