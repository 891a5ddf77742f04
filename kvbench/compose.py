"""The one way to compose a run's config outside `kvbench run`: Hydra's compose over kvbench.conf.

`kvbench run` composes through `@hydra.main`; `workload describe`, `profile`, `reproduce`, the
benchmarks and the tests compose the same defaults and overrides here, so they describe, profile
or rerun exactly what `kvbench run` with those overrides would.
"""

from __future__ import annotations

from omegaconf import DictConfig


def compose(overrides: list[str] | tuple[str, ...] = (), return_hydra_config: bool = False) -> DictConfig:
    """The config `kvbench run OVERRIDES...` would run (with `hydra.runtime.choices` if asked)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    import kvbench.config  # noqa: F401  (registers the schemas before Hydra composes)

    with initialize_config_module(config_module="kvbench.conf", version_base=None):
        return hydra_compose("config", overrides=list(overrides), return_hydra_config=return_hydra_config)
