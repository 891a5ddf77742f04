"""A decoder-only transformer's shape, and the sizes that follow from it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from omegaconf import MISSING


class MLP(Enum):
    gated = "gated"  # SwiGLU: gate, up and down projections (Llama, Mistral)
    plain = "plain"  # fc1 and fc2 with ReLU/GELU (OPT, GPT-2)


@dataclass
class ModelConfig:
    name: str = MISSING
    num_layers: int = MISSING
    hidden_size: int = MISSING
    num_heads: int = MISSING
    num_kv_heads: int = MISSING
    head_dim: int = MISSING
    intermediate_size: int = MISSING
    vocab_size: int = MISSING
    max_model_len: int = MISSING
    mlp: MLP = MLP.gated
    tie_word_embeddings: bool = False
    dtype_bytes: int = 2  # weights and KV cache (fp16/bf16)


@dataclass(frozen=True)
class ModelSpec:
    """Derived sizes of a model. All counts are for the whole model (before tensor parallelism)."""

    config: ModelConfig

    def __post_init__(self) -> None:
        c = self.config
        for key in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim", "vocab_size", "max_model_len"):
            if getattr(c, key) < 1:
                raise ValueError(f"model.{key}={getattr(c, key)} must be >= 1")
        if c.num_heads % c.num_kv_heads:
            raise ValueError(f"model.num_heads={c.num_heads} is not a multiple of model.num_kv_heads={c.num_kv_heads}")

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V of one token over all layers."""
        c = self.config
        return 2 * c.num_layers * c.num_kv_heads * c.head_dim * c.dtype_bytes

    @property
    def layer_params(self) -> int:
        """Weights of one layer's projections (norms are negligible)."""
        c = self.config
        attention = c.hidden_size * (c.num_heads + 2 * c.num_kv_heads) * c.head_dim + c.num_heads * c.head_dim * c.hidden_size
        mlp = (3 if MLP(c.mlp) is MLP.gated else 2) * c.hidden_size * c.intermediate_size
        return attention + mlp

    @property
    def embedding_params(self) -> int:
        c = self.config
        return c.vocab_size * c.hidden_size * (1 if c.tie_word_embeddings else 2)

    @property
    def num_params(self) -> int:
        return self.config.num_layers * self.layer_params + self.embedding_params

    @property
    def weight_bytes(self) -> int:
        return self.num_params * self.config.dtype_bytes

    @property
    def flops_per_token(self) -> int:
        """Matmul FLOPs of one token through all layers, attention scores excluded."""
        return 2 * self.config.num_layers * self.layer_params

    @property
    def lm_head_flops(self) -> int:
        """FLOPs of the logits of one sampled token."""
        return 2 * self.config.vocab_size * self.config.hidden_size

    @property
    def attention_flops_per_pair(self) -> int:
        """FLOPs of one (query token, key token) pair over all layers: QK^T and PV."""
        c = self.config
        return 4 * c.num_layers * c.num_heads * c.head_dim
