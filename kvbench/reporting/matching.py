"""Pair the runs of a BASE and a NEW set for `kvbench compare`.

- Two run directories are paired directly, whatever their configs (the differences are listed).
- Otherwise runs are matched on what defines the experiment, never on paths or timestamps:
  `config` (the default) matches the resolved config.yaml plus the preset chosen in each group;
  `overrides` matches Hydra's command-line overrides instead, for when a change of defaults or a new
  config key is the thing under test (the config differences of each pair are then listed).
  Runs with the same key on one side (repeats of a measuring engine) pair in order.
- Runs left without a partner are listed; for a BASE run missing under `config` matching, a NEW run
  with the same overrides is named with the config keys that differ, the usual cause.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

from kvbench.reporting.runs import RunRecord, RunSet, config_key, flatten, format_value

MATCH_MODES = ("config", "overrides")


@dataclass
class Pair:
    base: RunRecord
    new: RunRecord
    label: str
    config_changes: list[str] = field(default_factory=list)  # "key: base -> new"


@dataclass
class Matching:
    pairs: list[Pair]
    unmatched_base: list[RunRecord]
    unmatched_new: list[RunRecord]
    hints: dict[str, str]  # base run path -> why it may have found no partner


def match_runs(base: RunSet, new: RunSet, mode: str = "config") -> Matching:
    if mode not in MATCH_MODES:
        raise ValueError(f"--match {mode!r}: choose one of {', '.join(MATCH_MODES)}")
    if _single_run(base) and _single_run(new):
        b, n = base.records[0], new.records[0]
        return Matching([Pair(b, n, b.name, config_changes(b, n))], [], [], {})
    key = config_key if mode == "config" else overrides_key
    new_by_key: dict[str, list[RunRecord]] = defaultdict(list)
    for record in new.records:
        new_by_key[key(record)].append(record)
    labels = run_labels(base.records)
    pairs, unmatched_base = [], []
    for record in base.records:
        partners = new_by_key.get(key(record))
        if partners:
            partner = partners.pop(0)
            changes = config_changes(record, partner) if mode == "overrides" else []
            pairs.append(Pair(record, partner, labels[str(record.path)], changes))
        else:
            unmatched_base.append(record)
    unmatched_new = [r for remaining in new_by_key.values() for r in remaining]
    hints = _hints(unmatched_base, unmatched_new) if mode == "config" else {}
    return Matching(pairs, unmatched_base, unmatched_new, hints)


def overrides_key(record: RunRecord) -> str:
    """The run's Hydra overrides, order-free and without hydra.* settings; the config for non-Hydra runs."""
    if record.overrides is None:
        return config_key(record)
    return json.dumps(sorted(o for o in record.overrides if not o.lstrip("+~").startswith("hydra.")))


def config_changes(base: RunRecord, new: RunRecord) -> list[str]:
    """'key: base -> new' for every config key whose value differs (absent keys shown as <absent>)."""
    b, n = flatten(base.config), flatten(new.config)
    return [
        f"{key}: {b.get(key, '<absent>')} -> {n.get(key, '<absent>')}"
        for key in sorted(set(b) | set(n))
        if b.get(key, "<absent>") != n.get(key, "<absent>")
    ]


def run_labels(records: list[RunRecord]) -> dict[str, str]:
    """Short names that tell runs apart: the strategy preset and the config keys that vary between runs."""
    flat = [flatten(r.config) for r in records]
    keys = sorted({k for f in flat for k in f})
    varying = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1]
    presets = [str(r.summary.get("strategy", "?")) for r in records]
    # A strategy.* key is named only where it varies within one preset (a block-size sweep).
    shown = [
        k for k in varying
        if not k.startswith("strategy.")
        or any(len({f.get(k) for f, p in zip(flat, presets) if p == preset}) > 1 for preset in set(presets))
    ]
    return {
        str(r.path): " ".join([preset] + [f"{k}={format_value(f.get(k))}" for k in shown])
        for r, f, preset in zip(records, flat, presets)
    }


def _single_run(run_set: RunSet) -> bool:
    return len(run_set.inputs) == 1 and len(run_set.records) == 1 and run_set.records[0].path == run_set.inputs[0]


def _hints(unmatched_base: list[RunRecord], unmatched_new: list[RunRecord]) -> dict[str, str]:
    by_overrides = {overrides_key(r): r for r in unmatched_new if r.overrides is not None}
    hints = {}
    for record in unmatched_base:
        partner = by_overrides.get(overrides_key(record)) if record.overrides is not None else None
        if partner is not None:
            changes = config_changes(record, partner)
            differs = "; ".join(changes[:5]) + (" ..." if len(changes) > 5 else "") if changes else "its chosen presets"
            hints[str(record.path)] = (
                f"NEW run {partner.name} has the same overrides but differs in {differs} "
                "(regenerate the baselines, or compare with --match overrides)"
            )
    return hints
