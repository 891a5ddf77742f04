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
