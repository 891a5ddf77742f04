"""Wrong shapes, dtypes, devices and layouts raise clear errors before any kernel runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from kvbench.kernels import (
    BACKENDS,
    contiguous_decode_attention,
    copy_blocks,
    default_backend,
    paged_decode_attention,
    paged_prefill_attention,
    store_kv,
)
from kvbench.kernels.synthetic import paged_batch, random_kv_pool

pytest.importorskip("triton")

NUM_KV_HEADS, HEAD_DIM, BLOCK_SIZE = 2, 16, 4


def decode_args() -> dict[str, Any]:
    batch = paged_batch([5, 9], BLOCK_SIZE)
    key_cache, value_cache = random_kv_pool(
        batch.num_blocks, BLOCK_SIZE, NUM_KV_HEADS, HEAD_DIM, dtype=torch.float32
    )
    return {
        "query": torch.randn(2, 4, HEAD_DIM),
        "key_cache": key_cache,
        "value_cache": value_cache,
        "block_tables": batch.block_tables,
        "context_lens": batch.context_lens,
        "scale": 0.25,
    }


def prefill_args() -> dict[str, Any]:
    args = decode_args()
    args["query"] = torch.randn(14, 4, HEAD_DIM)
    args["query_start_loc"] = torch.tensor([0, 5, 14], dtype=torch.int32)
    return args


def expect(error: type[Exception], match: str, fn: Callable[..., Any], **kwargs: Any) -> None:
    with pytest.raises(error, match=match):
        fn(**kwargs)


DECODE_BREAKAGES: dict[str, tuple[Callable[[dict[str, Any]], None], type[Exception], str]] = {
    "block-size-not-power-of-two": (
        lambda a: a.update(
            key_cache=torch.randn(6, 3, 2, 16), value_cache=torch.randn(6, 3, 2, 16)
        ),
        ValueError,
        "power of two",
    ),
    "query-dtype": (lambda a: a.update(query=a["query"].double()), TypeError, "query dtype"),
    "context-lens-dtype": (
        lambda a: a.update(context_lens=a["context_lens"].long()),
        TypeError,
        "context_lens must be torch.int32",
    ),
    "table-dtype": (
        lambda a: a.update(block_tables=a["block_tables"].long()),
        TypeError,
        "block_tables must be torch.int32",
    ),
    "table-rows": (
        lambda a: a.update(block_tables=a["block_tables"][:1]),
        ValueError,
        "block_tables has 1 rows",
    ),
    "heads-not-multiple": (
        lambda a: a.update(query=torch.randn(2, 3, HEAD_DIM)),
        ValueError,
        "multiple of num_kv_heads",
    ),
    "head-dim": (lambda a: a.update(query=torch.randn(2, 4, 8)), ValueError, "head_dim 8"),
    "cache-not-contiguous": (
        lambda a: a.update(key_cache=a["key_cache"].transpose(1, 2).contiguous().transpose(1, 2)),
        ValueError,
        "contiguous",
    ),
    "value-cache-shape": (
        lambda a: a.update(value_cache=a["value_cache"][:-1]),
        ValueError,
        "value_cache shape",
    ),
    "out-shape": (lambda a: a.update(out=torch.empty(2, 4, 8)), ValueError, "out must be"),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("breakage", DECODE_BREAKAGES.values(), ids=DECODE_BREAKAGES.keys())
def test_decode_rejects(
    backend: str, breakage: tuple[Callable[[dict[str, Any]], None], type[Exception], str]
) -> None:
    mutate, error, match = breakage
    args = decode_args()
    mutate(args)
    expect(error, match, paged_decode_attention, backend=backend, **args)


@pytest.mark.parametrize("backend", BACKENDS)
def test_prefill_rejects_bad_query_start_loc(backend: str) -> None:
    args = prefill_args()
    args["query_start_loc"] = args["query_start_loc"][:2]
    expect(ValueError, "num_seqs \\+ 1", paged_prefill_attention, backend=backend, **args)


def test_torch_prefill_rejects_more_new_tokens_than_context() -> None:
    args = prefill_args()
    args["query"] = torch.randn(15, 4, HEAD_DIM)
    args["query_start_loc"] = torch.tensor([0, 6, 15], dtype=torch.int32)
    expect(ValueError, "q_len <= context_len", paged_prefill_attention, backend="torch", **args)


@pytest.mark.parametrize("backend", BACKENDS)
def test_contiguous_rejects_int32_start_slots(backend: str) -> None:
    args = decode_args()
    del args["block_tables"]
    args["start_slots"] = torch.tensor([0, 8], dtype=torch.int32)
    expect(
        TypeError,
        "start_slots must be torch.int64",
        contiguous_decode_attention,
        backend=backend,
        **args,
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_cache_ops_reject(backend: str) -> None:
    args = decode_args()
    kc, vc = args["key_cache"], args["value_cache"]
    kv = torch.randn(3, NUM_KV_HEADS, HEAD_DIM)
    with pytest.raises(TypeError, match="slot_mapping must be torch.int64"):
        store_kv(kv, kv, kc, vc, torch.arange(3, dtype=torch.int32), backend=backend)
    with pytest.raises(ValueError, match="key has 1 heads"):
        one_head = torch.randn(3, 1, HEAD_DIM)
        store_kv(one_head, one_head, kc, vc, torch.arange(3), backend=backend)
    with pytest.raises(ValueError, match="slot_mapping has 2 entries"):
        store_kv(kv, kv, kc, vc, torch.arange(2), backend=backend)
    with pytest.raises(ValueError, match="differ in length"):
        copy_blocks(kc, vc, torch.tensor([0, 1]), torch.tensor([2]), backend=backend)
    with pytest.raises(TypeError, match="dst_block_ids must be torch.int64"):
        copy_blocks(
            kc, vc, torch.tensor([0]), torch.tensor([2], dtype=torch.int32), backend=backend
        )


def test_triton_specific_rejections(monkeypatch: pytest.MonkeyPatch) -> None:
    args = decode_args()
    expect(ValueError, "num_splits must be in", paged_decode_attention, num_splits=0, **args)
    args64 = {**args, **{k: args[k].double() for k in ("query", "key_cache", "value_cache")}}
    expect(TypeError, "KV cache dtype torch.float64", paged_decode_attention, **args64)
    args16 = {**args, **{k: args[k].bfloat16() for k in ("query", "key_cache", "value_cache")}}
    if not torch.cuda.is_available():
        expect(TypeError, "interpreter does not support bfloat16", paged_decode_attention, **args16)
        monkeypatch.setenv("TRITON_INTERPRET", "0")
        expect(ValueError, "needs CUDA tensors", paged_decode_attention, **args)


def test_backend_names() -> None:
    expect(
        ValueError,
        "backend must be one of",
        paged_decode_attention,
        backend="cuda",
        **decode_args(),
    )
    assert default_backend("cpu") == "torch"
