"""Executors, registered under the name of their YAML in conf/engine/ (found, not listed: every
module of this folder, and every installed package's `kvbench.executors` entry point, imported
when a name is first asked for: kvbench.registry)."""

from kvbench.executors.base import EXECUTORS, EngineConfig, Executor

__all__ = ["EXECUTORS", "EngineConfig", "Executor"]

EXECUTORS.find_plugins(__name__, __path__, "kvbench.executors")
