"""One run: build everything from a composed config, drive the step loop, write the run directory."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from kvbench.collector import end_start_up
from kvbench.errors import ConfigError
from kvbench.executors import EXECUTORS, Executor
from kvbench.fleet import execute_fleet
from kvbench.hardware import HardwareConfig, KVBudget, kv_budget, num_swap_blocks
from kvbench.host_link import check_host_link
from kvbench.host_memory import on_host, runs_on_host
from kvbench.inter_token_latency import InterTokenLatencies
from kvbench.interrupts import signals_interrupt
from kvbench.metrics import MetricsRecorder, StepColumns, event_totals, rounded, summarize
from kvbench.kv_format import KVDtype
from kvbench.model_spec import ModelSpec
from kvbench.request_rows import RequestRows
from kvbench.results import ResultsConfig, RunDirectory, gpu_record
from kvbench.run_claim import RunClaim
from kvbench.run_log import run_log
from kvbench.scheduler import Scheduler
from kvbench.serving_metrics import vllm_figures, vllm_metrics, vllm_result, write_vllm_result
from kvbench.settings_check import check_run_config
from kvbench.step_loop import run_steps
from kvbench.strategies import STRATEGIES, KVCacheStrategy
from kvbench.swap_space import swap_summary
from kvbench.workloads import WORKLOADS, WorkloadData

log = logging.getLogger(__name__)


@dataclass
class Run:
    """Everything one run needs, built and checked before it starts."""

    cfg: DictConfig
    choices: dict[str, str]  # config group -> chosen YAML (the preset names)
    model: ModelSpec
    hardware: HardwareConfig
    budget: KVBudget
    strategy: KVCacheStrategy
    workload: WorkloadData
    scheduler: Scheduler
    executor: Executor


def build(cfg: DictConfig, choices: dict[str, str] | None = None) -> Run:
    check_run_config(cfg)
    choices = {**default_choices(cfg), **(choices or {})}
    to_object = OmegaConf.to_object
    model = ModelSpec(to_object(cfg.model))
    hardware = to_object(cfg.hardware)
    strategy_cls = STRATEGIES.get(cfg.strategy.name)
    strategy_cfg = strategy_cls.configure(to_object(cfg.strategy), model, hardware.tensor_parallel)
    pool_hardware = on_host(hardware) if runs_on_host(cfg) else hardware  # a CPU device run: this host's memory
    kv_groups = strategy_cls.kv_groups_for(model)  # a window-aware pool is counted in pages of one group
    budget = kv_budget(
        pool_hardware, model, strategy_cfg.block_size, cfg.kv_cache_bytes, cfg.num_blocks, cfg.scheduler.max_num_seqs,
        num_layers=kv_groups[0].num_layers if kv_groups else None,
        state_bytes=cfg.scheduler.max_num_seqs * model.state_bytes_per_request,
    )
    max_model_len = model.config.max_model_len
    group_kwargs = {"kv_groups": kv_groups} if kv_groups else {}
    strategy = STRATEGIES.get(strategy_cfg.name)(strategy_cfg, budget.num_blocks, max_model_len, **group_kwargs)
    if strategy.max_seq_kv_tokens() < max_model_len:
        raise ConfigError(
            f"strategy={choices['strategy']} cannot hold even one sequence of model.max_model_len={max_model_len} "
            f"tokens in a KV pool of {budget.num_blocks} blocks x {budget.block_size} tokens "
            f"({budget.kv_cache_bytes / 2**30:.2f} GiB): lower model.max_model_len or enlarge the pool "
            f"(kv_cache_bytes=, num_blocks=, hardware=, hardware.tensor_parallel=)"
        )
    workload_cfg = to_object(cfg.workload)
    workload = WORKLOADS.get(workload_cfg.name)(workload_cfg, cfg.seed, max_model_len).load()
    if not workload.requests:
        raise ConfigError(
            f"workload={choices['workload']} has no request that fits model.max_model_len={max_model_len} "
            f"({workload.num_dropped_too_long} dropped)"
        )
    if cfg.scheduler.preemption == "swap":
        check_swap_space(hardware, budget)
    engine_cfg = to_object(cfg.engine)
    executor_cls = EXECUTORS.get(engine_cfg.name)
    if executor_cls.needs_block_tables and (kv_groups or "none" in model.layer_types):
        raise ConfigError(
            f"engine={engine_cfg.name} cannot run model={choices['model']} with strategy={choices['strategy']}: it "
            f"executes full and sliding-window layers over one block table per sequence (a strategy that keeps "
            f"every token), not layer groups or layers without KV (simulate it with engine=sim)"
        )
    scheduler = Scheduler(
        strategy, to_object(cfg.scheduler), workload.requests, max_model_len, cfg.seed,
        with_block_tables=executor_cls.needs_block_tables, num_swap_blocks=num_swap_blocks(hardware, budget),
    )
    executor = executor_cls(engine_cfg, model=model, hardware=hardware, budget=budget, seed=cfg.seed)
    end_start_up()  # the `kvbench run` process's start-up ends here (kvbench.collector)
    return Run(cfg, choices, model, hardware, budget, strategy, workload, scheduler, executor)


def default_choices(cfg: DictConfig) -> dict[str, str]:
    return {group: cfg[group].name for group in ("strategy", "workload", "model", "hardware", "engine")}


def simulate(
    run: Run, progress: bool = True, step_sink: Callable[[StepColumns], None] | None = None,
    request_sink: Callable[[dict], None] | None = None,
) -> MetricsRecorder:
    """Drive the step loop to the end; the records (their `end_time_s` is when the last step ended).

    With `step_sink` the steps go there chunk by chunk (the run's steps table) instead of staying in
    memory; with `request_sink` the finished requests' rows, in id order (the requests table).
    """
    scheduler, strategy, executor = run.scheduler, run.strategy, run.executor
    recorder = MetricsRecorder(run.budget.kv_bytes_per_token, strategy.event_names(), step_sink,
                               request_sink, run.workload.requests.request_ids)
    itl = scheduler.token_events = InterTokenLatencies()  # the run's ITL distribution (kvbench.inter_token_latency)
    bar = progress_bar(len(run.workload.requests), f"{run.choices['strategy']} / {run.choices['workload']}", progress)
    record_step, step_done, counters = recorder.record_step, itl.step_done, strategy.counters  # read once, not per step
    with bar:
        for result in run_steps(scheduler, executor):
            step, start_s, duration_s, finished = result.step, result.start_s, result.duration_s, result.finished
            record_step(step, start_s, duration_s, result.usage, counters, len(finished))
            step_done(step, start_s + duration_s)
            if finished:
                recorder.record_finished(finished, executor.request_fields)
                if not bar.disable:  # a disabled bar still formats its postfix
                    bar.update(len(finished))
                    bar.set_postfix(sim_s=f"{recorder.end_time_s:.1f}", batch=step.batch_size, refresh=False)
    recorder.flush_steps()
    recorder.requests.flush()
    return recorder


class NoProgressBar:
    """What `simulate` uses in place of a disabled tqdm bar."""

    disable = True

    def __enter__(self) -> NoProgressBar:
        return self

    def __exit__(self, *exc_info) -> None:
        return None


def progress_bar(total: int, desc: str, progress: bool):
    """tqdm's bar of finished requests, shown on a terminal (tqdm's own rule for `disable=None`); where it
    would be disabled, no tqdm at all (importing it is a hundredth of a second of start-up)."""
    if not progress or not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return NoProgressBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="req", desc=desc, dynamic_ncols=True, leave=False)


def check_swap_space(hardware: HardwareConfig, budget: KVBudget) -> None:
    """Swap preemption needs a host link and room for at least one block."""
    check_host_link(hardware)
    if num_swap_blocks(hardware, budget) < 1:
        raise ConfigError(
            f"scheduler.preemption=swap: hardware.cpu_swap_bytes={hardware.cpu_swap_bytes} holds no block of "
            f"{budget.block_bytes} bytes, so every preemption would recompute: enlarge it"
        )


def summary_header(run: Run) -> dict:
    c = run.choices
    return {
        "strategy": c["strategy"],
        "strategy_class": run.cfg.strategy.name,
        "block_size": run.budget.block_size,
        "workload": c["workload"],
        "model": c["model"],
        "hardware": c["hardware"],
        "tensor_parallel": run.hardware.tensor_parallel,
        "engine": c["engine"],
        "seed": run.cfg.seed,
        "num_blocks": run.budget.num_blocks,
        "kv_cache_bytes": run.budget.kv_cache_bytes,
        # The KV format (model.kv_dtype; `auto` is the model's dtype) and what a token costs in it.
        "kv_dtype": KVDtype(run.model.config.kv_dtype).value,
        "kv_bytes_per_token": run.budget.kv_bytes_per_token,
        "kv_residual_bytes": run.budget.kv_residual_bytes,
        "num_dropped_requests": run.workload.num_dropped_too_long,
        "num_skipped_rows": run.workload.num_skipped_bad_rows,
    }


def _request_rate(cfg: DictConfig) -> float | None:
    """The workload's mean arrival rate (req/s) when it has one; None for offline (all at once)."""
    workload = cfg.workload
    arrival = workload.get("arrival")
    if getattr(arrival, "name", arrival) in ("poisson", "gamma") and workload.get("rate") is not None:
        return float(workload.rate)
    return None


