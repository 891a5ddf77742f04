"""Token contents as segments: block keys equal exactly when token ids are equal."""

import copy
import pickle

import numpy as np
import pytest

from kvbench.tokens import Explicit, Synthetic, TokenSequence


def test_equal_streams_give_equal_block_keys_at_any_split():
    a = TokenSequence((Synthetic("doc", 100),))
    b = TokenSequence((Synthetic("doc", 60), Synthetic("doc", 0), Synthetic("other", 40)))
    assert a.block_key(0, 16) == b.block_key(0, 16)
    assert a.block_key(48, 64) != b.block_key(48, 64)  # b switches stream at 60


def test_block_keys_follow_the_ids():
    seq = TokenSequence((Synthetic("a", 10), Explicit((5, 6, 7, 8)), Synthetic("b", None)))
    for start, end in [(0, 4), (8, 12), (10, 14), (12, 20), (14, 30)]:
        other = TokenSequence((Synthetic("a", 10), Explicit((5, 6, 7, 8)), Synthetic("b", None)))
        assert seq.block_key(start, end) == other.block_key(start, end)
        ids = seq.ids(start, end, vocab_size=1 << 30)
        assert len(ids) == end - start
    assert list(seq.ids(10, 14, vocab_size=100)) == [5, 6, 7, 8]
    assert seq.block_key(8, 12) != seq.block_key(9, 13)


def test_synthetic_ids_are_deterministic_distinct_and_in_the_vocabulary():
    a = TokenSequence.synthetic(("req", 1), 1000).ids(0, 1000, vocab_size=32000)
    again = TokenSequence.synthetic(("req", 1), 1000).ids(0, 1000, vocab_size=32000)
    other = TokenSequence.synthetic(("req", 2), 1000).ids(0, 1000, vocab_size=32000)
    assert np.array_equal(a, again) and not np.array_equal(a, other)
    assert a.min() >= 0 and a.max() < 32000 and len(np.unique(a)) > 900
    assert np.array_equal(TokenSequence.synthetic(("req", 1), 1000).ids(500, 600, 32000), a[500:600])


def test_truncate_and_concatenate():
    seq = TokenSequence((Synthetic("a", 10), Synthetic("gen", None)))
    head = seq.truncate(14)
    assert len(head) == 14 and head.segments[-1] == Synthetic("gen", 4)
    assert (head + TokenSequence.synthetic("x", 2)).num_tokens == 16
    with pytest.raises(TypeError):
        len(seq)
    with pytest.raises(IndexError):
        head.block_key(10, 20)
    with pytest.raises(ValueError, match="only the last segment"):
        TokenSequence((Synthetic("a", None), Synthetic("b", 3)))


def test_explicit_ids_give_the_same_key_however_they_are_split_into_segments():
    whole = TokenSequence.from_ids([1, 2, 3, 4, 5, 6])
    split = TokenSequence((Explicit((1, 2)), Explicit((3, 4, 5)), Explicit((6,))))
    for start, end in [(0, 4), (1, 3), (2, 6), (0, 6)]:
        assert whole.block_key(start, end) == split.block_key(start, end)
    # A later prompt quoting an earlier prompt and its output: the quote hits block for block.
    quoted = TokenSequence((Synthetic("sys", 4), Explicit((1, 2)), Explicit((3, 4)), Explicit((9,))))
    original = TokenSequence((Synthetic("sys", 4), Explicit((1, 2, 3, 4))))
    assert quoted.block_key(2, 8) == original.block_key(2, 8)
    assert quoted.block_key(4, 8) == original.block_key(4, 8)
    assert quoted.block_key(4, 9) != original.block_key(4, 8)


@pytest.mark.parametrize(
    "left, right",
    [
        ((Synthetic("a", 10),), (Synthetic("b", 5), Explicit((1, 2)))),
        ((Synthetic("a", 10), Explicit((3,))), (Synthetic("gen", None),)),
        ((), (Synthetic("b", 5),)),
        ((Synthetic("a", 3),), ()),
        ((Synthetic("a", None),), ()),
        ((), ()),
    ],
)
def test_concatenation_equals_a_sequence_of_both_segment_lists(left, right):
    joined = TokenSequence(left) + TokenSequence(right)
    whole = TokenSequence(left + right)
    assert (joined.segments, joined._starts, joined.num_tokens) == (whole.segments, whole._starts, whole.num_tokens)
    with pytest.raises(ValueError, match="only the last segment"):
        TokenSequence((Synthetic("a", None),)) + TokenSequence(right or (Synthetic("x", 1),))


