"""Name → class registries with Hydra schemas: a registry name equals its YAML file's `name`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from hydra.core.config_store import ConfigStore

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name that is not registered; the message lists the valid ones."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Generic[T]):
    """Classes of one kind (strategies, workloads...), each with a dataclass config schema.

    The schema is stored in Hydra's ConfigStore as `schema/<group>/<name>`, and every YAML file of
    the group extends it (`defaults: [/schema/<group>/<name>@_here_, _self_]`), so an unknown key or
    a value of the wrong type fails when the config is composed, before anything runs.
    """

    def __init__(self, group: str):
        self.group = group
        self._classes: dict[str, type[T]] = {}
        self._schemas: dict[str, type] = {}

    def register(self, name: str, schema: type) -> Callable[[type[T]], type[T]]:
        def decorator(cls: type[T]) -> type[T]:
            if name in self._classes:
                raise ValueError(f"{self.group} {name!r} is registered twice")
            self._classes[name] = cls
            self._schemas[name] = schema
            ConfigStore.instance().store(group=f"schema/{self.group}", name=name, node=schema)
            return cls

        return decorator

    def get(self, name: str) -> type[T]:
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
        return sorted(self._classes)
