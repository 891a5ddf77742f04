"""What the appendix says about how the runs were made, gathered from their manifests and configs.

Every fact is read from the run directories, never from the machine writing the appendix: the git
commit, Python and package versions, platform, GPU, datasets and seeds the runs themselves
recorded. A fact that differs between runs is listed with how many runs had each value.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from kvbench.provenance import describe
from kvbench.reporting.runs import RunRecord, mapping
from kvbench.reporting.sweeps import sweep_command

VERSION_ORDER = ("python", "kvbench", "torch", "triton", "numpy", "pandas", "matplotlib", "hydra-core", "omegaconf")


def distinct(values: list[str]) -> str:
    """'v' when all runs agree, else 'v1 (3 runs); v2 (1 run)'."""
    counts = Counter(values)
    if len(counts) == 1:
        return next(iter(counts))
    return "; ".join(f"{value} ({n} run{'s' if n > 1 else ''})" for value, n in counts.most_common())


def environment_rows(records: list[RunRecord]) -> list[tuple[str, str]]:
    manifests = [r.manifest for r in records]
    rows = [
        ("kvbench commit", distinct([_kvbench_commit(m) for m in manifests])),
        ("working repository (where kvbench ran)", distinct([_working_repository(m) for m in manifests])),
    ]
    versions = [mapping(m.get("versions")) for m in manifests]
    names = list(VERSION_ORDER) + sorted({k for v in versions for k in v} - set(VERSION_ORDER))
    for name in names:
        if any(name in v for v in versions):
            rows.append((name, distinct([str(v.get(name) or "not installed") for v in versions])))
    rows.append(("platform", distinct([str(m.get("platform", "not recorded")) for m in manifests])))
    rows.append(("engine", distinct([str(r.summary.get("engine")) for r in records])))
    rows.append(("GPU", distinct([_gpu(r) for r in records])))
    rows.append(("hardware model", distinct([_hardware(r) for r in records])))
    return rows


def dataset_rows(records: list[RunRecord]) -> list[tuple[str, str, str, str]]:
    """(name, source, tokenizer, sha256) of every distinct dataset the runs read."""
    seen = {}
    for record in records:
        dataset = mapping(record.manifest.get("dataset"))
        key = tuple(str(dataset.get(k, "")) for k in ("name", "source", "tokenizer", "sha256"))
        if any(key):
            seen.setdefault(key, None)
        else:
            generated = (f"{record.summary.get('workload')} (generated)", "kvbench workload generator", "", "")
            seen.setdefault(generated, None)
    return list(seen)


def seed_rows(records: list[RunRecord]) -> list[tuple[str, str]]:
    """The seeds used and how many seeds each configuration (the config less its seed) ran with."""
    seeds = sorted({r.config.get("seed") for r in records}, key=str)
    per_config: dict[str, set] = {}
    for record in records:
        config = {k: v for k, v in record.config.items() if k != "seed"}
        per_config.setdefault(json.dumps(config, sort_keys=True), set()).add(record.config.get("seed"))
    repeats = Counter(len(s) for s in per_config.values())
    return [
        ("seeds", ", ".join(map(str, seeds))),
        ("configurations", str(len(per_config))),
        ("seeds per configuration", "; ".join(f"{k} ({n} configuration{'s' if n > 1 else ''})"
                                              for k, n in sorted(repeats.items()))),
        ("runs", str(len(records))),
    ]


def sweep_commands(records: list[RunRecord]) -> list[tuple[Path, str]]:
    """(sweep directory, the `kvbench run -m ...` that made it) for every sweep the runs came from."""
    sweeps = dict.fromkeys(r.sweep_dir for r in records if r.sweep_dir is not None)
    return [(sweep, command) for sweep in sweeps if (command := sweep_command(sweep))]


def _kvbench_commit(manifest: dict) -> str:
    source = mapping(manifest.get("kvbench"))
    if source:
        return describe(source.get("commit"), source.get("dirty"))
    # Manifests of kvbench before 0.1.0's provenance fix recorded the repository the venv sat in.
    git = mapping(manifest.get("git"))
    if git.get("sha"):
        return f"not recorded (an older manifest names {describe(git['sha'], git.get('dirty'))}, the repository it ran in)"
    return "unknown"


def _working_repository(manifest: dict) -> str:
    repo = mapping(manifest.get("working_repository"))
    if not repo:
        return "none (not run inside a git repository other than kvbench's)"
    return f"{repo.get('name', '?')} at {describe(repo.get('commit'), repo.get('dirty'))}"


def _gpu(record: RunRecord) -> str:
    gpu = mapping(record.manifest.get("gpu"))
    if gpu.get("name"):
        details = ", ".join(f"{k} {gpu[k]}" for k in ("driver", "cuda") if gpu.get(k))
        return f"{gpu['name']}" + (f" ({details})" if details else "")
    if record.summary.get("device"):
        return str(record.summary["device"])
    if record.summary.get("engine") == "sim":
        return "none (simulator: step times from the cost model)"
    return "not recorded"


def _hardware(record: RunRecord) -> str:
    tensor_parallel = record.summary.get("tensor_parallel", 1)
    name = str(record.summary.get("hardware"))
    return name if tensor_parallel in (1, None) else f"{name} x{tensor_parallel}"
