"""Every subcommand fails the same way: one line, exit 2, the traceback only with KVBENCH_DEBUG=1;
Ctrl-C exits with 130 and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kvbench.cli import main as kvbench
from kvbench.commands.errors import INTERRUPTED, run_command


@pytest.mark.parametrize("argv", [
    ["list", "nonsense"],
    ["workload", "describe", "workload=nonexistent"],
    ["profile", "--layouts", "ragged", "model=tiny", "engine.device=cpu"],
])
def test_an_input_error_is_one_line_and_exit_2(argv, capsys, monkeypatch):
    monkeypatch.delenv("KVBENCH_DEBUG", raising=False)
    assert kvbench(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("kvbench: error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_kvbench_debug_adds_the_traceback(capsys, monkeypatch):
    monkeypatch.setenv("KVBENCH_DEBUG", "1")
    assert kvbench(["list", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.splitlines()[-1].startswith("kvbench: error: unknown group 'nonsense'")


def test_ctrl_c_exits_130_without_a_traceback(capsys, monkeypatch):
    monkeypatch.delenv("KVBENCH_DEBUG", raising=False)

    def interrupted(args):
        raise KeyboardInterrupt

    assert run_command("run", interrupted, []) == INTERRUPTED == 130
    assert capsys.readouterr().err == "kvbench run: interrupted\n"


def test_a_bug_is_not_dressed_as_an_input_error():
    def buggy(args):
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        run_command("run", buggy, [])


@pytest.mark.parametrize(("override", "message"), [
    ("strategy=nonexistent", "strategy=nonexistent: no such choice; choose from contiguous, "),
    ("strategy.bogus=1", "strategy.bogus: no such setting in strategy (PagedConfig)"),
])
def test_a_bad_override_of_kvbench_run_fails_the_same_way(override, message, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("KVBENCH_DEBUG", "HYDRA_FULL_ERROR")}
    result = subprocess.run([sys.executable, "-m", "kvbench.cli", "run", override], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("kvbench: error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr
