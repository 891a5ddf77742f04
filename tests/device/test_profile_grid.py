"""Synthetic steps of a given shape: what `kvbench profile` times."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvbench.device.profile_grid import BlockSupply, StepShape, grid_shapes, prefill_pieces, synthetic_step


@given(st.integers(1, 5000), st.integers(1, 5000))
def test_prefill_pieces_hold_the_tokens_and_their_mean_keys(num_tokens, keys_per_token):
    pieces = prefill_pieces(num_tokens, keys_per_token)
    assert sum(q for _, q in pieces) == num_tokens
    assert all(prefix >= 0 and q >= 1 for prefix, q in pieces)
    keys = sum(q * prefix + q * (q + 1) / 2 for prefix, q in pieces)
    assert keys / num_tokens == pytest.approx(keys_per_token, abs=0.5)  # each prefix rounds to a token


def test_a_synthetic_step_has_its_shape():
    rng = np.random.default_rng(0)
    inputs = synthetic_step(StepShape(3, 20, 50, 10), 4, 100, "paged", 97, rng)
    assert inputs.num_prefill_tokens == 50
    assert inputs.decode_context_lens.tolist() == [20, 20, 20]
    q_lens = np.diff(inputs.prefill_query_start_loc)
    keys = (q_lens * (inputs.prefill_context_lens - q_lens) + q_lens * (q_lens + 1) / 2).sum()
    assert keys / 50 == pytest.approx(10, abs=0.5)
    assert len(inputs.sample_rows) == len(q_lens) + 3
    assert len(set(inputs.slot_mapping.tolist())) == len(inputs.slot_mapping)  # the pool is big enough


def test_contiguous_tables_are_runs_and_paged_ones_are_shuffled():
    rng = np.random.default_rng(0)
    runs = BlockSupply(10, "contiguous", rng)
    assert runs.take(4).tolist() == [0, 1, 2, 3]
    assert runs.take(4).tolist() == [4, 5, 6, 7]
    assert runs.take(4).tolist() == [0, 1, 2, 3]  # a run never wraps around the pool's end
    shuffled = BlockSupply(10, "paged", rng).take(10)
    assert sorted(shuffled.tolist()) == list(range(10)) and shuffled.tolist() != list(range(10))
    with pytest.raises(ValueError, match="a run of 11 blocks does not fit in a pool of 10"):
        runs.take(11)


def test_the_grid_skips_what_does_not_matter():
    shapes = list(grid_shapes([0, 2], [8, 16], [0, 4], [3]))
    assert shapes == [
        StepShape(0, 0, 4, 3),
        StepShape(2, 8, 0, 0), StepShape(2, 8, 4, 3),
        StepShape(2, 16, 0, 0), StepShape(2, 16, 4, 3),
    ]
    with pytest.raises(ValueError, match="a step computes at least one token"):
        StepShape(0, 0, 0, 0)
