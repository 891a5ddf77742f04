"""The scheduler's waiting queue, which builds a request only when admission reaches it.

Offline (every request at t = 0) a million requests are waiting from the first step on, but FCFS
admission only ever looks at the queue's head. So the queue is two parts, in this order:

- built `RequestState`s: requests put back at the front (a preemption by recompute) and the head
  once admission has looked at it;
- arrived requests not built yet: positions in the run's request feed (a workload's
  `RequestStream`, whose columns cost tens of bytes a request), built one at a time as they reach
  the front.

A request that has arrived but was never looked at is therefore a position, not an object: what a
run holds is what is live (running, preempted, the head), whatever the queue's length. The
`lpm` policy ranks the whole queue by cached prefix, so it builds every waiting request.

Sequence ids are what they were when every arrival was built on the spot: the scheduler numbers a
batch of arrivals when they arrive (`arrive` returns how many), and each is built with its number.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from kvbench.request import Request
from kvbench.sequence import RequestState
from kvbench.request_stream import RequestStream


class WaitingQueue:
    def __init__(self, requests: Iterable[Request], build: Callable[[Request, int], RequestState]):
        """`requests`: a `RequestStream` (in arrival order, built on demand) or any requests, which are
        queued in arrival order (stable: requests arriving together keep their order). `build` makes
        a request's state with its first sequence's id."""
        if isinstance(requests, RequestStream):
            self._feed: RequestStream | list[Request | None] = requests
            # A stream's arrival times may be made a chunk at a time (workloads/generated_stream.py).
            self._num_arrived, self._arrival_time_s = requests.num_arrived, requests.arrival_time_s
        else:
            self._feed = sorted(requests, key=lambda r: r.arrival_time_s)
            self._times_s = times_s = [r.arrival_time_s for r in self._feed]
            self._num_arrived = lambda now_s, start: bisect_right(times_s, now_s, lo=start)  # times never decrease
            self._arrival_time_s = times_s.__getitem__
        self._num_fed = len(self._feed)
        self._build = build
        self._feed_is_list = isinstance(self._feed, list)  # a list lets go of each request as it is built
        self._groups: deque[RequestState] = deque()  # built, oldest first
        self._next_built = 0  # feed position of the next request to build
        self._next_arrival = 0  # feed position of the next request to arrive
        self._seq_id_runs: deque[list[int]] = deque()  # [first seq id, count] per batch of unbuilt arrivals

    # -- arrivals ------------------------------------------------------------------------------------

    def widest_request(self) -> tuple[int, int] | None:
        """(request id, sequences) of a request running the most sequences at once; None without requests."""
        if isinstance(self._feed, RequestStream):  # every request has the workload's n and beam width
            return (int(self._feed.request_ids[0]), self._feed.num_seqs) if len(self._feed) else None
        widest = max(self._feed, key=lambda r: r.num_seqs, default=None)
        return None if widest is None else (widest.request_id, widest.num_seqs)

    def submit(self, request: Request) -> None:
        """Add a request arriving no earlier than those already fed (a fleet's router)."""
        if isinstance(self._feed, RequestStream):
            raise TypeError("a queue fed by a workload's request stream takes no other requests")
        self._feed.append(request)
        self._times_s.append(request.arrival_time_s)
        self._num_fed += 1

    def has_arrivals(self) -> bool:
        """Whether some request has yet to arrive."""
        return self._next_arrival < self._num_fed

    def next_arrival_time_s(self) -> float | None:
        return float(self._arrival_time_s(self._next_arrival)) if self.has_arrivals() else None

    def arrive(self, now_s: float, first_seq_id: int) -> int:
        """Queue every request arrived by `now_s`, their sequences numbered from `first_seq_id`; how many."""
        start = self._next_arrival
        end = self._num_arrived(now_s, start)
        if end > start:
            self._seq_id_runs.append([first_seq_id, end - start])
            self._next_arrival = end
        return end - start

    # -- the queue (the deque operations the scheduler uses) -----------------------------------------

    def __len__(self) -> int:
        return len(self._groups) + self._next_arrival - self._next_built

    def __bool__(self) -> bool:
        return bool(self._groups) or self._next_arrival > self._next_built

    def __getitem__(self, index: int) -> RequestState:
        if index != 0:
            raise IndexError("the waiting queue gives its head only")
        if not self._groups:
            self._build_next()
        return self._groups[0]

    def __iter__(self) -> Iterator[RequestState]:
        """Every waiting request, oldest first (builds them all)."""
        while self._next_built < self._next_arrival:
            self._build_next()
        return iter(self._groups)

    def popleft(self) -> RequestState:
        if not self._groups:
            self._build_next()
        return self._groups.popleft()

    def appendleft(self, group: RequestState) -> None:
        self._groups.appendleft(group)

    def reorder(self, groups: list[RequestState]) -> None:
        """Replace the queue's order by `groups`, every waiting request (built: see `__iter__`)."""
        self._groups = deque(groups)

    def _build_next(self) -> None:
        run = self._seq_id_runs[0]
        seq_id = run[0]
        run[0] += 1
        run[1] -= 1
        if not run[1]:
            self._seq_id_runs.popleft()
        feed, position = self._feed, self._next_built
        request = feed[position]
        if self._feed_is_list:
            feed[position] = None  # held here until built, then by its state alone
        self._next_built = position + 1
        self._groups.append(self._build(request, seq_id))
