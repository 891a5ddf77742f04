"""paged_prefix on sliding-window models: each layer group's hit rules, exact block ids on tiny pools.

A sliding group's hit needs only the blocks the next token attends to, so a prefix whose head
was evicted still hits; a full group needs every block. The step-by-step agreement with vLLM's
hybrid coordinator is tests/fidelity/test_vllm_sliding_window.py; the shared state machine runs
paged_prefix with sliding groups in test_layer_groups.py.
"""

from __future__ import annotations

import pytest

from kvbench.model_spec import KVGroup
from kvbench.strategies.group_tables import NULL_BLOCK_ID
from kvbench.strategies.invariants import check
from kvbench.strategies.tiers import TierSpec, TiersConfig
from kvbench.strategies.window_prefix import WindowPrefixStrategy
from kvbench.tokens import TokenSequence

from .conftest import Seq
from .test_layer_groups import make_grouped

FULL, WINDOW_4 = KVGroup(0, 1), KVGroup(4, 1)


def decode_then_free(strategy, seq: Seq, num_prompt_tokens: int, num_tokens: int) -> None:
    """Prefill, decode one token at a time (blocks leave the window and stay cached), free."""
    strategy.allocate(seq, 0, num_prompt_tokens)
    for computed in range(num_prompt_tokens, num_tokens):
        strategy.allocate(seq, computed, 1)
        check(strategy)
    strategy.free(seq.seq_id, num_tokens)
    check(strategy)


def test_paged_prefix_builds_the_grouped_strategy_for_windowed_models_only():
    assert isinstance(make_grouped("paged_prefix", 8, 2, groups=[FULL, WINDOW_4]), WindowPrefixStrategy)
    assert not isinstance(make_grouped("paged_prefix", 8, 2, groups=[KVGroup(0, 40)]), WindowPrefixStrategy)
    assert not isinstance(make_grouped("paged_prefix", 8, 2, groups=None), WindowPrefixStrategy)


def test_a_window_only_hit_survives_the_eviction_of_its_head(seq_factory):
    """Mistral's case (one sliding group, window 4, blocks of 2): a hit needs the last
    ceil(3 / 2) = 2 blocks before its end; blocks before them may be gone."""
    s = make_grouped("paged_prefix", 8, 2, groups=[WINDOW_4])
    text = TokenSequence.synthetic("text", 16)
    decode_then_free(s, Seq(0, text, 12), 4, 12)  # blocks 0-3 left the window first, then 5, 4 freed
    assert s.pool.free_block_ids() == [6, 7, 0, 1, 2, 3, 5, 4]
    s.allocate(seq_factory(1, 8, 8), 0, 8)  # takes 6, 7 and evicts 0, 1: the text's head
    b = Seq(2, text, 14)
    assert s.cached_prefix_tokens(b, 13) == 12  # 6 blocks: the last 2 (4, 5) are cached
    assert s.allocate(b, 12, 1) == 1
    assert s.tables.group_block_tables(2) == [[NULL_BLOCK_ID] * 4 + [4, 5, 2]]
    check(s)


def test_an_interleaved_hit_needs_every_full_block_and_the_windows_last_blocks(seq_factory):
    """Gemma-2's case: a full and a sliding group; the sliding group's head was evicted, the full
    group's blocks are all cached, so the hit is the whole cached text and the new table holds
    NULL_BLOCK where the sliding group's blocks lie before the window."""
    s = make_grouped("paged_prefix", 16, 2, groups=[FULL, WINDOW_4])
    text = TokenSequence.synthetic("text", 16)
    decode_then_free(s, Seq(0, text, 12), 4, 12)
    assert s.pool.free_block_ids() == [12, 13, 14, 15, 2, 3, 5, 7, 10, 8, 6, 4, 1, 0, 11, 9]
    s.allocate(seq_factory(1, 6, 6), 0, 6)  # 3 blocks per group: evicts 2 and 3, the sliding head
    b = Seq(2, text, 14)
    assert s.cached_prefix_tokens(b, 13) == 12
    assert s.allocate(b, 12, 1) == 1
    assert s.tables.group_block_tables(2) == [[0, 1, 4, 6, 8, 10, 5], [NULL_BLOCK_ID] * 4 + [9, 11, 7]]
    check(s)
    # The full group holds every block again; the sliding group holds the window only.
    assert s.tables.group_held_blocks == [3 + 7, 3 + 3]


def test_the_hit_is_what_every_group_agrees_on(seq_factory):
    """The full group's hit is its leading run of cached blocks; the sliding group then looks for
    its last blocks before that end, not before its own longer run."""
    s = make_grouped("paged_prefix", 16, 2, groups=[FULL, WINDOW_4])
    text = TokenSequence.synthetic("text", 16)
    decode_then_free(s, Seq(0, text, 12), 4, 12)
    s.allocate(seq_factory(1, 12, 12), 0, 12)  # 6 blocks per group: evicts all but the last 4 freed
    assert s.pool.free_block_ids() == [1, 0, 11, 9]
    # Full: blocks 0, 1 (tokens 0-3) then a miss; sliding at 4 tokens needs its blocks 0 and 1
    # (evicted), though its blocks 4 and 5 (9, 11) are still cached: no hit.
    assert s.cached_prefix_tokens(Seq(2, text, 14), 13) == 0


def test_tiers_are_refused_on_windowed_models():
    with pytest.raises(ValueError, match="strategy.tiers"):
        make_grouped("paged_prefix", 8, 2, groups=[FULL, WINDOW_4], tiers=TiersConfig(cpu=TierSpec(1 << 20, 25e9, 0.0)))
