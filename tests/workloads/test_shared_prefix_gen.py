"""vLLM's `random` and `prefix_repetition` and SGLang's `generated-shared-prefix`, under their names."""

from collections import Counter

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import kvbench.config  # noqa: F401  (schemas)
from kvbench.workloads import WORKLOADS


def table(name: str, *overrides: str, seed: int = 0):
    with initialize_config_module(config_module="kvbench.conf", version_base=None):
        cfg = compose("config", overrides=[f"workload={name}", *overrides])
    workload_cfg = OmegaConf.to_object(cfg.workload)
    workload = WORKLOADS.get(workload_cfg.name)(workload_cfg, seed, 100_000)
    return workload.read(np.random.default_rng(seed)), workload.load()


def test_random_draws_lengths_in_the_ratio_range_after_a_shared_prefix():
    rows, data = table("random", "workload.num_requests=200", "workload.input_len=100", "workload.output_len=50",
                       "workload.range_ratio=0.2", "workload.prefix_len=32")
    prompts = rows.num_prompt_tokens - 32
    assert prompts.min() >= 80 and prompts.max() <= 120 and len(set(prompts)) > 10
    assert rows.num_output_tokens.min() >= 40 and rows.num_output_tokens.max() <= 60
    assert rows.prompt(0).segments[0] == rows.prompt(1).segments[0]  # the shared prefix
    assert len(data.requests) == 200
    fixed, _ = table("random", "workload.num_requests=5")
    assert set(fixed.num_prompt_tokens) == {1024} and set(fixed.num_output_tokens) == {128}  # vLLM's defaults


def test_prefix_repetition_spreads_requests_evenly_over_its_prefixes():
    rows, _ = table("prefix_repetition", "workload.num_requests=100", "workload.num_prefixes=4")
    prefixes = Counter(rows.prompt(i).segments[0] for i in range(100))
    assert len(prefixes) == 4 and set(prefixes.values()) == {25}
    suffixes = {rows.prompt(i).segments[1] for i in range(100)}
    assert len(suffixes) == 100  # every request its own suffix
    assert set(rows.num_prompt_tokens) == {512} and set(rows.num_output_tokens) == {128}


def test_generated_shared_prefix_has_groups_of_questions_behind_one_system_prompt():
    rows, data = table("generated-shared-prefix", "workload.num_groups=3", "workload.prompts_per_group=5",
                       "workload.system_prompt_len=64", "workload.question_len=8", "workload.output_len=4")
    assert len(rows.num_prompt_tokens) == 15 and len(data.requests) == 15
    groups = Counter(rows.prompt(i).segments[0] for i in range(15))
    assert sorted(groups.values()) == [5, 5, 5]
    assert [rows.prompt(i).segments[0] for i in range(3)] != [rows.prompt(0).segments[0]] * 3  # shuffled


@pytest.mark.parametrize("name, override, message", [
    ("random", "workload.range_ratio=1.5", "workload.range_ratio=1.5 must be in"),
    ("prefix_repetition", "workload.num_prefixes=0", "workload.num_prefixes=0 must be >= 1"),
    ("generated-shared-prefix", "workload.question_len=0", "workload.question_len=0 must be >= 1"),
])
def test_bad_settings_are_named(name, override, message):
    with pytest.raises(ValueError, match=message):
        table(name, "workload.num_requests=10", override)
