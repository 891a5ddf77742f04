"""Simulated tokens per CPU-second, per strategy and per scale, beside vLLM's own KVCacheManager.

The figures of docs/performance.md come from here (pytest-benchmark tracks the loop alone in CI:
bench_simulator.py). For each case it measures, as medians of `--rounds` rounds:

- `loop`: the step loop of one run in this process (kvbench.runner.simulate, steps streamed to a
  Parquet file as a run streams them), CPU seconds (time.process_time);
- `process`: the whole `kvbench run` process, start to exit, CPU seconds and peak RSS (os.wait4),
  and its wall time in three parts: start-up (from starting the process to its first simulated
  step), the loop (first step to the loop's end) and after the loop (to the process's exit: the
  tables, the summary, the run directory);
- `vllm`: the same requests replayed through vLLM 0.33.0's Scheduler and KVCacheManager
  (kvbench.oracle.vllm_replay, no model), CPU seconds; only with `--vllm` and the oracle installed
  (scripts/install_vllm_oracle.sh).

    python benchmarks/speed_table.py --rounds 5 --vllm            # the per-strategy table
    python benchmarks/speed_table.py --scale 10000 100000 1000000 --rounds 1 --vllm   # per scale

CPU time, not wall time, so that a busy machine slows the figures less (it still does: caches
are shared). Nothing here asserts anything about time.
"""

from __future__ import annotations

import argparse
import compileall
import dataclasses
import importlib.util
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kvbench.compose import compose
from kvbench.results import TableFormat, TableWriter
from kvbench.runner import build, simulate
from kvbench.commands.listing import choices

FIRST_STEP_AT = "kvbench first step at"
LOOP_END_AT = "kvbench loop end at"
# The configuration the README and docs/performance.md quote.
DOCUMENTED = ["workload=sharegpt", "workload.num_requests=10000", "workload.arrival=offline", "model=llama-2-7b",
              "hardware=a100-80gb"]
# A strategy's extra overrides: hf_static is meant for static batching (kvbench list).
EXTRA = {"hf_static": ["scheduler.batching=static"]}
# Scale: synthetic lengths (16-256 prompt, 16-128 output tokens), all at t = 0.
SCALE = ["strategy=paged", "workload=synthetic", "workload.arrival=offline", "workload.prompt.max=256",
         "workload.output.max=128", "model=llama-2-7b", "hardware=a100-80gb"]


def simulated_tokens(requests) -> int:
    return sum((r.num_prompt_tokens + r.num_output_tokens) * max(r.n, r.beam_width) for r in requests)


def loop_cpu_s(overrides: list[str]) -> tuple[float, int]:
    """CPU seconds of one run's step loop (steps streamed to Parquet), and its simulated tokens."""
    run = build(compose(overrides))
    with tempfile.TemporaryDirectory() as tmp:
        writer = TableWriter(Path(tmp), "steps", TableFormat.parquet)
        start = time.process_time()
        simulate(run, progress=False, step_sink=writer.write)
        cpu_s = time.process_time() - start
        writer.close()
    return cpu_s, simulated_tokens(run.workload.requests)


# `kvbench run` as the `kvbench` command runs it, but reporting on stderr when (time.time()) its
# first step starts (the step loop's first call) and when its loop ends (the loop's last step
# returned).
RUN_WITH_FIRST_STEP_TIME = f"""
import sys, time
from kvbench.cli import main
from kvbench.collector import pause_for_start_up

pause_for_start_up()  # as main() does before its imports, which the line below brings forward
import kvbench.runner

def run_steps(*args, run_steps=kvbench.runner.run_steps):
    print("{FIRST_STEP_AT}", repr(time.time()), file=sys.stderr, flush=True)
    yield from run_steps(*args)
    print("{LOOP_END_AT}", repr(time.time()), file=sys.stderr, flush=True)

kvbench.runner.run_steps = run_steps
sys.exit(main())  # as the `kvbench` script calls it: the process ends when it returns
"""


# A process reads its modules' cached bytecode, as an installed kvbench does (pip compiles it at
# install time): with PYTHONDONTWRITEBYTECODE set (as on some CI and sandbox machines) an editable
# checkout would compile its ~150 modules from source at every start, about 0.3 s of CPU.
WITH_BYTECODE = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def compile_kvbench() -> None:
    """Write the bytecode of every kvbench module (its plugin folders too) before anything is timed."""
    for package in ("kvbench", "kvbench.strategies", "kvbench.workloads", "kvbench.kernels"):
        for folder in importlib.util.find_spec(package).submodule_search_locations:
            compileall.compile_dir(folder, quiet=1)


