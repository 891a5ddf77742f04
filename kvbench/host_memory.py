"""The KV pool of a device run on the CPU: sized from this machine's memory, not a GPU preset's.

`engine=device engine.device=cpu` allocates the pool in host memory. A GPU preset (the default
A100-40GB) would ask for a 35 GiB pool, which most hosts cannot give, so the pool is derived from
the memory available now instead: HOST_MEMORY_SHARE of it (the rest stays for the weights in the
engine's dtype, activations, tables and everything else running), less the model's weights and
the hardware's activation reserve, as for a GPU. `kv_cache_bytes=` or `num_blocks=` still set the
pool exactly.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from kvbench.hardware import HardwareConfig

HOST_MEMORY_SHARE = 0.5


def host_available_bytes() -> int:
    """Memory the host can give without swapping: MemAvailable on Linux, else free physical pages."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def on_host(hardware: HardwareConfig) -> HardwareConfig:
    """`hardware` with its memory replaced by this host's: what a CPU device run's pool is derived from."""
    return replace(hardware, name=f"this host's memory ({HOST_MEMORY_SHARE:.0%} of what is available)",
                   memory_bytes=host_available_bytes(), gpu_memory_utilization=HOST_MEMORY_SHARE, tensor_parallel=1)


def runs_on_host(cfg) -> bool:
    """True for a device run on the CPU whose pool is left to be derived."""
    engine = cfg.engine
    return (engine.name == "device" and str(engine.get("device", "")).startswith("cpu")
            and cfg.kv_cache_bytes is None and cfg.num_blocks is None)
