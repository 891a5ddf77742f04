"""Every conf/workload/*.yaml composes against its schema, under its registered name."""

from __future__ import annotations

from importlib import resources

import pytest
from omegaconf import OmegaConf

from kvbench.workloads import WORKLOADS
from kvbench.workloads.arrivals import Arrival

PRESETS = sorted(p.name.removesuffix(".yaml") for p in resources.files("kvbench.conf").joinpath("workload").iterdir()
                 if p.name.endswith(".yaml"))
TRACES_WITH_TIMESTAMPS = {"azure_conv", "azure_code", "burstgpt", "mooncake", "custom"}


def test_every_registered_workload_has_a_preset():
    assert set(WORKLOADS.names()) == set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_composes(name, compose_run):
    config = OmegaConf.to_object(compose_run([f"workload={name}"]).workload)
    assert isinstance(config, WORKLOADS.schema(name)) and config.name == name
    expected = Arrival.trace if name in TRACES_WITH_TIMESTAMPS else Arrival.poisson
    assert Arrival(config.arrival) is expected


def test_list_settings_compose(compose_run):
    cfg = compose_run(["workload=burstgpt", "workload.models=[ChatGPT]", "workload.log_types=[Conversation log]"])
    config = OmegaConf.to_object(cfg.workload)
    assert (config.models, config.log_types) == (["ChatGPT"], ["Conversation log"])
