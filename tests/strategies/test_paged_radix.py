"""`paged_radix` behaves as SGLang's radix cache: token-granular matches, edges split where a match
ends, inserts of computed tokens only, locks apart from residency, leaf eviction by policy."""

import pytest

from kvbench.strategies.invariants import check
from kvbench.tokens import Explicit, Synthetic, TokenSequence, common_prefix_len


def test_common_prefix_len_compares_segments_not_tokens():
    a = TokenSequence((Synthetic("s", 10), Explicit((1, 2, 3))))
    b = TokenSequence((Synthetic("s", 10), Explicit((1, 2, 4))))
    assert common_prefix_len(a, 0, b, 0, 13) == 12
    assert common_prefix_len(a, 3, b, 3, 5) == 5
    assert common_prefix_len(a, 3, b, 4, 5) == 0  # same stream, other positions
    assert common_prefix_len(a, 0, TokenSequence.synthetic("t", None), 0, 10) == 0


def test_a_match_is_token_granular_and_ends_inside_an_edge(strategy_factory, seq_factory, shared_prompt):
    st = strategy_factory("paged_radix", num_blocks=40, block_size=1)
    a = seq_factory(0, shared_prompt(5, 3, "a"), final=9)
    assert st.allocate(a, 0, 8) == 8 and st.block_table(0) == list(range(8))
    # Nothing is findable before a step computed it.
    b = seq_factory(1, shared_prompt(5, 2, "b"), final=8)
    assert st.cached_prefix_tokens(b, 7) == 0
    # The chunk computed: its next call inserts it. The head (5 tokens) is shared, not a whole block of 16.
    assert st.allocate(a, 8, 1) == 1
    assert st.cached_prefix_tokens(b, 7) == 5
    assert st.allocate(b, 5, 2) == 2
    assert st.block_table(1) == [0, 1, 2, 3, 4, 9, 10]
    assert st.snapshot().ref_cnt[:6] == [2, 2, 2, 2, 2, 1]
    # The edge split where b's match ended: a's run is now two nodes, the upper one locked twice.
    (upper,) = st.tree.root.children.values()
    assert [b.block_id for b in upper.blocks] == [0, 1, 2, 3, 4] and upper.lock_ref == 2
    (lower,) = upper.children.values()
    assert [b.block_id for b in lower.blocks] == [5, 6, 7] and lower.lock_ref == 1
    check(st)


def test_pages_of_16_match_whole_pages_only(strategy_factory, seq_factory, shared_prompt):
    st = strategy_factory("paged_radix", num_blocks=12, block_size=4)
    a = seq_factory(0, shared_prompt(10, 2, "a"), final=13)
    assert st.allocate(a, 0, 12) == 12
    st.free(0, 12)
    check(st)
    assert st.cached_prefix_tokens(seq_factory(1, shared_prompt(10, 5, "b"), final=16), 15) == 8


def test_a_finished_sequence_stays_cached_and_unlocked_leaves_are_evicted_lru(strategy_factory, seq_factory):
    st = strategy_factory("paged_radix", num_blocks=6, block_size=1)
    old = seq_factory(0, TokenSequence.synthetic("old", 3), final=3)
    new = seq_factory(1, TokenSequence.synthetic("new", 2), final=2)
    assert st.allocate(old, 0, 3) is not None and st.free(0, 3)
    assert st.allocate(new, 0, 2) is not None and st.free(1, 2)
    snap = st.snapshot()
    assert snap.cached == {0, 1, 2, 3, 4} and snap.free_queue == [5, 0, 1, 2, 3, 4]
    assert st.usage().cached_slots == 5
    # Three blocks wanted: the never-used one, then the tail of the least recently used leaf ("old").
    third = seq_factory(2, 3, final=3)
    assert st.allocate(third, 0, 3) is not None
    assert st.block_table(2) == [5, 2, 1]
    assert st.counters["evicted_blocks"] == 2
    assert st.cached_prefix_tokens(seq_factory(3, TokenSequence.synthetic("old", 3), final=4), 3) == 1
    check(st)


@pytest.mark.parametrize(
    ("eviction", "table"),
    [("lru", [4, 5, 1, 0]), ("fifo", [4, 5, 1, 0]), ("lfu", [4, 5, 3, 2])],
)
def test_the_eviction_policy_picks_the_leaf(strategy_factory, seq_factory, eviction, table):
    st = strategy_factory("paged_radix", num_blocks=6, block_size=1, eviction=eviction)
    hot = TokenSequence.synthetic("hot", 2)
    assert st.allocate(seq_factory(0, hot, final=2), 0, 2) is not None and st.free(0, 2)
    for i in (1, 2):  # two hits on "hot", preempted before computing more: "hot" stays a leaf
        s = seq_factory(i, hot + TokenSequence.synthetic(i, 1), final=3)
        assert st.cached_prefix_tokens(s, 3) == 2
        assert st.allocate(s, 2, 1) is not None and st.free(i, 2)
    cold = TokenSequence.synthetic("cold", 2)
    assert st.allocate(seq_factory(3, cold, final=2), 0, 2) is not None and st.free(3, 2)
    # Block 2 (a hit's uncomputed token, never cached) was reused first each time, so "cold" holds 2
    # and 3. "cold" was inserted and used last, but never hit: after the never-used 4 and 5, LRU and
    # FIFO evict "hot" (1, 0), LFU evicts "cold" (3, 2).
    assert st.allocate(seq_factory(4, 4, final=4), 0, 4) is not None
    assert st.block_table(4) == table
    check(st)


def test_a_locked_path_is_never_evicted(strategy_factory, seq_factory):
    st = strategy_factory("paged_radix", num_blocks=5, block_size=1)
    prompt = TokenSequence.synthetic("doc", 3)
    assert st.allocate(seq_factory(0, prompt, final=3), 0, 3) is not None and st.free(0, 3)
    reader = seq_factory(1, prompt + TokenSequence.synthetic("q", 1), final=5)
    assert st.cached_prefix_tokens(reader, 4) == 3
    assert st.allocate(reader, 3, 1) is not None
    # Two blocks left; a request for three must be refused, the locked prefix untouched.
    before = st.snapshot()
    assert st.allocate(seq_factory(2, 3, final=3), 0, 3) is None
    assert st.snapshot() == before
    check(st)


def test_a_twin_computed_concurrently_stays_anonymous(strategy_factory, seq_factory):
    st = strategy_factory("paged_radix", num_blocks=10, block_size=1)
    prompt = TokenSequence.synthetic("same", 3)
    a, b = seq_factory(0, prompt, final=4), seq_factory(1, prompt, final=4)
    assert st.allocate(a, 0, 3) is not None and st.allocate(b, 0, 3) is not None  # admitted in one step
    assert st.allocate(a, 3, 1) is not None and st.allocate(b, 3, 1) is not None
    (node,) = st.tree.root.children.values()
    assert [blk.block_id for blk in node.blocks] == [0, 1, 2] and node.lock_ref == 1
    assert st.free(1, 4)  # b's twin blocks were never in the tree: they free as plain blocks
    assert st.snapshot().cached == set()
    check(st)
