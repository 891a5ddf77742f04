"""Loading a workload from its config object, simulating a run, and the shared public traces."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

import kvbench.config  # noqa: F401  (registers the schemas)
from kvbench.compose import compose
from kvbench.workloads import WORKLOADS, WorkloadConfig, WorkloadData

# ../shared/data beside the checkout: public traces that tests may read but the repo never holds.
SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def load_workload(config: WorkloadConfig, seed: int = 0, max_model_len: int = 1 << 30) -> WorkloadData:
    return WORKLOADS.get(config.name)(config, seed, max_model_len).load()


@pytest.fixture
def load() -> Callable[..., WorkloadData]:
    return load_workload


@pytest.fixture
def shared_file() -> Callable[[str], Path]:
    """The path of a file under ../shared/data; skips the test when it is absent."""

    def find(relative: str) -> Path:
        path = SHARED_DATA / relative
        if not path.is_file():
            pytest.skip(f"public trace {relative} not found under {SHARED_DATA.resolve()}")
        return path

    return find


@pytest.fixture
def compose_run() -> Callable[[list[str]], DictConfig]:
    """The composed run config for Hydra overrides (as `kvbench run` would see them)."""

    return compose
