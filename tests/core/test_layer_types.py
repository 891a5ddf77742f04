"""Per-layer attention types: the presets' numbers, their layer groups, and every strategy running
every preset (window-aware strategies on layer-group pages, the others keeping every token)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

import kvbench.config  # noqa: F401
from kvbench.compose import compose
from kvbench.model_spec import KVGroup, ModelConfig, ModelSpec
from kvbench.runner import build, simulate
from kvbench.strategies import STRATEGIES

HYBRID_PRESETS = ("mistral-7b-v0.1", "gemma-2-9b", "gemma-3-12b", "gpt-oss-20b", "jamba-v0.1")


def spec(name: str) -> ModelSpec:
    return ModelSpec(OmegaConf.to_object(compose([f"model={name}"]).model))


@pytest.mark.parametrize(
    ("name", "kv_bytes_per_token", "groups"),
    [
        # 2 (K, V) x layers with KV x KV heads x head_dim x 2 bytes
        ("mistral-7b-v0.1", 2 * 32 * 8 * 128 * 2, [KVGroup(4096, 32)]),
        ("gemma-2-9b", 2 * 42 * 8 * 256 * 2, [KVGroup(0, 21), KVGroup(4096, 21)]),
        ("gemma-3-12b", 2 * 48 * 8 * 256 * 2, [KVGroup(0, 8)] + [KVGroup(1024, 8)] * 5),
        ("gpt-oss-20b", 2 * 24 * 8 * 64 * 2, [KVGroup(0, 12), KVGroup(128, 12)]),
        ("jamba-v0.1", 2 * 4 * 8 * 128 * 2, [KVGroup(0, 4)]),  # 4 attention layers of 32
    ],
)
def test_presets_bytes_per_token_and_layer_groups(name, kv_bytes_per_token, groups):
    model = spec(name)
    assert model.kv_bytes_per_token == kv_bytes_per_token
    assert model.kv_groups == groups
    assert sum(g.num_layers for g in groups) == model.num_attention_layers


def test_layer_patterns_repeat_over_the_layers():
    assert spec("gemma-3-12b").layer_types[:7] == ["sliding"] * 5 + ["full", "sliding"]
    assert spec("gpt-oss-20b").layer_types[:2] == ["sliding", "full"]  # even layers are local
    assert spec("jamba-v0.1").layer_types.index("full") == 4  # attn_layer_offset 4, period 8
    assert spec("llama-2-13b").layer_types == ["full"] * 40


def test_jamba_state_per_request():
    # 28 Mamba layers x (8192 x 16 SSM + 8192 x 3 convolution) values x 2 bytes
    assert spec("jamba-v0.1").state_bytes_per_request == 28 * (8192 * 16 + 8192 * 3) * 2 == 8_716_288


def test_uneven_layer_counts_are_padded_as_vllm_pads_them():
    """vLLM's group size is the smallest type's count, or the largest when they are within 1.5x."""
    from kvbench.model_spec import kv_groups

    assert kv_groups(["full"] * 12 + ["sliding"] * 13, 128) == [KVGroup(0, 13), KVGroup(128, 13)]
    assert kv_groups(["full"] * 10 + ["sliding"] * 25, 64) == [KVGroup(0, 10)] + [KVGroup(64, 10)] * 3


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"layer_pattern": ["full", "local"]}, "model.layer_pattern has 'local'"),
        ({"layer_pattern": ["sliding"]}, "model.sliding_window=0"),
        ({"layer_pattern": ["none"], "state_bytes_per_layer": 8}, "no attention layer"),
        ({"layer_pattern": ["none", "full"]}, "model.state_bytes_per_layer=0"),
    ],
)
def test_bad_layer_patterns_name_the_setting(changes, message):
    config = ModelConfig(name="x", num_layers=4, hidden_size=8, num_heads=2, num_kv_heads=1, head_dim=4,
                         intermediate_size=8, vocab_size=16, max_model_len=32, **changes)
    with pytest.raises(ValueError, match=message):
        ModelSpec(config)


def test_a_window_aware_strategy_counts_its_pool_in_one_groups_pages():
    cfg = compose(["model=gemma-3-12b", "strategy=paged", "kv_cache_bytes=1073741824", "model.max_model_len=2048",
                   "workload.num_requests=2"])
    run = build(cfg)
    page_bytes = 16 * 8 * spec("gemma-3-12b").kv_layer_bytes_per_token()  # 16 tokens of 8 layers
    assert run.budget.num_blocks == 2**30 // page_bytes and run.strategy.num_kv_groups == 6
    plain = build(compose(["model=gemma-3-12b", "strategy=orca_max", "kv_cache_bytes=1073741824",
                           "model.max_model_len=2048", "workload.num_requests=2"]))
    assert plain.budget.num_token_slots == 2**30 // spec("gemma-3-12b").kv_bytes_per_token  # every layer per slot


def test_mamba_state_is_set_aside_per_request_slot():
    cfg = compose(["model=jamba-v0.1", "kv_cache_bytes=4294967296", "scheduler.max_num_seqs=8", "model.max_model_len=4096",
                   "workload.num_requests=2"])
    run = build(cfg)
    assert run.budget.num_blocks == (2**32 - 8 * 8_716_288) // (16 * spec("jamba-v0.1").kv_bytes_per_token)


@pytest.mark.parametrize("model", HYBRID_PRESETS)
@pytest.mark.parametrize("strategy", sorted(STRATEGIES.names()))
def test_every_strategy_runs_every_preset(strategy, model):
    cfg = compose([f"strategy={strategy}", f"model={model}", "model.max_model_len=2048", "hardware=h100-sxm",
                   "workload=sharegpt", "workload.num_requests=12"])
    run = build(cfg)
    records = simulate(run, progress=False)
    assert len(records.requests_table()) == len(run.workload.requests)


def test_the_device_engine_refuses_layers_it_does_not_run():
    from kvbench.errors import ConfigError

    cfg = compose(["model=gpt-oss-20b", "engine=device", "model.max_model_len=2048", "workload.num_requests=2"])
    with pytest.raises(ConfigError, match="engine=device cannot run model=gpt-oss-20b with strategy=paged"):
        build(cfg, {"model": "gpt-oss-20b", "strategy": "paged"})
    cfg = compose(["model=jamba-v0.1", "engine=device", "strategy=orca_max", "model.max_model_len=2048"])
    with pytest.raises(ConfigError, match="not layer groups or layers without KV"):
        build(cfg, {"model": "jamba-v0.1", "strategy": "orca_max"})
