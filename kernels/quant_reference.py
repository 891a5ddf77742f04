"""Reference quantize/dequantize of K/V vectors in plain torch, one function per KV format.

`fake_quantize(x, fmt)` returns what a quantized cache gives back when `x` (``[num_tokens, heads,
head_dim]``) is stored and read: quantize, then dequantize, in `x`'s dtype. The device executor
applies it to every new K and V before they are stored, so the pool holds exactly the values a
quantized cache would return, the kernels stay the same, and the dense reference can apply the same
function to its K/V to give the very same numbers (see kvbench/device/dense_reference.py).

Every format here quantizes each token on its own (scales from that token's values, or fixed per
tensor), so what a token reads back never depends on where a strategy put it or which tokens share
its block: every strategy computes the same tokens at the same format.

- fp8 (e4m3, e5m2): one scale per tensor, fixed at 1.0 (vLLM's default `k_scale`/`v_scale` when no
  calibrated scales ship with the checkpoint); values saturate at the format's largest finite value.
- int8/int4: asymmetric, a scale and a zero point (fp16, as stored) per group of `group_size`
  consecutive channels of one token. This is KIVI's value layout; KIVI quantizes keys per channel
  over groups of tokens instead, which the byte count treats the same but this reference does not
  model, and it keeps no full-precision residual: every token is quantized (stricter than KIVI).
- nvfp4: e2m1 elements in micro-blocks of 16 channels, each with an fp8 e4m3 scale (amax / 6,
  rounded to e4m3); the per-tensor fp32 scale is fixed at 1.0.
"""

from __future__ import annotations

import torch

from kvbench.kv_format import NVFP4_BLOCK, KVDtype, KVFormat

FP8_DTYPES = {KVDtype.fp8_e4m3: torch.float8_e4m3fn, KVDtype.fp8_e5m2: torch.float8_e5m2}
FP8_PER_TENSOR_SCALE = 1.0
# The non-negative values of e2m1 (nvfp4's element); a block's scale maps its largest |x| to 6.
E2M1_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def fake_quantize(x: torch.Tensor, fmt: KVFormat) -> torch.Tensor:
    """`x` stored in format `fmt` and read back, in `x`'s dtype (a copy; `x` is not changed)."""
    if not fmt.is_quantized:
        return x
    if fmt.dtype in FP8_DTYPES:
        return fp8_round_trip(x, FP8_DTYPES[fmt.dtype], FP8_PER_TENSOR_SCALE)
    if fmt.dtype in (KVDtype.int8, KVDtype.int4):
        return int_group_round_trip(x, fmt.element_bits, fmt.group_size)
    if fmt.dtype is KVDtype.nvfp4:
        return nvfp4_round_trip(x)
    raise ValueError(f"model.kv_dtype={fmt.dtype.value} has no reference quantizer")


def quantize_fp8(x: torch.Tensor, fp8: torch.dtype, scale: float) -> torch.Tensor:
    """``x / scale`` in `fp8`, saturated at its largest finite value: what an fp8 cache stores.

    The division runs in at least fp32 and is rounded once, to fp8, as the store kernel (and
    vLLM's) does: a bf16 quotient rounded again to fp8 could differ in the last bit."""
    limit = torch.finfo(fp8).max
    wide = x.to(torch.promote_types(x.dtype, torch.float32))
    return (wide / scale).clamp(-limit, limit).to(fp8)


def fp8_round_trip(x: torch.Tensor, fp8: torch.dtype, scale: float) -> torch.Tensor:
    return quantize_fp8(x, fp8, scale).to(x.dtype) * scale


def _groups(x: torch.Tensor, group_size: int) -> torch.Tensor:
    if (x.shape[-2] * x.shape[-1]) % group_size:
        raise ValueError(f"{x.shape[-2]} heads x {x.shape[-1]} channels do not split into groups of {group_size}")
    return x.reshape(*x.shape[:-2], -1, group_size)  # a token's channels over all heads, in groups


def int_group_round_trip(x: torch.Tensor, bits: int, group_size: int) -> torch.Tensor:
    """Asymmetric uniform quantization to `bits` with an fp16 scale and zero point per group."""
    groups = _groups(x, group_size)
    levels = (1 << bits) - 1
    low = groups.amin(dim=-1, keepdim=True)
    high = groups.amax(dim=-1, keepdim=True)
    # The scale and the zero point (the group's minimum) are stored in fp16.
    scale = ((high - low) / levels).to(torch.float16).to(x.dtype)
    zero = low.to(torch.float16).to(x.dtype)
    safe_scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    codes = ((groups - zero) / safe_scale).round().clamp(0, levels)
    return (codes * scale + zero).reshape(x.shape)


def nvfp4_round_trip(x: torch.Tensor) -> torch.Tensor:
    blocks = _groups(x, NVFP4_BLOCK)
    amax = blocks.abs().amax(dim=-1, keepdim=True)
    scale = (amax / E2M1_VALUES[-1]).to(torch.float8_e4m3fn).to(x.dtype)
    safe_scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    grid = torch.tensor(E2M1_VALUES, dtype=x.dtype, device=x.device)
    magnitude = (blocks.abs() / safe_scale).clamp(max=E2M1_VALUES[-1])
    nearest = (magnitude.unsqueeze(-1) - grid).abs().argmin(dim=-1)  # ties go to the smaller value
    return (torch.sign(blocks) * grid[nearest] * scale).reshape(x.shape)
