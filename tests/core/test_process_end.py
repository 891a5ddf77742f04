"""The `kvbench run` process ends without the interpreter's teardown (kvbench.cli.end_process), but
with everything an exit owes: the atexit functions, stdout and stderr flushed, the exit code; and it
leaves the exit to the interpreter while a non-daemon thread still runs."""

import subprocess
import sys

import pytest

ENDS = """
import atexit, sys, threading, time
from pathlib import Path
from kvbench.cli import end_process

atexit.register(lambda: Path("atexit_ran").write_text("yes"))
print("x" * 100_000)  # more than a pipe's buffer, still in sys.stdout's own buffer
print("to stderr", file=sys.stderr, end="")
if sys.argv[1] == "thread":
    threading.Thread(target=lambda: (time.sleep(0.5), Path("thread_done").write_text("yes"))).start()
end_process(3)
print("returned", end="")
"""


@pytest.mark.parametrize("case", ["alone", "thread"])
def test_end_process_does_what_an_exit_owes(tmp_path, case):
    # From a folder of its own: the checkout's root would shadow an installed kvbench.
    done = subprocess.run([sys.executable, "-c", ENDS, case], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert (tmp_path / "atexit_ran").read_text() == "yes"
    assert done.stderr == "to stderr"
    if case == "alone":
        assert (done.returncode, done.stdout) == (3, "x" * 100_000 + "\n")
    else:  # the interpreter's own exit: it waits for the thread
        assert (done.returncode, done.stdout) == (0, "x" * 100_000 + "\nreturned")
        assert (tmp_path / "thread_done").read_text() == "yes"


def test_a_run_process_ends_with_its_output_log_and_exit_code(tmp_path):
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "kvbench.cli", "run", "strategy=paged", "workload=synthetic",
         "workload.num_requests=20", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(f"run directory: {run_dir}\n")
    assert "complete: 20 requests" in (run_dir / "kvbench.log").read_text()
    failed = subprocess.run([sys.executable, "-m", "kvbench.cli", "run", "strategy=nope"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert failed.returncode == 2
    assert failed.stderr.startswith("kvbench: error: strategy=nope")
