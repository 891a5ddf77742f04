"""`contiguous`: one run of consecutive blocks per sequence, reserved at admission (FasterTransformer
and Orca style).

How much is reserved is the policy (`strategy.reservation`):
- `max`: max_model_len tokens, whatever the request will need;
- `pow2`: the sequence's true final length rounded up to a power of two;
- `oracle`: exactly the true final length (an upper bound no real system reaches).
Where the run goes is the mechanism (`strategy.allocator`: `first_fit` or `buddy`, see
allocators.py). A run never grows, so the whole reservation is held from the first token; a fork
(parallel sampling, beam search) reserves a second run and copies the parent's tokens into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from kvbench.strategies.allocators import ALLOCATORS, next_pow2
from kvbench.strategies.base import KVCacheStrategy, PoolSnapshot, PoolUsage, SeqView, StrategyConfig, ceil_div
from kvbench.strategies.registry import register
from kvbench.strategies.run_table import RunTable, SeqRun


class Reservation(Enum):
    max = "max"
    pow2 = "pow2"
    oracle = "oracle"


class Allocator(Enum):
    first_fit = "first_fit"
    buddy = "buddy"


@dataclass
class ContiguousConfig(StrategyConfig):
    name: str = "contiguous"
    reservation: Reservation = Reservation.max
    allocator: Allocator = Allocator.first_fit


@register("contiguous", ContiguousConfig)
class ContiguousStrategy(KVCacheStrategy):
    layout = "contiguous"
    swap_unsupported = (
        "a reservation is one run sized at admission, and Orca-style engines preempt by dropping it "
        "(recompute); swapping would need a free run of the same length on resume, not modelled"
    )

    def __init__(self, config: ContiguousConfig, num_blocks: int, max_model_len: int):
        super().__init__(config, num_blocks, max_model_len)
        self.reservation = Reservation(config.reservation)
        self.allocator = ALLOCATORS[Allocator(config.allocator).value](num_blocks)
        self.runs = RunTable(num_blocks, self.block_size)
        # Asked every step while a request waits: recomputed only when the holes or the request change.
        self._external_frag: tuple[tuple[int, int, int], int] = ((-1, -1, -1), 0)  # (seq_id, tokens, version), slots

    def reserved_tokens(self, final_num_kv_tokens: int) -> int:
        """Tokens the policy reserves for a sequence that will hold `final_num_kv_tokens`."""
        if self.reservation is Reservation.max:
            return self.max_model_len
        if self.reservation is Reservation.pow2:
            return min(next_pow2(final_num_kv_tokens), max(self.max_model_len, final_num_kv_tokens))
        return final_num_kv_tokens

    def _reserve(self, seq: SeqView, num_tokens: int) -> SeqRun | None:
        num_blocks = ceil_div(max(self.reserved_tokens(seq.final_num_kv_tokens), num_tokens), self.block_size)
        start = self.allocator.allocate(num_blocks)
        if start is None:
            return None
        run = SeqRun(start, num_blocks, self.allocator.run_size(num_blocks), num_tokens, seq.final_num_kv_tokens)
        return self.runs.add(seq.seq_id, run)

    def allocate(self, seq: SeqView, num_computed_tokens: int, num_new_tokens: int) -> int | None:
        num_total_tokens = num_computed_tokens + num_new_tokens
        run = self.runs.seqs.get(seq.seq_id)
        if run is None:
            if num_computed_tokens:
                raise ValueError(f"seq {seq.seq_id}: contiguous caches no prefix, got {num_computed_tokens}")
            if self._reserve(seq, 0) is None:
                return None
            return self.runs.headroom(seq.seq_id)
        if num_total_tokens > run.num_reserved_blocks * self.block_size:
            raise ValueError(
                f"seq {seq.seq_id} outgrew its reservation ({num_total_tokens} > "
                f"{run.num_reserved_blocks * self.block_size} tokens): its final length was wrong"
            )
        self.runs.sync(run, num_computed_tokens)
        return self.runs.headroom(seq.seq_id)

    def headroom(self, seq_id: int) -> int:
        return self.runs.headroom(seq_id)

    def fork(self, parent_id: int, child: SeqView, num_computed_tokens: int) -> bool:
        parent = self.runs.seqs[parent_id]
        run = self._reserve(child, num_computed_tokens)
        if run is None:
            return False
        self._count_fork_copies(self.runs.fork_copies(parent, run, num_computed_tokens))
        return True

    def free(self, seq_id: int, num_computed_tokens: int) -> bool:
        run = self.runs.remove(seq_id, num_computed_tokens)
        self.allocator.free(run.start, run.num_reserved_blocks)
        return True

    def block_table(self, seq_id: int) -> list[int]:
        return self.runs.block_table(seq_id)

    def usage(self) -> PoolUsage:
        return self.runs.usage(self.allocator.num_free_blocks)

    def external_frag_slots(self, seq: SeqView, num_new_tokens: int) -> int:
        if seq.seq_id in self.runs.seqs:
            return 0  # a running sequence never needs a new run
        key = (seq.seq_id, num_new_tokens, self.allocator.version)
        if key != self._external_frag[0]:
            num_blocks = ceil_div(max(self.reserved_tokens(seq.final_num_kv_tokens), num_new_tokens), self.block_size)
            self._external_frag = (key, self.allocator.unusable_free_blocks(num_blocks) * self.block_size)
        return self._external_frag[1]

    def max_seq_kv_tokens(self) -> int:
        largest_slots = self.allocator.largest_run() * self.block_size
        if self.reservation is Reservation.max:
            return self.max_model_len if self.max_model_len <= largest_slots else 0
        return largest_slots

    def snapshot(self) -> PoolSnapshot:
        return self.runs.snapshot(self.allocator.holes())
