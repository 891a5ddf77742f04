"""Hypothesis drives every strategy through random admit / append / lazy write / fork / free sequences,
checking the rules of strategies/base.py: the invariants after every operation, a refused call
changes nothing, allocate grants the headroom it reports, free says truly whether it made room,
and a refused admission stays refused until something made room.

Every registered strategy runs it, installed plugins included; test_rule_breakers shows that it
catches a strategy breaking each rule."""

from __future__ import annotations

import pytest
from hypothesis import Phase

from kvbench.strategies import STRATEGIES
from kvbench.strategies.paged import PagedConfig, PagedStrategy

VARIANTS = [(name, {}) for name in STRATEGIES.names()] + [
    ("contiguous", {"reservation": reservation, "allocator": allocator})
    for reservation in ("max", "pow2", "oracle")
    for allocator in ("first_fit", "buddy")
] + [("paged_radix", {"eviction": "lfu"}), ("paged_radix", {"eviction": "fifo"}), ("vattention", {"deferred_reclamation": True}),
    ("hf_dynamic", {"growth": "double"}),
]


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=[f"{n}-{'-'.join(map(str, o.values())) or 'default'}" for n, o in VARIANTS])
def test_strategy_state_machine(name, options, strategy_machine):
    strategy_machine(name, options)


class SilentFree(PagedStrategy):
    """Breaks rule 4: frees its blocks but says it made no room (the scheduler would stall)."""

    caught_by = "rule 4"

    def free(self, seq_id, num_computed_tokens):
        super().free(seq_id, num_computed_tokens)
        return False


class StingyHeadroom(PagedStrategy):
    """Breaks rule 2: grants the room but reports no headroom."""

    caught_by = "rule 2"

    def allocate(self, seq, num_computed_tokens, num_new_tokens):
        return None if super().allocate(seq, num_computed_tokens, num_new_tokens) is None else 0


class DirtyRefusal(PagedStrategy):
    """Breaks rule 1: a refused admission keeps the block it took first."""

    caught_by = "rule 1"

    def allocate(self, seq, num_computed_tokens, num_new_tokens):
        granted = super().allocate(seq, num_computed_tokens, num_new_tokens)
        if granted is None and seq.seq_id not in self.tables.seqs and self.pool.num_free_blocks:
            self.tables.admit(seq, [], 1)
        return granted


class SecondWriter(PagedStrategy):
    """Breaks rule 6: once a sequence has written, its first block becomes another writer's."""

    caught_by = "both wrote slot"

    def allocate(self, seq, num_computed_tokens, num_new_tokens):
        granted = super().allocate(seq, num_computed_tokens, num_new_tokens)
        state = self.tables.seqs.get(seq.seq_id)
        others = [s for sid, s in self.tables.seqs.items() if sid != seq.seq_id and s.num_tokens]
        if granted is not None and others and state.num_tokens:
            mine, theirs = state.blocks[0], others[-1].blocks[0]
            if mine is not theirs and mine.ref_cnt == theirs.ref_cnt == 1:
                state.blocks[0] = theirs
                self.pool.touch(theirs)
                self.pool.set_fill(mine, 0, 0)
                self.pool.release([mine])
        return granted


@pytest.mark.parametrize("broken", [SilentFree, StingyHeadroom, DirtyRefusal, SecondWriter], ids=lambda c: c.__name__)
def test_rule_breakers_are_caught(broken, strategy_machine):
    def factory(name, num_blocks, block_size, max_model_len, **options):
        return broken(PagedConfig(block_size=block_size), num_blocks, max_model_len)

    # The first failure is the verdict: no shrinking, no hunt for further bugs.
    with pytest.raises(AssertionError, match=broken.caught_by):
        strategy_machine(broken.__name__, {}, factory, phases=[Phase.generate], report_multiple_bugs=False)
