"""The run directory: what a run leaves behind, written so that only a finished run looks finished.

    config.yaml     the resolved config
    manifest.json   status (running | complete | failed | interrupted), versions, kvbench's own commit and the
                    user's working repository (kvbench/provenance.py), seed, dataset
    steps.csv       one row per step
    requests.csv    one row per finished request
    summary.json    headline figures: written last, atomically, and only when the run completed

Readers (report, compare) treat a directory without summary.json, or whose manifest does not say
`complete`, as unfinished.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from kvbench.provenance import kvbench_source, working_repository

SUMMARY = "summary.json"
MANIFEST = "manifest.json"
STEPS = "steps.csv"
REQUESTS = "requests.csv"
CONFIG = "config.yaml"
PACKAGES = ("kvbench", "torch", "triton", "numpy", "pandas", "matplotlib", "hydra-core", "omegaconf", "tqdm")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def gpu_record() -> dict[str, str | None] | None:
    """The GPU and its driver, when there is one (CUDA)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    try:
        driver = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True,
            timeout=10, check=True,
        ).stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        driver = None
    return {"name": torch.cuda.get_device_name(), "driver": driver, "cuda": torch.version.cuda}


def _json_ready(value):
    """NaN is not JSON: write null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    return value


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_json_ready(data), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


class RunDirectory:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._manifest: dict = {}
        self._started = time.perf_counter()

    def start(self, cfg: DictConfig, extra: dict) -> None:
        """Record what is about to run. Any old summary in this directory is removed first."""
        (self.path / SUMMARY).unlink(missing_ok=True)
        (self.path / CONFIG).write_text(OmegaConf.to_yaml(cfg, resolve=True))
        self._manifest = {
            "status": "running",
            "command": " ".join(sys.argv),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seed": cfg.seed,
            "kvbench": kvbench_source(),
            "working_repository": working_repository(),
            "versions": package_versions(),
            "platform": platform.platform(),
            "gpu": gpu_record(),
            **extra,
        }
        write_json_atomic(self.path / MANIFEST, self._manifest)

    def update_manifest(self, **fields) -> None:
        self._manifest.update(fields)
        write_json_atomic(self.path / MANIFEST, self._manifest)

    def complete(self, steps: pd.DataFrame, requests: pd.DataFrame, summary: dict) -> None:
        steps.to_csv(self.path / STEPS, index=False)
        requests.to_csv(self.path / REQUESTS, index=False)
        write_json_atomic(self.path / SUMMARY, summary)
        self._finish("complete")

    def fail(self, status: str, error: str) -> None:
        self._finish(status, error=error)

    def _finish(self, status: str, **fields) -> None:
        self.update_manifest(
            status=status,
            finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            wall_time_s=round(time.perf_counter() - self._started, 3),
            **fields,
        )


def is_complete(run_dir: Path) -> bool:
    manifest = Path(run_dir) / MANIFEST
    if not (Path(run_dir) / SUMMARY).is_file() or not manifest.is_file():
        return False
    return json.loads(manifest.read_text()).get("status") == "complete"
