"""Profile tables: the interpolation, the coverage checks, the file format."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from kvbench.cost_model import ProfileCostModel, StepWork
from kvbench.device.profile_grid import grid_shapes
from kvbench.hardware import HardwareConfig
from kvbench.model_spec import ModelConfig
from kvbench.profile_table import ProfileError, ProfileTable, config_fields

MODEL = ModelConfig(
    name="t", num_layers=2, hidden_size=32, num_heads=4, num_kv_heads=2, head_dim=8,
    intermediate_size=48, vocab_size=97, max_model_len=64,
)
HARDWARE = HardwareConfig(name="gpu-x", memory_bytes=1 << 34, mem_bandwidth_bytes_per_s=1e12, peak_flops=1e14)
AXES = {"decode_seqs": [0, 1, 8], "decode_contexts": [16, 64], "prefill_tokens": [0, 32, 128], "prefill_keys": [8, 32]}


def step_time_s(b: float, c: float, n: float, k: float) -> float:
    """Multilinear in each variable, so the table's interpolation must reproduce it exactly."""
    return 1e-3 + 2e-5 * b + 1e-8 * b * c + 3e-6 * n + 1e-9 * n * k


def table(layouts=("paged",), block_sizes=(16,), drop: int | None = None) -> ProfileTable:
    rows = [
        {"layout": layout, "block_size": bs, **vars(shape), "step_time_s": step_time_s(*vars(shape).values())}
        for layout in layouts
        for bs in block_sizes
        for shape in grid_shapes(*AXES.values())
    ]
    if drop is not None:
        del rows[drop]
    meta = {"model": config_fields(MODEL), "hardware": config_fields(HARDWARE), "dtype": "bfloat16"}
    return ProfileTable(pd.DataFrame(rows), meta, "test.csv")


@pytest.mark.parametrize(
    "point",
    [
        (1, 16, 0, 8),  # a node
        (8, 64, 128, 32),  # the far corner
        (3, 40, 0, 8),  # decode only, inside a cell
        (0, 16, 77, 20),  # prefill only, inside a cell
        (0, 16, 5, 8),  # prefill only, below the smallest measured prefill: the derived empty step
        (5, 30, 90, 11),  # mixed
        (100, 1000, 4000, 300),  # beyond the grid: linear extrapolation
    ],
)
def test_interpolation_reproduces_a_multilinear_step_time(point):
    grid = table().grid("paged", 16)
    assert grid(*point) == pytest.approx(step_time_s(*point), rel=1e-9)
    assert grid.covers(*point) == (point[0] <= 8 and point[1] <= 64 and point[2] <= 128 and point[3] <= 32)


def test_extrapolation_never_falls_below_the_grids_smallest_time():
    rows = table().rows
    rows.loc[rows["num_prefill_tokens"] == 128, "step_time_s"] = 5e-4  # falling with N
    grid = ProfileTable(rows, table().meta).grid("paged", 16)
    assert grid(0, 16, 100_000, 8) == 5e-4
    assert grid(8, 64, 0, 8) == pytest.approx(step_time_s(8, 64, 0, 8))


def test_a_hole_in_the_grid_is_an_error():
    with pytest.raises(ProfileError, match="1 points of its grid are not measured, e.g. {'num_decode_seqs': 0"):
        table(drop=0).grid("paged", 16)


def test_the_cost_model_places_a_step_in_the_grid():
    cost = ProfileCostModel(table(), block_size=16)
    work = StepWork(
        num_prefill_tokens=40, prefill_attention_pairs=40 * 12, prefill_context_tokens=60,
        num_decode_seqs=4, decode_context_tokens=4 * 50, num_sampled_tokens=6,
    )
    assert cost.step_time_s(work, "paged") == pytest.approx(step_time_s(4, 50, 40, 12))
    assert cost.num_steps_outside_grid == 0
    decode_only = StepWork(0, 0, 0, num_decode_seqs=2, decode_context_tokens=400, num_sampled_tokens=2)
    assert cost.step_time_s(decode_only, "paged") == pytest.approx(step_time_s(2, 200, 0, 0))
    assert cost.num_steps_outside_grid == 1  # a context of 200 is past the measured 64
    with pytest.raises(ProfileError, match="no contiguous layout at block_size=16"):
        cost.step_time_s(decode_only, "contiguous")


def test_coverage_of_model_hardware_and_block_size():
    profile = table(block_sizes=(16, 32))
    profile.check_covers(MODEL, HARDWARE, 32)
    # The context limit and the simulator's KV bytes do not change a step's time.
    profile.check_covers(ModelConfig(**{**vars(MODEL), "max_model_len": 32, "dtype_bytes": 1}), HARDWARE, 16)
    with pytest.raises(ProfileError, match=r"another model: model.num_layers=4 \(profiled: 2\)"):
        profile.check_covers(ModelConfig(**{**vars(MODEL), "num_layers": 4}), HARDWARE, 16)
    with pytest.raises(ProfileError, match="measured on hardware=gpu-x, not hardware=other"):
        profile.check_covers(MODEL, HardwareConfig(**{**vars(HARDWARE), "name": "other"}), 16)
    with pytest.raises(ProfileError, match="tensor_parallel=2 is not covered"):
        profile.check_covers(MODEL, HardwareConfig(**{**vars(HARDWARE), "tensor_parallel": 2}), 16)
    with pytest.raises(ProfileError, match=r"no block_size=64 \(profiled: 16, 32\)"):
        profile.check_covers(MODEL, HARDWARE, 64)


def test_save_and_load(tmp_path):
    path = tmp_path / "p" / "profile.csv"
    table().save(path)
    assert json.loads(path.with_suffix(".json").read_text())["format_version"] == 1
    loaded = ProfileTable.load(path)
    assert loaded.grid("paged", 16)(5, 30, 90, 11) == pytest.approx(step_time_s(5, 30, 90, 11))
    path.with_suffix(".json").unlink()
    with pytest.raises(ProfileError, match="profile.json does not exist"):
        ProfileTable.load(path)
    with pytest.raises(ProfileError, match="missing columns step_time_s"):
        ProfileTable(table().rows.drop(columns="step_time_s"), {})


def test_a_profile_cut_short_is_refused(tmp_path):
    """Truncated to the rows of B <= 1 it still holds a full product of smaller values; the sidecar's
    grid says what was profiled, so the missing shapes are found instead of extrapolated over."""
    full = table()
    full.meta["grid"] = {**AXES, "block_sizes": [16], "layouts": ["paged"]}
    path = tmp_path / "profile.csv"
    full.save(path)
    assert ProfileTable.load(path).grid("paged", 16)(8, 64, 128, 32) == pytest.approx(step_time_s(8, 64, 128, 32))
    rows = path.read_text().splitlines()
    kept = [rows[0], *(line for line in rows[1:] if int(line.split(",")[2]) <= 1)]  # B is the third column
    path.write_text("\n".join(kept) + "\n")
    cut = pd.read_csv(path)
    ProfileTable(cut, {}, "cut.csv").grid("paged", 16)  # a complete product on its own
    with pytest.raises(ProfileError, match=r"lacks 10 of the 24 step shapes .*'num_decode_seqs': 8.*cut short"):
        ProfileTable.load(path)
