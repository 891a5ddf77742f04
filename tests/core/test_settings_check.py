"""Every numeric setting is checked for finiteness and range before a run, naming the setting."""

from __future__ import annotations

import json
import math

import pytest
from kvbench.compose import compose

import kvbench.config  # noqa: F401
from kvbench.errors import ConfigError
from kvbench.results import write_json_atomic
from kvbench.runner import build

SMALL = ["workload.num_requests=20"]


def compose_run(*overrides: str):
    return compose([*SMALL, *overrides])


@pytest.mark.parametrize(("overrides", "message"), [
    (["strategy.block_size=0"], "strategy.block_size=0 must be >= 1"),
    (["model.dtype_bytes=0"], "model.dtype_bytes=0 must be >= 1"),
    (["hardware.mem_bandwidth_bytes_per_s=0"], "hardware.mem_bandwidth_bytes_per_s=0.0 must be > 0"),
    (["hardware.peak_flops=-1"], "hardware.peak_flops=-1.0 must be > 0"),
    (["workload.time_scale=inf"], "workload.time_scale=inf must be a finite number"),
    (["hardware.activation_reserve_bytes=-100000000000"], "hardware.activation_reserve_bytes=-100000000000 must be >= 0"),
    (["hardware.gpu_memory_utilization=1.5"], "hardware.gpu_memory_utilization=1.5 must be > 0 and <= 1"),
    (["hardware.host_link_latency_s=-1e-6"], "hardware.host_link_latency_s=-1e-06 must be >= 0"),
    (["hardware.cpu_swap_bytes=-1"], "hardware.cpu_swap_bytes=-1 must be >= 0"),
    (["hardware.tensor_parallel=3"], "hardware.tensor_parallel=3 must divide model.num_heads=40"),
    (["model=llama-3-70b", "hardware=a100-80gb", "hardware.tensor_parallel=3"],
     "hardware.tensor_parallel=3 must divide model.num_heads=64"),
    (["workload=synthetic", "workload.prompt.dist=zipf", "workload.prompt.alpha=nan"],
     "workload.prompt.alpha=nan must be a finite number"),
    (["workload=synthetic", "workload.prompt.dist=zipf", "workload.prompt.alpha=1"],
     "workload.prompt.alpha=1.0 must be > 1"),
    (["workload=synthetic", "workload.output.dist=lognormal", "workload.output.mean=nan"],
     "workload.output.mean=nan must be a finite number"),
    (["workload.start_s=nan"], "workload.start_s=nan must be a finite number"),
    (["workload.rate=-2"], "workload.rate=-2.0 must be > 0"),
    (["scheduler.max_num_seqs=0"], "scheduler.max_num_seqs=0 must be >= 1"),
    (["engine.step_overhead_s=-0.1"], "engine.step_overhead_s=-0.1 must be >= 0"),
    (["seed=-1"], "seed=-1 must be >= 0"),
    (["num_blocks=0"], "num_blocks=0 must be >= 1"),
])
def test_a_bad_number_is_refused_naming_the_setting(overrides, message):
    with pytest.raises(ConfigError) as err:
        build(compose_run(*overrides))
    assert message in str(err.value)


def test_an_absurd_pool_is_refused_before_anything_is_allocated():
    with pytest.raises(ValueError, match=r"more than the 2,147,483,648 kvbench accepts.*kv_cache_bytes="):
        build(compose_run("kv_cache_bytes=99999999999999999999999"))
    with pytest.raises(ConfigError, match="num_blocks=100000000000 must be >= 1 and <= 2147483648"):
        build(compose_run("num_blocks=100000000000"))


def test_a_custom_trace_whose_arrivals_overflow_is_refused(tmp_path):
    trace = tmp_path / "trace.jsonl"
    trace.write_text('{"prompt_len": 5, "output_len": 3, "arrival_time": -1e308}\n'
                     '{"prompt_len": 5, "output_len": 3, "arrival_time": 1e308}\n')
    with pytest.raises(ValueError, match=r"arrival times span more than"):
        build(compose_run("workload=custom", f"workload.path={trace}"))


def test_summary_json_is_strict_json(tmp_path):
    write_json_atomic(tmp_path / "summary.json", {"tpot_p50_s": math.nan, "nested": {"x": math.nan}})
    assert json.loads((tmp_path / "summary.json").read_text()) == {"tpot_p50_s": None, "nested": {"x": None}}
    with pytest.raises(ValueError, match="duration_s=inf is not a finite number"):
        write_json_atomic(tmp_path / "bad.json", {"duration_s": math.inf})
    assert not (tmp_path / "bad.json").exists() and not list(tmp_path.glob("*.tmp"))
