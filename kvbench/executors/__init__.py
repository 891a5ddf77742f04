"""Executors, registered under the name of their YAML in conf/engine/ (found, not listed: every
module of this folder, and every installed package's `kvbench.executors` entry point)."""

from kvbench.executors.base import EXECUTORS, EngineConfig, Executor

__all__ = ["EXECUTORS", "EngineConfig", "Executor"]

from kvbench.registry import discover  # noqa: E402  (after the names a plugin imports from here)

discover(__name__, __path__, "kvbench.executors")
