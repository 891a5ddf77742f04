"""What swap preemption costs in the simulator: the host link, the knob, the summary fields."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from kvbench.compose import compose
from kvbench.errors import ConfigError
from kvbench.hardware import HardwareConfig
from kvbench.host_link import HostLinkCost
from kvbench.runner import execute

from .test_cost_model import MODEL, hardware

SWAP_FIELDS = {"num_swap_outs", "num_swap_ins", "swap_out_blocks", "swap_in_blocks", "swap_out_bytes", "swap_in_bytes",
               "swap_fallback_recomputes", "num_recompute_preemptions", "max_swapped_bytes", "swap_transfer_s"}


def test_a_block_costs_a_copy_per_layer_for_k_and_v_plus_its_bytes():
    link = HostLinkCost(MODEL, hardware(host_link_bytes_per_s=1000.0, host_link_latency_s=0.5), block_bytes=300)
    # 2 layers x (K, V) = 4 copies of 0.5 s, plus 300 bytes at 1000 B/s.
    assert link.transfer_s(3) == pytest.approx(3 * (4 * 0.5 + 0.3))
    split = HostLinkCost(MODEL, hardware(host_link_bytes_per_s=1000.0, host_link_latency_s=0.0, tensor_parallel=2),
                         block_bytes=300)
    assert split.transfer_s(1) == pytest.approx(0.15)  # each GPU moves its half over its own link


def test_the_same_bytes_in_smaller_blocks_cost_more():
    hw = hardware(host_link_bytes_per_s=1e9, host_link_latency_s=5e-6)
    assert HostLinkCost(MODEL, hw, block_bytes=64).transfer_s(64) > HostLinkCost(MODEL, hw, block_bytes=4096).transfer_s(1)


@pytest.mark.parametrize("bad", [{"host_link_bytes_per_s": 0.0}, {"host_link_latency_s": -1.0}])
def test_a_missing_or_negative_link_is_refused(bad):
    with pytest.raises(ValueError, match=f"hardware.{next(iter(bad))}="):
        HostLinkCost(MODEL, hardware(**{"host_link_bytes_per_s": 1e9, **bad}), block_bytes=64)


def test_the_presets_carry_their_host_links():
    links = {name: OmegaConf.to_object(compose([f"hardware={name}"]).hardware).host_link_bytes_per_s
             for name in ("a100-40gb", "a100-80gb", "h100-sxm", "h200", "gh200")}
    assert links["a100-40gb"] == links["a100-80gb"] == 32e9  # PCIe 4.0 x16
    assert links["h100-sxm"] == links["h200"] == 64e9  # PCIe 5.0 x16
    assert links["gh200"] == 450e9  # NVLink-C2C
    assert HardwareConfig.cpu_swap_bytes == 4 << 30


PRESSURE = ["model=opt-13b", "hardware=a100-40gb", "workload=synthetic", "workload.num_requests=40",
            "workload.arrival=offline", "workload.prompt.min=50", "workload.prompt.max=200",
            "workload.output.min=200", "workload.output.max=600", "kv_cache_bytes=1500000000",
            "model.max_model_len=1024"]


def _run(tmp_path, name: str, overrides: list[str]) -> dict:
    execute(compose([*PRESSURE, *overrides]), tmp_path / name, progress=False)
    return json.loads((tmp_path / name / "summary.json").read_text())


def test_swap_runs_report_their_copies_and_recompute_runs_do_not(tmp_path):
    recompute = _run(tmp_path, "recompute", [])
    assert not SWAP_FIELDS & recompute.keys()
    serial = _run(tmp_path, "serial", ["scheduler.preemption=swap"])
    overlapped = _run(tmp_path, "overlapped", ["scheduler.preemption=swap", "engine.swap_overlap=true"])
    assert SWAP_FIELDS <= serial.keys()
    assert serial["num_swap_outs"] > 0 and serial["swap_in_blocks"] == serial["swap_out_blocks"]
    assert serial["swap_out_bytes"] == serial["swap_out_blocks"] * serial["kv_cache_bytes"] // serial["num_blocks"]
    assert serial["swap_transfer_s"] > 0
    # The same schedule either way; overlapped copies hide behind compute.
    assert overlapped["swap_out_blocks"] == serial["swap_out_blocks"]
    assert overlapped["duration_s"] < serial["duration_s"]


def test_a_swap_space_smaller_than_a_block_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="hardware.cpu_swap_bytes=1000 holds no block"):
        _run(tmp_path, "none", ["scheduler.preemption=swap", "hardware.cpu_swap_bytes=1000"])


def test_hardware_without_a_host_link_runs_recompute_and_refuses_swap(tmp_path):
    _run(tmp_path, "no_link", ["hardware.host_link_bytes_per_s=0"])
    with pytest.raises(ValueError, match="hardware.host_link_bytes_per_s=0.0 must be > 0"):
        _run(tmp_path, "no_link_swap", ["hardware.host_link_bytes_per_s=0", "scheduler.preemption=swap"])
