"""Config schemas wait in Hydra's ConfigStore as dataclasses (kvbench.registry.store_schema) and load
as the node `ConfigStore.store` would have made of them at import."""

from __future__ import annotations

import subprocess
import sys

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

import kvbench.config  # noqa: F401  (registers every schema)
from kvbench.registry import SchemaNode


def stored_schemas(folder: dict | None = None, path: tuple[str, ...] = ()):
    for key, entry in (ConfigStore.instance().repo if folder is None else folder).items():
        if isinstance(entry, dict):
            yield from stored_schemas(entry, (*path, key))
        elif isinstance(entry, SchemaNode):
            yield "/".join((*path, key)), entry


def test_every_schema_loads_as_the_node_hydra_would_have_stored():
    found = dict(stored_schemas())  # listing a registry's folder finds all of its plugins
    assert {"run_schema.yaml", "schema/model.yaml", "schema/strategy/paged.yaml", "schema/workload/sharegpt.yaml",
            "schema/engine/sim.yaml"} <= set(found)
    for path, entry in found.items():
        loaded = ConfigStore.instance().load(path)
        eager = OmegaConf.structured(entry.schema)
        assert OmegaConf.to_yaml(loaded.node) == OmegaConf.to_yaml(eager), path
        assert OmegaConf.get_type(loaded.node) is OmegaConf.get_type(eager)
        group, _, name = path.rpartition("/")
        assert (loaded.name, loaded.group, loaded.package, loaded.provider) == (name, group or None, None, None)
        assert loaded.node is not ConfigStore.instance().load(path).node  # each load gets its own copy


COUNT_CONVERSIONS_AT_IMPORT = """
from omegaconf import OmegaConf
converted, structured = [], OmegaConf.structured
OmegaConf.structured = lambda obj, *args, **kwargs: converted.append(obj) or structured(obj, *args, **kwargs)
import kvbench.config
print(sorted(c.__name__ for c in converted if getattr(c, "__module__", "").startswith("kvbench")))
"""


def test_importing_kvbench_converts_no_schema(tmp_path):
    # From a folder of its own, so that the checkout's root does not shadow an installed kvbench.
    result = subprocess.run([sys.executable, "-c", COUNT_CONVERSIONS_AT_IMPORT], cwd=tmp_path, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
