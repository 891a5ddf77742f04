"""The `kvbench` command: one entry point, a subcommand per job."""

from __future__ import annotations

import gc
import importlib
import sys

from kvbench.collector import pause_for_start_up

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
Errors print one line (exit 2); set KVBENCH_DEBUG=1 for the traceback. Ctrl-C exits with 130.
"""


# command -> the module whose main(args) runs it (imported only when that command runs).
COMMANDS = {
    "run": "kvbench.commands.run",
    "list": "kvbench.commands.listing",
    "profile": "kvbench.commands.profile",
    "report": "kvbench.reporting.report",
    "compare": "kvbench.reporting.compare",
    "appendix": "kvbench.reporting.appendix",
    "reproduce": "kvbench.reproduce.cli",
}


def main(argv: list[str] | None = None) -> int:
    """Run the command in `argv`; without it, the process's own command line, and the process ends
    when this returns (the `kvbench` script, `python -m kvbench.cli`)."""
    ends_the_process = argv is None
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "workload" and rest[:1] == ["describe"]:
        command, rest, module = "workload describe", rest[1:], "kvbench.commands.describe"
    elif command in COMMANDS:
        module = COMMANDS[command]
    else:
        print(f"kvbench: error: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    if ends_the_process and command == "run":
        pause_for_start_up()  # the collector resumes when the run is built (kvbench.collector)
    from kvbench.commands.errors import run_command

    code = run_command(command, importlib.import_module(module).main, rest)
    if ends_the_process:
        # The interpreter's teardown would walk every object still alive for reference cycles (a
        # quarter of a CPU-second after a 10,000-request run) only to free memory the OS takes back
        # anyway; frozen, the collector skips them.
        gc.freeze()
        if command == "run":
            end_process(code)
    return code


def end_process(code: int) -> None:
    """End the process now, as the interpreter would but without its teardown (clearing some 700
    modules and freeing every object one by one: about 0.03 s after a 10,000-request run, for
    memory the OS takes back anyway). What an exit must still do is done first: the `atexit`
    functions (logging's flush and close of kvbench.log among them) and flushing stdout and stderr.
    Returns instead, leaving it all to the interpreter, while another non-daemon thread runs (the
    interpreter would wait for it) or when the standard streams cannot be flushed (it reports that)."""
    import atexit
    import os
    import threading

    if any(t is not threading.main_thread() and not t.daemon for t in threading.enumerate()):
        return
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
