"""The split-K policy: split only when programs are scarce, never into tiny splits."""

from __future__ import annotations

import pytest

from kvbench.kernels.splits import (
    MAX_SPLITS,
    MIN_TOKENS_PER_SPLIT,
    PROGRAMS_PER_SM,
    choose_num_splits,
)

H100_SMS = 132


def test_large_batches_do_not_split() -> None:
    assert choose_num_splits(256, 8, 32768, H100_SMS) == 1


def test_short_contexts_do_not_split() -> None:
    assert choose_num_splits(1, 8, MIN_TOKENS_PER_SPLIT - 1, H100_SMS) == 1


def test_small_batch_long_context_splits_to_fill_a_wave() -> None:
    splits = choose_num_splits(2, 8, 16384, H100_SMS)
    programs = 2 * 8 * splits
    wave = PROGRAMS_PER_SM * H100_SMS
    assert splits > 1
    # Close to a whole number of waves: neither a mostly idle device nor a straggler wave.
    assert 0.85 * wave <= programs <= wave
    assert 16384 / splits >= MIN_TOKENS_PER_SPLIT


def test_splits_are_capped_by_context_and_maximum() -> None:
    assert choose_num_splits(1, 1, 4 * MIN_TOKENS_PER_SPLIT, H100_SMS) == 4
    assert 0.85 * MAX_SPLITS <= choose_num_splits(1, 1, 10**7, H100_SMS) <= MAX_SPLITS


def test_single_unit_device_never_splits_multi_program_launches() -> None:
    assert choose_num_splits(2, 2, 10**6, 1) == 1


def test_rejects_non_positive_sizes() -> None:
    with pytest.raises(ValueError, match="positive"):
        choose_num_splits(0, 8, 100, H100_SMS)
