"""Workloads: generators and trace loaders, registered under the name of their YAML in conf/workload/.

Importing this package registers every built-in workload (and its config schema).
"""

from kvbench.workloads import sharegpt, synthetic  # noqa: F401  (registers)
from kvbench.workloads.base import WORKLOADS, Workload, WorkloadConfig, WorkloadData

__all__ = ["WORKLOADS", "Workload", "WorkloadConfig", "WorkloadData"]
