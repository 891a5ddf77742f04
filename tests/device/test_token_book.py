"""The token book: prompts, forks, teacher forcing, dropped samples, the requests' columns."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from kvbench.device.token_book import TokenBook
from kvbench.request import Request
from kvbench.sequence import RequestState, Sequence
from kvbench.tokens import TokenSequence

VOCAB = 1000


def group_of(request: Request) -> tuple[RequestState, Sequence]:
    group = RequestState(request)
    seq = Sequence(0, group, group.branch_stream(request.prompt), 0)
    group.seqs = [seq]
    group.num_prefill_target_tokens = request.num_prompt_tokens
    return group, seq


def test_prompt_then_samples_then_a_fork_that_inherits_them():
    book = TokenBook(VOCAB)
    group, root = group_of(Request(7, 0.0, TokenSequence.from_ids([5, 6, 7]), 3, n=2))
    assert book.prefill_ids(root, 0, 3).tolist() == [5, 6, 7]
    book.sampled(root, 2, 40, None)
    child = Sequence(1, group, root.stream, 1, parent_seq_id=0)
    group.seqs.append(child)
    # Both decode position 3 (the parent's sample), then sample on their own.
    assert book.decode_id(root, 3) == book.decode_id(child, 3) == 40
    book.sampled(root, 3, 41, None)
    book.sampled(child, 3, 51, None)
    book.sampled(root, 4, 42, None)
    book.sampled(child, 4, 52, None)
    assert book.finish(group) == "40 41 42|40 51 52"
    expected = hashlib.sha256(b"7 40 41 42|40 51 52\n").hexdigest()
    assert book.tokens_sha256() == expected


def test_a_recorded_output_is_fed_instead_of_the_argmax():
    book = TokenBook(VOCAB)
    group, seq = group_of(Request(0, 0.0, TokenSequence.from_ids([1, 2]), 2, output=TokenSequence.from_ids([8, 9])))
    book.prefill_ids(seq, 0, 2)
    book.sampled(seq, 1, 500, None)
    book.sampled(seq, 2, 501, None)
    assert book.finish(group) == "8 9"


def test_a_sample_the_scheduler_dropped_is_recomputed():
    """Preempted right after its prefill sampled, before the scheduler counted that token."""
    book = TokenBook(VOCAB)
    group, seq = group_of(Request(0, 0.0, TokenSequence.from_ids([1, 2, 3]), 1))
    book.prefill_ids(seq, 0, 3)
    book.sampled(seq, 2, 77, None)
    assert book.prefill_ids(seq, 0, 3).tolist() == [1, 2, 3]  # the recompute prefill
    book.sampled(seq, 2, 78, None)
    assert book.finish(group) == "78"


def test_out_of_step_positions_are_errors():
    book = TokenBook(VOCAB)
    group, seq = group_of(Request(0, 0.0, TokenSequence.from_ids([1, 2, 3]), 2))
    book.prefill_ids(seq, 0, 3)
    with pytest.raises(RuntimeError, match="seq 0 decodes position 5 but has 3 tokens"):
        book.decode_id(seq, 5)
    with pytest.raises(RuntimeError, match="finished with 0 generated tokens"):
        book.finish(group)


def test_logits_are_kept_only_when_recording():
    for record in (False, True):
        book = TokenBook(VOCAB, record_logits=record)
        group, seq = group_of(Request(3, 0.0, TokenSequence.from_ids([1]), 1))
        book.prefill_ids(seq, 0, 1)
        book.sampled(seq, 0, 4, np.ones(VOCAB) if record else None)
        book.finish(group)
        assert (3 in book.finished) is record
        if record:
            assert book.finished[3][0].token_ids == [1, 4] and list(book.finished[3][0].logits) == [0]
