"""kvbench: benchmark and simulate KV-cache memory strategies for LLM serving.

The Python API (see kvbench/api.py): `kvbench.run(overrides)` runs one configuration and returns a
`RunResult`; `kvbench.load_runs(path)` reads finished runs into one tidy DataFrame. Importing kvbench
is light and never touches matplotlib's backend.
"""

from __future__ import annotations

__all__ = ["RunResult", "load_runs", "run"]


def __getattr__(name: str):
    # Imported on first use, so `import kvbench.workloads` (or a strategy) does not load pandas,
    # Hydra and the reporting layer.
    if name in __all__:
        from kvbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'kvbench' has no attribute {name!r}")
