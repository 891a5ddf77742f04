"""Name → class registries with Hydra schemas, and the discovery that fills them.

A registry name equals its YAML preset's `name`. Nothing is registered by a hand-kept import line:
a plugin package (strategies/, workloads/, executors/) names where its registry's classes come
from (`Registry.find_plugins`): every module of the package and every installed package's entry
point in the matching group (`kvbench.strategies`, ...); each module registers what it defines.
They are imported when a name is first asked for, not when the package is: the module of the same
name first (`strategy=paged` imports strategies/paged.py and what it needs), all of them (entry
points too) when that does not register the name or when every name is asked for (`names()`,
`kvbench list`, an unknown name's list of valid ones). A run imports what it uses (about 30 of 60
plugin modules for a paged ShareGPT run, 0.04 s).

Hydra asks the ConfigStore for the schemas its defaults name (`schema/strategy/paged`); the
registry's folders in the store (`PluginFolder`) find the plugin on that first look-up too. Schemas
go into the store unconverted (`store_schema`): turning a dataclass into an OmegaConf node costs
about 2 ms, and a composition loads only the few its defaults name, so each is converted when a
composition first loads it.
"""

from __future__ import annotations

import copy
import functools
import importlib
import pkgutil
import sys
import warnings
from collections.abc import Callable, Iterable
from importlib import resources
from importlib.metadata import EntryPoints, entry_points
from typing import Generic, TypeVar

from hydra.core.config_store import ConfigNode, ConfigStore
from omegaconf import DictConfig, OmegaConf

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name that is not registered; the message lists the valid ones."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Generic[T]):
    """Classes of one kind (strategies, workloads...), each with a dataclass config schema.

    The schema is stored in Hydra's ConfigStore as `schema/<group>/<name>`, and every YAML file of
    the group extends it (`defaults: [/schema/<group>/<name>@_here_, _self_]`), so an unknown key or
    a value of the wrong type fails when the config is composed, before anything runs. Where no
    YAML preset of that name ships in kvbench/conf, the schema is also stored as `<group>/<name>`,
    so `<group>=<name>` composes from the dataclass alone (a plugin needs no YAML).
    """

    def __init__(self, group: str):
        self.group = group
        self._classes: dict[str, type[T]] = {}
        self._schemas: dict[str, type] = {}
        self._undiscovered: list[tuple[str, list[str], str]] = []  # (package, its path, entry point group)

    def find_plugins(self, package: str, package_path: Iterable[str], entry_point_group: str) -> None:
        """Where the classes come from (see the module's docstring); nothing is imported yet."""
        self._undiscovered.append((package, list(package_path), entry_point_group))
        repo = ConfigStore.instance().repo
        for folder_path in (f"schema/{self.group}", self.group):
            *parents, last = folder_path.split("/")
            parent = repo
            for part in parents:
                parent = parent.setdefault(part, {})
            if not isinstance(parent.get(last), PluginFolder):
                parent[last] = PluginFolder(self, folder_path == self.group, parent.get(last, {}))

    def find(self, name: str) -> None:
        """Import what registers `name`: its module of the same name, else everything not yet imported."""
        if name in self._classes:
            return
        for package, _, _ in self._undiscovered:
            if name.isidentifier():
                try:
                    importlib.import_module(f"{package}.{name}")
                except ModuleNotFoundError as err:
                    if err.name != f"{package}.{name}":
                        raise
        if name not in self._classes:
            self.discover_all()

    def discover_all(self) -> None:
        """Import every plugin module and entry point not imported yet."""
        while self._undiscovered:
            discover(*self._undiscovered.pop(0))

    def register(self, name: str, schema: type) -> Callable[[type[T]], type[T]]:
        def decorator(cls: type[T]) -> type[T]:
            if name in self._classes:
                raise ValueError(f"{self.group} {name!r} is registered twice")
            self._classes[name] = cls
            self._schemas[name] = schema
            store_schema(f"schema/{self.group}", name, schema)
            if not has_preset(self.group, name):
                store_schema(self.group, name, schema)
            return cls

        return decorator

    def get(self, name: str) -> type[T]:
        self.find(name)
        try:
            return self._classes[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.group} {name!r}; valid: {', '.join(sorted(self._classes))}"
            ) from None

    def schema(self, name: str) -> type:
        self.get(name)
        return self._schemas[name]

    def names(self) -> list[str]:
        self.discover_all()
        return sorted(self._classes)


