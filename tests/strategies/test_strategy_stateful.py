"""Hypothesis drives every strategy through random admit / append / lazy write / fork / free sequences,
checking the rules of strategies/base.py: the invariants after every operation, a refused call
changes nothing, allocate grants the headroom it reports, free says truly whether it made room,
and a refused admission stays refused until something made room.

Every registered strategy runs it, installed plugins included; test_rule_breakers shows that it
catches a strategy breaking each rule."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from kvbench.strategies import STRATEGIES
from kvbench.strategies.paged import PagedConfig, PagedStrategy
from kvbench.strategies.invariants import check
from kvbench.tokens import Synthetic, TokenSequence

MAX_MODEL_LEN = 24
VARIANTS = [(name, {}) for name in STRATEGIES.names()] + [
    ("contiguous", {"reservation": reservation, "allocator": allocator})
    for reservation in ("max", "pow2", "oracle")
    for allocator in ("first_fit", "buddy")
]


class StrategyMachine(RuleBasedStateMachine):
    # Set by the test below: which strategy, and the conftest's factories.
    name: str
    options: dict
    make_strategy: staticmethod
    Seq: type

    @initialize(num_blocks=st.integers(6, 16), block_size=st.sampled_from([1, 2, 4]))
    def build(self, num_blocks, block_size):
        if self.name == "contiguous" and self.options.get("reservation", "max") == "max":
            num_blocks = max(num_blocks, MAX_MODEL_LEN // block_size)
        self.strategy = self.make_strategy(self.name, num_blocks, block_size, MAX_MODEL_LEN, **self.options)
        self.live: dict[int, dict] = {}  # seq_id -> {seq, computed, synced}
        self.refused: list[tuple] = []  # admissions refused since the last room was made: (seq, prompt_len)
        self.version = self.strategy.prefix_cache_version()
        self.next_id = 0
        self.broken = False

    def _require(self, condition: bool, message: str) -> None:
        if not condition:
            self.broken = True
            raise AssertionError(message)

    def _refused_changes_nothing(self, call):
        before = self.strategy.snapshot()
        result = call()
        if result is None or result is False:
            self._require(self.strategy.snapshot() == before, "rule 1: a refused call changed the pool")
        return result

    def _allocate(self, seq, num_computed, num_new) -> bool:
        headroom = self._refused_changes_nothing(lambda: self.strategy.allocate(seq, num_computed, num_new))
        if headroom is None:
            return False
        self._require(headroom == self.strategy.headroom(seq.seq_id), "rule 2: allocate returned another headroom")
        self._require(headroom >= num_new, f"rule 2: allocate granted {headroom} positions for {num_new} new tokens")
        self._note_cache_version()
        return True

    def _note_cache_version(self):
        version = self.strategy.prefix_cache_version()
        if version != self.version:
            self.version = version
            self.refused.clear()  # a prefix may now be found: refusals may turn (rule 4)

    @rule(prompt_key=st.integers(0, 2), prompt_len=st.integers(1, 12), output_len=st.integers(1, 12))
    def admit(self, prompt_key, prompt_len, output_len):
        seq_id = self.next_id
        self.next_id += 1
        prompt = TokenSequence((Synthetic(("shared", prompt_key), prompt_len),))
        seq = self.Seq(seq_id, prompt + TokenSequence.synthetic(("gen", seq_id), None), prompt_len + output_len - 1)
        hit = self._cached_prefix_tokens(seq, prompt_len)
        if self._allocate(seq, hit, prompt_len - hit):
            self.live[seq_id] = {"seq": seq, "computed": prompt_len, "synced": hit}
        else:
            self.refused.append((seq, prompt_len))

    def _cached_prefix_tokens(self, seq, prompt_len) -> int:
        hit = self._refused_changes_nothing(lambda: self.strategy.cached_prefix_tokens(seq, prompt_len))
        self._require(hit % self.strategy.block_size == 0 and 0 <= hit < prompt_len, f"rule 5: {hit} cached of {prompt_len}")
        return hit

    @precondition(lambda self: self.live)
    @rule(data=st.data(), num_new=st.integers(1, 4))
    def append(self, data, num_new):
        seq_id = data.draw(st.sampled_from(sorted(self.live)))
        entry = self.live[seq_id]
        num_new = min(num_new, entry["seq"].final_num_kv_tokens - entry["computed"])
        if num_new <= 0:
            return
        computed = entry["computed"]
        if self._allocate(entry["seq"], computed, num_new):
            entry["synced"] = computed
            entry["computed"] = computed + num_new

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def lazy_write(self, data):
        """Write one token without telling the strategy, as the scheduler does within headroom."""
        seq_id = data.draw(st.sampled_from(sorted(self.live)))
        entry = self.live[seq_id]
        unsynced = entry["computed"] - entry["synced"]
        if unsynced < self.strategy.headroom(seq_id) and entry["computed"] < entry["seq"].final_num_kv_tokens:
            entry["computed"] += 1

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def fork(self, data):
        parent_id = data.draw(st.sampled_from(sorted(self.live)))
        parent = self.live[parent_id]
        computed = parent["computed"]
        child_id = self.next_id
        self.next_id += 1
        stream = parent["seq"].stream.truncate(computed) + TokenSequence.synthetic(("gen", child_id), None)
        child = self.Seq(child_id, stream, parent["seq"].final_num_kv_tokens)
        if self._refused_changes_nothing(lambda: self.strategy.fork(parent_id, child, computed)):
            parent["synced"] = computed
            self.live[child_id] = {"seq": child, "computed": computed, "synced": computed}

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def free(self, data):
        seq_id = data.draw(st.sampled_from(sorted(self.live)))
        before = self.strategy.usage()
        made_room = self.strategy.free(seq_id, self.live.pop(seq_id)["computed"])
        after = self.strategy.usage()
        grew = after.free_slots + after.cached_slots > before.free_slots + before.cached_slots
        self._require(
            made_room is grew, f"rule 4: free returned {made_room!r} but the free pool {'grew' if grew else 'did not grow'}"
        )
        if made_room:
            self.refused.clear()
        self._note_cache_version()

    @invariant()
    def consistent(self):
        if hasattr(self, "strategy"):
            try:
                check(self.strategy)
            except AssertionError:
                self.broken = True
                raise

    @invariant()
    def refusals_are_stable(self):
        """Rule 4: nothing made room, so a refused admission is refused again."""
        for seq, prompt_len in self.refused if hasattr(self, "strategy") else ():
            hit = self._cached_prefix_tokens(seq, prompt_len)
            granted = self._refused_changes_nothing(lambda: self.strategy.allocate(seq, hit, prompt_len - hit))
            self._require(granted is None, "rule 4: a refused admission succeeded though nothing made room")

    def teardown(self):
        # After a failed rule the machine's view of the pool is stale: report that failure alone.
        if hasattr(self, "strategy") and not self.broken:
            for seq_id, entry in list(self.live.items()):
                self.strategy.free(seq_id, entry["computed"])
            check(self.strategy)
            usage = self.strategy.usage()
            assert usage.token_slots == usage.reserved_slots == usage.internal_frag_slots == 0


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=[f"{n}-{'-'.join(o.values()) or 'default'}" for n, o in VARIANTS])
def test_strategy_state_machine(name, options, strategy_factory, seq_type):
    _run_machine(name, options, strategy_factory, seq_type)


def _run_machine(name, options, factory, seq_type, **overrides):
    """Example count from the Hypothesis profile (tests/conftest.py)."""
    machine = type(
        f"{name}Machine", (StrategyMachine,),
        {"name": name, "options": options, "make_strategy": staticmethod(factory), "Seq": seq_type},
    )
    machine.TestCase.settings = settings(
        stateful_step_count=30, suppress_health_check=[HealthCheck.too_slow], **overrides
    )
    machine.TestCase().runTest()


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
def test_rule_breakers_are_caught(broken, seq_type):
    def factory(name, num_blocks, block_size, max_model_len, **options):
        return broken(PagedConfig(block_size=block_size), num_blocks, max_model_len)

    # The first failure is the verdict: no shrinking, no hunt for further bugs.
    with pytest.raises(AssertionError, match=broken.caught_by):
        _run_machine(broken.__name__, {}, factory, seq_type, phases=[Phase.generate], report_multiple_bugs=False)
