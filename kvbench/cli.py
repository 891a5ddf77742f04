"""The `kvbench` command: one entry point, a subcommand per job."""

from __future__ import annotations

import importlib
import os
import sys
import traceback

USAGE = """usage: kvbench <command> [arguments]

commands:
  run [overrides...]    one run; Hydra overrides such as strategy=orca_max workload.rate=4
  run -m [overrides...] a sweep (Hydra multirun): strategy=paged,orca_max workload.rate=1,2,4
  list [group...]       the choices for strategy, workload, model, hardware, engine, scheduler
  workload describe [overrides...] [--plot DIR]
                        what a workload replays: counts, lengths, sessions, prefix-reuse bound
  report RUNS_OR_SWEEPS... [--out DIR]
                        charts (PNG + PDF) and a Markdown summary of runs and sweeps
  compare BASE NEW [--metric NAME[:TOL]] [--tolerance T]
                        regression gate between two runs or two sweeps (exit 1 on a regression)
  appendix SWEEP_DIR... --out DIR
                        reproducibility appendix for a paper (LaTeX + Markdown)
  profile [options] [overrides...]
                        time steps on a device, for the simulator's engine.cost_model=profile
  reproduce vllm-paper [--quick] [--alpaca PATH]
                        rerun the PagedAttention paper's memory experiments; published vs kvbench

`kvbench run --help` shows the composed config and every group's options.
Errors print one line; set KVBENCH_DEBUG=1 for the traceback.
"""


def fail(err: BaseException) -> int:
    if os.environ.get("KVBENCH_DEBUG"):
        traceback.print_exception(err)
    print(f"kvbench: error: {err}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "run":
        from kvbench.run_app import run_app

        return run_app(rest)
    if command == "list":
        from kvbench.listing import list_groups

        try:
            print(list_groups(rest))
        except ValueError as err:
            return fail(err)
        return 0
    if command in ("report", "compare", "appendix"):
        module = importlib.import_module(f"kvbench.reporting.{command}")
        return module.main(rest)
    if command == "profile":
        from kvbench.profile import main as profile_main

        return profile_main(rest)
    if command == "reproduce":
        from kvbench.reproduce.cli import main as reproduce_main

        return reproduce_main(rest)
    if command == "workload" and rest[:1] == ["describe"]:
        from kvbench.describe import main as describe_main

        return describe_main(rest[1:])
    print(f"kvbench: error: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