class PluginFolder(dict):
    """A registry's folder in Hydra's ConfigStore (`schema/strategy`, or `strategy` for plugins
    without a YAML preset) that finds a name's plugin the first time Hydra looks the name up, and
    every plugin when Hydra lists the folder (a group's valid options).

    Hydra deep-copies the store for each composition; a copy looks a name up in the registry the
    same way and takes what that registered from the store's own folder.
    """

    def __init__(self, registry: Registry, presets_shadow: bool, entries: dict, original: PluginFolder | None = None):
        super().__init__(entries)
        self.registry = registry
        self.presets_shadow = presets_shadow  # `strategy/<name>`: a YAML preset of the name answers first
        self.original = self if original is None else original

    def _find(self, key: str) -> None:
        if dict.__contains__(self, key) or not key.endswith(".yaml"):
            return
        name = key.removesuffix(".yaml")
        if self.presets_shadow and has_preset(self.registry.group, name):
            return
        self.registry.find(name)
        if self.original is not self and dict.__contains__(self.original, key):
            dict.__setitem__(self, key, dict.__getitem__(self.original, key))

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self._find(key)
        return dict.__contains__(self, key)

    def __getitem__(self, key: str):
        self._find(key)
        return dict.__getitem__(self, key)

    def get(self, key: str, default=None):
        return self[key] if key in self else default

    def keys(self):
        self.registry.discover_all()
        for key, entry in dict.items(self.original):
            dict.setdefault(self, key, entry)
        return dict.keys(self)

    def __iter__(self):
        return iter(self.keys())

    def items(self):
        self.keys()
        return dict.items(self)

    def values(self):
        self.keys()
        return dict.values(self)

    def __deepcopy__(self, memo: dict) -> PluginFolder:
        entries = {key: copy.deepcopy(entry, memo) for key, entry in dict.items(self)}
        return PluginFolder(self.registry, self.presets_shadow, entries, self.original)


class SchemaNode(ConfigNode):
    """A ConfigStore entry holding a dataclass, converted to its OmegaConf node on first load.

    Hydra reads an entry's `node` only when a composition loads it (`ConfigStore.load`, which then
    deep-copies it), and deep-copies the whole store once per composition, which for an unconverted
    entry copies a class reference. The node is what `ConfigStore.store(node=schema)` would hold.
    """

    def __init__(self, name: str, schema: type, group: str | None):
        self.schema = schema
        super().__init__(name=name, node=None, group=group, package=None, provider=None)

    @property
    def node(self) -> DictConfig:
        if self._node is None:
            self._node = OmegaConf.structured(self.schema)
        return self._node

    @node.setter
    def node(self, value: DictConfig | None) -> None:
        self._node = value


def store_schema(group: str | None, name: str, schema: type) -> None:
    """`ConfigStore.instance().store(group=group, name=name, node=schema)`, converted when first loaded."""
    folder = ConfigStore.instance().repo
    for part in group.split("/") if group else ():
        folder = folder.setdefault(part, {})
    folder[f"{name}.yaml"] = SchemaNode(f"{name}.yaml", schema, group)


def has_preset(group: str, name: str) -> bool:
    """Whether kvbench ships a YAML preset `conf/<group>/<name>.yaml`."""
    return resources.files("kvbench.conf").joinpath(group, f"{name}.yaml").is_file()


@functools.lru_cache(maxsize=1)
def installed_entry_points(search_path: tuple[str, ...]) -> EntryPoints:
    """Every installed package's entry points, read once for the three plugin groups (reading them
    means opening every installed distribution's metadata); read again when `sys.path` changes."""
    return entry_points()


def discover(package: str, package_path: Iterable[str], entry_point_group: str) -> None:
    """Import every module of `package` and load every installed entry point of the group.

    A plugin that fails to load is reported (a warning naming it) and skipped, so one broken
    installed package does not take every kvbench command down with it.
    """
    for module in pkgutil.iter_modules(package_path):
        importlib.import_module(f"{package}.{module.name}")
    for entry_point in installed_entry_points(tuple(sys.path)).select(group=entry_point_group):
        try:
            entry_point.load()
        except Exception as err:  # noqa: BLE001  (any failure of foreign code is reported the same way)
            source = entry_point.dist.name if entry_point.dist else "an installed package"
            warnings.warn(
                f"kvbench: skipping plugin {entry_point.name!r} ({entry_point_group}, from {source}): "
                f"{type(err).__name__}: {err}",
                stacklevel=2,
            )
