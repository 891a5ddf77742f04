"""The interface every KV-cache strategy implements, its rules, and the vocabulary it reports in.

A strategy is a policy plus a memory mechanism over a pool of `num_blocks` blocks of `block_size`
token slots. It never touches tensors: it hands out block ids, and for every live sequence a block
table (its block ids in order), which is all the attention kernels need. It never knows about
executors either: the scheduler copies what a step needs (tables, block copies, the layout) into
the step plan.

The seam with the scheduler (check-then-commit, as nano-vllm's can_allocate / allocate):

- `cached_prefix_tokens(seq, num_tokens)`: leading tokens of a new sequence already cached (pure).
- `can_hold(seq, num_computed_tokens, num_tokens) -> bool`: whether a new sequence would fit with
  that many tokens now (pure; the scheduler admits a chunked prompt only when all of it fits).
- `allocate(seq, num_computed_tokens, num_new_tokens) -> int | None`: make room for more tokens;
  the headroom granted, or None having changed nothing. `allocate_decodes(batch)` is the same for
  a step's decoding sequences at once (one new token each), granted in order up to the first refusal.
- `fork(parent_id, child, num_computed_tokens) -> bool`, `free(seq_id, num_computed_tokens) -> bool`
  (whether it made room), `block_table(seq_id)`, `headroom(seq_id)`, `usage()`, `snapshot()`.
- Swap preemption (`scheduler.preemption=swap`), for strategies with `supports_swap`:
  `num_swap_blocks(seqs)` (pure), `swap_out(seqs) -> SwappedKV`, `swap_in(swapped) -> list[int] | None`.
  A whole request moves at once (all its sequences, blocks they share once), as vLLM v0 swapped a
  sequence group; the others raise with `swap_unsupported`, the reason swap has no meaning there.

The rules. The scheduler relies on each; `tests/strategies/test_strategy_stateful.py` checks every
registered strategy (installed plugins included) against them, and `invariants.check` after every call:

1. Check-then-commit: a refused `allocate` (None) or `fork` (False) leaves the state exactly as it
   was (`snapshot()` equal before and after). `cached_prefix_tokens` and `can_hold` never change the state.
   One exception, as in vLLM: a window-aware strategy's `allocate` first releases the blocks that
   left a sliding window, refused or not; the state is then what `release_out_of_window` leaves.
2. `allocate` returns the headroom granted: equal to `headroom(seq_id)` right after, and at least
   `num_new_tokens` (so `allocate(n=1)` always leaves room for that one token).
3. Headroom is a promise: the sequence may write that many positions after its synced length (the
   `num_computed_tokens` of its last `allocate` or `fork`) without calling the strategy again. The
   scheduler skips the strategy between block boundaries, so it only learns a sequence's true
   length at the next call; tokens written but not yet synced sit in slots counted as reserved.
   When a sequence starts decoding, the scheduler asks `start_decoding(seq_id, tick)`, which may
   grant more than `headroom(seq_id)` said: the strategy then knows which tick writes each position.
4. A refusal is stable: an admission that `allocate` refused is refused again until a `free`
   returned True ("made room") or `prefix_cache_version()` changed. The scheduler does not retry
   a blocked head before then, so a strategy that makes room silently stalls it ("does not fit in
   an empty KV pool").
5. `cached_prefix_tokens` returns a multiple of `block_size` below `num_tokens` (the last known
   token is always computed, its logits give the next one), and a new sequence's first `allocate`
   passes exactly that as `num_computed_tokens`.
6. The state is consistent after every call: no block leaked or double-booked, reference counts
   equal table references, the free queue holds exactly the unreferenced blocks, no two sequences
   write one slot, every prefix-cache key matches its block's content, and `usage()` recomputed
   block by block sums to the pool (see invariants.py for the full list).
7. A sequence never shrinks, never writes past its final length, and its table covers its tokens.

Memory is reported in token slots (`PoolUsage`); multiply by the model's KV bytes per token for
bytes. Events a strategy counts (copies, evictions, ...) are declared in `counted_events` and
become step columns and summary fields without touching the recorder.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

from omegaconf import MISSING

from kvbench.tokens import TokenSequence

if TYPE_CHECKING:
    from kvbench.model_spec import KVGroup, ModelSpec


@dataclass
class StrategyConfig:
    """Fields every strategy has; each strategy's schema extends this."""

    name: str = MISSING
    block_size: int = 16


