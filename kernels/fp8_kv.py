"""An fp8 KV pool: store K/V with a per-tensor scale, dequantize them in the attention kernels.

The pool tensors are ``torch.float8_e4m3fn`` (or ``float8_e5m2``) of the usual shape
``[num_blocks, block_size, num_kv_heads, head_dim]``: one byte per element. A stored value is
``x / scale`` saturated at the format's largest finite value (``quant_reference.quantize_fp8``),
and the kernels read back ``stored * scale`` in the query's dtype (vLLM's ``kv_cache_dtype=fp8``
with ``k_scale``/``v_scale``). The public functions of kvbench.kernels take such a pool with
``kv_scales=(k_scale, v_scale)``:

* Triton: the store kernel quantizes as it writes (cache_ops_triton.py), the decode and prefill
  kernels dequantize each K/V tile as they load it (``KV_FP8`` in attention_tile.py), so attention
  moves one byte per element; block copies move the bytes (kvbench.kernels.copy_blocks).
* torch: quantize with ``quantize_fp8`` and scatter the bytes; attention dequantizes the pool and
  runs the reference (a test oracle, not a fast path).

On CUDA, Triton converts fp8 e4m3 natively from compute capability 8.9 (Ada, Hopper) on; older
GPUs are refused in one line. Under ``TRITON_INTERPRET=1`` the kernels run on CPU with fp32
queries: the store writes the same bytes as torch (tests/kernels/test_fp8_kv.py).
"""

from __future__ import annotations

import torch

from kvbench.kernels.quant_reference import quantize_fp8
from kvbench.kernels.validation import FP8_KV_DTYPES, check_store_kv_args


def store_kv_fp8(
    key: torch.Tensor, value: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
    slot_mapping: torch.Tensor, k_scale: float, v_scale: float, *, backend: str = "triton",
) -> None:
    """Quantize ``key[i]``/``value[i]`` and write them to slot ``slot_mapping[i]`` (negative: skipped)."""
    if backend == "triton":
        from kvbench.kernels.cache_ops_triton import store_kv_triton

        store_kv_triton(key, value, key_cache, value_cache, slot_mapping, kv_scales=(k_scale, v_scale))
        return
    cache = check_store_kv_args(key, value, key_cache, value_cache, slot_mapping, FP8_KV_DTYPES)
    keep = slot_mapping >= 0
    slots = slot_mapping[keep]
    flat_shape = (-1, cache.num_kv_heads, cache.head_dim)
    # Scattered as bytes: index_copy_ has no fp8 kernel on CPU, and a byte copy is exact anyway.
    for cache_tensor, x, kv_scale in ((key_cache, key, k_scale), (value_cache, value, v_scale)):
        stored = quantize_fp8(x[keep], cache_tensor.dtype, kv_scale)
        cache_tensor.view(torch.uint8).view(flat_shape).index_copy_(0, slots, stored.view(torch.uint8))


def dequantize(cache: torch.Tensor, dtype: torch.dtype, scale: float) -> torch.Tensor:
    """The whole fp8 pool as `dtype` values (the torch path's input to the reference)."""
    if cache.dtype not in FP8_KV_DTYPES:
        raise TypeError(f"KV cache dtype {cache.dtype} is not one of {FP8_KV_DTYPES}")
    return cache.to(dtype) * scale


def dequantize_pool(key_cache: torch.Tensor, value_cache: torch.Tensor, dtype: torch.dtype,
                    kv_scales: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Both fp8 pools as `dtype` values, each with its scale (the torch backend's reference input)."""
    return dequantize(key_cache, dtype, kv_scales[0]), dequantize(value_cache, dtype, kv_scales[1])
