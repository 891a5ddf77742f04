"""The decoder's non-attention pieces: RMSNorm, rotary position embedding, the MLP.

Reductions and rotations run in float32 at least (float64 for float64 runs), as serving engines
do for fp16/bf16: the results are cast back to the activations' dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kvbench.device.weights import LayerWeights
from kvbench.model_spec import MLP

RMS_NORM_EPS = 1e-5
ROPE_THETA = 10000.0


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def rms_norm(x: torch.Tensor, gain: torch.Tensor, eps: float = RMS_NORM_EPS) -> torch.Tensor:
    xf = x.to(compute_dtype(x.dtype))
    normed = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + eps)
    return normed.to(x.dtype) * gain


def rotary_cos_sin(positions: torch.Tensor, head_dim: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin `[tokens, head_dim / 2]` of each token's rotation angles, in the compute dtype.

    Computed from the positions at every call rather than from a table, so any position works
    (the profile's synthetic steps may go past max_model_len).
    """
    compute = compute_dtype(dtype)
    exponents = torch.arange(0, head_dim, 2, device=positions.device, dtype=compute) / head_dim
    inv_freq = ROPE_THETA ** -exponents
    angles = positions.to(compute)[:, None] * inv_freq[None, :]
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate `x [tokens, heads, head_dim]` by its tokens' angles (GPT-NeoX / Llama half split)."""
    xf = x.to(cos.dtype)
    first, second = xf.chunk(2, dim=-1)
    c, s = cos[:, None, :], sin[:, None, :]
    return torch.cat((first * c - second * s, second * c + first * s), dim=-1).to(x.dtype)


def mlp(x: torch.Tensor, layer: LayerWeights, kind: MLP) -> torch.Tensor:
    hidden = x @ layer.mlp_in
    if kind is MLP.gated:
        gate, up = hidden.chunk(2, dim=-1)
        hidden = F.silu(gate) * up
    else:
        hidden = F.relu(hidden)
    return hidden @ layer.mlp_out