class SeqView(Protocol):
    """What a strategy may know about a sequence."""

    seq_id: int
    stream: TokenSequence  # every token the sequence has or will have (prompt, then output)
    final_num_kv_tokens: int  # KV slots it holds when it finishes (known in simulation)


@dataclass(slots=True)
class PoolUsage:
    """Where the pool's slots are, in token slots.

    token + reserved + internal_frag + external_frag + free + cached == pool. `logical_slots` counts
    every sequence's table in full, so `logical - physical held` is what sharing saved.
    """

    pool_slots: int
    token_slots: int
    reserved_slots: int
    internal_frag_slots: int
    external_frag_slots: int
    free_slots: int
    cached_slots: int
    logical_slots: int
    # Per layer group, for strategies with a block table per group (group_tables.py): the slots of
    # the blocks each group holds, and of those the slots holding K/V of existing tokens.
    group_held_slots: tuple[int, ...] = ()
    group_token_slots: tuple[int, ...] = ()

    @property
    def held_slots(self) -> int:
        return self.token_slots + self.reserved_slots + self.internal_frag_slots

    @property
    def shared_saved_slots(self) -> int:
        return self.logical_slots - self.held_slots

    def with_unsynced(self, num_unsynced_tokens: int) -> PoolUsage:
        """Count tokens written into reserved slots since the sequences last synced."""
        self.token_slots += num_unsynced_tokens
        self.reserved_slots -= num_unsynced_tokens
        if self.group_token_slots:  # every token is written in every group: an equal share each
            per_group = num_unsynced_tokens // len(self.group_token_slots)
            self.group_token_slots = tuple(num_slots + per_group for num_slots in self.group_token_slots)
        return self

    def with_external_frag(self, external_frag_slots: int) -> PoolUsage:
        """Move free slots that cannot serve the pending allocation to external fragmentation."""
        self.external_frag_slots = external_frag_slots
        self.free_slots -= external_frag_slots
        return self


# Event columns every run has (zero for strategies that never count them): the step table and
# summary.json have always carried these two, and reports compare them across strategies.
STANDARD_EVENTS = ("cow_copies", "fork_copied_blocks")


@dataclass(slots=True)
class PoolSnapshot:
    """A strategy's state in plain form, for the shared invariant checker."""

    block_size: int
    num_blocks: int
    tables: dict[int, list[int]]  # seq_id -> block table
    num_tokens: dict[int, int]  # seq_id -> synced length
    final_num_kv_tokens: dict[int, int]
    num_inherited_tokens: dict[int, int]  # seq_id -> leading tokens it did not write (prefix hit, fork)
    ref_cnt: list[int]  # per block id: how many tables hold it (held but unlisted blocks count 1)
    free_queue: list[int]  # free block ids in allocation order (cached ones included)
    cached: set[int] = field(default_factory=set)  # free blocks that still hold a reusable prefix
    registered: set[int] = field(default_factory=set)  # blocks findable by content (held or free)
    # (block id, its prefix-cache key, the key re-derived from scratch from a live holder's content)
    # for every registered block a live sequence holds: the two must agree.
    cache_key_checks: list[tuple[int, object, object]] = field(default_factory=list)
    extra_held: dict[int, list[int]] = field(default_factory=dict)  # seq_id -> held blocks beyond its table
    # Tiers below the pool (strategies/tiers.py): each tier's block keys, least recently used first.
    tiers: dict[str, list[object]] = field(default_factory=dict)
    tier_capacity_blocks: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class SwappedSeq:
    """One sequence of a swapped-out request, as `swap_in` restores it."""

    block_indices: list[int]  # its table, as indices into SwappedKV.src_block_ids
    num_tokens: int  # synced length at swap-out (its computed tokens)
    num_inherited_tokens: int
    final_num_kv_tokens: int
    stream: TokenSequence


