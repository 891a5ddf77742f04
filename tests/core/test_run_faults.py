"""Faults end a run cleanly: signals mark it interrupted, a full disk marks it failed, a sweep says what failed."""

from __future__ import annotations

import errno
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kvbench.compose import compose

import kvbench.config  # noqa: F401
from kvbench import results
from kvbench.reporting.sweeps import job_dir
from kvbench.results import is_complete
from kvbench.runner import execute

SMALL = ["workload.num_requests=20"]
# Long enough to still be running when the signal comes (tens of seconds uninterrupted).
LONG = ["workload=synthetic", "workload.num_requests=100000", "workload.rate=1000"]


# A process that starts with SIGINT ignored keeps ignoring it: shells start background jobs that way
# (so that Ctrl-C in the terminal spares them) and Python then installs no KeyboardInterrupt handler.
# A test suite started in the background would hand that on to the run, so the run is started as a
# terminal's foreground job would be: SIGINT back to its default, then exec'd (which keeps it).
WITH_CTRL_C = [
    sys.executable, "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.executable, [sys.executable, *sys.argv[1:]])",
]


def kvbench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kvbench.cli", *args], cwd=cwd, capture_output=True, text=True)


def wait_until_running(manifest: Path, process: subprocess.Popen, timeout_s: float = 120) -> None:
    """Until the run has built everything and is stepping (its manifest records the pool)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            if "num_blocks" in json.loads(manifest.read_text()):
                time.sleep(0.5)
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError("the run never started stepping")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_marks_the_run_interrupted_without_a_traceback(tmp_path, signum):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [*WITH_CTRL_C, "-m", "kvbench.cli", "run", *LONG, f"hydra.run.dir={run_dir}"], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    wait_until_running(run_dir / "manifest.json", process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum
    assert "Traceback" not in stderr and "interrupted" in stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    if signum != signal.SIGINT:
        assert signal.Signals(signum).name in manifest["error"]
    assert not (run_dir / "summary.json").exists() and not (run_dir / "steps.parquet").exists()
    assert not list(run_dir.glob("*.tmp"))


def compose_run(*overrides: str):
    return compose([*SMALL, *overrides])


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("table_format", ["parquet", "csv"])
def test_a_full_disk_while_writing_tables_marks_the_run_failed_and_no_table_looks_whole(
    tmp_path, monkeypatch, table_format
):
    monkeypatch.setattr(results.TableWriter, "finish", disk_full)
    with pytest.raises(OSError, match="No space left"):
        execute(compose_run(f"results.format={table_format}"), tmp_path, progress=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "No space left" in manifest["error"]
    assert not is_complete(tmp_path) and not (tmp_path / "summary.json").exists()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert f"steps.{table_format}" not in names and f"requests.{table_format}" not in names
    assert not [n for n in names if n.endswith(".tmp")]


def test_a_full_disk_when_even_the_manifest_cannot_be_written_leaves_no_temporary_file(tmp_path, monkeypatch):
    original = Path.write_text

    def full_for_json(path, *args, **kwargs):
        if path.name.endswith(".json.tmp") and "summary" in path.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(path, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_for_json)
    with pytest.raises(OSError, match="No space left"):
        execute(compose_run(), tmp_path, progress=False)
    assert not list(tmp_path.glob("*.tmp")) and not (tmp_path / "summary.json").exists()
    assert json.loads((tmp_path / "manifest.json").read_text())["status"] == "failed"


def test_a_full_disk_is_one_line_on_the_command_line(tmp_path):
    script = (
        "import errno, sys; from kvbench import results\n"
        "def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "results.TableWriter.write = full\n"
        "from kvbench.cli import main; sys.exit(main(sys.argv[1:]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, "run", *SMALL, f"hydra.run.dir={tmp_path / 'run'}"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "kvbench: error: [Errno 28] No space left on device" in result.stderr
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "failed"


def test_a_sweep_with_failed_jobs_exits_1_and_lists_them(tmp_path):
    sweep = tmp_path / "sweep"
    result = kvbench("run", "-m", *SMALL, "strategy.block_size=16,12", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 1
    assert "1 job(s) of the sweep did not complete" in result.stderr
    assert f"{job_dir(sweep, 1)}: failed" in result.stderr and "strategy.block_size=12" in result.stderr
    assert is_complete(job_dir(sweep, 0)) and not is_complete(job_dir(sweep, 1))
