"""Decoding sequences advanced in bulk: one token each per tick, touched only at their events.

Every decode tick, each decoding sequence writes one KV token and samples one output token. Nothing
about a sequence changes between two events: the tick its headroom with the strategy runs out (it
must call `allocate` before writing) and the tick it finishes. So the set keeps each sequence's
counts as of some tick, its event ticks, and running sums from which the batch's total context and
the not-yet-synced token count follow in O(1). A tick costs O(events), not O(batch).

Counts: after tick T a lazy sequence has computed `num_computed_tokens + (T - as_of_tick)` tokens,
i.e. `base + T` with `base = num_computed_tokens - as_of_tick`. An allocation event does not
write these counts back (only `synced_tokens`): they are made exact when the sequence leaves.

Allocation and finish events live in one bucket per tick rather than a heap: every decode tick is
visited once, in order, so a bucket is taken whole at its tick and sorted into admission order there.
"""

from __future__ import annotations

from collections.abc import Callable

from kvbench.sequence import Sequence
from kvbench.strategies.base import KVCacheStrategy

# A planned allocation: (admission order, seq_id, finish tick, base, seq), with `base` the sequence's
# `num_computed_tokens - as_of_tick` while it is in the set (its count after tick T is base + T).
# Sorted, a bucket is in admission order (seq_id breaks ties between parallel samples, so the rest
# is never compared).
DueEntry = tuple[int, int, int, int, Sequence]


