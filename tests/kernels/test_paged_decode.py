"""Triton paged decode attention vs the float64 torch reference (fp32 under the interpreter on
CPU): MHA / GQA 4:1 / MQA, block sizes 1, 16, 64, shuffled block tables, split-K on and off."""

from __future__ import annotations

import math

import pytest
import torch

from kvbench.kernels import paged_decode_attention, ref_paged_decode_attention
from kvbench.kernels.synthetic import paged_batch, random_kv_pool, relative_error

pytest.importorskip("triton")
from kvbench.kernels import decode_triton  # noqa: E402  (needs triton)

FP32_TOLERANCE = 1e-5


def _poisoned_workspace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make split-K partial buffers start as NaN so an unwritten split poisons the output."""
    allocate = decode_triton._alloc_split_workspace

    def poisoned(*args: object, **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
        split_out, split_lse = allocate(*args, **kwargs)
        return split_out.fill_(math.nan), split_lse.fill_(math.nan)

    monkeypatch.setattr(decode_triton, "_alloc_split_workspace", poisoned)


def run_decode_case(
    num_q_heads: int,
    num_kv_heads: int,
    head_dim: int,
    block_size: int,
    context_lens: list[int],
    num_splits: int | None,
    *,
    seed: int = 0,
) -> None:
    gen = torch.Generator().manual_seed(seed)
    batch = paged_batch(context_lens, block_size, spare_blocks=3, generator=gen)
    key_cache, value_cache = random_kv_pool(
        batch.num_blocks, block_size, num_kv_heads, head_dim, dtype=torch.float32, generator=gen
    )
    query = torch.randn((len(context_lens), num_q_heads, head_dim), generator=gen)
    scale = head_dim**-0.5
    out = torch.full_like(query, math.nan)
    paged_decode_attention(
        query,
        key_cache,
        value_cache,
        batch.block_tables,
        batch.context_lens,
        scale,
        num_splits=num_splits,
        out=out,
    )
    ref = ref_paged_decode_attention(
        query.double(),
        key_cache.double(),
        value_cache.double(),
        batch.block_tables,
        batch.context_lens,
        scale,
    )
    assert not out.isnan().any(), "some output elements were never written"
    assert relative_error(out, ref) < FP32_TOLERANCE


# (q heads, kv heads, head_dim, block_size, context lens): lengths include 1, an exact block
# boundary and ragged values; tables are shuffled in every case.
SHAPES = {
    "mha-bs16": (4, 4, 32, 16, [1, 16, 33, 200]),
    "gqa4-bs1": (8, 2, 32, 1, [1, 7, 64, 70]),
    "mqa-bs64": (4, 1, 32, 64, [64, 1, 130]),
    "gqa4-bs16-d80": (8, 2, 80, 16, [48, 5, 129]),  # odd, wide head_dim: 32-token tiles
    "gqa2-bs16-d160": (4, 2, 160, 16, [17, 100]),  # widest rows: 16-token tiles
}


@pytest.mark.parametrize("num_splits", [1, 3])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_decode_matches_reference(
    shape: tuple[int, int, int, int, list[int]], num_splits: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    _poisoned_workspace(monkeypatch)
    run_decode_case(*shape, num_splits)


def test_decode_more_splits_than_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Splits that receive no tile must weigh nothing (lse = -inf), not NaN or garbage."""
    _poisoned_workspace(monkeypatch)
    run_decode_case(8, 2, 32, 16, [1, 65, 20], num_splits=8)


def test_decode_automatic_splits(monkeypatch: pytest.MonkeyPatch) -> None:
    """num_splits=None on a GPU-sized device with few programs and a long context splits."""
    _poisoned_workspace(monkeypatch)
    chosen: list[int] = []
    choose = decode_triton.choose_num_splits

    def spy(*args: int) -> int:
        chosen.append(choose(*args))
        return chosen[-1]

    monkeypatch.setattr(decode_triton, "device_parallelism", lambda device: 132)
    monkeypatch.setattr(decode_triton, "choose_num_splits", spy)
    run_decode_case(4, 1, 16, 64, [3, 600], num_splits=None)
    assert chosen == [2]


def test_decode_zero_context_gives_zero_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """A padded sequence (context_len 0) yields zeros and leaves the others intact."""
    _poisoned_workspace(monkeypatch)
    gen = torch.Generator().manual_seed(1)
    batch = paged_batch([0, 40], 16, generator=gen)
    key_cache, value_cache = random_kv_pool(
        batch.num_blocks, 16, 2, 16, dtype=torch.float32, generator=gen
    )
    query = torch.randn((2, 4, 16), generator=gen)
    for num_splits in (1, 2):
        out = paged_decode_attention(
            query,
            key_cache,
            value_cache,
            batch.block_tables,
            batch.context_lens,
            0.25,
            num_splits=num_splits,
        )
        ref = ref_paged_decode_attention(
            query.double(),
            key_cache.double(),
            value_cache.double(),
            batch.block_tables,
            batch.context_lens,
            0.25,
        )
        assert torch.equal(out[0], torch.zeros_like(out[0]))
        assert relative_error(out[1], ref[1]) < FP32_TOLERANCE


def test_decode_reads_only_through_the_table() -> None:
    """Blocks no table points to (and table padding) must not influence the result."""
    gen = torch.Generator().manual_seed(2)
    batch = paged_batch([20, 9], 8, spare_blocks=4, generator=gen)
    key_cache, value_cache = random_kv_pool(
        batch.num_blocks, 8, 1, 16, dtype=torch.float32, generator=gen
    )
    query = torch.randn((2, 2, 16), generator=gen)
    before = paged_decode_attention(
        query, key_cache, value_cache, batch.block_tables, batch.context_lens, 0.3
    )
    used = set(batch.block_tables[0, :3].tolist()) | set(batch.block_tables[1, :2].tolist())
    unused = [b for b in range(batch.num_blocks) if b not in used]
    for cache in (key_cache, value_cache):
        cache[unused] = math.nan
        cache[batch.block_tables[0, 2], 4:] = math.nan  # past context 20 in its last block
        cache[batch.block_tables[1, 1], 1:] = math.nan  # past context 9 in its last block
    after = paged_decode_attention(
        query, key_cache, value_cache, batch.block_tables, batch.context_lens, 0.3
    )
    assert torch.equal(before, after)
