"""Every preset composes against its schema; typos and impossible settings fail before a run."""

from __future__ import annotations

from importlib import resources

import pytest
from kvbench.compose import compose
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

import kvbench.config  # noqa: F401  (schemas)
from kvbench.errors import ConfigError
from kvbench.runner import build

GROUPS = ("strategy", "workload", "model", "hardware", "engine", "scheduler", "experiment")


def presets(group: str) -> list[str]:
    folder = resources.files("kvbench.conf").joinpath(group)
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def compose_config(overrides: list[str]):
    return compose(overrides)


@pytest.mark.parametrize(("group", "name"), [(g, n) for g in GROUPS for n in presets(g)])
def test_every_preset_composes_and_validates(group, name):
    cfg = compose_config([f"{group}={name}"])
    OmegaConf.to_object(cfg)  # every value checked against its dataclass schema


def test_the_registry_name_is_the_yaml_file_name():
    from kvbench.strategies import STRATEGIES
    from kvbench.workloads import WORKLOADS

    for group, registry in (("strategy", STRATEGIES), ("workload", WORKLOADS)):
        for name in presets(group):
            registered = compose_config([f"{group}={name}"])[group].name
            assert registered in registry.names()
            assert registered == name or group == "strategy"  # orca_* are presets of contiguous


@pytest.mark.parametrize(
    "overrides",
    [["strategy.blok_size=16"], ["strategy=paged", "strategy.reservation=max"], ["seeed=1"],
     ["strategy=orca_max", "strategy.reservation=huge"], ["workload.rate=fast"]],
)
def test_typos_and_wrong_types_fail_at_compose_time(overrides):
    with pytest.raises(ConfigCompositionException):
        compose_config(overrides)


def test_an_unknown_preset_lists_the_valid_ones():
    with pytest.raises(MissingConfigException) as err:
        compose_config(["strategy=pagd"])
    assert "paged_prefix" in str(err.value) and "orca_max" in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["strategy.block_size=12"], "strategy.block_size=12 must be a power of two"),
        (["strategy.block_size=512"], "strategy.block_size=512 is larger than 256"),
        (["kv_cache_bytes=1000"], "holds less than one block"),
        (["num_blocks=0"], "num_blocks=0 must be >= 1"),
        (["strategy=orca_max", "num_blocks=1000"], "cannot hold even one sequence of model.max_model_len=4096"),
        (["hardware.gpu_memory_utilization=1.5"], "gpu_memory_utilization=1.5"),
        (["workload.num_requests=0"], "workload.num_requests=0"),
        (["workload.n=2", "workload.beam_width=2"], "not both"),
        (["scheduler.max_num_seqs=0"], "max_num_seqs=0"),
    ],
)
def test_impossible_settings_fail_before_the_run_naming_the_setting(overrides, message):
    with pytest.raises((ValueError, ConfigError)) as err:
        build(compose_config(["workload.num_requests=10", *overrides]))
    assert message in str(err.value)


def test_requests_longer_than_max_model_len_are_dropped_and_counted():
    cfg = compose_config([
        "workload=synthetic", "workload.num_requests=50", "model=tiny", "model.max_model_len=128",
        "workload.prompt.dist=uniform", "workload.prompt.min=1", "workload.prompt.max=100",
        "workload.output.dist=fixed", "workload.output.value=50",
    ])
    run = build(cfg)
    kept = run.workload.requests
    assert run.workload.num_dropped_too_long == 50 - len(kept) > 0
    assert all(r.num_prompt_tokens + r.num_output_tokens <= 128 for r in kept)
