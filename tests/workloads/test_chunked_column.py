"""Generated workloads made a chunk of rows at a time give exactly what whole columns give.

A draw made in chunks from the generator's saved states must equal one whole draw value for value,
and leave the generator where the whole draw leaves it; arrival times summed across chunks must
equal the whole cumsum bit for bit; and a stream made chunk by chunk must replay the same requests
as the whole-column replay, with any window, scale and length filter. Small chunks here give many
chunks (and empty ones) on a few thousand rows.
"""

from __future__ import annotations

import tracemalloc
from bisect import bisect_right

import numpy as np
import pytest

from kvbench.workloads import chunked_column, generated_stream
from kvbench.workloads.arrivals import Arrival, gap_draw
from kvbench.workloads.chunked_column import drawn_column
from kvbench.workloads.generated_stream import GeneratedStream, RunningTimes
from kvbench.workloads.lengths import LengthConfig, LengthDist, length_draw
from kvbench.workloads.replay import whole_stream
from kvbench.workloads.sharegpt import ShareGPTConfig, ShareGPTWorkload
from kvbench.workloads.synthetic import SyntheticConfig, SyntheticWorkload

ROWS = 5_003


@pytest.fixture
def small_chunks(monkeypatch):
    for module in (chunked_column, generated_stream):
        monkeypatch.setattr(module, "ROWS_PER_CHUNK", 257)


# Every draw the generated workloads make in chunks: lengths by each distribution, prefix groups,
# ShareGPT's turns drawn again, arrival gaps.
DRAWS = {
    "uniform": length_draw(LengthConfig(LengthDist.uniform, min=16, max=1024), "w"),
    "uniform_wide": lambda rng, num: rng.integers(0, 2**40, num),
    "lognormal": length_draw(LengthConfig(LengthDist.lognormal, min=2, max=900, mean=200.0, sigma=1.3), "w"),
    "zipf": length_draw(LengthConfig(LengthDist.zipf, min=3, max=2048, alpha=1.2), "w"),
    "fixed": length_draw(LengthConfig(LengthDist.fixed, value=77), "w"),
    "groups": lambda rng, num: rng.integers(0, 3, num),
    "poisson": gap_draw(Arrival.poisson, 10.0, 1.0),
    "gamma_bursty": gap_draw(Arrival.gamma, 10.0, 0.3),
    "gamma_smooth": gap_draw(Arrival.gamma, 10.0, 4.0),
}


@pytest.mark.parametrize("name", DRAWS)
def test_a_draw_made_in_chunks_is_the_whole_draw(name, small_chunks):
    draw = DRAWS[name]
    whole_rng, chunked_rng = np.random.default_rng(11), np.random.default_rng(11)
    whole_rng.integers(0, 2**32, 3, dtype=np.uint32)  # an odd 32-bit half left in the generator
    chunked_rng.integers(0, 2**32, 3, dtype=np.uint32)
    whole = draw(whole_rng, ROWS)
    column = drawn_column(chunked_rng, ROWS, draw)
    assert np.array_equal(column.values(0, ROWS), whole) and column.values(0, ROWS).dtype == whole.dtype
    for start, stop in [(0, 1), (250, 260), (256, 257), (4_999, ROWS), (1_000, 3_000)]:
        assert np.array_equal(column.values(start, stop), whole[start:stop])
    assert [column.item(row) for row in (ROWS - 1, 0, 257, 513)] == [whole.item(row) for row in (ROWS - 1, 0, 257, 513)]
    assert whole_rng.bit_generator.state == chunked_rng.bit_generator.state  # later draws are the same


@pytest.mark.parametrize("arrival", [Arrival.poisson, Arrival.gamma])
def test_arrival_times_summed_across_chunks_are_the_whole_cumsum(arrival, small_chunks):
    draw = gap_draw(arrival, 3.0, 0.5)
    whole = np.cumsum(draw(np.random.default_rng(5), ROWS))
    times = RunningTimes(drawn_column(np.random.default_rng(5), ROWS, draw), ROWS)
    made = np.concatenate([times.chunk(index) for index in range(times.num_chunks)])
    assert made.tobytes() == whole.tobytes()  # bit for bit


