"""Instructions executed by the step loop and by a whole `kvbench run`, counted by Valgrind.

CPU seconds on a shared or virtualised machine move by half between two runs of the same code (a
neighbour's load, frequency changes), so a 10% speed-up cannot be told from noise by timing alone.
An instruction count is the same every time for the same code and inputs, so two versions compare
to the last digit: this script is for before/after comparisons of a change, beside
speed_table.py's seconds (instructions are not time: a cache miss costs many of them).

For each strategy, on the configuration docs/performance.md quotes, it counts with
`valgrind --tool=cachegrind --cache-sim=no` (about 20x slower than native):

- `build`: a process that composes and builds the run, and stops there;
- `loop`: the same process running the loop too, less `build` (kvbench.runner.simulate);
- `process`: the `kvbench run` command, start to exit (with `--process`; a first untimed run warms
  the ShareGPT table's parsed copy, as every later run finds it).

    python benchmarks/instruction_count.py --strategies paged,paged_prefix --process

Run it with each version's interpreter (e.g. two virtual environments) and compare the tables.
Needs Valgrind (`apt install valgrind`); nothing here asserts anything.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

DOCUMENTED = ["workload=sharegpt", "workload.num_requests=10000", "workload.arrival=offline", "model=llama-2-7b",
              "hardware=a100-80gb"]
# The child: build the run, and with "loop" run it too (steps discarded, as speed_table.py's loop).
CHILD = """
import sys
from kvbench.compose import compose
from kvbench.runner import build, simulate
run = build(compose(sys.argv[2:]))
if sys.argv[1] == "loop":
    simulate(run, progress=False, step_sink=lambda df: None)
"""
INSTRUCTIONS = re.compile(r"I\s+refs:\s+([\d,]+)")


# Python salts str hashes per process, and objects hash by their addresses, which address-space
# randomisation moves: both change dict layouts, and so the count by up to 1% between runs of the
# same code. Both are fixed here (`setarch -R` where it exists; results never depend on either).
# A loop's count still moves by up to about 0.8% between runs (seen on 2026-11-30, three runs of
# one version: 3,420M to 3,450M for `paged`), so compare changes larger than that, or repeat.
FIXED_HASH_SEED = {**os.environ, "PYTHONHASHSEED": "0"}
NO_ASLR = ["setarch", os.uname().machine, "-R"] if shutil.which("setarch") else []


def count_instructions(command: list[str], cwd: str) -> int:
    """Instructions the command executes, children not followed."""
    valgrind = [*NO_ASLR, "valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    done = subprocess.run(valgrind + command, cwd=cwd, capture_output=True, text=True, env=FIXED_HASH_SEED)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed under valgrind:\n{done.stderr[-2000:]}")
    return int(INSTRUCTIONS.search(done.stderr).group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", default="paged")
    parser.add_argument("--process", action="store_true", help="also count the whole kvbench run process")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("instruction_count.py needs valgrind (apt install valgrind)")
    header = "| strategy | build instructions (M) | loop instructions (M) |"
    rule = "|---|---:|---:|"
    if args.process:
        header += " kvbench run process instructions (M) |"
        rule += "---:|"
    rows = [header, rule]
    # From a folder of its own: a checkout's root would shadow the interpreter's installed kvbench.
    with tempfile.TemporaryDirectory() as cwd:
        for strategy in args.strategies.split(","):
            overrides = [f"strategy={strategy}", *DOCUMENTED]
            # Uncounted first: a module edited since its byte code was cached is compiled by the
            # first process that imports it, which would count compiling as building.
            subprocess.run([sys.executable, "-c", CHILD, "build", *overrides], cwd=cwd, check=True, capture_output=True)
            build = count_instructions([sys.executable, "-c", CHILD, "build", *overrides], cwd)
            loop = count_instructions([sys.executable, "-c", CHILD, "loop", *overrides], cwd) - build
            row = f"| {strategy} | {build / 1e6:,.0f} | {loop / 1e6:,.0f} |"
            if args.process:
                kvbench = [sys.executable, "-m", "kvbench.cli", "run", *overrides]
                warm = [*kvbench, f"hydra.run.dir={cwd}/{strategy}-warm"]
                subprocess.run(warm, cwd=cwd, check=True, capture_output=True)  # the ShareGPT copy, byte code
                row += f" {count_instructions([*kvbench, f'hydra.run.dir={cwd}/{strategy}'], cwd) / 1e6:,.0f} |"
            rows.append(row)
            print(row, file=sys.stderr, flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
