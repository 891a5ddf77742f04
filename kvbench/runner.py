"""One run: build everything from a composed config, drive the step loop, write the run directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from kvbench.errors import ConfigError
from kvbench.executors import EXECUTORS, Executor
from kvbench.hardware import HardwareConfig, KVBudget, kv_budget
from kvbench.metrics import MetricsRecorder, event_totals, summarize
from kvbench.model_spec import ModelSpec
from kvbench.results import RunDirectory
from kvbench.scheduler import Scheduler
from kvbench.step_loop import run_steps
from kvbench.strategies import STRATEGIES, KVCacheStrategy
from kvbench.workloads import WORKLOADS, WorkloadData


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
    choices = {**default_choices(cfg), **(choices or {})}
    to_object = OmegaConf.to_object
    model = ModelSpec(to_object(cfg.model))
    hardware = to_object(cfg.hardware)
    strategy_cfg = STRATEGIES.get(cfg.strategy.name).configure(to_object(cfg.strategy), model, hardware.tensor_parallel)
    budget = kv_budget(hardware, model, strategy_cfg.block_size, cfg.kv_cache_bytes, cfg.num_blocks)
    max_model_len = model.config.max_model_len
    strategy = STRATEGIES.get(strategy_cfg.name)(strategy_cfg, budget.num_blocks, max_model_len)
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
    engine_cfg = to_object(cfg.engine)
    executor_cls = EXECUTORS.get(engine_cfg.name)
    scheduler = Scheduler(
        strategy, to_object(cfg.scheduler), workload.requests, max_model_len, cfg.seed,
        with_block_tables=executor_cls.needs_block_tables,
    )
    executor = executor_cls(engine_cfg, model=model, hardware=hardware, budget=budget, seed=cfg.seed)
    return Run(cfg, choices, model, hardware, budget, strategy, workload, scheduler, executor)


def default_choices(cfg: DictConfig) -> dict[str, str]:
    return {group: cfg[group].name for group in ("strategy", "workload", "model", "hardware", "engine")}


def simulate(run: Run, progress: bool = True) -> MetricsRecorder:
    """Drive the step loop to the end; the records (their `end_time_s` is when the last step ended)."""
    scheduler, strategy, executor = run.scheduler, run.strategy, run.executor
    recorder = MetricsRecorder(run.budget.kv_bytes_per_token, strategy.event_names())
    bar = tqdm(
        total=len(run.workload.requests), unit="req", desc=f"{run.choices['strategy']} / {run.choices['workload']}",
        disable=not progress or None, dynamic_ncols=True, leave=False,
    )
    with bar:
        for result in run_steps(scheduler, executor):
            recorder.record_step(result.step, result.start_s, result.duration_s, result.usage, strategy.counters,
                                 len(result.finished))
            if result.finished:
                recorder.record_finished(result.finished, executor.request_fields)
                bar.update(len(result.finished))
                bar.set_postfix(sim_s=f"{recorder.end_time_s:.1f}", batch=result.step.batch_size, refresh=False)
    return recorder


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
        "num_dropped_requests": run.workload.num_dropped_too_long,
        "num_skipped_rows": run.workload.num_skipped_bad_rows,
    }


def execute(cfg: DictConfig, run_dir: Path, choices: dict[str, str] | None = None, progress: bool = True) -> dict:
    """Build, run and record one run in `run_dir`; return its summary.

    Whatever happens, the manifest says how the run ended; summary.json exists only if it completed.
    """
    directory = RunDirectory(run_dir)
    directory.start(cfg, {"choices": {**default_choices(cfg), **(choices or {})}})
    try:
        run = build(cfg, choices)
        directory.update_manifest(dataset=run.workload.dataset, num_blocks=run.budget.num_blocks)
        recorder = simulate(run, progress)
        steps, requests = recorder.steps_table(), recorder.requests_table()
        summary = {
            **summary_header(run),
            **summarize(steps, requests, run.budget.kv_cache_bytes, recorder.end_time_s),
            **event_totals(steps, recorder.extra_events),
            **run.executor.summary_fields(),
        }
        directory.complete(steps, requests, summary)
        return summary
    except KeyboardInterrupt:
        directory.fail("interrupted", "interrupted by the user")
        raise
    except Exception as err:
        directory.fail("failed", f"{type(err).__name__}: {err}")
        raise
