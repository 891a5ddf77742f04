"""FCFS continuous batching over any strategy, shared by the simulator and the device executor.

Each call of `schedule` plans one step (one forward pass); `complete` applies its results once the
executor has run or costed it. Two shapes of step, as in vLLM:

- `chunked_prefill=true` (vLLM v1, Sarathi): every step runs all decodes first, then continues
  partial prefills and admits waiting requests in chunks with the remaining token budget, unless
  the step preempted (vLLM 0.33.0 `Scheduler.schedule`: `if not preempted_reqs`): the request just
  preempted heads the queue, and re-admitting it into the room it just left would only preempt it
  again.
- `chunked_prefill=false` (vLLM v0): a step admits whole prompts when it can (prefill only),
  otherwise it runs all decodes. After a step that preempted, the next one decodes: a request
  whose forks (parallel samples, beams) found no room would otherwise be re-admitted, prefilled
  and preempted again forever, never letting the running requests finish and free memory.

When a running sequence cannot get a block, the latest-admitted request is preempted by recompute:
its blocks are freed and it goes back to the head of the queue; a single-sequence request keeps its
output so far and recomputes prompt + output, a request with several sequences (even one preempted
while forking them) restarts.

With `preemption=swap` (vLLM v0's swap mode), a decoding request is instead swapped out whole (all
its sequences; blocks they share move once) into the host swap space, and swapped back in before
any waiting request is admitted, oldest first, in a step that preempted nothing; it resumes
decoding where it stopped. A request that cannot swap (mid-prefill, beam search, preempted while
forking its samples) is recomputed; so is one that finds the swap space full (counted). See
docs/swap.md.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from collections.abc import Sequence as Sequence_
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from kvbench.errors import ConfigError
from kvbench.lazy_decode import LazyDecodeSet
from kvbench.request import Request
from kvbench.sequence import Phase, RequestState, Sequence
from kvbench.strategies.base import KVCacheStrategy, PoolUsage
from kvbench.swap_space import SwappedGroup, SwapSpace, SwapStats
from kvbench.waiting_queue import WaitingQueue

if TYPE_CHECKING:
    from kvbench.inter_token_latency import InterTokenLatencies


@dataclass
class SchedulerConfig:
    max_num_seqs: int = 256
    # None: 8192 with chunked prefill, else max_model_len (a whole prompt must fit in one step).
    max_num_batched_tokens: int | None = None
    chunked_prefill: bool = True
    # Chunked prefill admits a waiting request only when its whole prompt (and recomputed output)
    # fits, not just its first chunk: vLLM 0.33.0's `scheduler_reserve_full_isl` (default on).
    reserve_full_prompt: bool = True
    # Order of the waiting queue: "fcfs" (arrival), or "lpm" (longest cached prefix first, SGLang's
    # cache-aware policy; ties keep arrival order). Meaningful with a prefix-caching strategy.
    policy: str = "fcfs"
    # "continuous" (Orca, vLLM: requests join and leave every step) or "static" (Transformers'
    # `generate`: a batch is admitted together and none joins until its longest member ends).
    batching: str = "continuous"
    # How a preempted request gives up its memory: "recompute" (free it, prefill again later) or
    # "swap" (copy it to the host swap space, hardware.cpu_swap_bytes, and back; see docs/swap.md).
    preemption: str = "recompute"


POLICIES = ("fcfs", "lpm")
BATCHING = ("continuous", "static")
PREEMPTION = ("recompute", "swap")


class SchedulerError(RuntimeError):
    """The workload cannot be served with this configuration."""


@dataclass(slots=True)
class PrefillChunk:
    seq: Sequence
    num_computed_tokens: int  # before this step, cached prefix included
    num_new_tokens: int


@dataclass(slots=True)
class StepPlan:
    """What one forward pass computes: everything an executor sees (as vLLM's SchedulerOutput).

    `decodes`, `block_tables` and `block_copies` are filled only for executors that read block
    tables and move K/V (`Scheduler(with_block_tables=True)`): the simulator needs counts alone.
    """

    step_index: int
    layout: str = "paged"  # the strategy's block-table layout (KVCacheStrategy.layout)
    tick: int | None = None  # the decode tick, None when this step runs no decodes
    prefills: list[PrefillChunk] = field(default_factory=list)
    beam_seqs: list[Sequence] = field(default_factory=list)  # decoded eagerly (they fork every step)
    # Totals, set once the step is planned:
    num_prefill_tokens: int = 0
    num_decode_seqs: int = 0
    decode_context_tokens: int = 0  # KV tokens the decodes attend to, their new tokens included
    num_decode_requests: int = 0
    num_waiting_requests: int = 0
    num_preemptions: int = 0
    num_prefix_hit_tokens: int = 0
    num_prefix_query_tokens: int = 0
    num_swap_out_blocks: int = 0  # blocks copied to the host swap space (before anything else runs)
    num_swap_in_blocks: int = 0  # blocks copied back from it (then the step runs)
    # K/V loaded from tiers below the pool for this step's admissions (strategies/tiers.py): their
    # transfer time, None when the strategy has no tiers; whether it overlaps the step's compute.
    kv_load_s: float | None = None
    kv_load_overlapped: bool = False
    # With block tables only (empty otherwise: a simulated step allocates nothing for them):
    decodes: Sequence_[tuple[Sequence, int]] = ()  # (seq, position it computes)
    block_tables: dict[int, list[int]] | None = None  # seq_id -> its table, after planning
    block_copies: Sequence_[tuple[int, int]] = ()  # (src, dst), applied before attention
    swap_out_copies: list[tuple[int, int]] | None = None  # (pool block, host block), applied first
    swap_in_copies: list[tuple[int, int]] | None = None  # (host block, pool block), applied next

    @property
    def batch_size(self) -> int:
        """Requests with tokens in this step."""
        return self.num_decode_requests + len(self.prefills)

    @property
    def num_scheduled_tokens(self) -> int:
        return self.num_prefill_tokens + self.num_decode_seqs


class Scheduler:
    def __init__(
        self,
        strategy: KVCacheStrategy,
        config: SchedulerConfig,
        requests: Iterable[Request],
        max_model_len: int,
        seed: int,
        lazy_decode: bool = True,
        with_block_tables: bool = False,
        num_swap_blocks: int = 0,
    ):
        """`num_swap_blocks`: the host swap space, in blocks (with `config.preemption="swap"`)."""
        self.strategy = strategy
        self.with_block_tables = with_block_tables
        # Block copies are logged only when a plan carries them (an executor that moves K/V).
        strategy.record_block_copies = with_block_tables
        strategy.max_num_batched_tokens = config.max_num_batched_tokens
        self.max_num_seqs = config.max_num_seqs
        self.chunked_prefill = config.chunked_prefill
        self.reserve_full_prompt = config.reserve_full_prompt
        self.policy = config.policy
        self.batching = config.batching
        self.preemption = config.preemption
        self.max_num_batched_tokens = config.max_num_batched_tokens or (
            8192 if config.chunked_prefill else max_model_len
        )
        self._check_config(max_model_len)
        # Requests arriving together queue in the workload's order (a file's order offline); each is
        # built when admission reaches it (kvbench/waiting_queue.py).
        self.waiting = WaitingQueue(requests, self._new_group)
        widest = self.waiting.widest_request()
        if widest is not None and widest[1] > self.max_num_seqs:
            raise SchedulerError(
                f"request {widest[0]} runs {widest[1]} sequences at once, more than "
                f"scheduler.max_num_seqs={self.max_num_seqs}"
            )
        self.running: dict[int, RequestState] = {}  # admit_order -> group, in admission order
        self._prefilling: dict[int, RequestState] = {}
        self._beams: dict[int, RequestState] = {}
        self.lazy = LazyDecodeSet(strategy, lazy=lazy_decode)
        self.tick = 0  # decode ticks planned so far
        self._lazy_tick = 0  # the tick through which lazy decodes have computed
        self.num_running_seqs = 0
        self._next_step = 0
        self._next_seq_id = 0
        self._next_admit_order = 0
        self._rng = np.random.default_rng(seed)
        # A blocked head is retried only once something could make room (rule 4 of strategies/base.py):
        # (frees that made room, the strategy's prefix_cache_version) when it last failed on memory.
        self._num_room_frees = 0
        self._blocked_at: tuple[int, int] | None = None
        self._blocked_head: tuple[Sequence, int] | None = None  # (seq, num_new_tokens) that failed
        self._step: StepPlan | None = None
        self._decode_next = False  # v0: the last step preempted, so decode before admitting again
        # Told of each prefill's token, preemption and swap-in (kvbench.inter_token_latency); None: nobody.
        self.token_events: InterTokenLatencies | None = None
        self.swapped: deque[SwappedGroup] = deque()  # swapped-out requests, oldest first
        self.swap_space = SwapSpace(num_swap_blocks) if self.preemption == "swap" else None
        self.swap_stats = SwapStats()
        # Swap-outs go into the next plan made: one made while completing a step (a fork found no
        # room) must be copied before the next step reuses the blocks it freed.
        self._pending_swap_out_blocks = 0
        self._pending_swap_out_copies: list[tuple[int, int]] = []
        self._loads_kv = strategy.loads_kv
        # Whether the strategy can hit cached prefixes at all (the base's `cached_prefix_tokens` is 0):
        # admission asks once per request otherwise.
        self._caches_prefixes = type(strategy).cached_prefix_tokens is not KVCacheStrategy.cached_prefix_tokens
        # Whether the strategy overrides the decode-tick bracket (the base's are no-ops: two calls a step).
        self._decode_tick_hooks = (
            getattr(type(strategy), "begin_decode_tick", None) is not KVCacheStrategy.begin_decode_tick
            or getattr(type(strategy), "end_decode_tick", None) is not KVCacheStrategy.end_decode_tick
        )

    def submit(self, request: Request) -> None:
        """Add a request arriving no earlier than those already queued (a fleet's router, kvbench/fleet.py)."""
        self.waiting.submit(request)

    def _check_config(self, max_model_len: int) -> None:
        if self.batching not in BATCHING:
            raise ConfigError(f"scheduler.batching={self.batching!r} must be one of {', '.join(BATCHING)}")
        if self.policy not in POLICIES:
            raise ConfigError(f"scheduler.policy={self.policy!r} must be one of {', '.join(POLICIES)}")
        if self.preemption not in PREEMPTION:
            raise ConfigError(f"scheduler.preemption={self.preemption!r} must be one of {', '.join(PREEMPTION)}")
        if self.preemption == "swap" and not self.strategy.supports_swap:
            raise ConfigError(
                f"scheduler.preemption=swap: strategy {self.strategy.config.name} cannot swap: "
                f"{self.strategy.swap_unsupported}"
            )
        if self.max_num_seqs < 1:
            raise ConfigError(f"scheduler.max_num_seqs={self.max_num_seqs} must be >= 1")
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ConfigError(
                f"scheduler.max_num_batched_tokens={self.max_num_batched_tokens} is smaller than "
                f"scheduler.max_num_seqs={self.max_num_seqs}: a full decode batch would not fit in a step"
            )
        if not self.chunked_prefill and self.max_num_batched_tokens < max_model_len:
            raise ConfigError(
                f"scheduler.max_num_batched_tokens={self.max_num_batched_tokens} < model.max_model_len="
                f"{max_model_len} without chunked prefill: a long prompt could never be scheduled"
            )

    # -- state queries -----------------------------------------------------------------------------

    def has_work(self) -> bool:
        # Once per step: the running requests first, the answer on almost every step.
        return bool(self.running or self.waiting or self.waiting.has_arrivals() or self.swapped)

    def next_arrival_time_s(self) -> float | None:
        return self.waiting.next_arrival_time_s()

    def _decode_batch(self, step: StepPlan) -> list[tuple[Sequence, int]]:
        """Every sequence decoded in `step`, with its computed tokens before the step (O(batch))."""
        batch = [(seq, seq.num_computed_tokens + step.tick - 1 - seq.as_of_tick) for seq in self.lazy.seqs()]
        return batch + [(seq, seq.num_computed_tokens) for seq in step.beam_seqs]

    # -- planning a step --------------------------------------------------------------------------

    def schedule(self, now_s: float) -> StepPlan | None:
        """Plan the next step at time `now_s`; None when nothing can run before the next arrival."""
        # Once per step: the scheduler's fields are read into locals where used more than once.
        waiting = self.waiting
        self._next_seq_id += waiting.arrive(now_s, self._next_seq_id)
        if not self.running and not waiting and not self.swapped:
            return None
        step = self._step = StepPlan(self._next_step, self.strategy.layout)
        lazy = self.lazy
        if self.chunked_prefill:
            step.tick = self.tick = self.tick + 1
            self._schedule_decodes(step)
            num_beam_seqs = sum(len(g.seqs) for g in self._beams.values()) if self._beams else 0
            budget = self.max_num_batched_tokens - lazy.num_seqs - num_beam_seqs
            if self._prefilling:
                budget = self._schedule_partial_prefills(step, budget)
            if not step.num_preemptions:  # vLLM 0.33.0: no admission in a step that preempted
                if self.swapped:
                    budget = self._swap_in(step, budget)
                if not self.swapped:  # vLLM v0: swapped requests resume before new ones are admitted
                    self._admit(step, budget)
        else:
            if not (self._decode_next and (lazy.num_seqs or self._beams)) and not self.swapped:
                self._admit(step, self.max_num_batched_tokens)
            if not step.prefills:
                step.tick = self.tick = self.tick + 1
                self._schedule_decodes(step)
                if self.swapped and not step.num_preemptions:
                    self._swap_in(step, self.max_num_batched_tokens - lazy.num_seqs - len(step.beam_seqs))
        prefills, beam_seqs, tick = step.prefills, step.beam_seqs, step.tick
        # Preemptions late in planning may have removed groups scheduled earlier in the step.
        if beam_seqs:
            step.beam_seqs = beam_seqs = [seq for seq in beam_seqs if seq.group.phase is Phase.DECODE]
        if prefills:
            step.num_prefill_tokens = sum(chunk.num_new_tokens for chunk in prefills)
        if tick is not None:
            step.num_decode_seqs = lazy.num_seqs + len(beam_seqs)
            step.decode_context_tokens = lazy.context_tokens(tick)
            if beam_seqs:
                step.decode_context_tokens += sum(seq.num_computed_tokens + 1 for seq in beam_seqs)
            step.num_decode_requests = len(self.running) - len(self._prefilling)
        if not prefills and not step.num_decode_seqs:
            self._raise_stuck()
        step.num_waiting_requests = len(waiting)
        if self._pending_swap_out_blocks:
            self._flush_swap_outs(step)
        if self._loads_kv:
            step.kv_load_s, step.kv_load_overlapped = self.strategy.pop_kv_load()
        if self.with_block_tables:
            self._attach_block_tables(step)
        self._next_step += 1
        return step

    def _attach_block_tables(self, step: StepPlan) -> None:
        """Copy into the plan what a K/V-moving executor reads, as the strategy holds it now."""
        step.decodes = self._decode_batch(step) if step.tick is not None else []
        table = self.strategy.block_table
        step.block_tables = {chunk.seq.seq_id: table(chunk.seq.seq_id) for chunk in step.prefills}
        step.block_tables.update((seq.seq_id, table(seq.seq_id)) for seq, _ in step.decodes)
        # Forks at the end of the previous step and copy-on-write while planning this one.
        step.block_copies = self.strategy.pop_block_copies()

    def _new_group(self, request: Request, seq_id: int) -> RequestState:
        """An arrived request's state, waiting with its prompt as sequence `seq_id`."""
        group = RequestState(request)
        group.seqs = [Sequence(seq_id, group, group.branch_stream(request.prompt), 0)]
        group.num_prefill_target_tokens = request.num_prompt_tokens
        return group

    def _new_seq_id(self) -> int:
        self._next_seq_id += 1
        return self._next_seq_id - 1

    def _schedule_decodes(self, step: StepPlan) -> None:
        strategy = self.strategy
        if self._decode_tick_hooks:
            strategy.begin_decode_tick(step.tick)
        self.lazy.allocate_due(step.tick, strategy.allocate_decodes, self._preempt_and_allocate)
        for group in list(self._beams.values()) if self._beams else ():
            if group.phase is not Phase.DECODE:
                continue  # preempted by an earlier sequence of this step
            # Beams sync every step (they fork every step), so their synced length is never read.
            if all(self._allocate_or_preempt(seq, seq.num_computed_tokens, 1) is not None for seq in group.seqs):
                step.beam_seqs.extend(group.seqs)
        if self._decode_tick_hooks:
            strategy.end_decode_tick(step.tick)

    def _schedule_partial_prefills(self, step: StepPlan, budget: int) -> int:
        for group in list(self._prefilling.values()):
            if budget <= 0:
                break
            if group.phase is not Phase.PREFILL:
                continue
            seq = group.seqs[0]
            num_new = min(group.num_prefill_target_tokens - seq.num_computed_tokens, budget)
            if self._allocate_or_preempt(seq, seq.num_computed_tokens, num_new) is not None:
                seq.synced_tokens = seq.num_computed_tokens
                step.prefills.append(PrefillChunk(seq, seq.num_computed_tokens, num_new))
                budget -= num_new
        return budget

    def _admit(self, step: StepPlan, budget: int) -> None:
        if self.batching == "static" and self.running:
            return  # the batch (admitted in one step) runs until its longest member ends
        if not self.waiting:
            self._blocked_head = None
        elif self.policy == "lpm" and len(self.waiting) > 1:
            self._order_by_prefix_match()
        # Once per step: fields read into locals; the loop body runs once per admitted request.
        waiting, strategy = self.waiting, self.strategy
        prefills = step.prefills
        cached_prefix_tokens = strategy.cached_prefix_tokens if self._caches_prefixes else None
        while waiting and budget > 0:
            if self._blocked_at is not None and self._blocked_at == (
                self._num_room_frees, strategy.prefix_cache_version()
            ):
                return  # nothing that could make room has happened since the head last failed
            group = waiting[0]
            if self.num_running_seqs + group.num_seqs > self.max_num_seqs:
                return
            seq = group.seqs[0]
            num_target = group.num_prefill_target_tokens
            num_hit = cached_prefix_tokens(seq, num_target) if cached_prefix_tokens is not None else 0
            num_new = num_target - num_hit
            fits = True
            if num_new > budget:
                if not self.chunked_prefill:
                    return
                fits = not self.reserve_full_prompt or strategy.can_hold(seq, num_hit, num_target)
                num_new = budget
            if not (fits and strategy.allocate(seq, num_hit, num_new) is not None):
                self._blocked_at = (self._num_room_frees, strategy.prefix_cache_version())
                self._blocked_head = (seq, num_new)
                return
            self._blocked_at = None
            self._blocked_head = None
            waiting.popleft()
            group.phase = Phase.PREFILL
            group.admit_order = admit_order = self._next_admit_order
            self._next_admit_order = admit_order + 1
            self.running[admit_order] = group
            self._prefilling[admit_order] = group
            self.num_running_seqs += 1
            seq.num_computed_tokens = seq.synced_tokens = num_hit
            if num_hit:
                group.num_prefix_hit_tokens += num_hit
                step.num_prefix_hit_tokens += num_hit
            group.num_prefix_query_tokens += num_target
            step.num_prefix_query_tokens += num_target
            prefills.append(PrefillChunk(seq, num_hit, num_new))
            budget -= num_new

    def _order_by_prefix_match(self) -> None:
        """Longest cached prefix first (stable: ties keep arrival order), as SGLang's `lpm` policy."""
        head = self.waiting[0]
        cached = self.strategy.cached_prefix_tokens
        ranked = sorted(self.waiting, key=lambda g: -cached(g.seqs[0], g.num_prefill_target_tokens))
        self.waiting.reorder(ranked)
        if ranked[0] is not head:
            self._blocked_at = None  # a new head: it has not been refused yet

    def _allocate_or_preempt(self, seq: Sequence, num_computed: int, num_new: int) -> int | None:
        """Allocate for a running sequence, preempting the latest-admitted requests until it fits.

        The headroom granted; None when the sequence's own request was preempted.
        """
        headroom = self.strategy.allocate(seq, num_computed, num_new)
        return self._preempt_and_allocate(seq, num_computed, num_new) if headroom is None else headroom

    def _preempt_and_allocate(self, seq: Sequence, num_computed: int, num_new: int) -> int | None:
        """`allocate` was refused: preempt the latest-admitted requests until it succeeds (the
        headroom), or until the sequence's own request was preempted (None)."""
        while self._preempt_latest(seq.group):
            if (headroom := self.strategy.allocate(seq, num_computed, num_new)) is not None:
                return headroom
        return None

    def _fork_or_preempt(self, parent: Sequence, child: Sequence) -> bool:
        while not self.strategy.fork(parent.seq_id, child, parent.num_computed_tokens):
            if not self._preempt_latest(parent.group):
                return False
        return True

    def _preempt_latest(self, needy: RequestState) -> bool:
        """Preempt the latest-admitted request; False if that was `needy` itself."""
        victim = self.running[next(reversed(self.running))]
        if victim is needy and len(self.running) == 1:
            raise SchedulerError(
                f"request {needy.request_id} alone needs more KV cache than the pool holds "
                f"({self.strategy.num_blocks} blocks of {self.strategy.block_size} tokens)"
            )
        self._preempt(victim)
        return victim is not needy

    def _preempt(self, group: RequestState) -> None:
        if self.token_events is not None:
            self.token_events.preempted(group, self._lazy_tick)
        if self.swap_space is not None and self._swap_out(group):
            return
        for seq in group.seqs:
            if seq in self.lazy:
                self.lazy.remove(seq, self._lazy_tick)
            self._free(seq)
        self._drop_running(group)
        group.num_preemptions += 1
        self._step.num_preemptions += 1
        if group.num_seqs == 1:
            seq = group.seqs[0]  # recompute what it has: prompt + outputs so far
            group.num_prefill_target_tokens = group.request.num_prompt_tokens + seq.num_output_tokens
        else:
            group.restart_branches()  # several branches: start over
            seq = Sequence(self._new_seq_id(), group, group.branch_stream(group.request.prompt), 0)
            group.seqs = [seq]
            group.num_prefill_target_tokens = group.request.num_prompt_tokens
        seq.num_computed_tokens = seq.synced_tokens = 0
        group.phase = Phase.WAITING
        self.waiting.appendleft(group)

    # -- swap preemption (preemption=swap) ---------------------------------------------------------

    def _swap_out(self, group: RequestState) -> bool:
        """Swap a decoding request out whole; False when it must be recomputed instead (its
        sequences have then left the lazy set, their counts exact, for `_preempt` to free)."""
        stats = self.swap_stats
        request = group.request
        if group.phase is not Phase.DECODE or request.beam_width > 1 or len(group.seqs) != request.num_seqs:
            stats.num_recompute_preemptions += 1
            return False
        for seq in group.seqs:
            if seq in self.lazy:
                self.lazy.remove(seq, self._lazy_tick)  # its counts exact as of the last computed tick
        seqs = [(seq.seq_id, seq.num_computed_tokens) for seq in group.seqs]
        num_blocks = self.strategy.num_swap_blocks(seqs)
        # A request whose blocks and next tokens exceed the pool could never be swapped back in.
        if num_blocks > self.swap_space.num_free_blocks or num_blocks + len(seqs) > self.strategy.num_blocks:
            stats.swap_fallback_recomputes += 1
            return False  # _preempt frees it (lazy.remove already made its counts exact)
        kv = self.strategy.swap_out(seqs)
        host_block_ids = self.swap_space.allocate(kv.num_blocks)
        self.swapped.append(SwappedGroup(group, kv, host_block_ids))
        self._num_room_frees += 1
        self._drop_running(group)
        group.num_preemptions += 1
        group.phase = Phase.SWAPPED
        self._step.num_preemptions += 1
        self._pending_swap_out_blocks += kv.num_blocks
        if self.with_block_tables:
            self._pending_swap_out_copies += zip(kv.src_block_ids, host_block_ids)
        stats.num_swap_outs += 1
        stats.swap_out_blocks += kv.num_blocks
        in_use = self.swap_space.num_blocks - self.swap_space.num_free_blocks
        stats.max_swapped_blocks = max(stats.max_swapped_blocks, in_use)
        return True

    def _flush_swap_outs(self, step: StepPlan) -> None:
        step.num_swap_out_blocks = self._pending_swap_out_blocks
        if self.with_block_tables:
            step.swap_out_copies = self._pending_swap_out_copies
        self._pending_swap_out_blocks = 0
        self._pending_swap_out_copies = []

    def _swap_in(self, step: StepPlan, budget: int) -> int:
        """Resume swapped requests, oldest first, while they fit; they decode in this step."""
        while self.swapped:
            entry = self.swapped[0]
            group = entry.group
            if self.num_running_seqs + len(group.seqs) > self.max_num_seqs or len(group.seqs) > budget:
                break
            block_ids = self.strategy.swap_in(entry.kv)
            if block_ids is None:
                break
            self.swapped.popleft()
            self.swap_space.free(entry.host_block_ids)
            step.num_swap_in_blocks += entry.kv.num_blocks
            if self.with_block_tables:
                step.swap_in_copies = (step.swap_in_copies or []) + list(zip(entry.host_block_ids, block_ids))
            self.swap_stats.num_swap_ins += 1
            self.swap_stats.swap_in_blocks += entry.kv.num_blocks
            group.phase = Phase.DECODE
            group.admit_order = self._next_admit_order
            self._next_admit_order += 1
            self.running[group.admit_order] = group
            self.num_running_seqs += len(group.seqs)
            for seq in group.seqs:
                # Room for the token it computes now (swap_in kept a spare block per sequence).
                headroom = self.strategy.allocate(seq, seq.num_computed_tokens, 1)
                assert headroom is not None, "swap_in left no room for the next token"
                seq.synced_tokens = seq.num_computed_tokens
                self.lazy.add(seq, step.tick - 1)  # exact as of the tick before: it decodes in this one
            if self.token_events is not None:
                self.token_events.resumed(group, step.tick - 1)
            budget -= len(group.seqs)
        return budget

    def summary_fields(self, block_bytes: int) -> dict:
        """Swap preemption's counts for summary.json (none with preemption=recompute)."""
        return self.swap_stats.summary_fields(block_bytes) if self.swap_space is not None else {}

    def _free(self, seq: Sequence) -> None:
        if self.strategy.free(seq.seq_id, seq.num_computed_tokens):
            self._num_room_frees += 1

    def _drop_running(self, group: RequestState) -> None:
        del self.running[group.admit_order]
        self._prefilling.pop(group.admit_order, None)
        self._beams.pop(group.admit_order, None)
        self.num_running_seqs -= len(group.seqs)

    def _raise_stuck(self) -> None:
        head = self.waiting[0] if self.waiting else None
        detail = f"request {head.request_id} ({head.num_prefill_target_tokens} prompt tokens)" if head else "nothing"
        raise SchedulerError(
            f"no step can run: the queue's head, {detail}, does not fit in an empty KV pool of "
            f"{self.strategy.num_blocks} blocks of {self.strategy.block_size} tokens"
        )

    # -- applying a step's results ----------------------------------------------------------------

    def complete(self, step: StepPlan, end_time_s: float) -> tuple[PoolUsage, list[RequestState]]:
        """Apply the step that ended at `end_time_s`: the pool's usage during it, finished requests."""
        # Once per step: the plan's and the scheduler's fields are read into locals.
        tick, prefills, beam_seqs = step.tick, step.prefills, step.beam_seqs
        strategy, lazy = self.strategy, self.lazy
        if tick is not None:
            self._lazy_tick = tick
        num_unsynced = step.num_prefill_tokens + len(beam_seqs) + lazy.unsynced_tokens(self._lazy_tick)
        for chunk in prefills:
            chunk.seq.num_computed_tokens += chunk.num_new_tokens
        for seq in beam_seqs:
            seq.num_computed_tokens += 1
        usage = strategy.usage().with_unsynced(num_unsynced * strategy.num_kv_groups)
        if self._blocked_head is not None:
            usage.with_external_frag(strategy.external_frag_slots(*self._blocked_head))

        # Finishes first: the memory they free serves the forks below.
        finished: list[RequestState] = []
        if tick is not None:
            done = lazy.pop_finished(tick)
            if done:
                for seq in done:
                    self._free(seq)
                for group in {seq.group.admit_order: seq.group for seq in done}.values():
                    # Parallel samples finish together (a lone sequence is the one in `done`).
                    if len(group.seqs) == 1 or not any(s in lazy for s in group.seqs):
                        self._finish(group, end_time_s, finished, already_freed=True)
            if beam_seqs:
                self._advance_beams(step, end_time_s, finished)
        for chunk in prefills:
            group = chunk.seq.group
            if group.phase is Phase.PREFILL and chunk.seq.num_computed_tokens == group.num_prefill_target_tokens:
                self._prefill_done(group, end_time_s, finished)
        self._decode_next = step.num_preemptions > 0  # counts preemptions made by forks above too
        return usage, finished

    def _prefill_done(self, group: RequestState, end_time_s: float, finished: list[RequestState]) -> None:
        seq = group.seqs[0]
        seq.num_output_tokens = num_output_tokens = seq.num_output_tokens + 1
        group.num_generated_tokens += 1
        last = num_output_tokens == group.request.num_output_tokens
        if self.token_events is not None:
            self.token_events.prefill_token(group, end_time_s, self._lazy_tick, last)
        if group.first_token_time_s is None:
            group.first_token_time_s = end_time_s
        del self._prefilling[group.admit_order]
        num_seqs = group.num_seqs
        if last:
            if len(group.seqs) < num_seqs:  # the other samples' only token, same logits
                group.num_generated_tokens += num_seqs - len(group.seqs)
            self._finish(group, end_time_s, finished)
            return
        group.phase = Phase.DECODE
        if num_seqs == 1:  # a single sequence decodes lazily (the common case, written out)
            self.lazy.add(seq, self.tick)
            return
        if len(group.seqs) == 1:
            for _ in range(num_seqs - 1):  # parallel samples / beams share the prompt
                if not self._fork(group, seq):
                    return
            group.num_generated_tokens += len(group.seqs) - 1
        if group.request.beam_width > 1:
            self._beams[group.admit_order] = group
        else:
            for s in group.seqs:
                self.lazy.add(s, self.tick)

    def _fork(self, group: RequestState, parent: Sequence) -> bool:
        if group.request.beam_width > 1:
            # Beams fork every step: a stream of their own each would grow a segment per step.
            # They may claim one stream, since nothing ever looks their generated blocks up (a
            # preempted beam request restarts from its prompt).
            stream = parent.stream
        else:
            stream = group.branch_stream(parent.stream.truncate(parent.num_computed_tokens))
        child = Sequence(self._new_seq_id(), group, stream, parent.num_output_tokens, parent_seq_id=parent.seq_id)
        if not self._fork_or_preempt(parent, child):
            return False
        child.num_computed_tokens = child.synced_tokens = parent.synced_tokens = parent.num_computed_tokens
        group.seqs.append(child)
        self.num_running_seqs += 1
        return True

    def _advance_beams(self, step: StepPlan, end_time_s: float, finished: list[RequestState]) -> None:
        """Every beam sampled a token; keep beam_width of the candidates (parents drawn at random)."""
        for seq in step.beam_seqs:
            seq.num_output_tokens += 1
            seq.group.num_generated_tokens += 1
        for group in {seq.group.admit_order: seq.group for seq in step.beam_seqs}.values():
            if group.phase is not Phase.DECODE:
                continue  # preempted by an earlier group's fork in this loop: it restarts, nothing to prune
            if group.seqs[0].num_output_tokens == group.request.num_output_tokens:
                self._finish(group, end_time_s, finished)
                continue
            parents = list(group.seqs)
            num_children = np.bincount(self._rng.integers(0, len(parents), len(parents)), minlength=len(parents))
            # Free the pruned beams first: survivors hold their own references to what they share,
            # and strategies without sharing need the room for the copies.
            for parent, k in zip(parents, num_children):
                if k == 0:
                    self._free(parent)
                    group.seqs.remove(parent)
                    self.num_running_seqs -= 1
            for parent, k in zip(parents, num_children):
                for _ in range(k - 1):
                    if not self._fork(group, parent):
                        break  # its own request was preempted: all its branches were freed
                if group.phase is not Phase.DECODE:
                    break

    def _finish(
        self, group: RequestState, end_time_s: float, finished: list[RequestState], already_freed: bool = False
    ) -> None:
        if not already_freed:
            for seq in group.seqs:
                self._free(seq)
        self._drop_running(group)
        group.phase = Phase.FINISHED
        group.finish_time_s = end_time_s
        finished.append(group)
