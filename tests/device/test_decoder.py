"""The decoder over the KV pool, step by step, equals the dense model on every model variant."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from kvbench.device.decoder import Decoder
from kvbench.device.dense_reference import dense_logits
from kvbench.device.kv_pool import KVPool
from kvbench.device.step_inputs import StepInputsBuilder
from kvbench.device.step_runner import StepRunner
from kvbench.device.weights import random_weights, weight_bytes
from kvbench.model_spec import MLP, ModelConfig, ModelSpec

TINY = ModelConfig(
    name="t", num_layers=2, hidden_size=32, num_heads=4, num_kv_heads=2, head_dim=8,
    intermediate_size=48, vocab_size=97, max_model_len=64,
)
VARIANTS = {
    "gqa": TINY,
    "mha": dataclasses.replace(TINY, num_kv_heads=4),
    "mqa_plain_mlp_tied": dataclasses.replace(TINY, num_kv_heads=1, mlp=MLP.plain, tie_word_embeddings=True),
}
CPU = torch.device("cpu")


def decoder_of(config: ModelConfig, seed: int = 0) -> Decoder:
    return Decoder(config, random_weights(config, torch.float64, CPU, seed))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("block_size", [1, 4, 16])
def test_chunked_prefill_then_decodes_equal_the_dense_model(variant, block_size):
    config = VARIANTS[variant]
    decoder = decoder_of(config)
    pool = KVPool(config, 40, block_size, torch.float64, CPU)
    runner = StepRunner(decoder, pool, "torch", CPU)
    rng = np.random.default_rng(1)
    table = rng.permutation(40).tolist()  # the sequence's blocks, scattered over the pool
    tokens = rng.integers(0, config.vocab_size, 13).tolist()
    logits = {}
    # The prompt's first 7 tokens in one step, the other 6 (which sample) in the next...
    for start, end in ((0, 7), (7, 13)):
        builder = StepInputsBuilder(block_size)
        builder.add_prefill(np.array(tokens[start:end]), start, table, sample=end == 13, what="seq")
        out = runner.run(builder.build([]), keep_logits=True)
    logits[12] = out.logits[0]
    # ...then four greedy decodes.
    for position in range(13, 17):
        tokens.append(int(out.token_ids[0]))
        builder = StepInputsBuilder(block_size)
        builder.add_decode(tokens[position], position, table, what="seq")
        out = runner.run(builder.build([]), keep_logits=True)
        logits[position] = out.logits[0]

    dense = dense_logits(decoder, tokens).numpy()
    for position, row in logits.items():
        np.testing.assert_allclose(row, dense[position], rtol=0, atol=1e-10)


def test_random_weights_depend_only_on_the_seed():
    first, again, other = (random_weights(TINY, torch.float32, CPU, seed).tensors() for seed in (3, 3, 4))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])
    assert sum(t.numel() * t.element_size() for t in first) == weight_bytes(TINY, torch.float32)


def test_weight_bytes_agree_with_the_model_spec():
    for config in VARIANTS.values():
        norms = (2 * config.num_layers + 1) * config.hidden_size
        assert weight_bytes(config, torch.float16) == (ModelSpec(config).num_params + norms) * 2


def test_odd_head_dim_is_rejected():
    config = dataclasses.replace(TINY, head_dim=7)
    with pytest.raises(ValueError, match="model.head_dim=7 must be even"):
        Decoder(config, random_weights(config, torch.float32, CPU, 0))
