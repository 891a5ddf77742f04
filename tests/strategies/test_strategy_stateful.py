"""Hypothesis drives every strategy through random admit / append / lazy write / fork / free sequences,
checking the invariants after every operation and that a refused call changes nothing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from kvbench.strategies import STRATEGIES
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
        self.next_id = 0

    def _refused_changes_nothing(self, call) -> bool:
        before = self.strategy.snapshot()
        ok = call()
        if not ok:
            assert self.strategy.snapshot() == before, "a refused call changed the pool"
        return ok

    @rule(prompt_key=st.integers(0, 2), prompt_len=st.integers(1, 12), output_len=st.integers(1, 12))
    def admit(self, prompt_key, prompt_len, output_len):
        seq_id = self.next_id
        self.next_id += 1
        prompt = TokenSequence((Synthetic(("shared", prompt_key), prompt_len),))
        seq = self.Seq(seq_id, prompt + TokenSequence.synthetic(("gen", seq_id), None), prompt_len + output_len - 1)
        hit = self.strategy.cached_prefix_tokens(seq, prompt_len)
        assert hit % self.strategy.block_size == 0 and 0 <= hit < prompt_len
        if self._refused_changes_nothing(lambda: self.strategy.allocate(seq, hit, prompt_len - hit)):
            self.live[seq_id] = {"seq": seq, "computed": prompt_len, "synced": hit}

    @precondition(lambda self: self.live)
    @rule(data=st.data(), num_new=st.integers(1, 4))
    def append(self, data, num_new):
        seq_id = data.draw(st.sampled_from(sorted(self.live)))
        entry = self.live[seq_id]
        num_new = min(num_new, entry["seq"].final_num_kv_tokens - entry["computed"])
        if num_new <= 0:
            return
        computed = entry["computed"]
        if self._refused_changes_nothing(lambda: self.strategy.allocate(entry["seq"], computed, num_new)):
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
        self.strategy.free(seq_id, self.live.pop(seq_id)["computed"])

    @invariant()
    def consistent(self):
        if hasattr(self, "strategy"):
            check(self.strategy)

    def teardown(self):
        if hasattr(self, "strategy"):
            for seq_id, entry in list(self.live.items()):
                self.strategy.free(seq_id, entry["computed"])
            check(self.strategy)
            usage = self.strategy.usage()
            assert usage.token_slots == usage.reserved_slots == usage.internal_frag_slots == 0


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=[f"{n}-{'-'.join(o.values()) or 'default'}" for n, o in VARIANTS])
def test_strategy_state_machine(name, options, strategy_factory, seq_type):
    machine = type(
        f"{name}Machine",
        (StrategyMachine,),
        {"name": name, "options": options, "make_strategy": staticmethod(strategy_factory), "Seq": seq_type},
    )
    machine.TestCase.settings = settings(
        max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    machine.TestCase().runTest()
