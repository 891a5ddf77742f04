"""Benchmark kvbench's KV-cache kernels on a CUDA GPU; writes a CSV and a Markdown report.

    python benchmarks/bench_kernels.py --out results/kernels            # full grid (~10 min)
    python benchmarks/bench_kernels.py --out results/kernels --quick    # smaller grid
    python benchmarks/bench_kernels.py --out /tmp/smoke --smoke         # tiny, CPU interpreter ok

Suites (the ``suite`` column):

* ``decode``: paged decode attention over batch x context x {MHA 32:32, GQA 8:1 (32:4)} x dtype
  at block size 16, next to the contiguous baselines on the *same bytes*: the decode kernel in
  contiguous mode and SDPA (FlashAttention on CUDA) over pool views, plus split-K off when the
  automatic choice splits. Achieved bandwidth = bytes of K, V, Q and O moved / time, in GB/s and
  as a fraction of a device-to-device copy measured in the same run.
* ``block_size``: paged decode at one shape for block sizes 1..256.
* ``cow``: ``copy_blocks`` (copy-on-write) cost, Triton and torch.
* ``prefill``: paged prefill with a cached prefix vs SDPA on a contiguous copy, in TFLOP/s.
* ``kv_variants``: paged decode at the block-size sweep's shape as is, over an fp8 e4m3 pool (one
  byte per element, dequantized in the kernel) and with sliding windows (tiles before the window
  skipped); bandwidth counts the bytes each variant needs to read.

Timing: ``triton.testing.do_bench`` medians flush L2 before every call. Decode calls are short
enough for launch gaps to matter, so decode is also timed with ``do_bench_cudagraph`` (the
``ms_graph`` column, used for its bandwidth). A CUDA graph replays the same call back to back
without flushing L2, so each decode row rotates over enough independent copies of its inputs
to span 3x the L2 size: consecutive replays never find their K/V in L2. Nothing here asserts
anything about time; ``max_abs_diff`` checks that the contiguous baselines compute the same
result as the paged kernel.

Without a CUDA device the script exits with an error, except with ``--smoke``: tiny shapes in
fp32 under the Triton interpreter, timed with ``time.perf_counter`` (meaningless numbers; it
only exercises the code paths).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

COLUMNS = [
    "suite",
    "kernel",
    "dtype",
    "q_heads",
    "kv_heads",
    "head_dim",
    "batch",
    "context_len",
    "q_len",
    "prefix_len",
    "block_size",
    "num_splits",
    "blocks_copied",
    "bytes",
    "ms_graph",
    "ms_flushed",
    "gbps",
    "frac_of_copy",
    "tflops",
    "max_abs_diff",
    "note",
]
# What an SDPA backend raises for an unsupported shape/dtype/mask combination: recorded in the
# row's note instead of aborting the run.
BASELINE_ERRORS = (RuntimeError, NotImplementedError, TypeError, ValueError)
ROTATION_L2_MULTIPLE = 3
MAX_ROTATION_COPIES = 256


@dataclass(frozen=True)
class Grid:
    """The benchmark's sizes."""

    dtypes: tuple[torch.dtype, ...]
    heads: tuple[tuple[int, int], ...]  # (q heads, kv heads)
    head_dim: int
    batches: tuple[int, ...]
    contexts: tuple[int, ...]
    block_sizes: tuple[int, ...]  # paged block sizes of the decode grid
    sweep_block_sizes: tuple[int, ...]
    sweep_shape: tuple[int, int, int, int]  # (batch, context, q heads, kv heads)
    cow_block_sizes: tuple[int, ...]
    cow_pairs: tuple[int, ...]
    cow_kv_heads: int
    prefill_cases: tuple[tuple[int, int, int], ...]  # (sequences, new tokens, cached prefix)
    max_pool_bytes: int  # skip decode shapes whose K+V pool would exceed this
    copy_bytes: int  # buffer size of the reference device-to-device copy
    windows: tuple[int, ...] = (128, 1024)  # sliding windows of the kv_variants suite


