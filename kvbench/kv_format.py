"""How one token's KV is stored: element width, quantization scales and the full-precision residual.

`model.kv_dtype` picks the format; every byte count of the KV cache goes through `KVFormat.vector_bytes`
(one layer's K, V or MLA latent of one token), so pools, pages and copies all agree.

| kv_dtype | element | scales per token (amortised) | residual |
|---|---|---|---|
| `auto` | `model.dtype_bytes` | none | none |
| `fp16`, `bf16` | 2 bytes | none | none |
| `fp8_e4m3`, `fp8_e5m2` | 1 byte | one fp32 scale per layer and tensor (not per token: 0) | none |
| `int8`, `int4` | 8 or 4 bits | fp16 scale + fp16 zero point per group of `kv_quant_group_size` elements | `kv_residual_tokens` |
| `nvfp4` | 4 bits (e2m1) | one fp8 e4m3 scale per 16 elements (+ one fp32 per tensor: 0 per token) | none |

int8/int4 follow KIVI (Liu et al., ICML'24): keys are quantized per channel (a group is G tokens of
one channel), values per token (a group is G channels of one token). Both put 4 bytes of scale and
zero point on every G elements, so a token's amortised bytes are the same on either axis:
`elements * bits / 8 + elements / G * 4` (exact when the block size is a multiple of G, which the
power-of-two defaults are). The newest tokens of a request, fewer than a whole key group, are kept
in full precision (KIVI's residual R, a multiple of G): see `residual_bytes_per_seq` for how the
pool accounts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class KVDtype(Enum):
    auto = "auto"  # the model's dtype (model.dtype_bytes): what every run did before formats existed
    fp16 = "fp16"
    bf16 = "bf16"
    fp8_e4m3 = "fp8_e4m3"
    fp8_e5m2 = "fp8_e5m2"
    int8 = "int8"
    int4 = "int4"
    nvfp4 = "nvfp4"


ZERO_POINT_SCALE_BYTES = 4  # int8/int4: an fp16 scale and an fp16 zero point per group
NVFP4_BLOCK = 16  # nvfp4: elements per micro-block sharing one fp8 e4m3 scale
NVFP4_SCALE_BYTES = 1


@dataclass(frozen=True)
class KVFormat:
    """One token's KV storage format; see the module docstring."""

    dtype: KVDtype
    element_bits: int
    group_size: int = 0  # elements sharing one scale (and zero point); 0: scales per tensor only
    scale_bytes_per_group: int = 0
    residual_tokens: int = 0  # newest tokens per running sequence kept in full precision
    full_bytes_per_element: int = 2  # the precision of the residual (the model's dtype)

    @classmethod
    def of(cls, dtype: KVDtype | str, dtype_bytes: int, group_size: int = 32, residual_tokens: int = 128) -> KVFormat:
        """The format `model.kv_dtype` names; `dtype_bytes` is the model's own (weights, residual)."""
        dtype = KVDtype(dtype)
        if dtype is KVDtype.auto:
            return cls(dtype, 8 * dtype_bytes, full_bytes_per_element=dtype_bytes)
        if dtype in (KVDtype.fp16, KVDtype.bf16):
            return cls(dtype, 16, full_bytes_per_element=dtype_bytes)
        if dtype in (KVDtype.fp8_e4m3, KVDtype.fp8_e5m2):
            return cls(dtype, 8, full_bytes_per_element=dtype_bytes)
        if dtype is KVDtype.nvfp4:
            return cls(dtype, 4, NVFP4_BLOCK, NVFP4_SCALE_BYTES, full_bytes_per_element=dtype_bytes)
        if group_size < 1:
            raise ValueError(f"model.kv_quant_group_size={group_size} must be >= 1 for model.kv_dtype={dtype.value}")
        if residual_tokens < 0:
            raise ValueError(f"model.kv_residual_tokens={residual_tokens} must be >= 0")
        bits = 8 if dtype is KVDtype.int8 else 4
        return cls(dtype, bits, group_size, ZERO_POINT_SCALE_BYTES, residual_tokens, dtype_bytes)

    @property
    def name(self) -> str:
        return self.dtype.value if self.dtype is not KVDtype.auto else f"auto({8 * self.full_bytes_per_element}-bit)"

    @property
    def is_quantized(self) -> bool:
        return self.element_bits < 8 * self.full_bytes_per_element or self.group_size > 0

    def payload_bytes(self, num_elements: int) -> int:
        """Bytes of the quantized elements alone (what a page of the element tensor holds per token)."""
        payload_bits = num_elements * self.element_bits
        if payload_bits % 8:
            raise ValueError(f"model.kv_dtype={self.dtype.value}: {num_elements} elements are not a whole number of bytes")
        return payload_bits // 8

    def vector_bytes(self, num_elements: int) -> int:
        """Pool bytes of one token's vector of `num_elements` (one layer's K, V or latent), scales included."""
        if self.group_size and num_elements % self.group_size:
            raise ValueError(
                f"model.kv_dtype={self.dtype.value}: a layer's {num_elements} KV elements per token (per worker) "
                f"are not a whole number of quantization groups of {self.group_size}"
            )
        groups = num_elements // self.group_size if self.group_size else 0
        return self.payload_bytes(num_elements) + groups * self.scale_bytes_per_group

    def residual_bytes(self, num_elements: int) -> int:
        """Full-precision bytes of one vector of the residual window (per token)."""
        return num_elements * self.full_bytes_per_element
