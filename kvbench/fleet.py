"""A fleet of replicas behind a router, simulated in one process (`fleet.num_replicas=N`).

Each replica is a whole engine: its own strategy (and pool), scheduler and executor, all built from
the run's model, hardware and configs. A request is routed when it arrives (kvbench/routers.py),
by what the replicas hold at that moment, and joins that replica's queue.

Replicas advance together in simulated time: an event loop over the next arrival and each
replica's next step boundary (the end of the step it runs, or an idle replica's wake-up at an
arrival routed to it), earliest first; an arrival at the same time as a boundary is routed first,
so that step may admit it (as a single engine's step admits everything arrived by its start). A
replica's step is planned at its start and completed at its end, so a router deciding mid-step
sees what the replica's scheduler and strategy hold then (admissions made, blocks not yet freed).
With one replica this is exactly `step_loop.run_steps`.

With a `remote` tier (strategies/tiers.py) the replicas share one: a block one replica demoted
can be loaded by any other. The run directory holds the fleet's figures (summary.json, requests
and steps with a `replica` column) and each replica's summary (replicas.json).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from omegaconf import DictConfig, OmegaConf

from kvbench.errors import ConfigError
from kvbench.executors import EXECUTORS, Executor
from kvbench.hardware import num_swap_blocks
from kvbench.inter_token_latency import InterTokenLatencies
from kvbench.metrics import MetricsRecorder, StepColumns, StepTotals, event_totals, rounded, summarize
from kvbench.request import Request
from kvbench.request_rows import RequestRows
from kvbench.results import RunDirectory, write_json_atomic
from kvbench.routers import FleetConfig, Router, make_router
from kvbench.scheduler import Scheduler, StepPlan
from kvbench.serving_metrics import vllm_figures, vllm_metrics, vllm_result, write_vllm_result
from kvbench.step_loop import StepResult
from kvbench.strategies import STRATEGIES, KVCacheStrategy
from kvbench.strategies.tiers import remote_store
from kvbench.swap_space import swap_summary

if TYPE_CHECKING:  # pandas (a third of a second) is imported where a table is built, not when a run starts
    import pandas as pd

log = logging.getLogger(__name__)

REPLICAS = "replicas.json"


def fleet_config(cfg: DictConfig) -> FleetConfig:
    return OmegaConf.to_object(cfg.fleet) if cfg.get("fleet") is not None else FleetConfig()


class Replica:
    """One engine of the fleet, and where it stands in simulated time."""

    def __init__(self, index: int, strategy: KVCacheStrategy, scheduler: Scheduler, executor: Executor):
        self.index = index
        self.strategy = strategy
        self.scheduler = scheduler
        self.executor = executor
        self.load_tokens = 0  # prompt tokens of the requests it holds, queued or running
        self.num_routed_requests = 0
        self.next_time_s = math.inf  # its next step boundary; inf: idle with nothing queued
        self.running_step: tuple[StepPlan, float, float] | None = None  # (plan, start s, duration s)

    def cached_prefix_tokens(self, request: Request, memo: dict) -> int:
        return self.strategy.probe_prefix_tokens(request.prompt, request.num_prompt_tokens, memo)

    def submit(self, request: Request, now_s: float) -> None:
        self.scheduler.submit(request)
        self.load_tokens += request.num_prompt_tokens
        self.num_routed_requests += 1
        if self.running_step is None:
            self.next_time_s = min(self.next_time_s, now_s)

    def advance(self) -> StepResult | None:
        """At its next boundary: complete the step that ends there, plan and cost the next one."""
        now_s = self.next_time_s
        result = None
        if self.running_step is not None:
            step, start_s, duration_s = self.running_step
            self.running_step = None
            usage, finished = self.scheduler.complete(step, start_s + duration_s)
            for group in finished:
                self.load_tokens -= group.request.num_prompt_tokens
            result = StepResult(step, start_s, duration_s, usage, finished)
        step = self.scheduler.schedule(now_s)
        if step is None:
            self.next_time_s = math.inf  # every request routed here so far has been served
        else:
            duration_s = self.executor.execute(step)
            self.running_step = (step, now_s, duration_s)
            self.next_time_s = now_s + duration_s
        return result


def run_fleet(replicas: list[Replica], router: Router, requests: list[Request]) -> Iterator[tuple[Replica, StepResult]]:
    """Every replica's steps, in simulated time order, until every request is served."""
    arrivals = deque(sorted(requests, key=lambda r: r.arrival_time_s))  # stable: a file's order for ties
    while True:
        replica = min(replicas, key=lambda r: (r.next_time_s, r.index))
        arrival_s = arrivals[0].arrival_time_s if arrivals else math.inf
        if arrival_s == math.inf and replica.next_time_s == math.inf:
            return
        if arrival_s <= replica.next_time_s:
            request = arrivals.popleft()
            replicas[router.route(request, replicas)].submit(request, arrival_s)
            continue
        result = replica.advance()
        if result is not None:
            yield replica, result


