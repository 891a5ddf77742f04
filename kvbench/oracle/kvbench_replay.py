"""Replay a case through kvbench's scheduler and `paged_prefix`, observed as `vllm_replay` observes vLLM.

It builds the strategy and scheduler through their public constructors and reads back only what
they expose (the scheduler's queues, a step plan, block tables and pool usage).
"""

from __future__ import annotations

from collections.abc import Iterator

from omegaconf import OmegaConf

from kvbench.model_spec import KVGroup
from kvbench.oracle.cases import STEP_S, Case
from kvbench.oracle.state import StepState
from kvbench.scheduler import Scheduler, SchedulerConfig, SchedulerError
from kvbench.strategies import STRATEGIES


def build(case: Case, strategy_name: str = "paged_prefix", kv_groups: list[KVGroup] | None = None) -> Scheduler:
    strategy_config = OmegaConf.to_object(OmegaConf.structured(STRATEGIES.schema(strategy_name)))
    strategy_config.block_size = case.block_size
    group_kwargs = {"kv_groups": kv_groups} if kv_groups else {}
    strategy = STRATEGIES.get(strategy_name)(strategy_config, case.num_blocks, case.max_model_len, **group_kwargs)
    config = SchedulerConfig(case.max_num_seqs, case.max_num_batched_tokens, chunked_prefill=True)
    # Eager decoding, so block tables are current at every step (lazy decoding gives the same steps);
    # plans carry their decodes, as they do for an executor that runs them.
    return Scheduler(strategy, config, case.requests, case.max_model_len, seed=case.seed, lazy_decode=False,
                     with_block_tables=True)


def replay(case: Case, windows: tuple[int, ...] = (), prefix_caching: bool = True) -> Iterator[StepState]:
    """Every step kvbench plans for `case`; an empty step when it cannot schedule anything.

    `windows`: the layer groups' sliding windows (0: full attention), one layer each, as
    `vllm_replay.replay` takes them; each group's tables are reported. `paged_prefix`, or `paged`
    without `prefix_caching`."""
    kv_groups = [KVGroup(window, 1) for window in windows] or None
    scheduler = build(case, "paged_prefix" if prefix_caching else "paged", kv_groups)
    strategy = scheduler.strategy
    clock_s = 0.0
    while scheduler.has_work():
        was_running = [g.request_id for g in scheduler.running.values()]
        try:
            step = scheduler.schedule(clock_s)
        except SchedulerError:
            yield StepState(0, (), (), (), (), -1, ())
            return
        if step is None:
            clock_s = scheduler.next_arrival_time_s()
            continue
        running = [g.request_id for g in scheduler.running.values()]
        scheduled = [(c.seq.group.request_id, c.num_new_tokens) for c in step.prefills]
        scheduled += [(seq.group.request_id, 1) for seq, _ in step.decodes]
        usage = strategy.usage()
        group_tables = tuple(sorted(
            (g.request_id, tuple(map(tuple, strategy.tables.group_block_tables(g.seqs[0].seq_id))))
            for g in scheduler.running.values()
        )) if windows else ()
        yield StepState(
            group_block_tables=group_tables,
            num_prefix_hit_tokens=step.num_prefix_hit_tokens,
            preempted=tuple(sorted(set(was_running) - set(running))),
            scheduled_tokens=tuple(sorted(scheduled)),
            running=tuple(running),
            waiting=tuple(g.request_id for g in scheduler.waiting),
            num_free_blocks=(usage.free_slots + usage.cached_slots) // case.block_size,
            block_tables=tuple(sorted(
                (g.request_id, tuple(strategy.block_table(g.seqs[0].seq_id))) for g in scheduler.running.values()
            )),
        )
        scheduler.complete(step, clock_s + STEP_S)
        clock_s += STEP_S
