"""A decoder-only transformer's shape, and the sizes that follow from it."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    # Per-layer attention types, repeated over the layers (layer i has pattern[i % len(pattern)]):
    # "full", "sliding" (attends to the last `sliding_window` tokens) or "none" (no KV: a Mamba or
    # linear-attention layer with a fixed state of `state_bytes_per_layer` per request). Empty: all full.
    layer_pattern: list[str] = field(default_factory=list)
    sliding_window: int = 0
    state_bytes_per_layer: int = 0


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
        check_layer_pattern(c)

    @property
    def layer_types(self) -> list[str]:
        """Each layer's attention type, in layer order."""
        return layer_types(self.config)

    @property
    def num_attention_layers(self) -> int:
        """Layers that keep K/V per token (full and sliding window)."""
        return sum(kind != NO_KV for kind in self.layer_types)

    @property
    def kv_bytes_per_layer_token(self) -> int:
        """K and V of one token in one attention layer."""
        c = self.config
        return 2 * c.num_kv_heads * c.head_dim * c.dtype_bytes

    @property
    def state_bytes_per_request(self) -> int:
        """The fixed state of a request's layers without KV (Mamba: convolution + SSM state)."""
        return self.layer_types.count(NO_KV) * self.config.state_bytes_per_layer

    @property
    def kv_groups(self) -> list[KVGroup]:
        """The attention layers grouped as vLLM's hybrid KV cache manager does (see `kv_groups`)."""
        return kv_groups(self.layer_types, self.config.sliding_window)

    @property
    def has_windowed_layers(self) -> bool:
        return any(kind != FULL for kind in self.layer_types)

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V of one token over all layers."""
        return self.num_attention_layers * self.kv_bytes_per_layer_token

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


FULL, SLIDING, NO_KV = "full", "sliding", "none"
LAYER_TYPES = (FULL, SLIDING, NO_KV)


@dataclass(frozen=True)
class KVGroup:
    """Attention layers that share one block table: same type, same window, `num_layers` of them.

    `sliding_window` is 0 for full attention. Every group of a model has the same `num_layers`, so
    a block (page) of any group takes the same bytes: vLLM's uniform page split.
    """

    sliding_window: int
    num_layers: int

    @property
    def is_sliding(self) -> bool:
        return self.sliding_window > 0


def layer_types(config: ModelConfig) -> list[str]:
    pattern = list(config.layer_pattern) or [FULL]
    return [pattern[i % len(pattern)] for i in range(config.num_layers)]


def sliding_windows(config: ModelConfig) -> list[int]:
    """Each layer's attention window in tokens, 0 where it attends to everything."""
    return [config.sliding_window if kind == SLIDING else 0 for kind in layer_types(config)]


def check_layer_pattern(config: ModelConfig) -> None:
    for kind in config.layer_pattern:
        if kind not in LAYER_TYPES:
            raise ValueError(f"model.layer_pattern has {kind!r}: each layer is one of {', '.join(LAYER_TYPES)}")
    kinds = set(layer_types(config))
    if SLIDING in kinds and config.sliding_window < 1:
        raise ValueError(f"model.sliding_window={config.sliding_window}: sliding layers need a window of >= 1 token")
    if kinds == {NO_KV}:
        raise ValueError("model.layer_pattern has no attention layer: kvbench needs at least one layer with KV")
    if NO_KV in kinds and config.state_bytes_per_layer < 1:
        raise ValueError(f"model.state_bytes_per_layer={config.state_bytes_per_layer}: layers of type 'none' need their state size")


def kv_groups(types: list[str], sliding_window: int) -> list[KVGroup]:
    """Split the attention layers into groups of equal size, full-attention groups first.

    As vLLM 0.33.0 (`kv_cache_planning`, uniform page size): the group size is the smallest number
    of layers of one type (the largest when no type has 1.5 times as many as another), and each
    type's layers fill as many groups of that size as they need, the last one padded: a padded
    group still takes a whole page, which is what uniform pages cost. A model with one type gets
    one group of all its attention layers, the table every strategy has.
    """
    counts = {FULL: types.count(FULL), SLIDING: types.count(SLIDING)}
    present = {kind: n for kind, n in counts.items() if n}
    smallest, largest = min(present.values()), max(present.values())
    group_size = largest if largest < smallest * 1.5 else smallest
    groups = []
    for kind, n in present.items():
        window = sliding_window if kind == SLIDING else 0
        groups += [KVGroup(window, group_size)] * -(-n // group_size)
    return groups
