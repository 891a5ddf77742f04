"""Workloads: generators and trace loaders, registered under the name of their YAML in conf/workload/.

The registry finds every workload (each module of this folder, and every installed package's
`kvbench.workloads` entry point) with its config schema, importing modules when a name is first
asked for (kvbench.registry). docs/workloads.md describes each one, its settings and where its data
comes from.
"""

from kvbench.workloads.base import WORKLOADS, Workload, WorkloadConfig, WorkloadData

__all__ = ["WORKLOADS", "Workload", "WorkloadConfig", "WorkloadData"]

WORKLOADS.find_plugins(__name__, __path__, "kvbench.workloads")
