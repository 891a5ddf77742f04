"""`kvbench list` shows registry ∪ presets: every preset names a registered class, and every
registered name (a plugin's included) is listed, with or without a preset."""

from __future__ import annotations

import pytest

from kvbench.commands.listing import choices, list_groups, presets, registries


@pytest.mark.parametrize("group", ["strategy", "workload", "engine"])
def test_every_preset_names_a_registered_class(group):
    registry = registries()[group]
    for preset, (_, body) in presets(group).items():
        assert body.get("name") in registry.names(), f"conf/{group}/{preset}.yaml: name {body.get('name')!r}"


@pytest.mark.parametrize("group", ["strategy", "workload", "engine"])
def test_every_registered_name_is_listed(group):
    listed = list_groups([group])
    for name in registries()[group].names():
        assert f"\n  {name} " in listed, f"{group} {name} missing from kvbench list"


def test_a_registered_name_without_a_preset_is_listed_from_its_docstring(monkeypatch):
    from kvbench.strategies import STRATEGIES
    from kvbench.strategies.paged import PagedStrategy

    class Unlisted(PagedStrategy):
        """Paged, under another name, with no YAML."""

    monkeypatch.setitem(STRATEGIES._classes, "unlisted", Unlisted)
    description, body = choices("strategy")["unlisted"]
    assert body == {} and description.startswith("Paged, under another name, with no YAML.")
