"""The exact inter-token latency (ITL) distribution of a run, in memory O(steps), not O(tokens).

vLLM's definition (`vllm bench serve`): a request's ITLs are the gaps between the arrivals of its
consecutive token chunks after the first; the run's ITL statistics are numpy's mean, std (population),
median and linear-interpolation percentiles over all requests' gaps put together.

In the scheduler a request produces a token at the end of every step in which it decodes (all of
its parallel samples or beams at once, one arrival for the client) and at the end of the step
that completes its prefill (its first token, or the next one after a recompute). So:

- a request that decoded in decode tick k-1 and decodes in tick k waits exactly end(k) - end(k-1),
  the same gap for every such request: per tick one (gap, count) pair, with the count following
  from the step plan's number of decoding requests;
- the other gaps are irregular, one per event: the first decode after a prefill completed in a
  step without decodes (no chunked prefill), and the token a recompute samples after a preemption
  (its gap runs from the request's last token before it was preempted).

The scheduler reports the two per-request events (`prefill_token`, `preempted`) with the decode
tick through which it has computed, and the step loop calls `step_done` once per step. A request
whose parallel samples or beams restart after a preemption generates its tokens again; each
generation is an arrival, as a streaming client would see it.
"""

from __future__ import annotations

import math
from array import array

import numpy as np

from kvbench.scheduler import StepPlan
from kvbench.sequence import Phase, RequestState


class InterTokenLatencies:
    def __init__(self) -> None:
        # Per decode tick and per distinct gap: typed arrays (8 bytes an entry, not a list's 32 with its
        # float objects), so a run of a million steps holds 24 MB here, not 80.
        self._tick_end_s = array("d", [math.nan])  # end time of decode tick k at index k (ticks count from 1)
        # Requests whose last token came from a prefill and that have not decoded since:
        # group -> (that token's time, the decode tick the scheduler had computed through then).
        self._joined: dict[RequestState, tuple[float, int]] = {}
        # Preempted requests that had produced tokens: group -> the time of the last one, or the
        # decode tick that produced it (its end may not be known yet when the preemption happens).
        self._resume_from: dict[RequestState, float | int] = {}
        self._gaps_s = array("d")
        self._counts = array("q")

    @classmethod
    def merged(cls, parts: list[InterTokenLatencies]) -> InterTokenLatencies:
        """One distribution over every part's gaps (a fleet's replicas)."""
        whole = cls()
        for part in parts:
            whole._gaps_s += part._gaps_s
            whole._counts += part._counts
        return whole

    # -- events -------------------------------------------------------------------------------------

    def prefill_token(self, group: RequestState, time_s: float, computed_tick: int, last: bool) -> None:
        """`group` completed a prefill at `time_s` and sampled a token (`last`: its final one)."""
        before = self._resume_from.pop(group, None)
        if before is not None:
            before_s = self._tick_end_s[before] if isinstance(before, int) else before
            self._add(time_s - before_s, 1)
        if not last:
            self._joined[group] = (time_s, computed_tick)

    def preempted(self, group: RequestState, computed_tick: int) -> None:
        """`group` is being preempted; the scheduler has computed decodes through `computed_tick`."""
        joined = self._joined.get(group)
        if joined is not None:
            time_s, joined_tick = joined
            if computed_tick > joined_tick:
                # Preempted while completing the tick in which it decoded for the first time:
                # `step_done` still records that gap; its last token is that tick's.
                self._resume_from[group] = computed_tick
            else:
                del self._joined[group]
                self._resume_from[group] = time_s
        elif group.phase is Phase.DECODE:
            self._resume_from[group] = computed_tick
        # In prefill: its last token (if any) was recorded when it was preempted before.

    def resumed(self, group: RequestState, computed_tick: int) -> None:
        """`group` was swapped back in and decodes from the tick after `computed_tick`, its gap
        counted from its last token before the swap-out (whose tick has ended by now)."""
        before = self._resume_from.pop(group)
        before_s = self._tick_end_s[before] if isinstance(before, int) else before
        self._joined[group] = (before_s, computed_tick)

    def step_done(self, step: StepPlan, end_time_s: float) -> None:
        """After the scheduler completed `step` at `end_time_s`."""
        tick = step.tick
        if tick is None:
            return
        tick_end_s = self._tick_end_s
        tick_end_s.append(end_time_s)
        num_regular = step.num_decode_requests
        first_decodes = ()
        joined = self._joined
        if joined:  # requests whose last token came from a prefill: those that decoded in this tick
            first_decodes = [(g, t) for g, (t, joined_tick) in joined.items() if joined_tick < tick]
            for group, _ in first_decodes:
                del joined[group]
            num_regular -= len(first_decodes)
        if num_regular:
            self._add(end_time_s - tick_end_s[tick - 1], num_regular)
        for _, time_s in first_decodes:
            self._add(end_time_s - time_s, 1)

    def _add(self, gap_s: float, count: int) -> None:
        if self._gaps_s and self._gaps_s[-1] == gap_s:
            self._counts[-1] += count
        else:
            self._gaps_s.append(gap_s)
            self._counts.append(count)

    # -- statistics ---------------------------------------------------------------------------------

    @property
    def num_gaps(self) -> int:
        return sum(self._counts)

    def stats_ms(self, percentiles: tuple[int, ...]) -> dict[str, float | None]:
        """vLLM's ITL figures in milliseconds (None without a gap), as numpy computes them on every gap."""
        names = ("mean", "median", "std", *(f"p{p}" for p in percentiles))
        total = self.num_gaps
        if not total:
            return {f"{name}_itl_ms": None for name in names}
        order = np.argsort(self._gaps_s, kind="stable")
        gaps_ms = np.asarray(self._gaps_s, dtype=np.float64)[order] * 1000
        counts = np.asarray(self._counts, dtype=np.int64)[order]
        ends = np.cumsum(counts)  # the gap at sorted position i is gaps_ms[searchsorted(ends, i, "right")]
        mean = math.fsum(gaps_ms * counts) / total
        std = math.sqrt(math.fsum(counts * (gaps_ms - mean) ** 2) / total)

        def percentile(q: float) -> float:
            # numpy's "linear" method on the expanded array: position (n - 1) q between two neighbours.
            position = (total - 1) * (q / 100)
            below = math.floor(position)
            low, high = gaps_ms[np.searchsorted(ends, [below, min(below + 1, total - 1)], side="right")]
            fraction = position - below
            return float(low + (high - low) * fraction if fraction < 0.5 else high - (high - low) * (1 - fraction))

        return {"mean_itl_ms": mean, "median_itl_ms": percentile(50), "std_itl_ms": std,
                **{f"p{p}_itl_ms": percentile(p) for p in percentiles}}
