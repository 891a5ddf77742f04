"""Pooled comparison over seeds: is a metric's change outside the noise between seeds?

Where a configuration ran with several seeds on both sides, `kvbench compare` pools them: per
configuration (the resolved config less its seed) and metric, the mean of each side with its 95%
bootstrap interval, and the change of the mean with its own interval (`stats.difference_ci`). A
change whose interval excludes zero is **outside noise**: the seeds alone do not explain it. This
is reported beside the per-run gate, which it does not replace (a deterministic simulator has no
noise between equal seeds, and the gate's tolerances are what CI enforces).
"""

from __future__ import annotations

import json
import re

import pandas as pd

from kvbench.reporting.deltas import MetricSpec, as_number
from kvbench.reporting.matching import Pair
from kvbench.reporting.runs import mapping
from kvbench.reporting.stats import difference_ci, mean_ci, outside_noise

COLUMNS = ("configuration", "metric", "num_seeds", "base", "base_low", "base_high", "new", "new_low", "new_high",
           "change", "change_low", "change_high", "relative_change", "outside_noise")
SEED_LABEL = re.compile(r"\s*\bseed=\S+")


def _configuration_key(pair: Pair) -> str:
    config = {k: v for k, v in pair.base.config.items() if k != "seed"}
    choices = {k: v for k, v in mapping(pair.base.manifest.get("choices")).items() if v is not None}
    return json.dumps({"config": config, "choices": choices}, sort_keys=True, default=str)


def pooled_changes(pairs: list[Pair], specs: list[MetricSpec]) -> pd.DataFrame:
    """One row per configuration with two or more seeds, and metric; empty when no configuration has."""
    groups: dict[str, list[Pair]] = {}
    for pair in pairs:
        groups.setdefault(_configuration_key(pair), []).append(pair)
    rows = []
    for group in groups.values():
        if len(group) < 2:
            continue
        label = SEED_LABEL.sub("", group[0].label).strip() or group[0].label
        for spec in specs:
            base = [as_number(p.base.summary.get(spec.name)) for p in group]
            new = [as_number(p.new.summary.get(spec.name)) for p in group]
            b, n = mean_ci(base), mean_ci(new)
            change, low, high = difference_ci(base, new)
            relative = change / abs(b.mean) if b.mean else float("nan")
            rows.append((label, spec.name, len(group), b.mean, b.low, b.high, n.mean, n.low, n.high, change, low, high,
                         relative, outside_noise(low, high)))
    return pd.DataFrame(rows, columns=COLUMNS)


def noise_lines(pooled: pd.DataFrame) -> list[str]:
    """The metrics whose change is outside the noise between seeds, one line each."""
    lines = []
    for r in pooled[pooled["outside_noise"] == True].itertuples():  # noqa: E712  (None: no interval)
        lines.append(f"OUTSIDE NOISE {r.configuration} ({r.num_seeds} seeds): {r.metric} {r.base:.4g} "
                     f"[{r.base_low:.4g}, {r.base_high:.4g}] -> {r.new:.4g} [{r.new_low:.4g}, {r.new_high:.4g}]; "
                     f"change {r.change:+.4g} [{r.change_low:+.4g}, {r.change_high:+.4g}]")
    return lines
