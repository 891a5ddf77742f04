"""`engine.device`, `engine.dtype` and `engine.backend` as torch objects, and the memory check.

Every error names the setting to change: a device run fails here, before it allocates anything.
"""

from __future__ import annotations

import os

import torch

from kvbench.hardware import GiB
from kvbench.kernels import default_backend

TORCH_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}
# Share of the host's physical memory a CPU run may take: the rest is the OS, Python and pytest.
CPU_MEMORY_SHARE = 0.5
# Share of the free CUDA memory weights + pool may take: activations and the allocator need the rest.
CUDA_MEMORY_SHARE = 0.95


def torch_device(name: str) -> torch.device:
    """`engine.device` as a torch device; CUDA only where it is available."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"engine.device={name!r} is not a device: use cuda, cuda:N or cpu") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ValueError(f"engine.device={name!r}: kvbench runs on cuda or cpu")
    if not torch.cuda.is_available():
        raise ValueError(
            f"engine.device={name} but CUDA is not available here (torch {torch.__version__}): "
            "use engine.device=cpu with a small model (model=tiny)"
        )
    index = torch.cuda.current_device() if device.index is None else device.index
    if index >= torch.cuda.device_count():
        raise ValueError(f"engine.device={name}: this machine has {torch.cuda.device_count()} CUDA devices")
    # Triton launches and CUDA events go to the current device: make it the engine's.
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def torch_dtype(name: str) -> torch.dtype:
    try:
        return TORCH_DTYPES[name]
    except KeyError:
        raise ValueError(f"engine.dtype={name!r} must be one of {', '.join(TORCH_DTYPES)}") from None


def attention_backend(name: str, device: torch.device, dtype: torch.dtype) -> str:
    """`engine.backend` (auto | triton | torch) resolved and checked against device and dtype."""
    if name == "auto":
        # The Triton kernels have no float64 variant: float64 runs (the exactness proofs) use torch.
        return "torch" if dtype == torch.float64 else default_backend(device)
    if name == "torch":
        return name
    if name != "triton":
        raise ValueError(f"engine.backend={name!r} must be auto, triton or torch")
    if dtype == torch.float64:
        raise ValueError("engine.backend=triton has no float64 kernels: use engine.backend=torch for float64")
    if device.type == "cpu":
        if os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError(
                "engine.backend=triton on CPU runs only under the Triton interpreter: start with "
                "TRITON_INTERPRET=1 (float32), or use engine.backend=torch"
            )
        if dtype != torch.float32:
            raise ValueError("the Triton interpreter on CPU runs float32 only: set engine.dtype=float32")
    return name


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return "cpu"


def available_bytes(device: torch.device) -> int:
    """What weights and the KV pool may take on `device`."""
    if device.type == "cuda":
        free_bytes, _ = torch.cuda.mem_get_info(device)
        return int(free_bytes * CUDA_MEMORY_SHARE)
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * CPU_MEMORY_SHARE)


def check_memory_fits(device: torch.device, weight_bytes: int, pool_bytes: int) -> None:
    """Fail before allocating when the model and the KV pool cannot fit on the device."""
    available = available_bytes(device)
    if weight_bytes + pool_bytes > available:
        raise ValueError(
            f"engine=device: the weights ({weight_bytes / GiB:.2f} GiB) and the KV pool ({pool_bytes / GiB:.2f} GiB) "
            f"need more than the {available / GiB:.2f} GiB this run may use on {device}: shrink the model "
            "(model.num_layers=...) or the pool (num_blocks=... or kv_cache_bytes=...)"
        )
