"""Tiny pools and sequences for strategy tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from omegaconf import OmegaConf

from kvbench.strategies import STRATEGIES, KVCacheStrategy
from kvbench.tokens import Synthetic, TokenSequence


@dataclass
class Seq:
    """What a strategy sees of a sequence (the SeqView protocol)."""

    seq_id: int
    stream: TokenSequence
    final_num_kv_tokens: int


def make_strategy(name: str, num_blocks: int, block_size: int, max_model_len: int = 64, **options) -> KVCacheStrategy:
    config = OmegaConf.to_object(OmegaConf.structured(STRATEGIES.schema(name)))
    config.block_size = block_size
    for key, value in options.items():
        setattr(config, key, value)
    return STRATEGIES.get(name)(config, num_blocks, max_model_len)


def make_seq(seq_id: int, prompt: TokenSequence | int, final: int, gen: object = None) -> Seq:
    """A sequence whose prompt is `prompt` (or that many tokens of its own) followed by its output."""
    if isinstance(prompt, int):
        prompt = TokenSequence.synthetic(("prompt", seq_id), prompt)
    return Seq(seq_id, prompt + TokenSequence.synthetic(("gen", seq_id if gen is None else gen), None), final)


@pytest.fixture
def strategy_factory():
    return make_strategy


@pytest.fixture
def seq_factory():
    return make_seq


@pytest.fixture
def seq_type():
    return Seq


@pytest.fixture
def shared_prompt():
    """A prompt two requests can share: a common head then a per-request tail."""

    def build(head_tokens: int, tail_tokens: int, tail_key: object) -> TokenSequence:
        return TokenSequence((Synthetic("head", head_tokens), Synthetic(("tail", tail_key), tail_tokens)))

    return build
