"""Profile tables: step times measured by `kvbench profile`, and their interpolation.

A profile is a CSV with one row per measured step shape and a JSON sidecar (same name, `.json`)
saying what was measured: hardware, model, dtype, device, kernel backend, the command and package
versions. CSV columns:

    layout                 paged | contiguous: how block tables were laid out (see profile_grid.py)
    block_size             tokens per block
    num_decode_seqs        B: decoding sequences in the step
    decode_context_len     C: context tokens per decoding sequence (its new token included); 0 when B = 0
    num_prefill_tokens     N: prefill tokens in the step
    prefill_keys_per_token K: keys a prefill token attends to, on average (itself included); 0 when N = 0
    step_time_s            the measured median

Interpolation (per layout and block size): the rows must cover the product of the measured
values of B, C, N and K (with C irrelevant where B = 0 and K where N = 0). A step's time is
multilinear in (B, C, N, K) inside the grid cell around it and extrapolates linearly beyond the
outer grid points (step time grows linearly in tokens and context at large sizes), never below the
grid's smallest value. The step with no decodes and no prefill is never measured: where
a cell needs it (B = 0, 0 < N < the smallest measured N), the B = 0 slice is extended linearly
from its two smallest N.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from omegaconf import MISSING

from kvbench.hardware import HardwareConfig
from kvbench.model_spec import ModelConfig

if TYPE_CHECKING:  # pandas (a third of a second) is imported where a table is built, not when a run starts
    import pandas as pd

FORMAT_VERSION = 1
AXES = ("num_decode_seqs", "decode_context_len", "num_prefill_tokens", "prefill_keys_per_token")
COLUMNS = ("layout", "block_size", *AXES, "step_time_s")
# Model settings a step's time does not depend on: the context limit (the grid says which contexts
# were measured) and the simulator's KV bytes per element (the profile's own dtype was timed).
MODEL_FIELDS_NOT_TIMED = ("max_model_len", "dtype_bytes")


class ProfileError(ValueError):
    """A profile that is malformed or does not cover the run; the message names the file."""


def grid_points(
    decode_seqs: list[int], decode_contexts: list[int], prefill_tokens: list[int], prefill_keys: list[int]
) -> Iterator[tuple[int, int, int, int]]:
    """Every distinct (B, C, N, K) of the product grid: without decodes the context does not matter,
    without prefill tokens their keys do not, and a step has at least one token."""
    for b in sorted(set(decode_seqs)):
        for c in sorted(set(decode_contexts)) if b else [0]:
            for n in sorted(set(prefill_tokens)):
                for k in sorted(set(prefill_keys)) if n else [0]:
                    if b or n:
                        yield b, c, n, k


def sidecar_path(csv_path: Path) -> Path:
    return Path(csv_path).with_suffix(".json")


def config_fields(config) -> dict:
    """A config dataclass as plain JSON values (enums by value)."""
    return {k: v.value if isinstance(v, Enum) else v for k, v in dataclasses.asdict(config).items()}


def _schema_default(key: str):
    """The ModelConfig default of a field, as config_fields writes it (None for a required field)."""
    field = ModelConfig.__dataclass_fields__.get(key)
    default = None if field is None or field.default in (dataclasses.MISSING, MISSING) else field.default
    return default.value if isinstance(default, Enum) else default


class StepTimeGrid:
    """Step time over (B, C, N, K) for one layout and block size; see the module docstring."""

    def __init__(self, rows: pd.DataFrame, where: str):
        b_axis = np.unique(rows["num_decode_seqs"])
        n_axis = np.unique(rows["num_prefill_tokens"])
        # The context matters only with decodes, the keys only with prefill tokens.
        with_decodes = rows["num_decode_seqs"] > 0
        with_prefill = rows["num_prefill_tokens"] > 0
        c_axis = np.unique(rows.loc[with_decodes, "decode_context_len"]) if with_decodes.any() else np.array([0])
        k_axis = np.unique(rows.loc[with_prefill, "prefill_keys_per_token"]) if with_prefill.any() else np.array([0])
        self.axes = [a.astype(np.float64) for a in (b_axis, c_axis, n_axis, k_axis)]
        measured = {
            tuple(int(x) for x in key): float(t)
            for key, t in zip(rows[list(AXES)].itertuples(index=False), rows["step_time_s"])
        }
        values = np.full([len(a) for a in self.axes], np.nan)
        missing: dict[tuple[int, ...], None] = {}  # measured keys, once each, in grid order
        for index in itertools.product(*(range(len(a)) for a in self.axes)):
            b, c, n, k = (int(self.axes[d][i]) for d, i in enumerate(index))
            if not b and not n:
                continue  # the empty step: derived below
            key = (b, c if b else 0, n, k if n else 0)
            if key in measured:
                values[index] = measured[key]
            else:
                missing[key] = None
        if missing:
            example = dict(zip(AXES, next(iter(missing))))
            raise ProfileError(
                f"{where}: {len(missing)} points of its grid are not measured, e.g. {example}: "
                "a profile must hold the full product of its measured values"
            )
        if b_axis[0] == 0 and n_axis[0] == 0:
            values[0, :, 0, :] = self._empty_step(values[0, :, 1:, :], self.axes[2][1:])
        self.values = values
        self.floor_s = max(0.0, float(np.nanmin(values)))

    @staticmethod
    def _empty_step(no_decode: np.ndarray, n_values: np.ndarray) -> np.ndarray:
        """The B = 0 slice at N = 0, extended linearly from its two smallest N (constant if one)."""
        if len(n_values) < 2:
            return no_decode[:, 0, :]
        slope = (no_decode[:, 1, :] - no_decode[:, 0, :]) / (n_values[1] - n_values[0])
        return no_decode[:, 0, :] - n_values[0] * slope

    def __call__(self, b: float, c: float, n: float, k: float) -> float:
        lows, weights = [], []
        for axis, x in zip(self.axes, (b, c, n, k)):
            if len(axis) == 1:
                lows.append(0)
                weights.append(0.0)
                continue
            i = int(np.clip(np.searchsorted(axis, x, side="right") - 1, 0, len(axis) - 2))
            lows.append(i)
            weights.append((x - axis[i]) / (axis[i + 1] - axis[i]))
        total = 0.0
        for corner in itertools.product((0, 1), repeat=4):
            weight = 1.0
            for up, t in zip(corner, weights):
                weight *= t if up else 1.0 - t
            if weight:
                total += weight * self.values[tuple(lo + up for lo, up in zip(lows, corner))]
        return max(float(total), self.floor_s)

    def covers(self, b: float, c: float, n: float, k: float) -> bool:
        """Whether the point lies inside the measured grid (no extrapolation)."""
        return all(axis[0] <= x <= axis[-1] for axis, x in zip(self.axes, (b, c, n, k)))


class ProfileTable:
    def __init__(self, rows: pd.DataFrame, meta: dict, where: str = "profile"):
        missing = [c for c in COLUMNS if c not in rows.columns]
        if missing:
            raise ProfileError(f"{where}: missing columns {', '.join(missing)} (expected {', '.join(COLUMNS)})")
        self.rows = rows[list(COLUMNS)].copy()
        self.meta = meta
        self.where = where
        self._grids: dict[tuple[str, int], StepTimeGrid] = {}

    @classmethod
    def load(cls, csv_path: str | Path) -> ProfileTable:
        import pandas as pd
        csv_path = Path(csv_path)
        meta_path = sidecar_path(csv_path)
        for path in (csv_path, meta_path):
            if not path.is_file():
                raise ProfileError(f"profile file {path} does not exist (write one with `kvbench profile`)")
        try:
            rows = pd.read_csv(csv_path)
            meta = json.loads(meta_path.read_text())
        except (ValueError, pd.errors.ParserError) as err:
            raise ProfileError(f"cannot read the profile {csv_path}: {err}") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise ProfileError(f"{meta_path}: format_version {meta.get('format_version')}, expected {FORMAT_VERSION}")
        table = cls(rows, meta, str(csv_path))
        table.check_complete()
        return table

    def check_complete(self) -> None:
        """Fail unless every shape of the grid the sidecar says was profiled has its row.

        A profile cut short (an interrupted `kvbench profile`, a truncated copy) may still hold a full
        product of smaller values, which interpolation would silently extrapolate from.
        """
        grid = self.meta.get("grid")
        if not isinstance(grid, dict):
            return  # written by hand: only the product check of each grid applies
        try:
            wanted = {
                (layout, int(block_size), *point)
                for layout in grid["layouts"]
                for block_size in grid["block_sizes"]
                for point in grid_points(grid["decode_seqs"], grid["decode_contexts"], grid["prefill_tokens"],
                                         grid["prefill_keys"])
            }
        except (KeyError, TypeError, ValueError) as err:
            raise ProfileError(f"{sidecar_path(Path(self.where))}: its grid record is malformed ({err})") from None
        have = set(
            (layout, int(bs), int(b), int(c), int(n), int(k))
            for layout, bs, b, c, n, k in self.rows[["layout", "block_size", *AXES]].itertuples(index=False)
        )
        missing = sorted(wanted - have)
        if missing:
            example = dict(zip(("layout", "block_size", *AXES), missing[0]))
            raise ProfileError(
                f"{self.where} lacks {len(missing)} of the {len(wanted)} step shapes its sidecar says were profiled, "
                f"e.g. {example}: the profile was cut short; run kvbench profile again"
            )

    def save(self, csv_path: str | Path) -> None:
        csv_path = Path(csv_path)
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        self.rows.to_csv(csv_path, index=False)
        sidecar_path(csv_path).write_text(json.dumps({"format_version": FORMAT_VERSION, **self.meta}, indent=2) + "\n")

    def check_covers(self, model: ModelConfig, hardware: HardwareConfig, block_size: int) -> None:
        """Fail unless this profile was measured for this model, hardware and block size."""
        profiled_model = self.meta.get("model", {})
        asked = {k: v for k, v in config_fields(model).items() if k not in MODEL_FIELDS_NOT_TIMED}
        # A profile measured before a model field existed was measured at that field's default.
        profiled = {k: profiled_model.get(k, _schema_default(k)) for k in asked}
        differing = sorted(k for k in asked if profiled[k] != asked[k])
        if differing:
            details = ", ".join(f"model.{k}={asked[k]} (profiled: {profiled[k]})" for k in differing)
            raise ProfileError(f"{self.where} was measured for another model: {details}")
        profiled_hardware = self.meta.get("hardware", {}).get("name")
        if profiled_hardware != hardware.name:
            raise ProfileError(
                f"{self.where} was measured on hardware={profiled_hardware}, not hardware={hardware.name}"
            )
        if hardware.tensor_parallel != 1:
            raise ProfileError(
                f"{self.where} holds single-device step times: hardware.tensor_parallel={hardware.tensor_parallel} "
                "is not covered"
            )
        block_sizes = sorted(int(b) for b in self.rows["block_size"].unique())
        if block_size not in block_sizes:
            raise ProfileError(
                f"{self.where} has no block_size={block_size} (profiled: {', '.join(map(str, block_sizes))}): "
                "profile it (kvbench profile --block-sizes ...) or pick a profiled strategy.block_size"
            )

    def grid(self, layout: str, block_size: int) -> StepTimeGrid:
        key = (layout, block_size)
        if key not in self._grids:
            rows = self.rows[(self.rows["layout"] == layout) & (self.rows["block_size"] == block_size)]
            if rows.empty:
                layouts = sorted(self.rows.loc[self.rows["block_size"] == block_size, "layout"].unique())
                raise ProfileError(
                    f"{self.where} has no {layout} layout at block_size={block_size} (profiled: {', '.join(layouts)}): "
                    f"profile it with kvbench profile --layouts {layout}"
                )
            self._grids[key] = StepTimeGrid(rows, f"{self.where} ({layout}, block_size={block_size})")
        return self._grids[key]
