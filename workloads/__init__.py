"""Workloads: generators and trace loaders, registered under the name of their YAML in conf/workload/.

Importing this package registers every workload it finds (each module of this folder, and every
installed package's `kvbench.workloads` entry point) with its config schema. docs/workloads.md
describes each one, its settings and where its data comes from.
"""

from kvbench.workloads.base import WORKLOADS, Workload, WorkloadConfig, WorkloadData

__all__ = ["WORKLOADS", "Workload", "WorkloadConfig", "WorkloadData"]

from kvbench.registry import discover  # noqa: E402  (after the names a plugin imports from here)

discover(__name__, __path__, "kvbench.workloads")