@pytest.mark.parametrize("num_tokens", [0, 1, 7, None])
def test_a_synthetic_sequence_equals_one_built_from_its_segment(num_tokens):
    fast = TokenSequence.synthetic("k", num_tokens)
    whole = TokenSequence((Synthetic("k", num_tokens),))
    assert (fast.segments, fast._starts, fast.num_tokens) == (whole.segments, whole._starts, whole.num_tokens)
    with pytest.raises(ValueError, match="negative length"):
        TokenSequence.synthetic("k", -1)


def deferred_and_eager() -> list[tuple[TokenSequence, TokenSequence]]:
    """Sequences from `synthetic` and `+` (their segments made when first read), each beside the
    same sequence built from its segments."""
    prompt, output = TokenSequence.synthetic("p", 10), TokenSequence.synthetic("o", 5)
    gen = TokenSequence.synthetic("gen", None)
    keyed_later = TokenSequence.synthetic_keys_read_later([10], lambda arg: ("k", arg), [3])[0]
    return [
        (prompt, TokenSequence((Synthetic("p", 10),))),
        (prompt + output, TokenSequence((Synthetic("p", 10), Synthetic("o", 5)))),
        (keyed_later + output, TokenSequence((Synthetic(("k", 3), 10), Synthetic("o", 5)))),
        (TokenSequence.synthetic("p", 10) + TokenSequence.from_ids([7, 8]) + gen,
         TokenSequence((Synthetic("p", 10), Explicit((7, 8)), Synthetic("gen", None)))),
    ]


@pytest.mark.parametrize("first_read", ["segments", "_starts", "block_key", "chain_keys", "ids", "eq", "truncate"])
def test_sequences_made_on_first_read_equal_the_eagerly_built_ones(first_read):
    for deferred, eager in deferred_and_eager():
        assert type(deferred) is not TokenSequence and deferred.num_tokens == eager.num_tokens  # nothing made yet
        reads = {
            "segments": lambda s: s.segments,
            "_starts": lambda s: s._starts,
            "block_key": lambda s: s.block_key(6, 10),
            "chain_keys": lambda s: s.chain_keys(None, 0, 2, 4),
            "ids": lambda s: s.ids(0, 10, 1000).tolist(),
            "eq": lambda s: s == eager,
            "truncate": lambda s: s.truncate(7).segments,
        }
        assert reads[first_read](deferred) == reads[first_read](eager)
        if first_read == "chain_keys":
            deferred.segments  # keys inside a join's left part make only that part (below)
        assert type(deferred) is TokenSequence  # made once, a plain sequence from then on
        assert (deferred.segments, deferred._starts, deferred.num_tokens) == (eager.segments, eager._starts, eager.num_tokens)
        assert hash(deferred) == hash(eager) and repr(deferred) == repr(eager)
        with pytest.raises(AttributeError):
            deferred.no_such_attribute


def test_keys_inside_a_joins_left_part_make_only_that_part():
    # A prefix cache's first lookup keys a prompt's first block: the output joined after it is not made.
    made = []
    prompt = TokenSequence.deferred(10, lambda arg: made.append(arg) or TokenSequence.synthetic("p", 10), "prompt")
    output = TokenSequence.deferred(5, lambda arg: made.append(arg) or TokenSequence.synthetic("o", 5), "output")
    joined = prompt + output
    eager = TokenSequence((Synthetic("p", 10), Synthetic("o", 5)))
    assert joined.chain_keys(None, 0, 2, 4) == eager.chain_keys(None, 0, 2, 4)
    assert made == ["prompt"]
    first_two = eager.chain_keys(None, 0, 2, 4)[1][-1]
    assert joined.chain_keys(first_two, 8, 1, 4) == eager.chain_keys(first_two, 8, 1, 4)  # into the output
    assert made == ["prompt", "output"] and type(joined) is TokenSequence


def test_a_deferred_sequence_is_what_its_maker_makes_and_must_have_the_length_it_said():
    def make(n: int) -> TokenSequence:
        return TokenSequence((Synthetic("a", n), Explicit((1, 2))))

    deferred = TokenSequence.deferred(7, make, 5)
    assert len(deferred) == 7 and deferred + TokenSequence.synthetic("b", 3) == make(5) + TokenSequence.synthetic("b", 3)
    wrong = TokenSequence.deferred(6, make, 5)
    assert len(wrong) == 6  # the length is believed until the content is read...
    with pytest.raises(ValueError, match="said 6 tokens, but .*make.*made 7"):
        wrong.block_key(0, 4)  # ...which checks it


