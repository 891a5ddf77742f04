"""What moving K/V between GPU and host memory costs: swap preemption's copies (and host KV tiers).

A block moves as one copy per layer for its keys and one for its values (vLLM v0's `swap_blocks`
issues a cudaMemcpyAsync per block per layer cache), each paying the link's fixed per-copy cost
(`hardware.host_link_latency_s`) plus its bytes over the link (`hardware.host_link_bytes_per_s`).
With tensor parallelism each GPU moves its share of the heads over its own link, at the same time.
Small blocks mean many small copies: the PagedAttention paper's §7.3 finding.
"""

from __future__ import annotations

from kvbench.hardware import HardwareConfig
from kvbench.model_spec import ModelSpec


def check_host_link(hardware: HardwareConfig) -> None:
    """Raise if the hardware cannot move K/V to host memory."""
    if hardware.host_link_bytes_per_s <= 0:
        raise ValueError(
            f"hardware.host_link_bytes_per_s={hardware.host_link_bytes_per_s} must be > 0 to move K/V to host memory"
        )
    if hardware.host_link_latency_s < 0:
        raise ValueError(f"hardware.host_link_latency_s={hardware.host_link_latency_s} must be >= 0")


class HostLinkCost:
    def __init__(self, model: ModelSpec, hardware: HardwareConfig, block_bytes: int):
        check_host_link(hardware)
        self.copies_per_block = 2 * model.config.num_layers
        self.block_s = (
            self.copies_per_block * hardware.host_link_latency_s
            + block_bytes / hardware.tensor_parallel / hardware.host_link_bytes_per_s
        )

    def transfer_s(self, num_blocks: int) -> float:
        """Seconds to move `num_blocks` blocks one way."""
        return num_blocks * self.block_s