def reference(workload) -> tuple:
    """The workload's requests and drop count from the whole-column replay."""
    rng = np.random.default_rng(workload.seed)
    table = workload.read(rng)
    return whole_stream(table.whole(), workload.config, rng, workload.max_model_len)


CONTROLS = [
    {"arrival": Arrival.offline},
    {"arrival": Arrival.offline, "time_scale": 3.0, "num_requests": 4_000},
    {"arrival": Arrival.poisson},
    {"arrival": Arrival.poisson, "start_s": 60.0, "duration_s": 200.0},  # empty chunks before the window
    {"arrival": Arrival.gamma, "burstiness": 0.4, "target_rate": 2.5},
    {"arrival": Arrival.poisson, "start_s": 100.0, "time_scale": 0.5},
]


@pytest.mark.parametrize("controls", CONTROLS, ids=str)
def test_a_synthetic_stream_made_in_chunks_replays_the_whole_columns(controls, small_chunks):
    config = SyntheticConfig(**{"num_requests": ROWS, "rate": 20.0, **controls}, shared_prefix_tokens=5,
                             num_prefix_groups=4, prompt=LengthConfig(LengthDist.uniform, min=1, max=300),
                             output=LengthConfig(LengthDist.lognormal, min=1, max=400, mean=100.0))
    workload = SyntheticWorkload(config, seed=2, max_model_len=400)
    data = workload.load()
    requests, (columns, num_dropped) = data.requests, reference(workload)
    assert isinstance(requests, GeneratedStream) and type(columns) is not GeneratedStream
    assert data.num_dropped_too_long == num_dropped > 0 and len(requests) == len(columns)
    assert list(requests) == list(columns)
    assert list(requests.request_ids) == columns.request_ids.tolist()
    for index in [len(requests) - 1, 0, 700, 256, len(requests) // 2, -1]:  # out of order, across chunks
        assert requests[index] == columns[index]
        assert requests.arrival_time_s(index) == columns.arrival_time_s(index)
    times_s = columns.arrival_times_s.tolist()
    for now_s in [0.0, times_s[10], times_s[-1], times_s[-1] + 1, (times_s[0] + times_s[-1]) / 2]:
        for start in (0, 5, bisect_right(times_s, now_s)):
            assert requests.num_arrived(now_s, start) == columns.num_arrived(now_s, start)


@pytest.mark.parametrize("arrival", [Arrival.offline, Arrival.poisson])
def test_sharegpt_drawn_again_in_chunks_replays_the_whole_columns(arrival, small_chunks):
    workload = ShareGPTWorkload(ShareGPTConfig(num_requests=20_000, arrival=arrival), seed=4, max_model_len=1_500)
    requests, (columns, num_dropped) = workload.load().requests, reference(workload)
    assert len(requests) == len(columns) > 17_545  # more than the table has: turns drawn again
    assert list(requests) == list(columns)
    assert [r.prompt.ids(0, 4, 32_000).tolist() for r in requests[-50:]] == \
        [r.prompt.ids(0, 4, 32_000).tolist() for r in columns[-50:]]
    # A chunk's sequences made at once (`MadeWhenRead.many`) are those made one row at a time.
    table = columns.table
    assert [(r.prompt, r.output) for r in requests[-50:]] == \
        [(table.prompt(row), table.output(row)) for row in columns.rows[-50:].tolist()]


def held_bytes(num_requests: int) -> int:
    """Bytes a loaded synthetic workload holds (numpy's memory included: it reports to tracemalloc)."""
    config = SyntheticConfig(num_requests=num_requests, arrival=Arrival.poisson)
    tracemalloc.start()
    try:
        data = SyntheticWorkload(config, seed=0, max_model_len=4_096).load()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(data.requests) == num_requests
    return held


def test_what_a_generated_workload_holds_does_not_grow_with_its_requests():
    """Whole columns held about 90 bytes a request: 18 MB more for 200,000 requests than 10,000."""
    assert held_bytes(200_000) - held_bytes(10_000) < 500_000
