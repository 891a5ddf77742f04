"""Tiny pools and sequences for strategy tests, and the shared state machine every strategy runs.

The machine drives a strategy through random admit / append / lazy write / fork / free sequences,
and swap out / swap in where the strategy swaps, checking the rules of strategies/base.py after
every call (`strategy_machine` fixture).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from omegaconf import OmegaConf

from kvbench.strategies import STRATEGIES, KVCacheStrategy
from kvbench.strategies.invariants import check, check_swap
from kvbench.swap_space import SwapSpace
from kvbench.tokens import Synthetic, TokenSequence

MAX_MODEL_LEN = 24


@dataclass
class Seq:
    """What a strategy sees of a sequence (the SeqView protocol)."""

    seq_id: int
    stream: TokenSequence
    final_num_kv_tokens: int


def make_strategy(name: str, num_blocks: int, block_size: int, max_model_len: int = 64, **options) -> KVCacheStrategy:
    config = OmegaConf.to_object(OmegaConf.structured(STRATEGIES.schema(name)))
    config.block_size = block_size
    for key, value in options.items():
        setattr(config, key, value)
    return STRATEGIES.get(name)(config, num_blocks, max_model_len)


def make_seq(seq_id: int, prompt: TokenSequence | int, final: int, gen: object = None) -> Seq:
    """A sequence whose prompt is `prompt` (or that many tokens of its own) followed by its output."""
    if isinstance(prompt, int):
        prompt = TokenSequence.synthetic(("prompt", seq_id), prompt)
    return Seq(seq_id, prompt + TokenSequence.synthetic(("gen", seq_id if gen is None else gen), None), final)


@pytest.fixture
def strategy_factory():
    return make_strategy


@pytest.fixture
def seq_factory():
    return make_seq


@pytest.fixture
def seq_type():
    return Seq


@pytest.fixture
def shared_prompt():
    """A prompt two requests can share: a common head then a per-request tail."""

    def build(head_tokens: int, tail_tokens: int, tail_key: object) -> TokenSequence:
        return TokenSequence((Synthetic("head", head_tokens), Synthetic(("tail", tail_key), tail_tokens)))

    return build


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
        self.swap_space = SwapSpace(num_blocks)  # as large as the pool: a swap-out may be refused below
        self.swapped: list[tuple] = []  # (SwappedKV, host block ids, {seq_id: machine entry}), oldest first

    def _require(self, condition: bool, message: str) -> None:
        if not condition:
            self.broken = True
            raise AssertionError(message)

    def _refused_changes_nothing(self, call, released: tuple[int, int] | None = None):
        """`released`: (seq_id, num_computed_tokens) of a live sequence whose allocate may first
        release the blocks that left its sliding window, refused or not (rule 1's exception)."""
        if getattr(self.strategy, "grouped", False):
            expected = copy.deepcopy(self.strategy)
            if released is not None:
                expected.release_out_of_window(*released)
            before = expected.snapshot()
        else:
            before = self.strategy.snapshot()
        result = call()
        if result is None or result is False:
            self._require(self.strategy.snapshot() == before, "rule 1: a refused call changed the pool")
        return result

    def _allocate(self, seq, num_computed, num_new) -> bool:
        live = seq.seq_id in self.live
        headroom = self._refused_changes_nothing(
            lambda: self.strategy.allocate(seq, num_computed, num_new), (seq.seq_id, num_computed) if live else None
        )
        if headroom is None:
            self._note_cache_version()  # a window-aware refusal may have released blocks first
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
        holds = self._refused_changes_nothing(lambda: self.strategy.can_hold(seq, hit, prompt_len))
        admitted = self._allocate(seq, hit, prompt_len - hit)
        self._require(holds or not admitted, "rule 1: can_hold said no, yet the whole prompt fit")
        if admitted:
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
    def decode_batch(self, data):
        """A step's decoding sequences in one call: `allocate_decodes` does what `allocate(seq,
        computed, 1)` one by one does, up to the first refusal, which changes nothing."""
        seq_ids = data.draw(st.lists(st.sampled_from(sorted(self.live)), min_size=1, unique=True))
        entries = [self.live[s] for s in seq_ids if self.live[s]["computed"] < self.live[s]["seq"].final_num_kv_tokens]
        if not entries:
            return
        one_by_one = copy.deepcopy(self.strategy)
        expected = []
        for entry in entries:
            headroom = one_by_one.allocate(entry["seq"], entry["computed"], 1)
            if headroom is None:
                break
            expected.append(headroom)
        headrooms = self.strategy.allocate_decodes([(entry["seq"], entry["computed"]) for entry in entries])
        self._require(headrooms == expected, f"allocate_decodes granted {headrooms}, allocate one by one {expected}")
        self._require(self.strategy.snapshot() == one_by_one.snapshot(), "allocate_decodes left another pool")
        self._require(all(h >= 1 for h in headrooms), f"rule 2: allocate_decodes granted {headrooms} for one token each")
        for entry in entries[: len(headrooms)]:
            entry["synced"] = entry["computed"]
            entry["computed"] += 1
        self._note_cache_version()

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

    @precondition(lambda self: self.live and self.strategy.supports_swap)
    @rule(data=st.data())
    def swap_out(self, data):
        """Swap out any set of live sequences: blocks shared with one outside it become copies."""
        seq_ids = data.draw(st.lists(st.sampled_from(sorted(self.live)), min_size=1, unique=True))
        seqs = [(seq_id, self.live[seq_id]["computed"]) for seq_id in seq_ids]
        num_blocks = self._refused_changes_nothing(lambda: self.strategy.num_swap_blocks(seqs))
        if num_blocks > self.swap_space.num_free_blocks:
            return  # the scheduler recomputes instead
        tables = {seq_id: self.strategy.block_table(seq_id) for seq_id in seq_ids}
        kv = self.strategy.swap_out(seqs)
        self._require(kv.num_blocks == num_blocks, f"num_swap_blocks said {num_blocks}, swap_out moved {kv.num_blocks}")
        for seq_id, seq in kv.seqs.items():
            table = [kv.src_block_ids[i] for i in seq.block_indices]
            self._require(table == tables[seq_id][: len(table)], f"seq {seq_id}: swapped table {table} != {tables[seq_id]}")
        self.swapped.append((kv, self.swap_space.allocate(num_blocks), {s: self.live.pop(s) for s in seq_ids}))
        self.refused.clear()  # its blocks were released, as by free
        self._note_cache_version()

    @precondition(lambda self: self.swapped)
    @rule(data=st.data())
    def swap_in(self, data):
        index = data.draw(st.integers(0, len(self.swapped) - 1))
        kv, host_ids, entries = self.swapped[index]
        before = self.strategy.usage()
        held_before = before.held_slots
        num_free_blocks = (before.free_slots + before.cached_slots) // self.strategy.block_size
        block_ids = self._refused_changes_nothing(lambda: self.strategy.swap_in(kv))
        fits = kv.num_blocks + len(kv.seqs) <= num_free_blocks  # the blocks and a spare per sequence
        self._require((block_ids is not None) == fits, f"swap_in of {kv.num_blocks} blocks with {num_free_blocks} "
                      f"free returned {block_ids}")
        if block_ids is None:
            return
        self._require(len(set(block_ids)) == kv.num_blocks, f"swap_in gave {block_ids} for {kv.num_blocks} blocks")
        # Exactly the blocks copied in are new: the request holds what it held, in fresh blocks.
        held_after = self.strategy.usage().held_slots
        self._require(held_after - held_before == kv.num_blocks * self.strategy.block_size,
                      f"swap_in of {kv.num_blocks} blocks took {held_after - held_before} slots")
        for seq_id, seq in kv.seqs.items():
            expected = [block_ids[i] for i in seq.block_indices]
            self._require(self.strategy.block_table(seq_id) == expected, f"seq {seq_id}: restored table")
            entries[seq_id]["synced"] = entries[seq_id]["computed"]
        del self.swapped[index]
        self.swap_space.free(host_ids)
        self.live.update(entries)
        self._note_cache_version()

    @invariant()
    def consistent(self):
        if hasattr(self, "strategy"):
            try:
                check(self.strategy)
                check_swap(self.strategy, [(kv, host) for kv, host, _ in self.swapped], self.swap_space.num_blocks,
                           self.swap_space.free_block_ids())
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




def run_strategy_machine(name, options, factory, seq_type, **overrides):
    """Run the machine over `factory(name, num_blocks, block_size, max_model_len, **options)`.

    Example count from the Hypothesis profile (tests/conftest.py); `overrides`: other settings.
    """
    machine = type(
        f"{name}Machine", (StrategyMachine,),
        {"name": name, "options": options, "make_strategy": staticmethod(factory), "Seq": seq_type},
    )
    machine.TestCase.settings = settings(
        stateful_step_count=30, suppress_health_check=[HealthCheck.too_slow], **overrides
    )
    machine.TestCase().runTest()


@pytest.fixture
def strategy_machine():
    """`strategy_machine(name, options={}, factory=make_strategy, **settings)`: run the shared machine."""

    def run(name: str, options: dict | None = None, factory=make_strategy, **overrides) -> None:
        run_strategy_machine(name, options or {}, factory, Seq, **overrides)

    return run
