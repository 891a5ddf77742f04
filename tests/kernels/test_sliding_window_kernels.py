"""Sliding-window attention in the Triton kernels vs the float64 torch reference (CPU: the
interpreter, fp32), and proof that tiles wholly before the window are skipped, not only masked.

Each query token at position p sees keys p - W + 1 ..= p. The decode kernel walks only the tiles
from the window's start on; the prefill kernel only those from the first row's window on. The skip
tests fill every block before those tiles with NaN: a kernel that loaded them (even to mask them)
would return NaN, because masked scores become probabilities of 0 and 0 x NaN = NaN in the P.V
product."""

from __future__ import annotations

import math

import pytest
import torch

from kvbench.kernels import paged_decode_attention, paged_prefill_attention, ref_paged_decode_attention, ref_paged_prefill_attention
from kvbench.kernels.attention_tile import pipeline_config
from kvbench.kernels.synthetic import paged_batch, random_kv_pool, relative_error

pytest.importorskip("triton")

FP32_TOLERANCE = 1e-5
HEAD_DIM = 32


def pool_and_batch(context_lens, block_size, num_kv_heads, seed=0):
    gen = torch.Generator().manual_seed(seed)
    batch = paged_batch(context_lens, block_size, spare_blocks=2, generator=gen)
    key_cache, value_cache = random_kv_pool(batch.num_blocks, block_size, num_kv_heads, HEAD_DIM, dtype=torch.float32,
                                            generator=gen)
    return gen, batch, key_cache, value_cache


def poison_blocks_before(key_cache, value_cache, batch, seq, position):
    """NaN into every block of `seq` that lies wholly before `position`."""
    block_size = key_cache.shape[1]
    for block_id in batch.block_tables[seq, : position // block_size].tolist():
        key_cache[block_id] = math.nan
        value_cache[block_id] = math.nan


# (window, num_splits, (query heads, KV heads), block size): a window of one key, windows inside a
# tile, of exactly a tile, across tiles, longer than every context; MHA, GQA, MQA; split-K.
DECODE_CASES = [
    (1, 1, (4, 4), 16), (5, 3, (8, 2), 1), (64, 2, (4, 4), 16), (100, 3, (4, 4), 16), (100, 1, (4, 1), 64),
    (1000, 3, (8, 2), 1),
]


@pytest.mark.parametrize("window, num_splits, heads, block_size", DECODE_CASES)
def test_windowed_decode_matches_the_reference(window, num_splits, heads, block_size):
    context_lens = [1, 16, 70, 200, 333]
    gen, batch, key_cache, value_cache = pool_and_batch(context_lens, block_size, heads[1])
    query = torch.randn((len(context_lens), heads[0], HEAD_DIM), generator=gen)
    out = torch.full_like(query, math.nan)
    paged_decode_attention(query, key_cache, value_cache, batch.block_tables, batch.context_lens, HEAD_DIM**-0.5,
                           num_splits=num_splits, out=out, sliding_window=window)
    ref = ref_paged_decode_attention(query.double(), key_cache.double(), value_cache.double(), batch.block_tables,
                                     batch.context_lens, HEAD_DIM**-0.5, sliding_window=window)
    assert relative_error(out, ref) < FP32_TOLERANCE


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the unwindowed call reduces over NaN
@pytest.mark.parametrize("num_splits", [1, 2])
def test_windowed_decode_never_loads_the_tiles_before_the_window(num_splits):
    tile_tokens, _ = pipeline_config(HEAD_DIM, torch.float32)
    context_len, window = 6 * tile_tokens + 5, tile_tokens + 3
    gen, batch, key_cache, value_cache = pool_and_batch([context_len], 16, 2)
    first_visited_position = (context_len - window) // tile_tokens * tile_tokens
    reference_k, reference_v = key_cache.double(), value_cache.double()
    poison_blocks_before(key_cache, value_cache, batch, 0, first_visited_position)
    query = torch.randn((1, 4, HEAD_DIM), generator=gen)
    out = paged_decode_attention(query, key_cache, value_cache, batch.block_tables, batch.context_lens,
                                 HEAD_DIM**-0.5, num_splits=num_splits, sliding_window=window)
    ref = ref_paged_decode_attention(query.double(), reference_k, reference_v, batch.block_tables,
                                     batch.context_lens, HEAD_DIM**-0.5, sliding_window=window)
    assert relative_error(out, ref) < FP32_TOLERANCE
    # Without the window every position is read, poison included.
    assert paged_decode_attention(query, key_cache, value_cache, batch.block_tables, batch.context_lens,
                                  HEAD_DIM**-0.5, num_splits=num_splits).isnan().all()


def run_windowed_prefill(context_lens, q_lens, window, heads, block_size, poison=False):
    gen, batch, key_cache, value_cache = pool_and_batch(context_lens, block_size, heads[1])
    reference_k, reference_v = key_cache.double(), value_cache.double()
    if poison:  # blocks before the first new token's window
        tile_tokens, _ = pipeline_config(HEAD_DIM, torch.float32)
        for seq, (context_len, q_len) in enumerate(zip(context_lens, q_lens)):
            first_visited = max(context_len - q_len - window + 1, 0) // tile_tokens * tile_tokens
            poison_blocks_before(key_cache, value_cache, batch, seq, first_visited)
    query = torch.randn((sum(q_lens), heads[0], HEAD_DIM), generator=gen)
    starts = torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32)
    out = torch.full_like(query, math.nan)
    paged_prefill_attention(query, key_cache, value_cache, batch.block_tables, starts, batch.context_lens,
                            HEAD_DIM**-0.5, out=out, sliding_window=window)
    ref = ref_paged_prefill_attention(query.double(), reference_k, reference_v, batch.block_tables, starts,
                                      batch.context_lens, HEAD_DIM**-0.5, sliding_window=window)
    assert relative_error(out, ref) < FP32_TOLERANCE
    if poison:  # without the window the poison is read
        assert paged_prefill_attention(query, key_cache, value_cache, batch.block_tables, starts,
                                       batch.context_lens, HEAD_DIM**-0.5).isnan().any()


@pytest.mark.parametrize("window, heads, block_size", [
    (1, (4, 4), 16), (6, (8, 2), 4), (90, (4, 4), 16), (90, (8, 2), 4), (1000, (8, 2), 4),
])
def test_windowed_prefill_matches_the_reference(window, heads, block_size):
    # A plain prefill, a prefix hit, a one-token chunk and a chunk after a long cached prefix.
    run_windowed_prefill([150, 200, 81, 300], [150, 40, 1, 70], window, heads, block_size)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_windowed_prefill_never_loads_the_tiles_before_the_first_window():
    run_windowed_prefill([300, 260], [20, 3], 40, (4, 2), 16, poison=True)
