"""A decoder-only transformer's shape, and the sizes that follow from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from omegaconf import MISSING

from kvbench.kv_format import KVDtype, KVFormat


class AttentionKind(Enum):
    mha = "mha"  # a K and a V vector per KV head (multi-head, grouped-query, multi-query attention)
    mla = "mla"  # multi-head latent attention (DeepSeek-V2/V3): one latent + RoPE-key vector per token


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
    # KV format (kvbench/kv_format.py); `auto` stores K/V in dtype_bytes, as every run did before.
    kv_dtype: KVDtype = KVDtype.auto
    kv_quant_group_size: int = 32  # int8/int4: elements per scale and zero point (KIVI's G)
    kv_residual_tokens: int = 128  # int8/int4: newest tokens per sequence kept in full precision (KIVI's R)
    # Multi-head latent attention (attention=mla): what each layer caches per token is one vector of
    # kv_lora_rank + qk_rope_head_dim elements; the weights follow DeepSeek-V2's projections.
    attention: AttentionKind = AttentionKind.mha
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    q_lora_rank: int = 0  # 0: queries projected directly from the hidden state (DeepSeek-V2-Lite)
    # Mixture of experts (num_experts > 0): every layer after the first `first_dense_layers` has
    # num_experts routed experts (num_experts_per_tok active) and num_shared_experts always active,
    # each a gated MLP of moe_intermediate_size; the dense layers use intermediate_size.
    num_experts: int = 0
    num_experts_per_tok: int = 0
    num_shared_experts: int = 0
    moe_intermediate_size: int = 0
    first_dense_layers: int = 0
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
        if self.is_mla:
            for key in ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"):
                if getattr(c, key) < 1:
                    raise ValueError(f"model.{key}={getattr(c, key)} must be >= 1 with model.attention=mla")
        if c.num_experts and not (1 <= c.num_experts_per_tok <= c.num_experts and c.moe_intermediate_size >= 1
                                  and 0 <= c.first_dense_layers < c.num_layers):
            raise ValueError(
                f"model.num_experts={c.num_experts} needs 1 <= model.num_experts_per_tok <= num_experts "
                f"(got {c.num_experts_per_tok}), model.moe_intermediate_size >= 1 (got {c.moe_intermediate_size}) "
                f"and 0 <= model.first_dense_layers < num_layers (got {c.first_dense_layers})"
            )
        check_layer_pattern(c)
        self.kv_tensor_bytes_per_token()  # a format that does not fit the model's vectors fails here

    @property
    def layer_types(self) -> list[str]:
        """Each layer's attention type, in layer order."""
        return layer_types(self.config)

    @property
    def num_attention_layers(self) -> int:
        """Layers that keep K/V per token (full and sliding window)."""
        return sum(kind != NO_KV for kind in self.layer_types)

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
    def kv_format(self) -> KVFormat:
        c = self.config
        return KVFormat.of(c.kv_dtype, c.dtype_bytes, c.kv_quant_group_size, c.kv_residual_tokens)

    @property
    def is_mla(self) -> bool:
        return AttentionKind(self.config.attention) is AttentionKind.mla

    @property
    def kv_tensors_per_layer(self) -> int:
        """Cached vectors per token and layer: K and V, or MLA's one latent."""
        return 1 if self.is_mla else 2

    def kv_tensor_elements(self, tensor_parallel: int = 1) -> int:
        """Elements of one layer's K (or V, or MLA latent) of one token on one tensor-parallel worker.

        MLA's latent is shared by all heads, so every worker holds all of it (vLLM replicates it)."""
        c = self.config
        if self.is_mla:
            return c.kv_lora_rank + c.qk_rope_head_dim
        return max(1, c.num_kv_heads // tensor_parallel) * c.head_dim

    def kv_tensor_bytes_per_token(self, tensor_parallel: int = 1) -> int:
        """Pool bytes of one layer's K (or V, or latent) of one token on one worker, in the KV format."""
        return self.kv_format.vector_bytes(self.kv_tensor_elements(tensor_parallel))

    def kv_tensor_payload_bytes_per_token(self, tensor_parallel: int = 1) -> int:
        """As kv_tensor_bytes_per_token without the quantization scales (kept in tensors of their own)."""
        return self.kv_format.payload_bytes(self.kv_tensor_elements(tensor_parallel))

    def kv_layer_bytes_per_token(self, tensor_parallel: int = 1) -> int:
        """Pool bytes of one layer's cache of one token on one worker (K and V, or the latent)."""
        return self.kv_tensors_per_layer * self.kv_tensor_bytes_per_token(tensor_parallel)

    @property
    def kv_bytes_per_token(self) -> int:
        """The cache of one token over all attention layers (one copy: MLA's replicas under TP are the
        budget's concern)."""
        return self.num_attention_layers * self.kv_layer_bytes_per_token()

    def kv_pool_bytes_per_token(self, tensor_parallel: int = 1, num_layers: int | None = None) -> int:
        """Bytes a token takes over all tensor-parallel workers in `num_layers` layers (default: every
        attention layer; a window-aware page holds one layer group): K/V heads split, an MLA latent replicated."""
        layers = self.num_attention_layers if num_layers is None else num_layers
        return layers * self.kv_layer_bytes_per_token() * (tensor_parallel if self.is_mla else 1)

    def kv_residual_bytes_per_seq(self, tensor_parallel: int = 1) -> int:
        """The full-precision residual window of one running sequence, all layers and workers.

        KIVI keeps a request's newest `kv_residual_tokens` tokens in full precision. kvbench accounts
        it as a staging buffer per running sequence beside the block pool (every token also has its
        quantized slot in the pool, written when it leaves the window): `kv_budget` takes
        `max_num_seqs` such buffers off the KV budget before cutting it into blocks, so bytes per
        token in the pool stay one number for every position and every strategy.
        """
        fmt = self.kv_format
        if not fmt.residual_tokens:
            return 0
        per_worker = self.num_attention_layers * self.kv_tensors_per_layer * fmt.residual_bytes(
            self.kv_tensor_elements(tensor_parallel))
        return fmt.residual_tokens * per_worker * tensor_parallel

    def _attention_params(self) -> int:
        c = self.config
        if self.is_mla:
            qk_head_dim = c.qk_nope_head_dim + c.qk_rope_head_dim
            q = (c.hidden_size * c.q_lora_rank + c.q_lora_rank * c.num_heads * qk_head_dim if c.q_lora_rank
                 else c.hidden_size * c.num_heads * qk_head_dim)
            kv_down = c.hidden_size * (c.kv_lora_rank + c.qk_rope_head_dim)
            kv_up = c.kv_lora_rank * c.num_heads * (c.qk_nope_head_dim + c.v_head_dim)
            return q + kv_down + kv_up + c.num_heads * c.v_head_dim * c.hidden_size
        return c.hidden_size * (c.num_heads + 2 * c.num_kv_heads) * c.head_dim + c.num_heads * c.head_dim * c.hidden_size

    def _dense_mlp_params(self) -> int:
        c = self.config
        return (3 if MLP(c.mlp) is MLP.gated else 2) * c.hidden_size * c.intermediate_size

    def _moe_mlp_params(self, num_routed: int) -> int:
        """One MoE layer's MLP weights with `num_routed` routed experts, shared experts and the router."""
        c = self.config
        expert = 3 * c.hidden_size * c.moe_intermediate_size
        return (num_routed + c.num_shared_experts) * expert + c.hidden_size * c.num_experts

    @property
    def num_moe_layers(self) -> int:
        c = self.config
        return c.num_layers - c.first_dense_layers if c.num_experts else 0

    @property
    def layer_params(self) -> int:
        """Weights of one dense layer's projections (norms are negligible)."""
        return self._attention_params() + self._dense_mlp_params()

    def _layers_params(self, num_routed: int) -> int:
        c = self.config
        moe = self.num_moe_layers
        return (c.num_layers - moe) * self.layer_params + moe * (self._attention_params() + self._moe_mlp_params(num_routed))

    @property
    def embedding_params(self) -> int:
        c = self.config
        return c.vocab_size * c.hidden_size * (1 if c.tie_word_embeddings else 2)

    @property
    def num_params(self) -> int:
        return self._layers_params(self.config.num_experts) + self.embedding_params

    @property
    def num_active_params(self) -> int:
        """Parameters one token uses: every expert but the routed ones it is not sent to."""
        return self._layers_params(self.config.num_experts_per_tok) + self.embedding_params

    @property
    def weight_bytes(self) -> int:
        """All weights in memory (every expert)."""
        return self.num_params * self.config.dtype_bytes

    @property
    def active_weight_bytes(self) -> int:
        """Weights one token reads (the roofline's per-step weight bytes; equal to weight_bytes when dense).

        For an MoE batch this is a lower bound: different tokens route to different experts."""
        return self.num_active_params * self.config.dtype_bytes

    @property
    def flops_per_token(self) -> int:
        """Matmul FLOPs of one token through all layers (active experts only), attention scores excluded."""
        return 2 * self._layers_params(self.config.num_experts_per_tok)

    @property
    def lm_head_flops(self) -> int:
        """FLOPs of the logits of one sampled token."""
        return 2 * self.config.vocab_size * self.config.hidden_size

    @property
    def attention_flops_per_pair(self) -> int:
        """FLOPs of one (query token, key token) pair over all layers: QK^T and PV.

        MLA in its absorbed form (how FlashMLA and vLLM decode): every head scores the query against
        the latent + RoPE key and sums the latents, so per head 2 * (kv_lora_rank + qk_rope_head_dim)
        + 2 * kv_lora_rank FLOPs."""
        c = self.config
        if self.is_mla:
            return 2 * c.num_layers * c.num_heads * (2 * c.kv_lora_rank + c.qk_rope_head_dim)
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
