"""The fp8 KV path: store with a per-tensor scale, dequantize in the Triton decode kernel.

On CPU the kernel runs under TRITON_INTERPRET=1 with fp32 queries (tests/conftest.py sets it); the
oracle is the float64 reference over the dequantized pool, so the kernel's only allowed error is
fp32 rounding. The GPU variants (fp16/bf16 queries, realistic heads) skip without CUDA; no GPU was
lent when this was written, so they are unmeasured."""

from __future__ import annotations

import math

import pytest
import torch

from kvbench.kernels import ref_paged_decode_attention
from kvbench.kernels.fp8_kv import paged_decode_attention_fp8, quantize_fp8, store_kv_fp8
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
    paged_decode_attention_fp8(query, key_cache, value_cache, batch.block_tables, batch.context_lens, 32**-0.5,
                               k_scale, v_scale, num_splits=num_splits, out=out, backend="triton")
    assert relative_error(out, expected(query, key_cache, value_cache, batch, 32**-0.5, k_scale, v_scale)) < FP32_TOLERANCE
    torch_out = paged_decode_attention_fp8(query, key_cache, value_cache, batch.block_tables, batch.context_lens,
                                           32**-0.5, k_scale, v_scale, backend="torch")
    assert relative_error(torch_out, out) < FP32_TOLERANCE


def test_store_quantizes_with_the_scale_and_skips_negative_slots():
    key_cache = torch.zeros((2, 4, 1, 2), dtype=torch.float8_e4m3fn)
    value_cache = torch.zeros_like(key_cache)
    key = torch.tensor([[[1.0, -2.0]], [[900.0, 0.3]], [[5.0, 5.0]]])
    store_kv_fp8(key, key * 2, key_cache, value_cache, torch.tensor([5, 0, -1]), 2.0, 4.0)
    assert key_cache.view(-1, 2)[5].float().tolist() == [0.5, -1.0]
    assert key_cache.view(-1, 2)[0].float().tolist() == [448.0, 0.15625]  # 450 saturates; 0.15 rounds
    assert value_cache.view(-1, 2)[5].float().tolist() == [0.5, -1.0]
    assert int((key_cache.float() != 0).sum()) == 4  # the third token (slot -1) was not written


def test_an_fp8_pool_with_a_query_of_another_shape_is_refused():
    gen = torch.Generator().manual_seed(0)
    batch = paged_batch([3], 16, generator=gen)
    key_cache, value_cache = fp8_pool(batch, 16, 2, 16, torch.float8_e4m3fn, 1.0, 1.0, gen)
    with pytest.raises(ValueError):
        paged_decode_attention_fp8(torch.randn(1, 4, 32), key_cache, value_cache, batch.block_tables,
                                   batch.context_lens, 0.25, 1.0, 1.0, backend="torch")
    with pytest.raises(TypeError):
        paged_decode_attention_fp8(torch.randn(1, 4, 16, dtype=torch.float64), key_cache.float(),
                                   value_cache.float(), batch.block_tables, batch.context_lens, 0.25, 1.0, 1.0)


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
    out = paged_decode_attention_fp8(query, key_cache, value_cache, batch.block_tables, batch.context_lens,
                                     128**-0.5, 0.05, 0.02, num_splits=num_splits)
    assert relative_error(out, expected(query, key_cache, value_cache, batch, 128**-0.5, 0.05, 0.02)) < tolerance
