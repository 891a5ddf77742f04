"""Seeded random weights of a decoder of the model's shape.

The device executor measures memory traffic and kernel time, and proves that strategies do not
change what the model computes; neither needs trained weights, only the right shapes and values
that keep activations in range. Each matrix is drawn N(0, 1 / fan_in), so every projection keeps
unit scale, the embedding N(0, 1), norm gains 1 + N(0, 0.1^2) (so that they matter).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kvbench.model_spec import MLP, ModelConfig

NORM_GAIN_STD = 0.1


@dataclass
class LayerWeights:
    attn_norm: torch.Tensor  # [hidden]
    qkv: torch.Tensor  # [hidden, (num_heads + 2 num_kv_heads) head_dim]: q, then k, then v
    o_proj: torch.Tensor  # [num_heads head_dim, hidden]
    mlp_norm: torch.Tensor  # [hidden]
    mlp_in: torch.Tensor  # gated: [hidden, 2 intermediate] (gate, then up); plain: [hidden, intermediate]
    mlp_out: torch.Tensor  # [intermediate, hidden]


@dataclass
class DecoderWeights:
    embedding: torch.Tensor  # [vocab, hidden]
    layers: list[LayerWeights]
    final_norm: torch.Tensor  # [hidden]
    lm_head: torch.Tensor  # [hidden, vocab]; with tied embeddings a view of the embedding

    def tensors(self) -> list[torch.Tensor]:
        layer_tensors = [t for layer in self.layers for t in vars(layer).values()]
        return [self.embedding, *layer_tensors, self.final_norm, self.lm_head]

    def to(self, dtype: torch.dtype) -> DecoderWeights:
        """A copy in `dtype` (the references of low-precision runs compute in float32)."""
        layers = [LayerWeights(**{k: v.to(dtype) for k, v in vars(layer).items()}) for layer in self.layers]
        embedding = self.embedding.to(dtype)
        tied = self.lm_head.data_ptr() == self.embedding.data_ptr()
        lm_head = embedding.t() if tied else self.lm_head.to(dtype)
        return DecoderWeights(embedding, layers, self.final_norm.to(dtype), lm_head)


def weight_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of one layer's matrices and vectors."""
    c = config
    mlp_in_width = 2 * c.intermediate_size if MLP(c.mlp) is MLP.gated else c.intermediate_size
    return {
        "attn_norm": (c.hidden_size,),
        "qkv": (c.hidden_size, (c.num_heads + 2 * c.num_kv_heads) * c.head_dim),
        "o_proj": (c.num_heads * c.head_dim, c.hidden_size),
        "mlp_norm": (c.hidden_size,),
        "mlp_in": (c.hidden_size, mlp_in_width),
        "mlp_out": (c.intermediate_size, c.hidden_size),
    }


def weight_bytes(config: ModelConfig, dtype: torch.dtype) -> int:
    """Bytes `random_weights` will allocate, known before allocating."""
    per_layer = sum(torch.Size(shape).numel() for shape in weight_shapes(config).values())
    embeddings = config.vocab_size * config.hidden_size * (1 if config.tie_word_embeddings else 2)
    return (config.num_layers * per_layer + embeddings + config.hidden_size) * dtype.itemsize


def random_weights(config: ModelConfig, dtype: torch.dtype, device: torch.device, seed: int) -> DecoderWeights:
    """Weights drawn on `device` from one generator seeded with `seed`: the same seed and device
    type give the same weights. Drawn in float32 and rounded to `dtype`, so runs in different
    dtypes share the same underlying values."""
    generator = torch.Generator(device=device).manual_seed(seed)

    def normal(shape: tuple[int, ...], std: float, mean: float = 0.0) -> torch.Tensor:
        values = torch.randn(shape, generator=generator, device=device, dtype=torch.float32)
        return (values * std + mean).to(dtype)

    def draw(shape: tuple[int, ...]) -> torch.Tensor:
        if len(shape) == 1:  # a norm gain
            return normal(shape, NORM_GAIN_STD, mean=1.0)
        return normal(shape, shape[0] ** -0.5)

    shapes = weight_shapes(config)
    embedding = normal((config.vocab_size, config.hidden_size), 1.0)
    layers = [LayerWeights(**{name: draw(shape) for name, shape in shapes.items()}) for _ in range(config.num_layers)]
    final_norm = draw((config.hidden_size,))
    if config.tie_word_embeddings:
        lm_head = embedding.t()
    else:
        lm_head = draw((config.hidden_size, config.vocab_size))
    return DecoderWeights(embedding, layers, final_norm, lm_head)