def test_copies_and_pickles_of_a_sequence_not_read_yet_are_plain_equal_sequences():
    for deferred, eager in deferred_and_eager():
        for copy_of in (copy.copy, copy.deepcopy, lambda s: pickle.loads(pickle.dumps(s))):
            copied = copy_of(deferred)
            assert type(copied) is TokenSequence and copied == eager and copied.num_tokens == eager.num_tokens


def test_reading_a_concatenation_makes_its_operands_content_without_converting_them():
    made = []

    def make(n: int) -> TokenSequence:
        made.append(n)
        return TokenSequence.synthetic("p", n)

    prompt, output = TokenSequence.deferred(3, make, 3), TokenSequence.synthetic("o", 2)
    branch = prompt + output
    assert branch.segments == (Synthetic("p", 3), Synthetic("o", 2)) and branch._starts == [0, 3]
    # Read through the branch only: the operands stay deferred (a request's prompt and output are
    # read again only by another branch), and a later read of their own still gives their content.
    assert type(prompt) is not TokenSequence and type(output) is not TokenSequence
    assert prompt.segments == (Synthetic("p", 3),) and output.segments == (Synthetic("o", 2),)
    assert made == [3, 3]


def key_test_sequences() -> list[TokenSequence]:
    """Sequences that share some leading content and differ in how it is split into segments."""
    return [
        TokenSequence((Synthetic("p", 10), Synthetic("o", 9))),
        TokenSequence.synthetic("p", 10) + TokenSequence.synthetic("o", None),
        TokenSequence((Synthetic("p", 10), Synthetic("x", 9))),
        TokenSequence((Synthetic("p", 12), Synthetic("o", 7))),
        TokenSequence((Synthetic("p", 4), Synthetic("p", 6), Synthetic("o", 9))),
        TokenSequence((Synthetic("p", 10), Explicit((1, 2, 3)), Explicit((4, 5)), Synthetic("o", 4))),
        TokenSequence((Synthetic("p", 10), Explicit((1, 2, 3, 4, 5, 6)), Synthetic("o", 3))),
        TokenSequence.from_ids(range(19)),
        TokenSequence((Explicit((0, 1, 2)), Explicit(tuple(range(3, 19))))),
    ]


@pytest.mark.parametrize("block_size", [1, 3, 4, 8])
def test_chain_keys_are_equal_exactly_when_the_prefixes_ids_are_equal(block_size):
    num_blocks = 16 // block_size
    chains = []
    for seq in key_test_sequences():
        keys, hashes = seq.chain_keys(None, 0, num_blocks, block_size)
        assert hashes == [hash(key) for key in keys]
        chains.append(keys)
    for a, keys_a in zip(key_test_sequences(), chains):
        for b, keys_b in zip(key_test_sequences(), chains):
            for j in range(num_blocks):
                end = (j + 1) * block_size
                same_ids = a.ids(0, end, vocab_size=1 << 62).tolist() == b.ids(0, end, vocab_size=1 << 62).tolist()
                assert (keys_a[j] == keys_b[j]) == same_ids, (a, b, j)


@pytest.mark.parametrize("block_size", [1, 3, 4, 8])
def test_chain_keys_computed_in_parts_equal_those_computed_at_once(block_size):
    num_blocks = 16 // block_size
    for seq in key_test_sequences():
        whole = seq.chain_keys(None, 0, num_blocks, block_size)
        for split in range(1, num_blocks):
            head = seq.chain_keys(None, 0, split, block_size)
            tail = seq.chain_keys(head[1][-1], split * block_size, num_blocks - split, block_size)
            assert (head[0] + tail[0], head[1] + tail[1]) == whole
    with pytest.raises(IndexError, match="outside a sequence of 19 tokens"):
        key_test_sequences()[0].chain_keys(None, 0, 20 // block_size + 1, block_size)


def test_synthetic_keys_read_later_are_looked_up_only_when_the_content_is_read():
    asked = []

    def key_of(arg: int) -> tuple:
        asked.append(arg)
        return ("message", arg)

    made = TokenSequence.synthetic_keys_read_later([4, 7], key_of, [1, 2])
    assert [seq.num_tokens for seq in made] == [4, 7] and asked == []
    assert made[1].segments == (Synthetic(("message", 2), 7),) and asked == [2]
    assert made[0] + made[1] == TokenSequence((Synthetic(("message", 1), 4), Synthetic(("message", 2), 7)))
