"""A run's requests are built when admission reaches them, and the schedule is the one a list gives."""

from __future__ import annotations

import numpy as np
import pytest

from kvbench.request import Request
from kvbench.request_stream import RequestStream
from kvbench.scheduler import SchedulerConfig
from kvbench.workloads.arrivals import Arrival
from kvbench.workloads.lengths import LengthConfig, LengthDist
from kvbench.workloads.replay import whole_stream
from kvbench.workloads.sharegpt_multiturn import ShareGPTMultiturnConfig, ShareGPTMultiturnWorkload
from kvbench.workloads.synthetic import SyntheticConfig, SyntheticWorkload

from .conftest import drive, make_strategy

CONFIG = SchedulerConfig(max_num_seqs=8, max_num_batched_tokens=128)


def synthetic(num_requests: int, arrival: Arrival, n: int = 1) -> SyntheticWorkload:
    config = SyntheticConfig(
        num_requests=num_requests, arrival=arrival, rate=50.0, n=n, shared_prefix_tokens=8, num_prefix_groups=3,
        prompt=LengthConfig(LengthDist.uniform, min=1, max=40), output=LengthConfig(LengthDist.uniform, min=1, max=50),
    )
    return SyntheticWorkload(config, seed=3, max_model_len=128)


def stream(num_requests: int, arrival: Arrival, n: int = 1) -> RequestStream:
    return synthetic(num_requests, arrival, n).load().requests


def whole_columns(workload: SyntheticWorkload) -> RequestStream:
    """The workload's requests as the whole-column stream that the replay controls make for a seeded
    sample or sessions (the reference for a stream made a chunk at a time)."""
    rng = np.random.default_rng(workload.seed)
    table = workload.read(rng)
    return whole_stream(table.whole(), workload.config, rng, workload.max_model_len)[0]


def outcome(trace) -> tuple[list, list]:
    finished = [(g.request_id, g.first_token_time_s, g.finish_time_s, g.num_preemptions, [s.seq_id for s in g.seqs])
                for g in trace.finished]
    return trace.rows(), finished


@pytest.mark.parametrize("arrival", [Arrival.offline, Arrival.poisson])
@pytest.mark.parametrize(("name", "n"), [("paged", 1), ("paged_cow", 2), ("paged_prefix", 1)])
def test_a_lazy_stream_schedules_as_the_list_of_its_requests(name, n, arrival):
    """Same steps, usage, finishes and sequence ids (forks and preemptions interleave their numbers)."""
    requests = stream(120, arrival, n)
    lazy = drive(make_strategy(name, 60), requests, CONFIG)
    eager = drive(make_strategy(name, 60), list(requests), CONFIG)
    assert sum(s.num_preemptions for s in eager.steps) > 0  # a tight pool: requests go back to the queue
    assert outcome(lazy) == outcome(eager)


def counting(requests: RequestStream) -> RequestStream:
    """`requests`, counting the requests built from it (`num_built`)."""

    class Counting(type(requests)):
        num_built = 0

        def __getitem__(self, index):
            self.num_built += 1
            return super().__getitem__(index)

    requests.__class__ = Counting
    return requests


def test_offline_requests_stay_positions_until_admission_reaches_them():
    requests = counting(stream(5000, Arrival.offline))
    trace = drive(make_strategy("paged", 400), requests, CONFIG)
    first = trace.steps[0]
    assert first.num_waiting_requests == 5000 - len(first.prefills)  # all of them wait from the first step on
    assert requests.num_built == 5000 and len(trace.finished) == 5000


def test_only_the_head_of_the_waiting_queue_is_built():
    from kvbench.scheduler import Scheduler

    requests = counting(stream(5000, Arrival.offline))
    scheduler = Scheduler(make_strategy("paged", 400), CONFIG, requests, 128, seed=0)
    step = scheduler.schedule(0.0)
    assert len(scheduler.waiting) == 5000 - len(step.prefills) == step.num_waiting_requests
    assert requests.num_built <= CONFIG.max_num_seqs + 1  # the admitted ones and the next head


def built_from_the_columns(requests: RequestStream, index: int) -> Request:
    """Request `index` of the stream, read from its numpy columns one value at a time."""
    table, row = requests.table, int(requests.rows[index])
    return Request(
        int(requests.request_ids[index]), float(requests.arrival_times_s[index]), table.prompt(row),
        int(table.num_output_tokens[row]), requests.n, requests.beam_width,
        None if table.session_ids is None else int(table.session_ids[row]),
        None if table.turns is None else int(table.turns[row]),
        None if table.output is None else table.output(row),
    )


@pytest.mark.parametrize("workload", ["synthetic", "multiturn"])
def test_a_request_is_the_same_in_whatever_order_the_stream_is_read(workload):
    """The stream converts its columns a chunk at a time: reading across chunks, backwards, by
    negative index or by iteration gives the requests the columns hold."""
    if workload == "synthetic":  # made a chunk of rows at a time: compared with its whole columns
        generated = synthetic(2500, Arrival.poisson, n=2)
        requests, columns = generated.load().requests, whole_columns(generated)
    else:
        config = ShareGPTMultiturnConfig(num_sessions=700)
        requests = columns = ShareGPTMultiturnWorkload(config, seed=1, max_model_len=4096).load().requests
    num = len(requests)
    assert num > 2048 and len(columns) == num  # three chunks at least
    for index in [0, num - 1, 1024, 1023, -1, -num, 5, 2048, 1500]:
        assert requests[index] == built_from_the_columns(columns, index % num)
    assert list(requests) == [built_from_the_columns(columns, i) for i in range(num)]
    assert requests[3:7] == [built_from_the_columns(columns, i) for i in range(3, 7)]
    for outside in (num, -num - 1):
        with pytest.raises(IndexError):
            requests[outside]
