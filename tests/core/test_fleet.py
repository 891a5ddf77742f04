"""A fleet of replicas behind a router (kvbench/fleet.py, kvbench/routers.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import pandas as pd
import pytest

from kvbench.compose import compose
from kvbench.errors import ConfigError
from kvbench.fleet import build_replicas, run_fleet
from kvbench.request import Request
from kvbench.routers import FleetConfig, make_router
from kvbench.runner import build
from kvbench.step_loop import run_steps
from kvbench.strategies.invariants import check
from kvbench.tokens import Synthetic, TokenSequence

# Arrivals faster than one replica of the tiny model serves them, so the replicas all work.
SMALL = ["model=tiny", "num_blocks=64", "workload=synthetic", "workload.num_requests=60", "workload.rate=100000",
         "workload.shared_prefix_tokens=64", "workload.prompt.max=200", "workload.output.max=64"]


@dataclass
class FakeReplica:
    load_tokens: int
    matched: int = 0

    def cached_prefix_tokens(self, request, memo):
        return self.matched


def request(i: int = 0, num_tokens: int = 100, at: float = 0.0) -> Request:
    return Request(i, at, TokenSequence.synthetic(("p", i), num_tokens), num_output_tokens=4)


def test_round_robin_takes_replicas_in_turn():
    router = make_router(FleetConfig(num_replicas=3, router="round_robin"))
    replicas = [FakeReplica(0)] * 3
    assert [router.route(request(i), replicas) for i in range(5)] == [0, 1, 2, 0, 1]


def test_least_loaded_takes_the_fewest_tokens_then_the_lower_index():
    router = make_router(FleetConfig(num_replicas=3, router="least_loaded"))
    assert router.route(request(), [FakeReplica(50), FakeReplica(10), FakeReplica(10)]) == 1


def test_prefix_aware_follows_the_longest_match_unless_the_load_is_out_of_balance():
    config = FleetConfig(num_replicas=3, router="prefix_aware", balance_abs_threshold_tokens=1000,
                         balance_rel_threshold=1.5, cache_threshold=0.3)
    router = make_router(config)
    # In balance: the replica holding 80 of the prompt's 100 tokens, though it is the most loaded.
    assert router.route(request(), [FakeReplica(900, 0), FakeReplica(1500, 80), FakeReplica(700, 40)]) == 1
    # 2,000 tokens more than the least loaded and over 1.5x: the least loaded takes it.
    assert router.route(request(), [FakeReplica(900, 0), FakeReplica(2900, 80), FakeReplica(700, 40)]) == 2
    # A match under the cache threshold (20 of 100 < 30%) is not worth following.
    assert router.route(request(), [FakeReplica(900, 0), FakeReplica(1500, 20), FakeReplica(700, 10)]) == 2
    # Equal matches: the less loaded of them.
    assert router.route(request(), [FakeReplica(900, 80), FakeReplica(800, 80), FakeReplica(700, 0)]) == 1


def test_a_bad_router_or_replica_count_is_refused():
    with pytest.raises(ConfigError, match="fleet.router='nearest' must be one of"):
        make_router(FleetConfig(router="nearest"))
    with pytest.raises(ConfigError, match="fleet.num_replicas=0"):
        make_router(FleetConfig(num_replicas=0))


# A window-aware strategy on a sliding-window model: replicas must keep a table per layer group too.
WINDOWED = ["strategy=paged", "model.layer_pattern=[sliding,full]", "model.sliding_window=32"]


@pytest.mark.parametrize("extra", [[], WINDOWED], ids=["full", "windowed"])
def test_one_replica_is_exactly_the_single_engine(extra):
    run = build(compose([*SMALL, *extra]))
    single = [(r.start_s, r.duration_s, r.step.num_prefill_tokens, r.step.num_decode_seqs,
               sorted(g.request_id for g in r.finished)) for r in run_steps(run.scheduler, run.executor)]
    replicas = build_replicas(run, 1)
    fleet = [(r.start_s, r.duration_s, r.step.num_prefill_tokens, r.step.num_decode_seqs,
              sorted(g.request_id for g in r.finished))
             for _, r in run_fleet(replicas, make_router(FleetConfig()), run.workload.requests)]
    assert fleet == single


def test_replicas_advance_together_and_requests_are_routed_when_they_arrive():
    run = build(compose(SMALL))
    replicas = build_replicas(run, 3)
    router = make_router(FleetConfig(num_replicas=3, router="least_loaded"))
    last_start = {}
    clock = 0.0
    for replica, result in run_fleet(replicas, router, run.workload.requests):
        # Each replica's steps follow one another, and results come in order of the steps' ends.
        assert result.start_s >= last_start.get(replica.index, 0.0)
        assert result.start_s + result.duration_s >= clock
        clock = result.start_s + result.duration_s
        last_start[replica.index] = result.start_s + result.duration_s
        for group in result.finished:
            assert group.first_token_time_s > group.request.arrival_time_s
        check(replica.strategy)
    assert sum(r.num_routed_requests for r in replicas) == 60
    assert all(r.load_tokens == 0 and r.scheduler.has_work() is False for r in replicas)
    assert min(r.num_routed_requests for r in replicas) > 0


def test_an_idle_fleet_routes_to_the_lowest_index_and_the_second_request_to_the_free_replica():
    run = build(compose(SMALL))
    replicas = build_replicas(run, 2)
    requests = [request(0, 100, 0.0), request(1, 100, 0.0), request(2, 100, 1000.0)]
    order = []
    router = make_router(FleetConfig(num_replicas=2, router="least_loaded"))
    route = router.route
    router.route = lambda r, reps: order.append(route(r, reps)) or order[-1]
    list(run_fleet(replicas, router, requests))
    # The first two arrive together: one each. The third, long after both finished: replica 0.
    assert order == [0, 1, 0]


def test_replicas_share_a_remote_tier():
    overrides = [*SMALL, "strategy=paged_prefix", "strategy.tiers.remote.capacity_bytes=100000000"]
    replicas = build_replicas(build(compose(overrides)), 2)
    remote = replicas[0].strategy.tiers.stores[0]
    assert replicas[1].strategy.tiers.stores[0] is remote
    a, b = replicas[0].strategy, replicas[1].strategy
    doc = TokenSequence.synthetic("doc", 64)

    @dataclass
    class Seq:
        seq_id: int
        stream: TokenSequence
        final_num_kv_tokens: int

    assert a.allocate(Seq(0, doc, 65), 0, 64) is not None
    a.free(0, 64)
    for block in list(a.pool.cached.values()):  # evict everything replica 0 caches: down to the remote tier
        a.pool.free_queue.remove(block)
        a.pool._evict(block)
        a.pool.free_queue.push(block)
    assert len(remote) == 64 // a.block_size
    # Replica 1 never saw the doc, yet hits all of it (capped below its length) in the shared tier.
    assert b.probe_prefix_tokens(doc, 65, {}) == 64
    assert b.allocate(Seq(7, doc, 66), 64, 1) is not None and b.counters["tier_remote_hit_tokens"] == 64


def test_a_fleet_run_writes_fleet_and_replica_figures(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "kvbench.cli", "run", *SMALL, "strategy=paged_prefix", "fleet.num_replicas=2",
         "fleet.router=prefix_aware", "results.format=csv", f"hydra.run.dir={out}"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    replicas = json.loads((out / "replicas.json").read_text())
    assert summary["num_replicas"] == 2 and summary["router"] == "prefix_aware"
    assert [r["replica"] for r in replicas] == [0, 1]
    assert sum(r["num_routed_requests"] for r in replicas) == summary["num_requests"] == 60
    assert sum(r["prefix_hit_tokens"] for r in replicas) == summary["prefix_hit_tokens"]
    steps = pd.read_csv(out / "steps.csv")
    requests = pd.read_csv(out / "requests.csv")
    assert set(steps["replica"]) == {0, 1} and len(steps) == summary["num_steps"]
    assert requests["replica"].value_counts().sort_index().tolist() == [r["num_routed_requests"] for r in replicas]


def test_a_fleet_sweep_runs_through_the_joblib_launcher(tmp_path):
    """Big fleet sweeps run one job per configuration on Hydra's launchers; each job is one process."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="pip install 'kvbench[joblib]'")
    from kvbench.reporting.sweeps import job_dir

    out = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, "-m", "kvbench.cli", "run", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *SMALL,
         "strategy=paged_prefix", "fleet.num_replicas=2", "fleet.router=round_robin,prefix_aware",
         f"hydra.sweep.dir={out}"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    routers = [json.loads((job_dir(out, i) / "summary.json").read_text())["router"] for i in range(2)]
    assert routers == ["round_robin", "prefix_aware"]
    assert all((job_dir(out, i) / "replicas.json").is_file() for i in range(2))


def test_a_fleet_of_no_replica_fails_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "kvbench.cli", "run", *SMALL, "fleet.num_replicas=0", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert "fleet.num_replicas=0 must be >= 1" in result.stderr.strip().splitlines()[-1]


def test_a_fleet_records_the_itl_distribution_and_swaps_per_replica(tmp_path):
    """Each replica keeps its own ITL aggregates and swap space; the fleet's figures combine them."""
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "kvbench.cli", "run", *SMALL, "num_blocks=32", "strategy=paged", "fleet.num_replicas=2",
         "scheduler.preemption=swap", f"hydra.run.dir={out}"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    replicas = json.loads((out / "replicas.json").read_text())
    assert summary["median_itl_ms"] is not None and summary["p99_itl_ms"] >= summary["median_itl_ms"]
    assert summary["num_swap_outs"] == sum(r["num_swap_outs"] for r in replicas) > 0
    assert summary["max_swapped_bytes"] == max(r["max_swapped_bytes"] for r in replicas)