def build_replicas(run, num_replicas: int) -> list[Replica]:
    """`num_replicas` engines like the run's own (whose scheduler, holding every request, is not used)."""
    cfg = run.cfg
    if run.executor.needs_block_tables:
        raise ConfigError(f"fleet.num_replicas={num_replicas} runs in the simulator only (engine=sim)")
    to_object = OmegaConf.to_object
    engine_cfg = to_object(cfg.engine)
    scheduler_cfg = to_object(cfg.scheduler)
    strategy_cls = STRATEGIES.get(run.strategy.config.name)
    kv_groups = strategy_cls.kv_groups_for(run.model)  # as the run's own strategy was built (runner.build)
    group_kwargs = {"kv_groups": kv_groups} if kv_groups else {}
    replicas = []
    shared_remote = None
    for index in range(num_replicas):
        strategy = strategy_cls(run.strategy.config, run.budget.num_blocks, run.model.config.max_model_len,
                                **group_kwargs)
        tiers = getattr(strategy, "tiers", None)
        if tiers is not None and "remote" in tiers.names:
            if shared_remote is None:  # (an empty store is falsy: it has a length)
                shared_remote = remote_store(run.strategy.config.tiers, strategy.block_size)
            tiers.share_remote(shared_remote)
        scheduler = Scheduler(strategy, scheduler_cfg, [], run.model.config.max_model_len, cfg.seed + index,
                              num_swap_blocks=num_swap_blocks(run.hardware, run.budget))
        scheduler.token_events = InterTokenLatencies()
        executor = EXECUTORS.get(engine_cfg.name)(
            engine_cfg, model=run.model, hardware=run.hardware, budget=run.budget, seed=cfg.seed + index
        )
        replicas.append(Replica(index, strategy, scheduler, executor))
    return replicas


def _combined_swap_fields(per_replica: list[dict]) -> dict:
    """The fleet's swap counts: added up, but the swap space's high-water mark is the highest replica's."""
    combined: dict = {}
    for fields in per_replica:
        for key, value in fields.items():
            combined[key] = max(combined.get(key, 0), value) if key.startswith("max_") else combined.get(key, 0) + value
    return combined


def _combined_engine_fields(replicas: list[Replica]) -> dict:
    """The executors' summary fields over the fleet: numbers added up, the rest as replica 0 has them."""
    fields = replicas[0].executor.summary_fields()
    for replica in replicas[1:]:
        for key, value in replica.executor.summary_fields().items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                fields[key] += value
    return fields


def with_replica(steps: StepColumns, replica: int) -> StepColumns:
    """A chunk of a replica's steps with the `replica` column the fleet's steps table adds."""
    return {**steps, "replica": np.full(len(steps["step"]), replica, dtype=np.int64)}


def execute_fleet(run, run_dir: Path, directory: RunDirectory, header: dict, request_rate: float | None) -> dict:
    """Simulate the fleet and write its run directory; the fleet's summary (after `header`, the
    run's identity as runner.summary_header gives it)."""
    import pandas as pd
    fleet = fleet_config(run.cfg)
    router = make_router(fleet)
    replicas = build_replicas(run, fleet.num_replicas)
    recorders = [
        MetricsRecorder(run.budget.kv_bytes_per_token, r.strategy.event_names(),
                        lambda chunk, i=r.index: directory.steps.write(with_replica(chunk, i)))
        for r in replicas
    ]
    for replica, result in run_fleet(replicas, router, run.workload.requests):
        recorder = recorders[replica.index]
        recorder.record_step(result.step, result.start_s, result.duration_s, result.usage, replica.strategy.counters,
                             len(result.finished))
        replica.scheduler.token_events.step_done(result.step, result.start_s + result.duration_s)
        if result.finished:
            recorder.record_finished(result.finished, replica.executor.request_fields)
    per_replica = []
    tables = []
    swap_fields = [swap_summary(r.scheduler, r.executor, run.budget.block_bytes) for r in replicas]
    for replica, recorder in zip(replicas, recorders):
        recorder.flush_steps()
        requests = recorder.requests_table()
        tables.append(requests.assign(replica=replica.index))
        per_replica.append(rounded({
            "replica": replica.index,
            "num_routed_requests": replica.num_routed_requests,
            **summarize(recorder.step_totals, requests, run.budget.kv_cache_bytes, recorder.end_time_s),
            **event_totals(recorder.step_totals),
            **replica.executor.summary_fields(),
            **swap_fields[replica.index],
        }))
    requests = pd.concat(tables, ignore_index=True).sort_values("request_id", ignore_index=True)
    totals = StepTotals.combined([r.step_totals for r in recorders])
    end_time_s = max(r.end_time_s for r in recorders)
    slo = OmegaConf.to_object(run.cfg.goodput) if "goodput" in run.cfg else None
    itl = InterTokenLatencies.merged([replica.scheduler.token_events for replica in replicas])
    figures = vllm_figures(requests, slo, itl)  # for both summary.json and the vLLM-format result
    summary = rounded({
        **header,
        "num_replicas": fleet.num_replicas,
        "router": fleet.router,
        **summarize(totals, requests, run.budget.kv_cache_bytes, end_time_s),
        **event_totals(totals),
        **vllm_metrics(requests, end_time_s, slo, itl, figures),
        **_combined_engine_fields(replicas),
        **_combined_swap_fields(swap_fields),
    })
    write_json_atomic(run_dir / REPLICAS, per_replica)
    write_vllm_result(run_dir, vllm_result(summary, requests, request_rate, slo, itl, figures))
    directory.requests.write({name: requests[name].to_numpy() for name in requests})
    directory.finish_tables(with_replica(recorders[0].empty_step_columns(), 0), RequestRows.empty_columns())
    directory.complete(summary)
    log.info("fleet of %d (%s): %d requests in %.1f simulated s; routed %s", fleet.num_replicas, fleet.router,
             summary["num_requests"], summary["duration_s"], [r.num_routed_requests for r in replicas])
    return summary
