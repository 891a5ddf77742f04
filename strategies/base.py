"""The interface every KV-cache strategy implements, and the vocabulary it reports memory in.

A strategy is a policy plus a memory mechanism over a pool of `num_blocks` blocks of `block_size`
token slots. It never touches tensors: it hands out block ids, and for every live sequence a block
table (its block ids in order), which is all the attention kernels need.

The seam with the scheduler is small and check-then-commit:

- `cached_prefix_tokens(seq, num_tokens)`: how many leading tokens of a new sequence with
  `num_tokens` known tokens are already cached (pure).
- `allocate(seq, num_computed_tokens, num_new_tokens)`: make room for `num_new_tokens` more tokens
  after the first `num_computed_tokens`; returns False and changes nothing when it cannot.
- `fork(parent_id, child)`, `free(seq_id, num_computed_tokens)`, `block_table(seq_id)`.
- `headroom(seq_id)`: how many positions, counted from its synced length (the
  `num_computed_tokens` of its last `allocate` or `fork`), the sequence may write without calling
  the strategy again. The scheduler uses it to skip the
  strategy entirely between block boundaries (it tells the true length at the next call), which is
  what lets the simulator avoid working token by token.

Memory is reported in token slots (`PoolUsage`); multiply by the model's KV bytes per token for
bytes. Slots the sequences have written but not yet told the strategy about are, by construction,
slots the strategy counted as reserved; `PoolUsage.with_unsynced` moves them to tokens.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from omegaconf import MISSING

from kvbench.tokens import TokenSequence


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
        return self

    def with_external_frag(self, external_frag_slots: int) -> PoolUsage:
        """Move free slots that cannot serve the pending allocation to external fragmentation."""
        self.external_frag_slots = external_frag_slots
        self.free_slots -= external_frag_slots
        return self


@dataclass(slots=True)
class StrategyCounters:
    """Cumulative events, for metrics."""

    cow_copies: int = 0  # blocks copied because a shared block was written
    fork_copied_blocks: int = 0  # blocks copied eagerly at fork (strategies without sharing)


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
    extra_held: dict[int, list[int]] = field(default_factory=dict)  # seq_id -> held blocks beyond its table


class KVCacheStrategy(ABC):
    """Base of all strategies. Subclasses register with `kvbench.strategies.register`."""

    def __init__(self, config: StrategyConfig, num_blocks: int, max_model_len: int):
        block_size = config.block_size
        if block_size < 1 or block_size & (block_size - 1):
            raise ValueError(f"strategy.block_size={block_size} must be a power of two (1 to 256)")
        if block_size > 256:
            raise ValueError(f"strategy.block_size={block_size} is larger than 256")
        if num_blocks < 1:
            raise ValueError(f"the KV budget holds {num_blocks} blocks of {block_size} tokens: less than one")
        self.config = config
        self.block_size = block_size
        self.num_blocks = num_blocks
        self.max_model_len = max_model_len
        self.counters = StrategyCounters()
        # Bumped whenever an allocation that failed before might now succeed (frees, new cache
        # entries), so the scheduler retries a blocked admission only then.
        self.admission_epoch = 0
        # Block copies are logged only for an executor that moves K/V (the device executor): a
        # simulation would pay for a log nobody reads (a token-granular fork copies every token).
        self.record_block_copies = False
        self._block_copies: list[tuple[int, int]] = []

    @property
    def pool_slots(self) -> int:
        return self.num_blocks * self.block_size

    def cached_prefix_tokens(self, seq: SeqView, num_tokens: int) -> int:
        """Leading tokens of a new sequence with `num_tokens` known tokens whose KV is cached.

        A multiple of block_size, and at most num_tokens - 1: the last known token is always
        computed, since its logits give the next token.
        """
        return 0

    @abstractmethod
    def allocate(self, seq: SeqView, num_computed_tokens: int, num_new_tokens: int) -> bool:
        """Make room for tokens [num_computed_tokens, num_computed_tokens + num_new_tokens).

        For a sequence the strategy does not hold yet, `num_computed_tokens` must equal what
        `cached_prefix_tokens` just returned. Returns False, changing nothing, when the pool cannot.
        """

    def can_hold(self, seq: SeqView, num_computed_tokens: int, num_tokens: int) -> bool:
        """Whether a sequence the strategy does not hold yet would fit with `num_tokens` tokens now.

        Changes nothing. The scheduler asks before admitting a prompt's first chunk, so a prompt
        is admitted only when all of it fits. Strategies that reserve a sequence's whole length at
        admission (contiguous) already check more than this in `allocate`, hence the default.
        """
        return True

    @abstractmethod
    def headroom(self, seq_id: int) -> int:
        """Positions writable from the sequence's synced length without calling the strategy."""

    @abstractmethod
    def fork(self, parent_id: int, child: SeqView, num_computed_tokens: int) -> bool:
        """Give `child` the parent's first `num_computed_tokens` tokens. False: changed nothing."""

    @abstractmethod
    def free(self, seq_id: int, num_computed_tokens: int) -> None:
        """Release a finished or preempted sequence that has computed `num_computed_tokens`."""

    @abstractmethod
    def block_table(self, seq_id: int) -> list[int]:
        """Block ids holding the sequence's KV, in token order."""

    @abstractmethod
    def usage(self) -> PoolUsage:
        """Where the pool's slots are, as of the last calls (external fragmentation excluded)."""

    def pop_block_copies(self) -> list[tuple[int, int]]:
        """(src, dst) block copies made since the last call, oldest first: forks that copy and
        copy-on-write. A device executor applies them before the step's attention. Empty unless
        `record_block_copies` is set."""
        copies, self._block_copies = self._block_copies, []
        return copies

    def _log_copies(self, pairs: Iterable[tuple[int, int]]) -> None:
        if self.record_block_copies:
            self._block_copies.extend(pairs)

    def external_frag_slots(self, seq: SeqView, num_new_tokens: int) -> int:
        """Free slots that cannot serve this allocation, which failed: holes too small for it."""
        return 0

    @abstractmethod
    def max_seq_kv_tokens(self) -> int:
        """The longest sequence (in KV tokens) the pool could ever hold alone."""

    @abstractmethod
    def snapshot(self) -> PoolSnapshot:
        """The state in plain form, for `kvbench.strategies.invariants.check`."""
