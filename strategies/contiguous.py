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
from kvbench.strategies.base import KVCacheStrategy, PoolSnapshot, PoolUsage, SeqView, StrategyConfig
from kvbench.strategies.paged import ceil_div
from kvbench.strategies.registry import register


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


class SeqRun:
    __slots__ = ("start", "num_reserved_blocks", "num_run_blocks", "num_tokens", "final_num_kv_tokens")

    def __init__(self, start: int, num_reserved_blocks: int, num_run_blocks: int, num_tokens: int, final: int):
        self.start = start
        self.num_reserved_blocks = num_reserved_blocks  # what the policy asked for: the block table
        self.num_run_blocks = num_run_blocks  # what the allocator holds (buddy rounds up)
        self.num_tokens = num_tokens
        self.final_num_kv_tokens = final


@register("contiguous", ContiguousConfig)
class ContiguousStrategy(KVCacheStrategy):
    def __init__(self, config: ContiguousConfig, num_blocks: int, max_model_len: int):
        super().__init__(config, num_blocks, max_model_len)
        self.reservation = Reservation(config.reservation)
        self.allocator = ALLOCATORS[Allocator(config.allocator).value](num_blocks)
        self._seqs: dict[int, SeqRun] = {}
        self._token_slots = 0
        self._reserved_slots = 0  # slots for tokens the sequences will still write
        self._held_slots = 0
        # Asked every step while a request waits: recomputed only when the holes or the request change.
        self._external_frag: tuple[tuple[int, int], int] = ((-1, -1), 0)

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
        self._seqs[seq.seq_id] = run
        self._token_slots += num_tokens
        self._reserved_slots += run.final_num_kv_tokens - num_tokens
        self._held_slots += run.num_run_blocks * self.block_size
        return run

    def allocate(self, seq: SeqView, num_computed_tokens: int, num_new_tokens: int) -> bool:
        num_total_tokens = num_computed_tokens + num_new_tokens
        run = self._seqs.get(seq.seq_id)
        if run is None:
            if num_computed_tokens:
                raise ValueError(f"seq {seq.seq_id}: contiguous caches no prefix, got {num_computed_tokens}")
            return self._reserve(seq, 0) is not None
        if num_total_tokens > run.num_reserved_blocks * self.block_size:
            raise ValueError(
                f"seq {seq.seq_id} outgrew its reservation ({num_total_tokens} > "
                f"{run.num_reserved_blocks * self.block_size} tokens): its final length was wrong"
            )
        self._sync(run, num_computed_tokens)
        return True

    def headroom(self, seq_id: int) -> int:
        run = self._seqs[seq_id]
        return run.num_reserved_blocks * self.block_size - run.num_tokens

    def fork(self, parent_id: int, child: SeqView, num_computed_tokens: int) -> bool:
        parent = self._seqs[parent_id]
        run = self._reserve(child, num_computed_tokens)
        if run is None:
            return False
        self._sync(parent, num_computed_tokens)
        num_copied_blocks = ceil_div(num_computed_tokens, self.block_size)
        self._log_copies((parent.start + i, run.start + i) for i in range(num_copied_blocks))
        self.counters.fork_copied_blocks += num_copied_blocks
        return True

    def free(self, seq_id: int, num_computed_tokens: int) -> None:
        run = self._seqs.pop(seq_id)
        self._sync(run, num_computed_tokens)
        self._token_slots -= run.num_tokens
        self._reserved_slots -= run.final_num_kv_tokens - run.num_tokens
        self._held_slots -= run.num_run_blocks * self.block_size
        self.allocator.free(run.start, run.num_reserved_blocks)
        self.admission_epoch += 1

    def _sync(self, run: SeqRun, num_tokens: int) -> None:
        if num_tokens < run.num_tokens:
            raise ValueError(f"a sequence cannot shrink ({run.num_tokens} -> {num_tokens} tokens)")
        self._token_slots += num_tokens - run.num_tokens
        self._reserved_slots -= num_tokens - run.num_tokens
        run.num_tokens = num_tokens

    def block_table(self, seq_id: int) -> list[int]:
        run = self._seqs[seq_id]
        return list(range(run.start, run.start + run.num_reserved_blocks))

    def usage(self) -> PoolUsage:
        return PoolUsage(
            pool_slots=self.pool_slots,
            token_slots=self._token_slots,
            reserved_slots=self._reserved_slots,
            internal_frag_slots=self._held_slots - self._token_slots - self._reserved_slots,
            external_frag_slots=0,
            free_slots=self.allocator.num_free_blocks * self.block_size,
            cached_slots=0,
            logical_slots=self._held_slots,
        )

    def external_frag_slots(self, seq: SeqView, num_new_tokens: int) -> int:
        if seq.seq_id in self._seqs:
            return 0  # a running sequence never needs a new run
        num_blocks = ceil_div(max(self.reserved_tokens(seq.final_num_kv_tokens), num_new_tokens), self.block_size)
        key = (num_blocks, self.allocator.version)
        if key != self._external_frag[0]:
            self._external_frag = (key, self.allocator.unusable_free_blocks(num_blocks) * self.block_size)
        return self._external_frag[1]

    def max_seq_kv_tokens(self) -> int:
        largest_slots = self.allocator.largest_run() * self.block_size
        if self.reservation is Reservation.max:
            return self.max_model_len if self.max_model_len <= largest_slots else 0
        return largest_slots

    def snapshot(self) -> PoolSnapshot:
        ref_cnt = [0] * self.num_blocks
        for run in self._seqs.values():
            for block_id in range(run.start, run.start + run.num_run_blocks):
                ref_cnt[block_id] += 1
        return PoolSnapshot(
            block_size=self.block_size,
            num_blocks=self.num_blocks,
            tables={sid: self.block_table(sid) for sid in self._seqs},
            num_tokens={sid: r.num_tokens for sid, r in self._seqs.items()},
            final_num_kv_tokens={sid: r.final_num_kv_tokens for sid, r in self._seqs.items()},
            num_inherited_tokens={sid: 0 for sid in self._seqs},
            ref_cnt=ref_cnt,
            free_queue=[b for start, size in self.allocator.holes() for b in range(start, start + size)],
            extra_held={
                sid: list(range(r.start + r.num_reserved_blocks, r.start + r.num_run_blocks))
                for sid, r in self._seqs.items()
            },
        )
