"""A decoder-only transformer's forward pass over packed tokens, with attention passed in.

The tokens of a step (several sequences' prefill chunks, then one token per decoding sequence)
are one packed batch `[tokens, hidden]`; everything but attention treats tokens independently.
Attention is a callable, so the same code runs over the paged KV pool (the step runner) and as
full causal attention without any cache (the dense reference): the two differ only there.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from kvbench.device.layers import apply_rotary, mlp, rms_norm, rotary_cos_sin
from kvbench.device.weights import DecoderWeights
from kvbench.model_spec import MLP, ModelConfig

# (layer index, q [tokens, num_heads, head_dim], k and v [tokens, num_kv_heads, head_dim])
#   -> attention output [tokens, num_heads, head_dim]
AttentionFn = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class Decoder:
    def __init__(self, config: ModelConfig, weights: DecoderWeights):
        if config.head_dim % 2:
            raise ValueError(f"model.head_dim={config.head_dim} must be even for rotary embeddings")
        self.config = config
        self.weights = weights
        self.mlp_kind = MLP(config.mlp)
        self.scale = config.head_dim**-0.5
        self._split = [
            config.num_heads * config.head_dim,
            config.num_kv_heads * config.head_dim,
            config.num_kv_heads * config.head_dim,
        ]

    @property
    def dtype(self) -> torch.dtype:
        return self.weights.embedding.dtype

    def forward(
        self, token_ids: torch.Tensor, positions: torch.Tensor, attention: AttentionFn, sample_rows: torch.Tensor
    ) -> torch.Tensor:
        """Logits `[len(sample_rows), vocab]` of the packed tokens at `sample_rows`."""
        c, w = self.config, self.weights
        num_tokens = token_ids.shape[0]
        h = w.embedding[token_ids]
        cos, sin = rotary_cos_sin(positions, c.head_dim, h.dtype)
        for index, layer in enumerate(w.layers):
            x = rms_norm(h, layer.attn_norm)
            q, k, v = (x @ layer.qkv).split(self._split, dim=-1)
            q = apply_rotary(q.view(num_tokens, c.num_heads, c.head_dim), cos, sin)
            k = apply_rotary(k.view(num_tokens, c.num_kv_heads, c.head_dim), cos, sin)
            v = v.view(num_tokens, c.num_kv_heads, c.head_dim)
            out = attention(index, q, k, v)
            h = h + out.reshape(num_tokens, c.num_heads * c.head_dim) @ layer.o_proj
            h = h + mlp(rms_norm(h, layer.mlp_norm), layer, self.mlp_kind)
        return rms_norm(h[sample_rows], w.final_norm) @ w.lm_head