def execute(
    cfg: DictConfig, run_dir: Path, choices: dict[str, str] | None = None, progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Build, run and record one run in `run_dir`; return its summary.

    The directory is claimed first (kvbench.run_claim): a directory another live run writes into is
    refused, and one that holds a run is refused unless `overwrite`, in which case the new run is
    written beside it and swapped in when it completes. Whatever happens, the manifest says how the
    run ended (SIGTERM and SIGHUP end it as Ctrl-C does: interrupted); summary.json exists only if it
    completed.
    """
    with RunClaim.acquire(run_dir, overwrite) as claim, signals_interrupt():
        results_cfg = OmegaConf.to_object(cfg.results) if "results" in cfg else ResultsConfig()
        directory = RunDirectory(claim.write_dir, results_cfg.format)
        with run_log(claim.write_dir):
            summary = _execute_logged(cfg, claim.write_dir, directory, choices, progress)
        claim.commit()
        return summary


def _execute_logged(cfg: DictConfig, run_dir: Path, directory: RunDirectory, choices: dict[str, str] | None,
                    progress: bool) -> dict:
    log.info("run directory %s; choices %s; seed %s", run_dir, {**default_choices(cfg), **(choices or {})}, cfg.seed)
    try:
        directory.start(cfg, {"choices": {**default_choices(cfg), **(choices or {})}})
        run = build(cfg, choices)
        # The GPU once built: a device run has imported torch by then, which gpu_record never does.
        directory.update_manifest(dataset=run.workload.dataset, num_blocks=run.budget.num_blocks, gpu=gpu_record())
        log.info("KV pool: %d blocks of %d tokens (%.2f GiB); %d requests (%d dropped as too long, %d bad rows)",
                 run.budget.num_blocks, run.budget.block_size, run.budget.kv_cache_bytes / 2**30,
                 len(run.workload.requests), run.workload.num_dropped_too_long, run.workload.num_skipped_bad_rows)
        if run.cfg.get("fleet") is not None and run.cfg.fleet.num_replicas != 1:  # replicas behind a router
            return execute_fleet(run, run_dir, directory, summary_header(run), _request_rate(run.cfg))
        recorder = simulate(run, progress, directory.steps.write, directory.requests.write)
        recorder.requests.check_all_written()
        # The summary reads the requests table back from disk, a column at a time, rather than keep
        # its columns in memory through the run.
        requests = directory.finish_tables(recorder.empty_step_columns(), RequestRows.empty_columns())
        itl = run.scheduler.token_events
        slo = OmegaConf.to_object(cfg.goodput) if "goodput" in cfg else None
        figures = vllm_figures(requests, slo, itl)
        summary = rounded({
            **summary_header(run),
            **summarize(recorder.step_totals, requests, run.budget.kv_cache_bytes, recorder.end_time_s),
            **event_totals(recorder.step_totals),
            **vllm_metrics(requests, recorder.end_time_s, slo, itl, figures),
            **run.executor.summary_fields(),
            **swap_summary(run.scheduler, run.executor, run.budget.block_bytes),
        })
        write_vllm_result(run_dir, vllm_result(summary, requests, _request_rate(run.cfg), slo, itl, figures))
        directory.complete(summary)
        log.info("complete: %d requests in %.1f simulated s over %d steps; %.1f output tok/s, mean batch %.2f",
                 summary["num_requests"], summary["duration_s"], summary["num_steps"], summary["output_tokens_per_s"],
                 summary["mean_batch_size"])
        return summary
    except KeyboardInterrupt as err:
        log.warning("interrupted: %s", err or "by the user (Ctrl-C)")
        directory.fail("interrupted", str(err) or "interrupted by the user (Ctrl-C)")
        raise
    except Exception as err:
        log.error("failed: %s: %s", type(err).__name__, err)
        directory.fail("failed", f"{type(err).__name__}: {err}")
        raise