FULL = Grid(
    dtypes=(torch.float16, torch.bfloat16),
    heads=((32, 32), (32, 4)),
    head_dim=128,
    batches=(1, 8, 32, 128),
    contexts=(512, 2048, 8192, 32768),
    block_sizes=(16, 128),
    sweep_block_sizes=(1, 2, 4, 8, 16, 32, 64, 128, 256),
    sweep_shape=(8, 4096, 32, 4),
    cow_block_sizes=(16, 256),
    cow_pairs=(1, 16, 256, 2048),
    cow_kv_heads=8,
    prefill_cases=((4, 512, 0), (4, 512, 4096), (4, 2048, 0), (4, 2048, 8192), (16, 128, 2048)),
    max_pool_bytes=12 << 30,
    copy_bytes=1 << 30,
)
QUICK = Grid(
    dtypes=(torch.float16,),
    heads=((32, 32), (32, 4)),
    head_dim=128,
    batches=(1, 32),
    contexts=(1024, 16384),
    block_sizes=(16,),
    sweep_block_sizes=(1, 16, 256),
    sweep_shape=(8, 4096, 32, 4),
    cow_block_sizes=(16,),
    cow_pairs=(1, 256),
    cow_kv_heads=8,
    prefill_cases=((4, 512, 4096),),
    max_pool_bytes=8 << 30,
    copy_bytes=1 << 30,
)
SMOKE = Grid(
    dtypes=(torch.float32,),
    heads=((4, 4), (4, 1)),
    head_dim=16,
    batches=(2,),
    contexts=(40,),
    block_sizes=(16,),
    sweep_block_sizes=(1, 16),
    sweep_shape=(2, 40, 4, 1),
    cow_block_sizes=(16,),
    cow_pairs=(2,),
    cow_kv_heads=1,
    prefill_cases=((2, 8, 16),),
    max_pool_bytes=1 << 20,
    copy_bytes=1 << 20,
    windows=(8,),
)


