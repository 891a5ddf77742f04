"""Split a table of runs into scenarios (what a chart holds fixed) and series (one line or bar each).

- A **scenario** is everything but the strategy, the request rate and the seed: the workload, model,
  hardware, engine and scheduler presets, plus any other config key that varies between runs of
  the same presets (say `workload.num_requests`). Each scenario gets its own charts.
- A **series** is one strategy preset; when a strategy setting varies within a preset (a block-size
  sweep), each value is its own series, labelled `paged (block_size=8)`, in a shade of the preset's
  colour.
- The **rate** is `workload.rate` for Poisson or gamma arrivals and NaN otherwise (offline runs).
- Runs that differ only in their seed are repeats of one point, averaged with a confidence interval.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from kvbench.reporting.runs import CONFIG_PREFIX, format_value
from kvbench.reporting.styles import STRATEGY_COLORS, display_name, variant_color

PRESET_COLUMNS = ("workload", "model", "hardware", "tensor_parallel", "engine", "scheduler")
STRATEGY_PREFIX = f"{CONFIG_PREFIX}strategy."
RATE_KEY = f"{CONFIG_PREFIX}workload.rate"
SEED_KEYS = (f"{CONFIG_PREFIX}seed", f"{CONFIG_PREFIX}workload.seed")
RATED_ARRIVALS = ("poisson", "gamma")


@dataclass
class Scenario:
    label: str  # "sharegpt · llama-2-13b · a100-40gb · sim"
    slug: str  # the label as a file name
    table: pd.DataFrame  # its runs, with the columns `rate`, `preset`, `series`, `label`, `color`, `series_order`

    def series(self) -> pd.DataFrame:
        """series, preset, color, label: one row per series in drawing order."""
        columns = ["series", "preset", "color", "label", "series_order"]
        return self.table[columns].drop_duplicates("series").sort_values("series_order")[columns[:4]]

    def labels(self) -> dict[str, str]:
        """series -> its display label ("vLLM (paged)", "vLLM (paged), block_size=8")."""
        return dict(zip(self.table["series"], self.table["label"]))

    def rates(self) -> list[float]:
        return sorted(r for r in self.table["rate"].unique() if not math.isnan(r))

    def title(self, what: str) -> str:
        return f"{what}\n{self.label}"


def scenarios(table: pd.DataFrame) -> list[Scenario]:
    """The scenarios of a table of complete runs (see `runs.RunSet.table`), in order of first run."""
    if table.empty:
        return []
    table = table.assign(rate=_rates(table))
    free_keys = _free_keys(table)
    out = []
    for _, group in table.groupby(list(PRESET_COLUMNS) + free_keys, sort=False, dropna=False):
        label = scenario_label(group.iloc[0], free_keys)
        runs = _with_series(group).sort_values(["series_order", "rate", SEED_KEYS[0]], kind="stable")
        out.append(Scenario(label, slug(label), runs.reset_index(drop=True)))
    return out


def slug(text: str) -> str:
    """`text` as a file name safe in LaTeX paths too: runs of anything but letters, digits and `-` become `_`."""
    return re.sub(r"[^A-Za-z0-9-]+", "_", text).strip("_")


def scenario_label(run: pd.Series, free_keys: list[str]) -> str:
    hardware = run["hardware"] if run["tensor_parallel"] == 1 else f"{run['hardware']} x{run['tensor_parallel']}"
    engine = run["engine"]
    device = run.get("device")
    if engine != "sim" and isinstance(device, str) and device:
        engine = f"{engine} on {device}"  # the real device a measuring run used, not the hardware preset
    parts = [run["workload"], run["model"], hardware, engine]
    if run["scheduler"] not in (None, "default") and isinstance(run["scheduler"], str):
        parts.append(f"scheduler {run['scheduler']}")
    kv_dtype = run.get("kv_dtype")  # summary field; runs from before KV formats lack it
    if isinstance(kv_dtype, str) and kv_dtype != "auto" and f"{CONFIG_PREFIX}model.kv_dtype" not in free_keys:
        parts.append(f"KV {kv_dtype}")
    label = " · ".join(str(p) for p in parts)
    extra = ", ".join(f"{key.removeprefix(CONFIG_PREFIX)}={format_value(run[key])}" for key in free_keys)
    return f"{label} ({extra})" if extra else label


def format_rate(rate: float) -> str:
    return "offline" if math.isnan(rate) else f"{rate:g} req/s"


def _rates(table: pd.DataFrame) -> pd.Series:
    arrival = table.get(f"{CONFIG_PREFIX}workload.arrival", pd.Series("poisson", index=table.index))
    rate = pd.to_numeric(table.get(RATE_KEY, pd.Series(math.nan, index=table.index)), errors="coerce")
    return rate.where(arrival.isin(RATED_ARRIVALS)).astype(float)


def _free_keys(table: pd.DataFrame) -> list[str]:
    """Config keys that vary between runs of the same presets, other than strategy, rate and seed."""
    candidates = [
        c for c in table.columns
        if c.startswith(CONFIG_PREFIX) and not c.startswith(STRATEGY_PREFIX) and c != RATE_KEY and c not in SEED_KEYS
    ]
    grouped = table.groupby(list(PRESET_COLUMNS), sort=False, dropna=False)
    return [c for c in candidates if (grouped[c].nunique(dropna=False) > 1).any()]


def _preset_rank(preset: str) -> tuple[int, str]:
    builtin = list(STRATEGY_COLORS)
    return (builtin.index(preset), "") if preset in builtin else (len(builtin), preset)


def _with_series(group: pd.DataFrame) -> pd.DataFrame:
    group = group.assign(preset=group["strategy"], series="", label="", color="", series_order=0)
    strategy_keys = [c for c in group.columns if c.startswith(STRATEGY_PREFIX) and c != f"{STRATEGY_PREFIX}name"]
    ranked = sorted(group["preset"].unique(), key=_preset_rank)
    order = 0
    for preset in ranked:
        rows = group["preset"] == preset
        varying = [k for k in strategy_keys if group.loc[rows, k].nunique(dropna=False) > 1]
        variants = [()]
        if varying:
            variants = list(group.loc[rows, varying].drop_duplicates().sort_values(varying).itertuples(index=False))
        for index, values in enumerate(variants):
            match = rows.copy()
            for key, value in zip(varying, values):
                match &= group[key] == value
            suffix = ", ".join(f"{k.removeprefix(STRATEGY_PREFIX)}={format_value(v)}" for k, v in zip(varying, values))
            group.loc[match, "series"] = f"{preset} ({suffix})" if suffix else preset
            group.loc[match, "label"] = f"{display_name(preset)}, {suffix}" if suffix else display_name(preset)
            group.loc[match, "color"] = variant_color(preset, index, len(variants))
            group.loc[match, "series_order"] = order
            order += 1
    return group
