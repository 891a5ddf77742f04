"""Decoding sequences advanced in bulk: one token each per tick, touched only at their events.

Every decode tick, each decoding sequence writes one KV token and samples one output token. Nothing
about a sequence changes between two events: the tick its headroom with the strategy runs out (it
must call `allocate` before writing) and the tick it finishes. So the set keeps each sequence's
counts as of some tick, two heaps of event ticks, and running sums from which the batch's total
context and the not-yet-synced token count follow in O(1). A tick costs O(events), not O(batch).

Counts: after tick T a lazy sequence has computed `num_computed_tokens + (T - as_of_tick)` tokens,
i.e. `base + T` with `base = num_computed_tokens - as_of_tick`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from kvbench.sequence import Sequence
from kvbench.strategies.base import KVCacheStrategy


class LazyDecodeSet:
    def __init__(self, strategy: KVCacheStrategy, lazy: bool = True):
        self.strategy = strategy
        # lazy=False syncs every sequence every tick: the slow reference the tests compare against.
        self.lazy = lazy
        self._seqs: dict[int, Sequence] = {}
        self._finish_tick: dict[int, int] = {}
        # Heap entries are (tick, admission order, seq_id, ...): events of one tick in admission order.
        self._alloc_heap: list[tuple[int, int, int, int, Sequence]] = []  # (..., alloc_version, seq)
        self._finish_heap: list[tuple[int, int, int, Sequence]] = []
        self._sum_base = 0
        self._sum_synced = 0

    def __len__(self) -> int:
        return len(self._seqs)

    def __contains__(self, seq: Sequence) -> bool:
        return seq.seq_id in self._seqs

    def seqs(self) -> list[Sequence]:
        return list(self._seqs.values())

    def context_tokens(self, tick: int) -> int:
        """KV tokens the batch attends to at `tick`: each sequence's context plus its new token."""
        return self._sum_base + len(self._seqs) * tick

    def unsynced_tokens(self, tick: int) -> int:
        """Tokens written by the end of `tick` that the strategy has not been told about."""
        return self._sum_base + len(self._seqs) * tick - self._sum_synced

    def add(self, seq: Sequence, tick: int) -> None:
        """Start decoding lazily; the sequence's counts are exact as of the end of `tick`."""
        seq.as_of_tick = tick
        self._seqs[seq.seq_id] = seq
        self._sum_base += seq.num_computed_tokens - tick
        self._sum_synced += seq.synced_tokens
        finish_tick = tick + seq.group.request.num_output_tokens - seq.num_output_tokens
        self._finish_tick[seq.seq_id] = finish_tick
        heapq.heappush(self._finish_heap, (finish_tick, seq.group.admit_order, seq.seq_id, seq))
        self._schedule_alloc(seq)

    def remove(self, seq: Sequence, tick: int) -> None:
        """Stop tracking; the sequence's counts become exact as of the end of `tick`."""
        self.materialize(seq, tick)
        self._sum_base -= seq.num_computed_tokens - seq.as_of_tick
        self._sum_synced -= seq.synced_tokens
        del self._seqs[seq.seq_id]
        del self._finish_tick[seq.seq_id]
        seq.alloc_version += 1

    def allocate_due(
        self, tick: int, allocate: Callable[[Sequence, int, int], int | None],
        retry: Callable[[Sequence, int, int], int | None],
    ) -> None:
        """Every sequence (in admission order) whose headroom runs out at `tick`: make its counts exact
        as of the end of `tick - 1`, `allocate(seq, num_computed_tokens, 1)` (when refused,
        `retry(seq, num_computed_tokens, 1)`, which preempts to make room and returns None when the
        sequence's own request went) and plan its next event.

        This is the simulator's hottest loop (one pass per block boundary of every decoding
        sequence), so materializing, syncing and planning are written out here rather than called.
        """
        heap = self._alloc_heap
        seqs = self._seqs
        finish_tick = self._finish_tick
        eager = not self.lazy
        as_of_tick = tick - 1
        while heap and heap[0][0] <= tick:
            _, admit_order, seq_id, version, seq = heapq.heappop(heap)
            if version != seq.alloc_version or seq_id not in seqs:
                continue  # rescheduled or gone since this entry was pushed
            steps = as_of_tick - seq.as_of_tick
            num_computed = seq.num_computed_tokens + steps
            seq.num_computed_tokens = num_computed
            seq.num_output_tokens += steps
            seq.group.num_generated_tokens += steps
            seq.as_of_tick = as_of_tick
            headroom = allocate(seq, num_computed, 1)
            if headroom is None and (headroom := retry(seq, num_computed, 1)) is None:
                continue
            # Rule 2 of strategies/base.py: else the same tick would come back forever.
            assert headroom >= 1, "allocate(num_new_tokens=1) granted no headroom"
            self._sum_synced += num_computed - seq.synced_tokens
            seq.synced_tokens = num_computed
            alloc_tick = tick + (1 if eager else headroom)  # synced: all of the headroom is free
            if alloc_tick <= finish_tick[seq_id]:
                seq.alloc_version = version = seq.alloc_version + 1
                heapq.heappush(heap, (alloc_tick, admit_order, seq_id, version, seq))

    def materialize(self, seq: Sequence, tick: int) -> None:
        """Make the sequence's counts exact as of the end of `tick` (running sums unchanged)."""
        steps = tick - seq.as_of_tick
        seq.num_computed_tokens += steps
        seq.num_output_tokens += steps
        seq.group.num_generated_tokens += steps
        seq.as_of_tick = tick

    def pop_finished(self, tick: int) -> list[Sequence]:
        """Sequences whose last output token is sampled at `tick`; they leave the set."""
        done = []
        heap = self._finish_heap
        while heap and heap[0][0] <= tick:
            finish_tick, _, _, seq = heapq.heappop(heap)
            if self._finish_tick.get(seq.seq_id) == finish_tick:
                self.remove(seq, tick)
                done.append(seq)
        return done

    def _schedule_alloc(self, seq: Sequence, headroom: int | None = None) -> None:
        """Plan the tick at which the sequence must call allocate again (headroom: as just granted)."""
        if headroom is None:
            headroom = self.strategy.headroom(seq.seq_id)
        assert headroom >= seq.num_computed_tokens - seq.synced_tokens, "a sequence wrote past its headroom"
        if not self.lazy:
            headroom = min(headroom, 1)  # call again at the next tick
        free_positions = headroom - (seq.num_computed_tokens - seq.synced_tokens)
        alloc_tick = seq.as_of_tick + max(0, free_positions) + 1
        if alloc_tick <= self._finish_tick[seq.seq_id]:
            seq.alloc_version += 1
            heapq.heappush(self._alloc_heap, (alloc_tick, seq.group.admit_order, seq.seq_id, seq.alloc_version, seq))
