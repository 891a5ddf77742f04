"""Executors, registered under the name of their YAML in conf/engine/."""

from kvbench.executors import device, sim  # noqa: F401  (registers)
from kvbench.executors.base import EXECUTORS, EngineConfig, Executor

__all__ = ["EXECUTORS", "EngineConfig", "Executor"]
