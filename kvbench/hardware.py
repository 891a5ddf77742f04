"""GPU specs, and how large a KV pool a model leaves on them."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from kvbench.model_spec import ModelSpec

GiB = 1 << 30
# Far more blocks than any GPU holds for a real model (Llama-2-7B on eight H200s is about 2M token
# slots), and room for the tiny test model token by token (block size 1, as the Orca presets) on the
# largest GPU (about 530M slots): a larger pool is a units mistake (kv_cache_bytes in bits, say),
# refused before anything is allocated. Pools cost memory only for the blocks in use, so the bound
# is about mistakes, not memory.
MAX_NUM_BLOCKS = 1 << 31


@dataclass
class HardwareConfig:
    name: str = MISSING
    memory_bytes: int = MISSING  # per GPU
    mem_bandwidth_bytes_per_s: float = MISSING  # per GPU, datasheet
    peak_flops: float = MISSING  # per GPU, dense fp16/bf16 tensor cores, datasheet
    interconnect_bytes_per_s: float = 0.0  # per GPU, one direction (NVLink), for tensor parallelism
    # Shares of the datasheet rates that real kernels reach; the roofline divides by them.
    bandwidth_efficiency: float = 0.8
    flops_efficiency: float = 0.6
    tensor_parallel: int = 1
    gpu_memory_utilization: float = 0.9  # share of GPU memory the engine may take
    activation_reserve_bytes: int = 1 * GiB  # per GPU: activations, CUDA graphs, workspace


@dataclass(frozen=True)
class KVBudget:
    kv_cache_bytes: int
    num_blocks: int
    block_size: int
    kv_bytes_per_token: int

    @property
    def num_token_slots(self) -> int:
        return self.num_blocks * self.block_size

    @property
    def block_bytes(self) -> int:
        return self.block_size * self.kv_bytes_per_token


def derived_kv_cache_bytes(hardware: HardwareConfig, model: ModelSpec) -> int:
    """GPU memory x utilisation - weights - activation reserve, over all tensor-parallel GPUs."""
    tp = hardware.tensor_parallel
    usable = int(hardware.memory_bytes * hardware.gpu_memory_utilization) * tp
    return usable - model.weight_bytes - hardware.activation_reserve_bytes * tp


def kv_budget(
    hardware: HardwareConfig,
    model: ModelSpec,
    block_size: int,
    kv_cache_bytes: int | None = None,
    num_blocks: int | None = None,
    bytes_per_token: int | None = None,
    state_bytes: int = 0,
) -> KVBudget:
    """The KV pool: `num_blocks` if given, else `kv_cache_bytes` if given, else derived.

    `bytes_per_token`: what a block's token slot holds, when not all of `model.kv_bytes_per_token`
    (a window-aware strategy's page holds one layer group). `state_bytes`: fixed per-request
    state (Mamba layers) set aside for every request slot before the pool is cut into blocks.
    """
    if hardware.tensor_parallel < 1:
        raise ValueError(f"hardware.tensor_parallel={hardware.tensor_parallel} must be >= 1")
    if not 0 < hardware.gpu_memory_utilization <= 1:
        raise ValueError(f"hardware.gpu_memory_utilization={hardware.gpu_memory_utilization} must be in (0, 1]")
    if num_blocks is not None and kv_cache_bytes is not None:
        raise ValueError("set num_blocks= or kv_cache_bytes=, not both")
    per_token = bytes_per_token or model.kv_bytes_per_token
    block_bytes = block_size * per_token
    if num_blocks is None:
        if kv_cache_bytes is None:
            kv_cache_bytes = derived_kv_cache_bytes(hardware, model)
            source = (
                f"{hardware.name} x{hardware.tensor_parallel}: {hardware.memory_bytes / GiB:.1f} GiB x "
                f"{hardware.gpu_memory_utilization} - {model.weight_bytes / GiB:.1f} GiB of weights - "
                f"{hardware.activation_reserve_bytes / GiB:.1f} GiB reserve per GPU"
            )
        else:
            source = f"kv_cache_bytes={kv_cache_bytes}"
        if state_bytes:
            kv_cache_bytes -= state_bytes
            source += f" - {state_bytes / GiB:.2f} GiB of per-request state"
        num_blocks = kv_cache_bytes // block_bytes if kv_cache_bytes > 0 else 0
        if num_blocks < 1:
            raise ValueError(
                f"the KV budget ({source}) holds less than one block of {block_size} tokens "
                f"({block_bytes} bytes): use a larger GPU, more tensor parallelism, or set kv_cache_bytes="
            )
    elif num_blocks < 1:
        raise ValueError(f"num_blocks={num_blocks} must be >= 1")
    if num_blocks > MAX_NUM_BLOCKS:
        raise ValueError(
            f"the KV pool would have {num_blocks:,} blocks of {block_size} tokens "
            f"({num_blocks * block_bytes / GiB:,.0f} GiB), more than the {MAX_NUM_BLOCKS:,} kvbench accepts: "
            "set a smaller kv_cache_bytes= or num_blocks=, or a larger strategy.block_size="
        )
    return KVBudget(num_blocks * block_bytes, num_blocks, block_size, per_token)
