"""The infinite-cache bound: its run-compressed trie agrees with a plain block-by-block trie."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kvbench.request import Request
from kvbench.tokens import Explicit, Synthetic, TokenSequence
from kvbench.workloads.prefix_reuse import infinite_cache_hits


def reference_hits(requests: list[Request], block_size: int) -> tuple[int, int]:
    """One trie node per full block, keyed by block_key: slow and obviously right."""
    root: dict = {}
    hits = total = 0
    for r in sorted(requests, key=lambda r: (r.arrival_time_s, r.request_id)):
        held = r.prompt if r.output is None else r.prompt + r.output.truncate(r.num_output_tokens - 1)
        node, matched = root, 0
        for i in range(len(held) // block_size):
            key = held.block_key(i * block_size, (i + 1) * block_size)
            if key in node and matched == i:
                matched += 1
            node = node.setdefault(key, {})
        hits += min(matched, (r.num_prompt_tokens - 1) // block_size) * block_size
        total += r.num_prompt_tokens
    return hits, total


# Few stream keys and short, overlapping pieces, so that prompts share prefixes of every shape:
# whole segments, parts of segments, blocks straddling segments, explicit ids.
segments = st.one_of(
    st.builds(Synthetic, st.sampled_from(["a", "b", "c"]), st.integers(1, 24)),
    st.builds(lambda ids: Explicit(tuple(ids)), st.lists(st.integers(0, 2), min_size=1, max_size=9)),
)
sequences = st.lists(segments, min_size=1, max_size=5).map(TokenSequence)


@st.composite
def workloads(draw) -> list[Request]:
    shared = draw(st.lists(sequences, min_size=1, max_size=3))  # common openings
    requests = []
    for i in range(draw(st.integers(1, 8))):
        prompt = draw(st.sampled_from(shared)) + draw(sequences) if draw(st.booleans()) else draw(sequences)
        output = draw(st.one_of(st.none(), sequences))
        num_output = draw(st.integers(1, len(output))) if output is not None else draw(st.integers(1, 5))
        requests.append(Request(i, float(draw(st.integers(0, 3))), prompt, num_output, output=output))
    return requests


@settings(max_examples=5 * settings().max_examples)  # cheap examples: 5x the profile's count
@given(workloads(), st.sampled_from([1, 2, 4, 8]))
def test_matches_a_block_by_block_trie(requests, block_size):
    assert infinite_cache_hits(requests, block_size) == reference_hits(requests, block_size)


def test_worked_example():
    """Block size 4. #0 holds [a0..a9] then its reply r0..r3 (3 of them kept); #1 repeats a0..a9 and
    continues with the reply: 3 full blocks of the 13-token history are cached, the cap allows 3."""
    a = Synthetic("a", 10)
    reply = TokenSequence.synthetic("r", 4)
    first = Request(0, 0.0, TokenSequence((a,)), 4, output=reply)
    second = Request(1, 1.0, TokenSequence((a,)) + reply + TokenSequence.synthetic("u", 3), 2)
    assert infinite_cache_hits([second, first], 4) == (0 + 12, 10 + 17)
