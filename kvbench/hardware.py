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
    # The link between a GPU and host memory (PCIe, NVLink-C2C), per GPU, one direction: what swap
    # preemption (scheduler.preemption=swap) and host-memory KV tiers move K/V over.
    host_link_bytes_per_s: float = 0.0
    # Fixed cost of one host<->device copy call (a cudaMemcpyAsync: launch and DMA set-up). A swap
    # moves each block of each layer's K and V as its own copy, as vLLM v0's swap_blocks does, so
    # small blocks pay this many times: the reason the PagedAttention paper (§7.3) finds swapping
    # slow at small block sizes. An assumption of the order NVIDIA's small-transfer timings show,
    # not a measurement (see docs/swap.md).
    host_link_latency_s: float = 5e-6
    cpu_swap_bytes: int = 4 * GiB  # host memory for swapped-out KV, all GPUs together (vLLM's swap_space=4 GiB)
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
    # Full-precision residual windows (int8/int4 KV) of the running sequences, held beside the pool
    # and taken off the budget before it was cut into blocks (ModelSpec.kv_residual_bytes_per_seq).
    kv_residual_bytes: int = 0

    @property
    def num_token_slots(self) -> int:
        return self.num_blocks * self.block_size

    @property
    def block_bytes(self) -> int:
        return self.block_size * self.kv_bytes_per_token


def num_swap_blocks(hardware: HardwareConfig, budget: KVBudget) -> int:
    """Blocks of the GPU pool's size that `hardware.cpu_swap_bytes` holds (the swap space)."""
    if hardware.cpu_swap_bytes < 0:
        raise ValueError(f"hardware.cpu_swap_bytes={hardware.cpu_swap_bytes} must be >= 0")
    return hardware.cpu_swap_bytes // budget.block_bytes


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
    max_num_seqs: int = 0,
    num_layers: int | None = None,
    state_bytes: int = 0,
) -> KVBudget:
    """The KV pool: `num_blocks` if given, else `kv_cache_bytes` if given, else derived.

    Bytes per token over all workers come from the model's KV format (`kv_pool_bytes_per_token`),
    over `num_layers` layers when a block's token slot holds fewer than every attention layer (a
    window-aware strategy's page holds one layer group). A format with a full-precision residual
    (int8/int4) first sets aside one residual window for each of `max_num_seqs` running sequences
    (with `num_blocks=` the pool is given and the windows are held beside it). `state_bytes`: fixed
    per-request state (Mamba layers) set aside for every request slot before the pool is cut into blocks.
    """
    if hardware.tensor_parallel < 1:
        raise ValueError(f"hardware.tensor_parallel={hardware.tensor_parallel} must be >= 1")
    if not 0 < hardware.gpu_memory_utilization <= 1:
        raise ValueError(f"hardware.gpu_memory_utilization={hardware.gpu_memory_utilization} must be in (0, 1]")
    if num_blocks is not None and kv_cache_bytes is not None:
        raise ValueError("set num_blocks= or kv_cache_bytes=, not both")
    per_token = model.kv_pool_bytes_per_token(hardware.tensor_parallel, num_layers)
    block_bytes = block_size * per_token
    residual_bytes = max_num_seqs * model.kv_residual_bytes_per_seq(hardware.tensor_parallel)
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
        if residual_bytes:
            source += (f" - {residual_bytes:,} bytes of full-precision residual windows ({max_num_seqs} sequences; "
                       "lower scheduler.max_num_seqs or model.kv_residual_tokens)")
            kv_cache_bytes -= residual_bytes
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
    return KVBudget(num_blocks * block_bytes, num_blocks, block_size, per_token, residual_bytes)
