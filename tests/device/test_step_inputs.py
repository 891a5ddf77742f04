"""Packing a step: slots, cut and padded block tables, sample rows, independent copy groups."""

from __future__ import annotations

import numpy as np
import pytest

from kvbench.device.step_inputs import StepInputsBuilder, copy_groups


def test_a_prefill_chunk_and_decodes_are_packed_in_order():
    builder = StepInputsBuilder(block_size=4)
    # Tokens 2..5 of a sequence whose blocks are [7, 3]: positions 2, 3 -> block 7, 4, 5 -> block 3.
    builder.add_prefill(np.array([11, 12, 13, 14]), 2, [7, 3, 9], sample=True, what="a")
    builder.add_prefill(np.array([21, 22]), 0, [5], sample=False, what="b")  # a chunk that does not sample
    builder.add_decode(31, 4, [1, 2], what="c")  # position 4 -> block 2, offset 0
    inputs = builder.build([(1, 6)])

    assert inputs.token_ids.tolist() == [11, 12, 13, 14, 21, 22, 31]
    assert inputs.positions.tolist() == [2, 3, 4, 5, 0, 1, 4]
    assert inputs.slot_mapping.tolist() == [30, 31, 12, 13, 20, 21, 8]
    assert inputs.prefill_query_start_loc.tolist() == [0, 4, 6]
    assert inputs.prefill_context_lens.tolist() == [6, 2]
    assert inputs.decode_context_lens.tolist() == [5]
    # Each table holds the blocks its context covers (block 9 is cut), padded to 16 entries.
    assert inputs.prefill_block_tables.shape == (2, 16)
    assert inputs.prefill_block_tables[:, :2].tolist() == [[7, 3], [5, 0]]
    assert inputs.decode_block_tables[0, :2].tolist() == [1, 2]
    assert inputs.sample_rows.tolist() == [3, 6]  # the sampling chunk's last token, then each decode
    assert (inputs.num_prefill_tokens, inputs.max_query_len, inputs.max_decode_context_len) == (6, 4, 5)
    assert inputs.block_copies == [(1, 6)]
    for array, dtype in ((inputs.prefill_block_tables, np.int32), (inputs.slot_mapping, np.int64)):
        assert array.dtype == dtype


def test_a_decode_only_step_has_no_prefill_part():
    builder = StepInputsBuilder(block_size=16)
    builder.add_decode(5, 0, [3], what="a")
    inputs = builder.build([])
    assert inputs.num_prefill_tokens == 0 and inputs.prefill_block_tables.shape == (0, 0)
    assert inputs.slot_mapping.tolist() == [48]


def test_a_table_too_short_for_the_context_is_an_error():
    builder = StepInputsBuilder(block_size=4)
    with pytest.raises(ValueError, match="seq 7: its block table holds 1 blocks, fewer than its 5 tokens need"):
        builder.add_decode(1, 4, [0], what="seq 7")


def test_copy_groups_keep_order_and_never_chain_inside_a_group():
    # 1->2 and 3->4 are independent; 2->5 reads what 1->2 wrote; 6->1 overwrites a block 1->2 read.
    assert copy_groups([(1, 2), (3, 4), (2, 5), (6, 1), (7, 8)]) == [
        ([1, 3], [2, 4]),
        ([2, 6, 7], [5, 1, 8]),
    ]
    assert copy_groups([(1, 2), (3, 2)]) == [([1], [2]), ([3], [2])]  # a destination written twice
    assert copy_groups([]) == []