class Timer:
    """Median runtimes in ms: triton's do_bench on CUDA; on CPU (``--smoke``) one perf_counter
    call, since every callable timed here has already run once (compiled and checked)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def flushed(self, fn: Callable[[], object]) -> float:
        if self.cuda:
            import triton.testing

            return float(triton.testing.do_bench(fn, return_mode="median"))
        return self._one_call(fn)

    def graphed(self, fn: Callable[[], object]) -> float:
        if self.cuda:
            import triton.testing

            return float(triton.testing.do_bench_cudagraph(fn, return_mode="median"))
        return self._one_call(fn)

    @staticmethod
    def _one_call(fn: Callable[[], object]) -> float:
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3


@dataclass
class Device:
    """What every suite needs to know about the device under test."""

    device: torch.device
    timer: Timer
    copy_gbps: float
    l2_bytes: int
    num_sms: int


def measure_copy_gbps(device: torch.device, timer: Timer, num_bytes: int) -> float:
    """Device-to-device copy bandwidth (read + write bytes / time): the roofline proxy."""
    src = torch.empty(num_bytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    ms = timer.flushed(lambda: dst.copy_(src))
    return 2 * num_bytes / (ms * 1e-3) / 1e9


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def cycle_calls(calls: list[Callable[[], object]]) -> Callable[[], object]:
    """One callable that runs ``calls`` round-robin (captured into a graph, the rotation stays)."""
    ring = itertools.cycle(calls)
    return lambda: next(ring)()


def rotation_copies(dev: Device, working_set_bytes: int) -> int:
    if dev.device.type != "cuda":
        return 1
    wanted = math.ceil(ROTATION_L2_MULTIPLE * dev.l2_bytes / max(1, working_set_bytes))
    return max(1, min(wanted, MAX_ROTATION_COPIES))


def bandwidth_fields(num_bytes: int, ms: float, dev: Device) -> dict[str, object]:
    gbps = num_bytes / (ms * 1e-3) / 1e9
    return {
        "bytes": num_bytes,
        "gbps": round(gbps, 1),
        "frac_of_copy": round(gbps / dev.copy_gbps, 3),
    }


@dataclass
class DecodeCopy:
    """One independent copy of a decode problem: paged pool, the same tokens laid out
    contiguously, and the query/output buffers."""

    query: torch.Tensor
    key_cache: torch.Tensor
    value_cache: torch.Tensor
    contiguous_keys: torch.Tensor
    contiguous_values: torch.Tensor
    out: torch.Tensor


def make_decode_copy(
    batch: int,
    context: int,
    block_size: int,
    heads: tuple[int, int],
    head_dim: int,
    dtype: torch.dtype,
    block_tables: torch.Tensor,
    num_blocks: int,
    device: torch.device,
) -> DecodeCopy:
    from kvbench.kernels.synthetic import random_kv_pool

    num_q_heads, num_kv_heads = heads
    key_cache, value_cache = random_kv_pool(
        num_blocks, block_size, num_kv_heads, head_dim, dtype=dtype, device=device
    )
    # The same tokens, sequence after sequence: slots [seq * context, (seq + 1) * context).
    blocks = block_tables[:, : -(-context // block_size)].long()

    def laid_out(cache: torch.Tensor) -> torch.Tensor:
        dense = cache[blocks].flatten(1, 2)[:, :context]
        return dense.reshape(batch * context, num_kv_heads, head_dim)

    contiguous_keys, contiguous_values = laid_out(key_cache), laid_out(value_cache)
    query = torch.randn((batch, num_q_heads, head_dim), device=device).to(dtype)
    return DecodeCopy(
        query, key_cache, value_cache, contiguous_keys, contiguous_values, torch.empty_like(query)
    )


def bench_decode_shape(
    dev: Device,
    suite: str,
    batch: int,
    context: int,
    block_size: int,
    heads: tuple[int, int],
    head_dim: int,
    dtype: torch.dtype,
    with_baselines: bool,
) -> list[dict[str, object]]:
    """Paged decode (and, with ``with_baselines``, its contiguous baselines) at one shape."""
    from kvbench.kernels import contiguous_decode_attention, paged_decode_attention
    from kvbench.kernels.contiguous import sdpa_decode_over_views
    from kvbench.kernels.splits import choose_num_splits
    from kvbench.kernels.synthetic import paged_batch

    num_q_heads, num_kv_heads = heads
    elt = torch.empty((), dtype=dtype).element_size()
    kv_bytes = 2 * batch * context * num_kv_heads * head_dim * elt
    moved = kv_bytes + 2 * batch * num_q_heads * head_dim * elt
    base = {
        "suite": suite,
        "dtype": dtype_name(dtype),
        "q_heads": num_q_heads,
        "kv_heads": num_kv_heads,
        "head_dim": head_dim,
        "batch": batch,
        "context_len": context,
        "block_size": block_size,
    }
    layout = paged_batch([context] * batch, block_size, device=dev.device)
    copies = [
        make_decode_copy(
            batch,
            context,
            block_size,
            heads,
            head_dim,
            dtype,
            layout.block_tables,
            layout.num_blocks,
            dev.device,
        )
        for _ in range(rotation_copies(dev, moved))
    ]
    tables, lens = layout.block_tables, layout.context_lens
    start_slots = torch.arange(batch, device=dev.device, dtype=torch.int64) * context
    scale = head_dim**-0.5
    auto_splits = choose_num_splits(batch, num_kv_heads, context, dev.num_sms)

    def paged(c: DecodeCopy, splits: int) -> Callable[[], object]:
        return lambda: paged_decode_attention(
            c.query, c.key_cache, c.value_cache, tables, lens, scale, num_splits=splits, out=c.out
        )

    def contiguous_triton(c: DecodeCopy) -> Callable[[], object]:
        # Seen as a pool of 1-token blocks: the block size plays no part in contiguous mode.
        shape = (-1, 1, num_kv_heads, head_dim)
        keys, values = c.contiguous_keys.view(shape), c.contiguous_values.view(shape)
        return lambda: contiguous_decode_attention(
            c.query, keys, values, start_slots, lens, scale, num_splits=auto_splits, out=c.out
        )

    def contiguous_sdpa(c: DecodeCopy) -> Callable[[], object]:
        shape = (batch, context, num_kv_heads, head_dim)
        keys, values = c.contiguous_keys.view(shape), c.contiguous_values.view(shape)
        return lambda: c.out.copy_(sdpa_decode_over_views(c.query, keys, values, scale))

    kernels: dict[str, tuple[Callable[[DecodeCopy], Callable[[], object]], int | None]] = {
        "paged-triton": (lambda c: paged(c, auto_splits), auto_splits)
    }
    if with_baselines:
        if auto_splits > 1:
            kernels["paged-triton-nosplit"] = (lambda c: paged(c, 1), 1)
        kernels["contiguous-triton"] = (contiguous_triton, auto_splits)
        kernels["contiguous-sdpa"] = (contiguous_sdpa, None)

    rows = []
    first = copies[0]
    reference_out = None
    for name, (make, splits) in kernels.items():
        row = {**base, "kernel": name, "num_splits": splits if splits is not None else ""}
        if name.startswith("contiguous"):
            row["block_size"] = ""
        try:
            make(first)()
            reference_out = first.out.clone() if reference_out is None else reference_out
            row["max_abs_diff"] = max_abs_diff(first.out, reference_out)
            row["ms_flushed"] = round(dev.timer.flushed(make(first)), 4)
            row["ms_graph"] = round(dev.timer.graphed(cycle_calls([make(c) for c in copies])), 4)
        except BASELINE_ERRORS as error:
            row["note"] = external_failure(name, error)
        else:
            row.update(bandwidth_fields(moved, row["ms_graph"], dev))
        rows.append(row)
    return rows


def suite_decode(dev: Device, grid: Grid) -> list[dict[str, object]]:
    rows = []
    for dtype, heads, batch, context in itertools.product(
        grid.dtypes, grid.heads, grid.batches, grid.contexts
    ):
        elt = torch.empty((), dtype=dtype).element_size()
        if 2 * batch * context * heads[1] * grid.head_dim * elt > grid.max_pool_bytes:
            continue
        for block_size in grid.block_sizes:
            # Contiguous baselines do not depend on the block size: measure them once.
            with_baselines = block_size == grid.block_sizes[0]
            rows += bench_decode_shape(
                dev,
                "decode",
                batch,
                context,
                block_size,
                heads,
                grid.head_dim,
                dtype,
                with_baselines,
            )
            release(dev)
    return rows


def suite_block_size(dev: Device, grid: Grid) -> list[dict[str, object]]:
    batch, context, num_q_heads, num_kv_heads = grid.sweep_shape
    rows = []
    for block_size in grid.sweep_block_sizes:
        rows += bench_decode_shape(
            dev,
            "block_size",
            batch,
            context,
            block_size,
            (num_q_heads, num_kv_heads),
            grid.head_dim,
            grid.dtypes[0],
            with_baselines=block_size == grid.sweep_block_sizes[-1],
        )
        release(dev)
    return rows


def suite_cow(dev: Device, grid: Grid) -> list[dict[str, object]]:
    rows = []
    for block_size, pairs in itertools.product(grid.cow_block_sizes, grid.cow_pairs):
        rows += bench_cow_case(dev, grid, block_size, pairs)
        release(dev)
    return rows


def bench_cow_case(dev: Device, grid: Grid, block_size: int, pairs: int) -> list[dict[str, object]]:
    """``copy_blocks`` of ``pairs`` scattered blocks, Triton and torch."""
    from kvbench.kernels import copy_blocks
    from kvbench.kernels.synthetic import random_kv_pool

    dtype = grid.dtypes[0]
    key_cache, value_cache = random_kv_pool(
        2 * pairs, block_size, grid.cow_kv_heads, grid.head_dim, dtype=dtype, device=dev.device
    )
    # Forks copy scattered blocks: sources and destinations interleaved in a random order.
    order = torch.randperm(2 * pairs, device=dev.device)
    src, dst = order[:pairs].contiguous(), order[pairs:].contiguous()
    moved = 2 * 2 * pairs * key_cache[0].numel() * key_cache.element_size()  # K and V, r + w
    rows = []
    for backend in ("triton", "torch"):

        def call(backend: str = backend) -> None:
            copy_blocks(key_cache, value_cache, src, dst, backend=backend)

        ms = dev.timer.flushed(call)
        rows.append(
            {
                "suite": "cow",
                "kernel": f"copy_blocks-{backend}",
                "dtype": dtype_name(dtype),
                "kv_heads": grid.cow_kv_heads,
                "head_dim": grid.head_dim,
                "block_size": block_size,
                "blocks_copied": pairs,
                "ms_flushed": round(ms, 4),
                **bandwidth_fields(moved, ms, dev),
            }
        )
    return rows


def suite_prefill(dev: Device, grid: Grid) -> list[dict[str, object]]:
    rows = []
    for dtype, heads, case in itertools.product(grid.dtypes, grid.heads, grid.prefill_cases):
        rows += bench_prefill_case(dev, grid, dtype, heads, *case)
        release(dev)
    return rows


def bench_prefill_case(
    dev: Device,
    grid: Grid,
    dtype: torch.dtype,
    heads: tuple[int, int],
    seqs: int,
    q_len: int,
    prefix: int,
) -> list[dict[str, object]]:
    """Paged prefill of ``seqs`` x ``q_len`` new tokens after a ``prefix``-token cached prefix,
    and SDPA on a contiguous copy with the same (bottom-right aligned) causal mask."""
    import torch.nn.functional as F
    from torch.nn.attention.bias import causal_lower_right

    from kvbench.kernels import paged_prefill_attention
    from kvbench.kernels.synthetic import paged_batch, random_kv_pool

    num_q_heads, num_kv_heads = heads
    block_size = grid.block_sizes[0]
    context = prefix + q_len
    head_dim, scale = grid.head_dim, grid.head_dim**-0.5
    layout = paged_batch([context] * seqs, block_size, device=dev.device)
    key_cache, value_cache = random_kv_pool(
        layout.num_blocks, block_size, num_kv_heads, head_dim, dtype=dtype, device=dev.device
    )
    query = torch.randn((seqs * q_len, num_q_heads, head_dim), device=dev.device).to(dtype)
    starts = torch.arange(seqs + 1, device=dev.device, dtype=torch.int32) * q_len
    out = torch.empty_like(query)
    # Contiguous copy for SDPA: [seqs, heads, context, head_dim] views of [seqs, context, ...].
    blocks = layout.block_tables[:, : -(-context // block_size)].long()
    dense_k = key_cache[blocks].flatten(1, 2)[:, :context].transpose(1, 2)
    dense_v = value_cache[blocks].flatten(1, 2)[:, :context].transpose(1, 2)
    dense_q = query.view(seqs, q_len, num_q_heads, head_dim).transpose(1, 2)
    mask = causal_lower_right(q_len, context)

    def paged() -> torch.Tensor:
        return paged_prefill_attention(
            query,
            key_cache,
            value_cache,
            layout.block_tables,
            starts,
            layout.context_lens,
            scale,
            max_query_len=q_len,
            out=out,
        )

    def sdpa() -> torch.Tensor:
        result = F.scaled_dot_product_attention(
            dense_q,
            dense_k,
            dense_v,
            attn_mask=mask,
            scale=scale,
            enable_gqa=num_q_heads != num_kv_heads,
        )
        return result.transpose(1, 2)  # a view: [seqs, q_len, heads, head_dim], no copy

    visible_pairs = seqs * (q_len * prefix + q_len * (q_len + 1) // 2)
    flops = 4 * num_q_heads * head_dim * visible_pairs
    base = {
        "suite": "prefill",
        "dtype": dtype_name(dtype),
        "q_heads": num_q_heads,
        "kv_heads": num_kv_heads,
        "head_dim": head_dim,
        "batch": seqs,
        "context_len": context,
        "q_len": q_len,
        "prefix_len": prefix,
        "block_size": block_size,
    }
    rows = []
    paged_out = paged().clone()
    for name, call in (("prefill-paged-triton", paged), ("prefill-contiguous-sdpa", sdpa)):
        row = {**base, "kernel": name}
        try:
            row["max_abs_diff"] = max_abs_diff(call().reshape(paged_out.shape), paged_out)
            ms = dev.timer.flushed(call)
        except BASELINE_ERRORS as error:
            row["note"] = external_failure(name, error)
        else:
            row["ms_flushed"] = round(ms, 4)
            row["tflops"] = round(flops / (ms * 1e-3) / 1e12, 2)
        rows.append(row)
    return rows


def max_abs_diff(result: torch.Tensor, reference: torch.Tensor) -> str:
    return f"{(result.float() - reference.float()).abs().max().item():.2e}"


def external_failure(kernel: str, error: Exception) -> str:
    """The note for a baseline torch cannot run at this shape; kvbench's own kernels re-raise."""
    if not kernel.endswith("sdpa"):
        raise error
    return f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"