def process_cpu_s(overrides: list[str]) -> tuple[float, float, int, float, float, float]:
    """(CPU seconds, wall seconds, peak RSS bytes, start-up, loop and after-loop wall seconds) of a whole
    `kvbench run` process."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-c", RUN_WITH_FIRST_STEP_TIME, "run", *overrides, f"hydra.run.dir={tmp}/run"]
        started_at = time.time()
        start = time.perf_counter()
        # From a folder of its own: `python -c` puts the working directory first on sys.path, and a
        # checkout's root would shadow an installed (non-editable) kvbench with its source tree.
        child = subprocess.Popen(command, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=WITH_BYTECODE)
        _, status, usage = os.wait4(child.pid, 0)
        wall_s = time.perf_counter() - start
        ended_at = started_at + wall_s
        stderr = child.stderr.read().decode()
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            raise RuntimeError(f"{' '.join(command[3:])} failed: {stderr[-500:]}")
    first_step_at = float(stderr.split(FIRST_STEP_AT, 1)[1].split()[0])
    loop_end_at = float(stderr.split(LOOP_END_AT, 1)[1].split()[0])
    return (usage.ru_utime + usage.ru_stime, wall_s, usage.ru_maxrss * 1024, first_step_at - started_at,
            loop_end_at - first_step_at, ended_at - loop_end_at)


def vllm_cpu_s(overrides: list[str]) -> float:
    """CPU seconds of replaying the run's requests through vLLM's scheduler and KV-cache manager."""
    from kvbench.oracle.cases import Case
    from kvbench.oracle.vllm_replay import replay
    from kvbench.tokens import TokenSequence

    run = build(compose(overrides))
    # vLLM samples recorded output ids; content is irrelevant without prefix reuse, so: position ids.
    requests = tuple(
        dataclasses.replace(r, output=TokenSequence.from_ids(list(range(r.num_output_tokens))))
        for r in run.workload.requests
    )
    scheduler = run.scheduler
    case = Case(seed=0, block_size=run.budget.block_size, num_blocks=run.budget.num_blocks,
                max_num_seqs=scheduler.max_num_seqs, max_num_batched_tokens=scheduler.max_num_batched_tokens,
                max_model_len=run.model.config.max_model_len, requests=requests)
    start = time.process_time()
    for _ in replay(case, max_steps=10**7, observe=False):
        pass
    return time.process_time() - start


def median_of(rounds: int, measure, *args):
    results = [measure(*args) for _ in range(rounds)]
    return [statistics.median(column) for column in zip(*results)] if isinstance(results[0], tuple) else [
        statistics.median(results)]


def strategy_rows(rounds: int, with_vllm: bool, strategies: list[str], launcher) -> list[str]:
    rows = ["| strategy | simulated tokens | loop CPU s | M tokens / loop CPU-s | process CPU s | M tokens / "
            "process CPU-s | process wall s | M tokens / process wall-s | start-up wall s | loop wall s | "
            "after-loop wall s | peak RSS MiB | vLLM KVCacheManager CPU s | M tokens / vLLM CPU-s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in strategies:
        overrides = [f"strategy={name}", *DOCUMENTED, *EXTRA.get(name, [])]
        loop_s, tokens = median_of(rounds, loop_cpu_s, overrides)
        proc_s, wall_s, rss, startup_s, loop_wall_s, after_s = median_of(
            rounds, launcher.apply, process_cpu_s, (overrides,))
        vllm = " |"  # two empty cells
        if with_vllm and name == "paged_prefix":  # vLLM's manager: paging with prefix caching
            (vllm_s,) = median_of(max(1, rounds // 5), vllm_cpu_s, overrides)
            vllm = f"{vllm_s:.2f} | {tokens / vllm_s / 1e6:.2f}"
        rows.append(f"| {name} | {tokens:,.0f} | {loop_s:.2f} | {tokens / loop_s / 1e6:.2f} | {proc_s:.2f} | "
                    f"{tokens / proc_s / 1e6:.2f} | {wall_s:.2f} | {tokens / wall_s / 1e6:.2f} | {startup_s:.2f} | "
                    f"{loop_wall_s:.2f} | {after_s:.2f} | {rss / 2**20:.0f} | {vllm} |")
        print(rows[-1], flush=True)
    return rows


def scale_rows(rounds: int, sizes: list[int], launcher, vllm_max_requests: int) -> list[str]:
    """`paged` at each size; the vLLM replay of the same requests up to `vllm_max_requests` (it
    runs about 50x slower: a million requests would take over an hour)."""
    rows = ["| requests | simulated tokens | process CPU s | M tokens / process CPU-s | peak RSS MiB | "
            "vLLM KVCacheManager CPU s | M tokens / vLLM CPU-s |",
            "|---:|---:|---:|---:|---:|---:|---:|"]
    for num_requests in sizes:
        overrides = [*SCALE, f"workload.num_requests={num_requests}"]
        run = build(compose(overrides))
        tokens = simulated_tokens(run.workload.requests)
        del run
        proc_s, _, rss, *_ = median_of(rounds, launcher.apply, process_cpu_s, (overrides,))
        vllm = " |"  # two empty cells
        if num_requests <= vllm_max_requests:
            (vllm_s,) = median_of(max(1, rounds // 5), vllm_cpu_s, overrides)
            vllm = f"{vllm_s:.1f} | {tokens / vllm_s / 1e6:.2f}"
        rows.append(f"| {num_requests:,} | {tokens:,} | {proc_s:.1f} | {tokens / proc_s / 1e6:.2f} | {rss / 2**20:.0f} | "
                    f"{vllm} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--vllm", action="store_true",
                        help="also replay through vLLM 0.33.0 (paged_prefix's row; each scale up to --vllm-max-requests)")
    parser.add_argument("--vllm-max-requests", type=int, default=100_000,
                        help="the largest scale replayed through vLLM with --vllm (default 100000)")
    parser.add_argument("--strategies", default=",".join(choices("strategy")))
    parser.add_argument("--scale", nargs="*", type=int, help="request counts of the scale table (e.g. 100000 1000000)")
    args = parser.parse_args()
    # Whole processes are started from a helper that never runs a loop itself: a child's peak RSS
    # (ru_maxrss) counts its parent's resident memory when it is spawned, and this process grows
    # with every in-process loop it measures.
    compile_kvbench()
    with multiprocessing.get_context("spawn").Pool(1) as launcher:
        if args.scale:
            vllm_max_requests = args.vllm_max_requests if args.vllm else 0
            print("\n".join(scale_rows(args.rounds, args.scale, launcher, vllm_max_requests)))
        else:
            print("\n".join(strategy_rows(args.rounds, args.vllm, args.strategies.split(","), launcher)))


if __name__ == "__main__":
    main()
