"""CPU time spent building requests inside the simulation loop, beside the loop's own.

The scheduler builds a request (its `Request`, token sequences, `RequestState` and first
`Sequence`) when FCFS admission reaches it, in `WaitingQueue._build_next`. This wraps that method
with a CPU clock (time.process_time, about 0.4 us a reading) and runs the documented
configuration, so the two figures come from the same runs:

    python benchmarks/request_building.py --strategy paged --rounds 5

Prints the minimum and median over the rounds of the CPU seconds in `_build_next` and of the
whole loop (kvbench.runner.simulate). Nothing here asserts anything about time.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

from kvbench.compose import compose
from kvbench.runner import build, simulate
from kvbench.waiting_queue import WaitingQueue

DOCUMENTED = ["workload=sharegpt", "workload.num_requests=10000", "workload.arrival=offline", "model=llama-2-7b",
              "hardware=a100-80gb"]


def measure(overrides: list[str]) -> tuple[float, float]:
    """(CPU s in WaitingQueue._build_next, CPU s of the loop) of one run."""
    build_next = WaitingQueue._build_next
    spent_s = 0.0

    def timed(queue: WaitingQueue) -> None:
        nonlocal spent_s
        start = time.process_time()
        build_next(queue)
        spent_s += time.process_time() - start

    run = build(compose(overrides))
    WaitingQueue._build_next = timed
    try:
        start = time.process_time()
        simulate(run, progress=False, step_sink=lambda chunk: None)
        loop_s = time.process_time() - start
    finally:
        WaitingQueue._build_next = build_next
    del run
    gc.collect()
    return spent_s, loop_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", default="paged")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides (they win over the documented ones)")
    args = parser.parse_args()
    runs = [measure([*DOCUMENTED, f"strategy={args.strategy}", *args.overrides]) for _ in range(args.rounds)]
    for name, values in (("building requests", [b for b, _ in runs]), ("loop", [loop for _, loop in runs])):
        print(f"{name}: CPU s min {min(values):.3f} median {statistics.median(values):.3f} "
              f"({', '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    main()
