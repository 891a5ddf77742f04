"""docs/models.md's table of presets says what the code computes, and leaves no preset out."""

from importlib import resources
from pathlib import Path

import pytest
from kvbench.compose import compose

import kvbench.config  # noqa: F401
from kvbench.model_spec import ModelSpec
from omegaconf import OmegaConf

DOC = Path(__file__).resolve().parents[2] / "docs" / "models.md"
FORMAT_COLUMNS = {"KV bytes/token": None, "fp8": "fp8_e4m3", "int8": "int8", "int4": "int4", "nvfp4": "nvfp4"}


def preset_rows() -> dict[str, dict[str, str]]:
    """preset -> its cells by column, from the table whose header starts with `| preset |`."""
    lines = DOC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| preset |"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = dict(zip(header, (cell.strip() for cell in line.strip("|").split("|"))))
        rows[cells["preset"].strip("`")] = cells
    return rows


def test_every_preset_has_a_row():
    presets = {entry.name.removesuffix(".yaml") for entry in resources.files("kvbench.conf").joinpath("model").iterdir()
               if entry.name.endswith(".yaml")}
    assert presets - set(preset_rows()) == set(), "add these presets to docs/models.md's table"


@pytest.mark.parametrize("name", sorted(preset_rows()))
def test_each_rows_bytes_per_token_are_the_model_specs(name):
    cells = preset_rows()[name]
    for column, kv_dtype in FORMAT_COLUMNS.items():
        overrides = [f"model={name}", *([f"model.kv_dtype={kv_dtype}"] if kv_dtype else [])]
        model = ModelSpec(OmegaConf.to_object(compose(overrides).model))
        assert int(cells[column].replace(",", "")) == model.kv_bytes_per_token, f"{name}: {column}"
    assert int(cells["layers"]) == model.config.num_layers
