"""Small real runs for the reporting tests, made once per test session.

Sweeps run through the real CLI (`python -m kvbench.cli run -m ...`), so their directories have
exactly what users get: multirun.yaml, .hydra/overrides.yaml, manifest, summary, steps, requests.
Under pytest-xdist every worker would build its own copy; a file lock in the session's shared temp
folder makes the first worker build each one and the others reuse it. Tests must treat these
directories as read-only: copy one (`copy_runs`) before changing anything in it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

REPO = Path(__file__).resolve().parents[2]
# Llama-2-13B on an A100-40GB: a pool small enough that strategies differ; 30 requests run in < 1 s.
SMALL = ("model=llama-2-13b", "hardware=a100-40gb", "workload.num_requests=30")


def kvbench_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kvbench.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def sweep(out: Path, *overrides: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    result = kvbench_cli("run", "-m", *overrides, *SMALL, f"hydra.sweep.dir={out}", cwd=out.parent)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]


def copy_runs(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def build_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """`build(path)` once per test session, shared by all xdist workers."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder, above each worker's own
    target = root / "shared" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target.parent / f"{name}.done").is_file():
            if target.exists():
                shutil.rmtree(target)
            build(target)
            (target.parent / f"{name}.done").touch()
    return target


@pytest.fixture(scope="session")
def rate_sweep(tmp_path_factory) -> Path:
    """2 strategies x 2 rates x 2 seeds on ShareGPT: 8 runs, basic launcher."""
    return build_once(tmp_path_factory, "rate_sweep", lambda out: sweep(
        out, "strategy=orca_max,paged", "workload.rate=2,16", "seed=0,1"))


@pytest.fixture(scope="session")
def sharing_sweep(tmp_path_factory) -> Path:
    """Shared prefixes and parallel sampling (n=2): paged, paged_prefix, paged_cow."""
    return build_once(tmp_path_factory, "sharing_sweep", lambda out: sweep(
        out, "strategy=paged,paged_prefix,paged_cow", "workload=synthetic", "workload.shared_prefix_tokens=256",
        "workload.num_prefix_groups=2", "workload.n=2", "workload.rate=8"))


@pytest.fixture(scope="session")
def block_sweep(tmp_path_factory) -> Path:
    """paged at block sizes 8 and 32, same workload as sharing_sweep: a block-size curve."""
    return build_once(tmp_path_factory, "block_sweep", lambda out: sweep(
        out, "strategy=paged", "strategy.block_size=8,32", "workload=synthetic",
        "workload.shared_prefix_tokens=256", "workload.num_prefix_groups=2", "workload.n=2", "workload.rate=8"))


@pytest.fixture(scope="session")
def report_dir(tmp_path_factory, rate_sweep, sharing_sweep, block_sweep) -> Path:
    """`kvbench report` over the three sweeps (two scenarios: ShareGPT, synthetic)."""
    from kvbench.reporting.report import main

    def build(out: Path) -> None:
        assert main([str(rate_sweep), str(sharing_sweep), str(block_sweep), "--out", str(out)]) == 0

    return build_once(tmp_path_factory, "report", build)


@pytest.fixture(scope="session")
def appendix_dir(tmp_path_factory, rate_sweep) -> Path:
    from kvbench.reporting.appendix import main

    def build(out: Path) -> None:
        assert main([str(rate_sweep), "--out", str(out)]) == 0

    return build_once(tmp_path_factory, "appendix", build)


def compose(*overrides: str):
    """The run config `kvbench run` would compose from these overrides."""
    from kvbench.compose import compose as compose_overrides

    return compose_overrides([*SMALL, *overrides])


@pytest.fixture
def execute_run() -> Callable[..., dict]:
    """Run in-process into a directory: execute_run(run_dir, *overrides) -> summary."""
    from kvbench.runner import execute

    def run(run_dir: Path, *overrides: str) -> dict:
        choices = dict(o.split("=", 1) for o in overrides if "." not in o.split("=", 1)[0] and "=" in o)
        return execute(compose(*overrides), run_dir, choices, progress=False)

    return run


@pytest.fixture
def run_sweep() -> Callable[..., None]:
    """run_sweep(out_dir, *overrides): `kvbench run -m` on the small model and workload."""
    return sweep