@dataclass(slots=True)
class SwappedKV:
    """A request's K/V taken out of the pool by `swap_out`: what `swap_in` needs to put it back.

    Only blocks holding tokens move (a table's empty tail is freed, and allocated again on
    resume); a block several sequences share moves once. `block_fills[i]` is block i's
    (num_tokens, reserve_end), so a restored request holds exactly the memory it held before.
    """

    src_block_ids: list[int]  # pool blocks copied out, each once, in the order first met
    block_fills: list[tuple[int, int]]
    seqs: dict[int, SwappedSeq]  # seq_id -> how it is rebuilt

    @property
    def num_blocks(self) -> int:
        return len(self.src_block_ids)


class KVCacheStrategy(ABC):
    """Base of all strategies. Register with `@kvbench.strategies.register("name", NameConfig)`."""

    # How its block tables lie in the pool: "paged" (blocks anywhere) or "contiguous" (one run of
    # consecutive ids per sequence). The plan carries it; the profile cost model times steps by it.
    layout: ClassVar[str] = "paged"
    # Events it counts in `self.counters` (cumulative), beyond STANDARD_EVENTS: each becomes a
    # steps.csv column (per step) and a summary.json field (the run's total).
    counted_events: ClassVar[tuple[str, ...]] = ()
    # The largest block the strategy accepts (vattention's blocks are pages of up to 2 MiB per layer).
    max_block_size: ClassVar[int] = 256
    # Whether it implements swap_out / swap_in (scheduler.preemption=swap), and if not, why.
    supports_swap: ClassVar[bool] = False
    swap_unsupported: ClassVar[str] = "it does not implement swap_out / swap_in"
    # Whether it keeps a block table per layer group and releases the blocks of sliding-window
    # layers that leave the window (its constructor then takes `kv_groups=`, the model's groups,
    # and its pool is counted in pages of one group: see group_tables.py). Other strategies keep
    # every token of every attention layer.
    window_aware: ClassVar[bool] = False
    # Block tables a sequence has (one per layer group); each token written fills a slot in each.
    num_kv_groups: int = 1
    # The most tokens one step computes, set by the scheduler: a window-aware `can_hold` counts a
    # sliding group's blocks for a prompt prefilled chunk by chunk with it.
    max_num_batched_tokens: int | None = None

    @classmethod
    def kv_groups_for(cls, model: ModelSpec) -> list[KVGroup] | None:
        """The layer groups to build with (`kv_groups=`), or None: only a window-aware strategy on a
        model with sliding-window layers keeps a table per group; otherwise the pool is counted in
        tokens of every attention layer. Full-attention models have one group either way."""
        return model.kv_groups if cls.window_aware and model.has_windowed_layers else None

    @classmethod
    def configure(cls, config: StrategyConfig, model: ModelSpec, tensor_parallel: int) -> StrategyConfig:
        """Settings that follow from the model, filled in before the pool is sized (vattention's
        tokens per page). Most strategies take their config as it is."""
        return config

    def __init__(self, config: StrategyConfig, num_blocks: int, max_model_len: int):
        block_size = config.block_size
        if block_size < 1 or block_size & (block_size - 1):
            raise ValueError(f"strategy.block_size={block_size} must be a power of two (1 to {self.max_block_size})")
        if block_size > self.max_block_size:
            raise ValueError(f"strategy.block_size={block_size} is larger than {self.max_block_size}")
        if num_blocks < 1:
            raise ValueError(f"the KV budget holds {num_blocks} blocks of {block_size} tokens: less than one")
        self.config = config
        self.block_size = block_size
        self.num_blocks = num_blocks
        self.max_model_len = max_model_len
        self.counters: dict[str, int] = dict.fromkeys(self.event_names(), 0)
        # Block copies are logged only for an executor that moves K/V (the device executor): a
        # simulation would pay for a log nobody reads (a token-granular fork copies every token).
        self.record_block_copies = False
        self._block_copies: list[tuple[int, int]] = []

    @classmethod
    def event_names(cls) -> tuple[str, ...]:
        """Every counter the recorder writes for this strategy, standard ones first. A strategy
        whose counters follow its config (paged_prefix's tiers) extends this per instance; the
        recorder always asks the instance."""
        return STANDARD_EVENTS + tuple(e for e in cls.counted_events if e not in STANDARD_EVENTS)

    @property
    def pool_slots(self) -> int:
        return self.num_blocks * self.block_size

    def cached_prefix_tokens(self, seq: SeqView, num_tokens: int) -> int:
        """Leading tokens of a new sequence with `num_tokens` known tokens whose KV is cached (rule 5)."""
        return 0

    def probe_prefix_tokens(self, stream: TokenSequence, num_tokens: int, memo: dict) -> int:
        """Leading tokens of a prompt this strategy holds cached, for a fleet's router deciding
        where to send it (kvbench/routers.py): as `cached_prefix_tokens`, for a stream that is no
        sequence yet. Pure. `memo` is shared by the replicas asked about one prompt, so work that
        depends on the prompt alone (its block keys) is done once."""
        return 0

    def prefix_cache_version(self) -> int:
        """Changes whenever content becomes findable by `cached_prefix_tokens`, or room is made
        other than by a `free` (rule 4): blocks leaving a sliding window (`paged`), a tensor's old
        run freed as it grows (`hf_dynamic`).

        A refused admission may succeed then, so the scheduler retries. It may change more often
        (paged_prefix's moves with every tick: a retry that fails again costs only time). Strategies
        that do neither keep 0.
        """
        return 0

    @abstractmethod
    def allocate(self, seq: SeqView, num_computed_tokens: int, num_new_tokens: int) -> int | None:
        """Make room for tokens [num_computed_tokens, num_computed_tokens + num_new_tokens).

        For a sequence the strategy does not hold yet, `num_computed_tokens` must equal what
        `cached_prefix_tokens` just returned. Returns the headroom granted (rule 2), or None,
        changing nothing, when the pool cannot (rule 1).
        """

    def begin_decode_tick(self, tick: int) -> None:
        """The scheduler allocates for decode tick `tick` (numbered 1, 2, ... in order) until
        `end_decode_tick(tick)`. In between, `allocate(seq, n, 1)` of a sequence the strategy holds is
        a decoding sequence writing position n in this tick, and it goes on writing one position per
        tick (n + 1 in tick + 1, ...) until it calls `allocate` again or is freed. A strategy may
        rely on this to do per-token work late, in bulk (paged_prefix registers the blocks decoding
        fills that way); the default ignores it. Calls outside the bracket promise nothing of the kind."""

    def end_decode_tick(self, tick: int) -> None:
        """Every decoding sequence is allocated for tick `tick`: its tokens are all scheduled."""

    def start_decoding(self, seq_id: int, tick: int) -> int:
        """The scheduler starts decoding a held sequence after tick `tick`: it writes one position a
        tick from its synced length on (in tick + 1, tick + 2, ...) until it calls `allocate` or is
        freed, as inside the decode-tick bracket. Returns its headroom (rule 3). The default is
        `headroom(seq_id)`; a strategy that stops a sequence early to learn when it writes
        (paged_prefix, at the block its prompt ends in) may grant more here, where it is told."""
        return self.headroom(seq_id)

    def allocate_decodes(self, batch: list[tuple[SeqView, int]]) -> list[int]:
        """`allocate(seq, num_computed_tokens, 1)` for each held (seq, num_computed_tokens) of
        `batch`, in order, stopping at the first refusal: the headrooms granted, one per sequence
        before it (the refused one changed nothing, rule 1).

        The scheduler's decoding sequences that crossed their headroom in a step come in one call
        (the simulator's most frequent event); a strategy answers them in one loop where that pays.
        """
        headrooms = []
        for seq, num_computed_tokens in batch:
            headroom = self.allocate(seq, num_computed_tokens, 1)
            if headroom is None:
                break
            headrooms.append(headroom)
        return headrooms

    def release_out_of_window(self, seq_id: int, num_computed_tokens: int) -> bool:
        """Release a live sequence's blocks of sliding-window layers that no token after its first
        `num_computed_tokens` attends to. Whether a block became free. `allocate` does it first."""
        return False

    def can_hold(self, seq: SeqView, num_computed_tokens: int, num_tokens: int) -> bool:
        """Whether a sequence the strategy does not hold yet would fit with `num_tokens` tokens now.

        Changes nothing. The scheduler asks before admitting a prompt's first chunk, so a prompt
        is admitted only when all of it fits. Strategies that reserve a sequence's whole length at
        admission (contiguous) already check more than this in `allocate`, hence the default.
        """
        return True

    @abstractmethod
    def headroom(self, seq_id: int) -> int:
        """Positions writable from the sequence's synced length without calling the strategy (rule 3)."""

    @abstractmethod
    def fork(self, parent_id: int, child: SeqView, num_computed_tokens: int) -> bool:
        """Give `child` the parent's first `num_computed_tokens` tokens. False: changed nothing."""

    @abstractmethod
    def free(self, seq_id: int, num_computed_tokens: int) -> bool:
        """Release a finished or preempted sequence that has computed `num_computed_tokens`.

        Returns whether it made room: True when a block (or run) became free. The scheduler retries
        a refused admission only after that (rule 4).
        """

    @abstractmethod
    def block_table(self, seq_id: int) -> list[int]:
        """Block ids holding the sequence's KV, in token order."""

    @abstractmethod
    def usage(self) -> PoolUsage:
        """Where the pool's slots are, as of the last calls (external fragmentation excluded)."""

    @property
    def loads_kv(self) -> bool:
        """Whether admissions load K/V from tiers below the pool (strategies/tiers.py), so that
        the scheduler asks `pop_kv_load` for every step."""
        return False

    def pop_kv_load(self) -> tuple[float, bool]:
        """Seconds of K/V loads into the pool since the last call, and whether they overlap the
        step's compute."""
        return 0.0, False

    def pop_block_copies(self) -> list[tuple[int, int]]:
        """(src, dst) block copies made since the last call, oldest first: forks that copy and
        copy-on-write. The scheduler puts them in the step plan; a device executor applies them
        before the step's attention. Empty unless `record_block_copies` is set."""
        copies, self._block_copies = self._block_copies, []
        return copies

    def _log_copies(self, pairs: Iterable[tuple[int, int]]) -> None:
        if self.record_block_copies:
            self._block_copies.extend(pairs)

    def _count_fork_copies(self, pairs: list[tuple[int, int]]) -> None:
        """A fork copied these (src, dst) blocks: log them for an executor that moves K/V, and count
        them as `fork_copied_blocks`."""
        self._log_copies(pairs)
        self.counters["fork_copied_blocks"] += len(pairs)

    def num_swap_blocks(self, seqs: list[tuple[int, int]]) -> int:
        """Blocks `swap_out(seqs)` would move (pure): the distinct blocks holding the tokens of
        these (seq_id, num_computed_tokens)."""
        raise NotImplementedError(f"{type(self).__name__} cannot swap: {self.swap_unsupported}")

    def swap_out(self, seqs: list[tuple[int, int]]) -> SwappedKV:
        """Take a whole request, its sequences as (seq_id, num_computed_tokens), out of the pool.

        Its blocks are released as by `free` (so a prefix-caching strategy keeps their content
        cached); what comes back describes the blocks to copy out and how to rebuild the tables.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot swap: {self.swap_unsupported}")

    def swap_in(self, swapped: SwappedKV) -> list[int] | None:
        """Put a swapped-out request back: pool blocks for `swapped.src_block_ids`' copies, in that
        order, its sequences' tables rebuilt with the same sharing and lengths. None, changing
        nothing, when the pool lacks the blocks plus one spare per sequence (its next token may
        need a block, or a copy of a shared last block)."""
        raise NotImplementedError(f"{type(self).__name__} cannot swap: {self.swap_unsupported}")

    def external_frag_slots(self, seq: SeqView, num_new_tokens: int) -> int:
        """Free slots that cannot serve this allocation, which failed: holes too small for it."""
        return 0

    @abstractmethod
    def max_seq_kv_tokens(self) -> int:
        """The longest sequence (in KV tokens) the pool could ever hold alone."""

    @abstractmethod
    def snapshot(self) -> PoolSnapshot:
        """The state in plain form, for `kvbench.strategies.invariants.check`."""


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)
