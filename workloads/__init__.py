"""Workloads: generators and trace loaders, registered under the name of their YAML in conf/workload/.

Importing this package registers every built-in workload (and its config schema). docs/workloads.md
describes each one, its settings and where its data comes from.
"""

from kvbench.workloads import (  # noqa: F401  (registers)
    alpaca,
    azure,
    burstgpt,
    custom,
    length_table,
    mooncake,
    shared_prefix_gen,
    sharegpt,
    sharegpt_multiturn,
    synthetic,
)
from kvbench.workloads.base import WORKLOADS, Workload, WorkloadConfig, WorkloadData

__all__ = ["WORKLOADS", "Workload", "WorkloadConfig", "WorkloadData"]
