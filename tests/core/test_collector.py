"""A run keeps the garbage collector off what it built, and collects less often, only while its loop
runs (kvbench.collector); an in-process command leaves nothing frozen."""

from __future__ import annotations

import gc
import sys

from kvbench import cli, runner
from kvbench.cli import main
from kvbench.collector import LOOP_GEN0_THRESHOLD
from kvbench.compose import compose


def test_the_loop_runs_with_the_built_objects_frozen_and_the_run_leaves_none_frozen(tmp_path, monkeypatch):
    frozen_in_loop = []
    thresholds_in_loop = set()
    threshold_before = gc.get_threshold()

    def run_steps(*args, **kwargs):
        for result in original(*args, **kwargs):
            frozen_in_loop.append(gc.get_freeze_count())
            thresholds_in_loop.add(gc.get_threshold())
            yield result

    original = runner.run_steps
    monkeypatch.setattr(runner, "run_steps", run_steps)
    summary = runner.execute(compose(["workload.num_requests=5"]), tmp_path / "run", progress=False)
    assert summary["num_requests"] == 5
    assert frozen_in_loop and frozen_in_loop[0] > 1000  # the workload, the pool, the config...
    assert gc.get_freeze_count() == 0
    # Young collections are rarer in the loop only (LOOP_GEN0_THRESHOLD's comment says why).
    assert thresholds_in_loop == {(LOOP_GEN0_THRESHOLD, *threshold_before[1:])}
    assert gc.get_threshold() == threshold_before


def test_the_command_called_in_process_leaves_nothing_frozen(tmp_path):
    # Only the `kvbench` process itself freezes what is left before its teardown (kvbench.cli.main).
    assert main(["run", "workload.num_requests=2", f"hydra.run.dir={tmp_path / 'run'}"]) == 0
    assert gc.get_freeze_count() == 0


def test_the_run_process_builds_its_run_with_the_collector_off_and_loops_with_it_on(tmp_path, monkeypatch):
    # main() without arguments is the `kvbench` process itself: its start-up runs without collector
    # passes (kvbench.collector.pause_for_start_up), its loop with them, over the frozen start-up.
    passes_before_the_loop, in_loop = [], []

    def count(phase, info):
        if phase == "start" and not in_loop:
            passes_before_the_loop.append(info["generation"])

    def run_steps(*args, **kwargs):
        in_loop.append((gc.isenabled(), gc.get_freeze_count()))
        yield from original(*args, **kwargs)

    original = runner.run_steps
    monkeypatch.setattr(runner, "run_steps", run_steps)
    monkeypatch.setattr(sys, "argv", ["kvbench", "run", "workload.num_requests=5", f"hydra.run.dir={tmp_path / 'run'}"])
    ended = []
    monkeypatch.setattr(cli, "end_process", ended.append)  # the process would end there (test_process_end.py)
    gc.callbacks.append(count)
    try:
        assert main() == 0
    finally:
        gc.callbacks.remove(count)
        gc.unfreeze()  # the process freezes what is left before its teardown
    assert ended == [0]
    assert passes_before_the_loop == []
    assert in_loop[0][0] and in_loop[0][1] > 1000
    assert gc.isenabled()



def test_a_finished_request_is_freed_by_reference_counting_not_left_for_the_collector():
    # runner.simulate drops a recorded request's sequences: each refers to its request state, so
    # otherwise every finished request would stay cyclic garbage until a collection.
    from kvbench.sequence import RequestState

    run = runner.build(compose(["workload.num_requests=20"]))
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        recorder = runner.simulate(run, progress=False)
        alive = sum(1 for obj in gc.get_objects() if isinstance(obj, RequestState))
    finally:
        if was_enabled:
            gc.enable()
    assert len(recorder.requests_table()) == 20
    assert alive == 0