def release(dev: Device) -> None:
    if dev.device.type == "cuda":
        torch.cuda.empty_cache()


def paging_overhead(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Per decode shape and block size: paged time over the best contiguous time (graph timings)."""
    shape_columns = ("dtype", "q_heads", "kv_heads", "batch", "context_len")
    contiguous: dict[tuple[object, ...], dict[str, float]] = {}
    for row in rows:
        if (
            row["suite"] == "decode"
            and row.get("ms_graph")
            and str(row["kernel"]).startswith("contiguous")
        ):
            contiguous.setdefault(tuple(row[c] for c in shape_columns), {})[str(row["kernel"])] = (
                float(row["ms_graph"])
            )
    summary = []
    for row in rows:
        if row["suite"] != "decode" or row["kernel"] != "paged-triton" or not row.get("ms_graph"):
            continue
        baselines = contiguous.get(tuple(row[c] for c in shape_columns))
        if not baselines:
            continue
        best = min(baselines, key=baselines.__getitem__)
        summary.append(
            {
                "dtype": row["dtype"],
                "heads": f"{row['q_heads']}:{row['kv_heads']}",
                "batch": row["batch"],
                "context": row["context_len"],
                "block_size": row["block_size"],
                "paged_ms": row["ms_graph"],
                "best_contiguous": best,
                "best_contiguous_ms": baselines[best],
                "paged_over_contiguous": round(float(row["ms_graph"]) / baselines[best], 3),
            }
        )
    return summary


def suite_kv_variants(dev: Device, grid: Grid) -> list[dict[str, object]]:
    """Paged decode at the sweep shape: as is, over an fp8 pool, and with each sliding window."""
    from kvbench.kernels import paged_decode_attention
    from kvbench.kernels.quant_reference import quantize_fp8
    from kvbench.kernels.synthetic import paged_batch, random_kv_pool
    from kvbench.kernels.validation import MIN_FP8_CAPABILITY

    fp8_supported = dev.device.type != "cuda" or torch.cuda.get_device_capability(dev.device) >= MIN_FP8_CAPABILITY
    batch, context, num_q_heads, num_kv_heads = grid.sweep_shape
    dtype, head_dim, block_size = grid.dtypes[0], grid.head_dim, 16
    layout = paged_batch([context] * batch, block_size, device=dev.device)
    caches = random_kv_pool(layout.num_blocks, block_size, num_kv_heads, head_dim, dtype=dtype, device=dev.device)
    fp8_caches = tuple(quantize_fp8(cache, torch.float8_e4m3fn, 1.0) for cache in caches)
    query = torch.randn((batch, num_q_heads, head_dim), device=dev.device).to(dtype)
    elt = query.element_size()
    # (kernel, pool, kv_scales, window, bytes per cached element)
    variants = [("paged-triton", caches, None, 0, elt), ("paged-triton-fp8", fp8_caches, (1.0, 1.0), 0, 1)]
    variants += [(f"paged-triton-window{w}", caches, None, w, elt) for w in grid.windows]
    rows = []
    for name, (key_cache, value_cache), kv_scales, window, kv_elt in variants:
        keys_read = min(context, window) if window else context
        moved = 2 * batch * keys_read * num_kv_heads * head_dim * kv_elt + 2 * batch * num_q_heads * head_dim * elt
        row = {"suite": "kv_variants", "kernel": name, "dtype": dtype_name(dtype), "q_heads": num_q_heads,
               "kv_heads": num_kv_heads, "head_dim": head_dim, "batch": batch, "context_len": context,
               "block_size": block_size}

        def call(key_cache=key_cache, value_cache=value_cache, kv_scales=kv_scales, window=window) -> torch.Tensor:
            return paged_decode_attention(query, key_cache, value_cache, layout.block_tables, layout.context_lens,
                                          head_dim**-0.5, kv_scales=kv_scales, sliding_window=window)

        if kv_scales is not None and not fp8_supported:
            row["note"] = f"fp8 in Triton needs compute capability {MIN_FP8_CAPABILITY}+"
        else:
            call()
            row["ms_flushed"] = round(dev.timer.flushed(call), 4)
            row.update(bandwidth_fields(moved, row["ms_flushed"], dev))
        rows.append(row)
    release(dev)
    return rows


def markdown_table(rows: list[dict[str, object]], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


SUITE_COLUMNS = {
    "decode": [
        "kernel",
        "dtype",
        "q_heads",
        "kv_heads",
        "batch",
        "context_len",
        "block_size",
        "num_splits",
        "ms_graph",
        "ms_flushed",
        "gbps",
        "frac_of_copy",
        "max_abs_diff",
        "note",
    ],
    "block_size": [
        "kernel",
        "block_size",
        "dtype",
        "batch",
        "context_len",
        "num_splits",
        "ms_graph",
        "gbps",
        "frac_of_copy",
        "max_abs_diff",
        "note",
    ],
    "cow": ["kernel", "block_size", "blocks_copied", "dtype", "ms_flushed", "gbps", "frac_of_copy"],
    "prefill": [
        "kernel",
        "dtype",
        "q_heads",
        "kv_heads",
        "batch",
        "q_len",
        "prefix_len",
        "ms_flushed",
        "tflops",
        "max_abs_diff",
        "note",
    ],
    "kv_variants": [
        "kernel", "dtype", "q_heads", "kv_heads", "batch", "context_len", "bytes", "ms_flushed", "gbps",
        "frac_of_copy", "note",
    ],
}


def write_report(out_dir: Path, rows: list[dict[str, object]], header: list[str]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "kernels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    parts = ["# Kernel benchmarks", "", *header, ""]
    for suite, columns in SUITE_COLUMNS.items():
        parts += [
            f"## {suite}",
            "",
            markdown_table([r for r in rows if r["suite"] == suite], columns),
            "",
        ]
    summary = paging_overhead(rows)
    if summary:
        parts += [
            "## paging overhead (decode, CUDA-graph timings)",
            "",
            markdown_table(summary, list(summary[0])),
            "",
        ]
    (out_dir / "kernels.md").write_text("\n".join(parts))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for kernels.csv/.md")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller GPU grid")
    size.add_argument("--smoke", action="store_true", help="tiny fp32 run; works on CPU")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if torch.cuda.is_available():
        device = torch.device("cuda")
    elif args.smoke:
        # Must precede the first `import triton` (kvbench.kernels imports it lazily).
        os.environ.setdefault("TRITON_INTERPRET", "1")
        device = torch.device("cpu")
    else:
        sys.exit(
            "bench_kernels.py needs a CUDA device and none is available "
            "(use --smoke for a tiny CPU run under the Triton interpreter)"
        )
    import triton

    from kvbench.kernels.splits import device_parallelism

    grid = SMOKE if args.smoke else QUICK if args.quick else FULL
    torch.manual_seed(0)
    timer = Timer(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        name, l2_bytes = props.name, props.L2_cache_size
    else:
        name, l2_bytes = "cpu (Triton interpreter)", 0
    dev = Device(
        device,
        timer,
        measure_copy_gbps(device, timer, grid.copy_bytes),
        l2_bytes,
        device_parallelism(device),
    )
    header = [
        f"- device: {name} ({dev.num_sms} SMs, L2 {l2_bytes >> 20} MiB)",
        f"- torch {torch.__version__}, triton {triton.__version__}",
        f"- device-to-device copy: {dev.copy_gbps:.1f} GB/s (read + write)",
        "- ms_graph: do_bench_cudagraph median over inputs rotated past L2; "
        "ms_flushed: do_bench median, L2 flushed"
        if device.type == "cuda"
        else "- timings: one perf_counter call each under the Triton interpreter (not meaningful)",
    ]
    rows: list[dict[str, object]] = []
    for suite in (suite_decode, suite_block_size, suite_cow, suite_prefill, suite_kv_variants):
        rows += suite(dev, grid)
        print(f"{suite.__name__}: {len(rows)} rows so far", flush=True)
    write_report(args.out, rows, header)
    print(f"wrote {args.out / 'kernels.csv'} and {args.out / 'kernels.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