class LazyDecodeSet:
    def __init__(self, strategy: KVCacheStrategy, lazy: bool = True):
        self.strategy = strategy
        # lazy=False syncs every sequence every tick: the slow reference the tests compare against.
        self.lazy = lazy
        self._seqs: dict[int, Sequence] = {}
        self._finish_tick: dict[int, int] = {}
        self._due: dict[int, list[DueEntry]] = {}  # tick -> sequences that must allocate then
        # tick -> (admission order, seq_id, seq) of the sequences finishing then, sorted when taken
        # (every decode tick is visited, as for allocations); stale once a sequence left early.
        self._finishing: dict[int, list[tuple[int, int, Sequence]]] = {}
        self._finished_through = 0  # pop_finished has taken every finish up to this tick
        self._sum_base = 0
        self._sum_synced = 0
        self._last_due_tick = 0  # allocate_due has taken every bucket up to this tick
        self.num_seqs = 0  # len(self), read several times a step

    def __len__(self) -> int:
        return self.num_seqs

    def __contains__(self, seq: Sequence) -> bool:
        return seq.seq_id in self._seqs

    def seqs(self) -> list[Sequence]:
        return list(self._seqs.values())

    def context_tokens(self, tick: int) -> int:
        """KV tokens the batch attends to at `tick`: each sequence's context plus its new token."""
        return self._sum_base + self.num_seqs * tick

    def unsynced_tokens(self, tick: int) -> int:
        """Tokens written by the end of `tick` that the strategy has not been told about."""
        return self._sum_base + self.num_seqs * tick - self._sum_synced

    def add(self, seq: Sequence, tick: int) -> None:
        """Start decoding lazily; the sequence's counts are exact as of the end of `tick`.

        Once per request (and per resume): planning its first allocation is written out here."""
        seq.as_of_tick = tick
        seq_id = seq.seq_id
        self._seqs[seq_id] = seq
        self.num_seqs += 1
        num_computed = seq.num_computed_tokens
        base = num_computed - tick
        self._sum_base += base
        synced = seq.synced_tokens
        self._sum_synced += synced
        group = seq.group
        finish_tick = tick + group.request.num_output_tokens - seq.num_output_tokens
        self._finish_tick[seq_id] = finish_tick
        assert finish_tick > self._finished_through, "a sequence joined with its finish tick already taken"
        finishing = self._finishing.get(finish_tick)
        if finishing is None:
            self._finishing[finish_tick] = [(group.admit_order, seq_id, seq)]
        else:
            finishing.append((group.admit_order, seq_id, seq))
        # The tick at which it must call allocate again: when the headroom granted is used up.
        headroom = self.strategy.start_decoding(seq_id, tick)
        num_unsynced = num_computed - synced
        assert headroom >= num_unsynced, "a sequence wrote past its headroom"
        if not self.lazy:
            headroom = min(headroom, 1)  # call again at the next tick
        free_positions = headroom - num_unsynced
        alloc_tick = tick + (free_positions if free_positions > 0 else 0) + 1
        assert alloc_tick > self._last_due_tick, "a sequence joined with no room for a tick already planned"
        if alloc_tick <= finish_tick:
            seq.alloc_tick = alloc_tick
            entry = (group.admit_order, seq_id, finish_tick, base, seq)
            bucket = self._due.get(alloc_tick)
            if bucket is None:
                self._due[alloc_tick] = [entry]
            else:
                bucket.append(entry)
        else:
            seq.alloc_tick = None

    def remove(self, seq: Sequence, tick: int) -> None:
        """Stop tracking; the sequence's counts become exact as of the end of `tick`."""
        # Its counts made exact as of the end of `tick` (the running sums still hold the old ones):
        steps = tick - seq.as_of_tick
        seq.num_computed_tokens = num_computed = seq.num_computed_tokens + steps
        seq.num_output_tokens += steps
        seq.group.num_generated_tokens += steps
        seq.as_of_tick = tick
        self._sum_base -= num_computed - tick
        self._sum_synced -= seq.synced_tokens
        seq_id = seq.seq_id
        del self._seqs[seq_id]
        self.num_seqs -= 1
        finish_tick = self._finish_tick.pop(seq_id)
        # Its planned allocation, if still ahead (a bucket being processed was taken out already).
        # A finishing sequence has none (its last allocation was planned no later than its finish
        # tick, whose bucket is gone by then): only a preemption looks through a bucket.
        if seq.alloc_tick is not None:
            due = self._due.get(seq.alloc_tick)
            if due is not None:
                due.remove((seq.group.admit_order, seq_id, finish_tick, num_computed - tick, seq))
            seq.alloc_tick = None

    def allocate_due(
        self, tick: int, allocate_decodes: Callable[[list[tuple[Sequence, int]]], list[int]],
        retry: Callable[[Sequence, int, int], int | None],
    ) -> None:
        """Every sequence (in admission order) whose headroom runs out at `tick`: room for the token
        it computes at `tick`, asked of the strategy for all of them in one call,
        `allocate_decodes([(seq, num_computed_tokens), ...])` (counts as of the end of `tick - 1`),
        which grants in order up to the first refusal; a refused sequence goes to
        `retry(seq, num_computed_tokens, 1)`, which preempts to make room (the latest admitted
        first: sequences later in the batch, whose planned allocations are then dropped) and
        returns None when the sequence's own request went. Then each plans its next event.

        This is the simulator's hottest loop (one pass per block boundary of every decoding
        sequence), so counting and planning are written out here rather than called.
        """
        self._last_due_tick = tick
        due = self._due.pop(tick, None)
        if due is None:
            return
        due.sort()
        as_of_tick = tick - 1
        batch = [(seq, base + as_of_tick) for _, _, _, base, seq in due]
        start = 0
        while True:
            granted = allocate_decodes(batch[start:] if start else batch)
            end = start + len(granted)
            self._plan_next(tick, due[start:end] if start else due, batch[start:end] if start else batch, granted)
            if end == len(batch):
                return
            seq, num_computed = batch[end]
            headroom = retry(seq, num_computed, 1)
            start = end + 1
            if headroom is not None:
                self._plan_next(tick, due[end:start], batch[end:start], [headroom])
            # Preemption made room by taking the latest-admitted requests: drop them from the batch.
            seqs = self._seqs
            kept = [i for i in range(start, len(batch)) if batch[i][0].seq_id in seqs]
            due[start:] = [due[i] for i in kept]
            batch[start:] = [batch[i] for i in kept]
            if start == len(batch):
                return

    def _plan_next(
        self, tick: int, entries: list[DueEntry], synced: list[tuple[Sequence, int]], headrooms: list[int]
    ) -> None:
        """The sequences of `entries` were synced at `num_computed_tokens` and granted `headrooms`
        at `tick`: their next allocation comes when that headroom is used up (unless they finish first)."""
        due = self._due
        eager = not self.lazy
        num_newly_synced = 0
        if not eager and headrooms and len(headrooms) == len(entries) and headrooms.count(headrooms[0]) == len(headrooms):
            headroom = headrooms[0]
            # One headroom for all (a fresh block each, almost always): they move on together, in
            # order, to one bucket, except those that finish first. One pass over the entries
            # (their count as of `tick - 1` is base + tick - 1, as in `synced`), and the list itself
            # becomes the next bucket unless someone finishes first.
            assert headroom >= 1, "allocate(num_new_tokens=1) granted no headroom"
            alloc_tick = tick + headroom
            as_of_tick = tick - 1
            moving = entries
            for _, _, finish_tick, base, seq in entries:
                num_computed = base + as_of_tick
                num_newly_synced += num_computed - seq.synced_tokens
                seq.synced_tokens = num_computed
                if finish_tick >= alloc_tick:
                    seq.alloc_tick = alloc_tick
                else:
                    seq.alloc_tick = None
                    moving = None
            self._sum_synced += num_newly_synced
            if moving is None:
                moving = [entry for entry in entries if entry[2] >= alloc_tick]
            bucket = due.get(alloc_tick)
            if bucket is None:
                due[alloc_tick] = moving
            else:
                bucket += moving
            return
        for entry, (seq, num_computed), headroom in zip(entries, synced, headrooms):
            # Rule 2 of strategies/base.py: else the same tick would come back forever.
            assert headroom >= 1, "allocate(num_new_tokens=1) granted no headroom"
            num_newly_synced += num_computed - seq.synced_tokens
            seq.synced_tokens = num_computed
            alloc_tick = tick + (1 if eager else headroom)  # synced: all of the headroom is free
            if alloc_tick <= entry[2]:
                seq.alloc_tick = alloc_tick
                bucket = due.get(alloc_tick)
                if bucket is None:
                    due[alloc_tick] = [entry]
                else:
                    bucket.append(entry)
            else:
                seq.alloc_tick = None
        self._sum_synced += num_newly_synced

    def pop_finished(self, tick: int) -> list[Sequence]:
        """Sequences whose last output token is sampled at `tick` (in admission order); they leave the set."""
        done = []
        finish_tick = self._finished_through
        self._finished_through = tick
        finishing, planned = self._finishing, self._finish_tick
        while finish_tick < tick:
            finish_tick += 1
            entries = finishing.pop(finish_tick, None)
            if entries is None:
                continue
            if len(entries) > 1:
                entries.sort()
            for _, seq_id, seq in entries:
                if planned.get(seq_id) == finish_tick:  # else it left before (preempted, swapped)
                    self.remove(seq, tick)
                    done.append(seq)
        return done
