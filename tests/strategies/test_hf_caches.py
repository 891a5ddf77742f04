"""Hugging Face Transformers' caches: StaticCache slots for a batch's life, DynamicCache growth by copy."""

from kvbench.strategies.invariants import check


def test_hf_static_holds_a_finished_slot_until_the_batch_ends(strategy_factory, seq_factory):
    st = strategy_factory("hf_static", num_blocks=64, block_size=1, max_model_len=16)
    a, b = seq_factory(0, 3, final=5), seq_factory(1, 3, final=9)
    assert st.allocate(a, 0, 3) == 16 and st.allocate(b, 0, 3) == 16
    assert st.block_table(1) == list(range(16, 32))
    assert st.free(0, 5) is False  # made no room: the batch still runs
    assert st.usage().internal_frag_slots == 16 + 16 - 9 and st.usage().free_slots == 32
    check(st)
    assert st.free(1, 9) is True and st.usage().free_slots == 64
    check(st)


def test_hf_dynamic_reallocates_and_copies_every_step(strategy_factory, seq_factory):
    st = strategy_factory("hf_dynamic", num_blocks=16, block_size=1)
    a = seq_factory(0, 3, final=6)
    assert st.allocate(a, 0, 3) == 3 and st.block_table(0) == [0, 1, 2]
    # One more token: a new run of 4 is placed while the old one is held (first fit: after it), copied, freed.
    assert st.allocate(a, 3, 1) == 1 and st.block_table(0) == [3, 4, 5, 6]
    assert st.counters["reallocations"] == 1 and st.counters["tokens_copied"] == 3
    check(st)
    # The hole the old run left (0..2) is too small for the next growth (5): it goes after.
    assert st.allocate(a, 4, 1) == 1 and st.block_table(0) == [7, 8, 9, 10, 11]
    assert st.counters["tokens_copied"] == 3 + 4
    assert st.usage().free_slots == 11
    check(st)


def test_hf_dynamic_growth_needs_room_for_both_runs(strategy_factory, seq_factory):
    st = strategy_factory("hf_dynamic", num_blocks=7, block_size=1)
    a = seq_factory(0, 4, final=6)
    assert st.allocate(a, 0, 4) is not None
    before = st.snapshot()
    # 4 held + 5 for the new run > 7: refused, nothing changed, although 5 tokens would fit alone.
    assert st.allocate(a, 4, 1) is None and st.snapshot() == before


def test_hf_dynamic_doubling_copies_less(strategy_factory, seq_factory):
    copies = {}
    for growth in ("exact", "double"):
        st = strategy_factory("hf_dynamic", num_blocks=64, block_size=1, growth=growth)
        seq = seq_factory(0, 3, final=20)
        assert st.allocate(seq, 0, 3) is not None
        for n in range(3, 20):  # one token per step, synced every step
            assert st.allocate(seq, n, 1) is not None
        copies[growth] = st.counters["tokens_copied"]
        check(st)
    assert copies == {"exact": sum(range(3, 20)), "double": 4 + 8 + 16}


def test_the_caching_allocators_rounding():
    from kvbench.strategies.hf_dynamic import allocated_tokens

    # Llama-3-8B: 2 KiB of K per token per layer, a multiple of 512 B: no rounding below 10 MiB.
    assert allocated_tokens(5, 2048) == 5
    # 96 B per token (a small model): 5 tokens = 480 B -> 512 B = 5.33 -> 6 token slots.
    assert allocated_tokens(5, 96) == 6
    # 5121 tokens x 2 KiB = 10 MiB + 2 KiB: a segment of its own, rounded up to 12 MiB = 6144 tokens.
    assert allocated_tokens(5121, 2048) == 6144
