"""Synthetic KV pools, block tables and error metrics shared by the kernel tests and benchmarks.

Random inputs are drawn from a standard normal (never zeros: a kernel that skips work must not
pass by accident), and block tables hand out *shuffled, non-consecutive* block ids so that a
kernel which ignores the table, or assumes consecutive blocks, reads the wrong data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PagedBatch:
    """A paged layout: per-sequence block tables into a pool of ``num_blocks`` blocks."""

    block_tables: torch.Tensor  # int32 [num_seqs, max_num_blocks_per_seq], padded with 0
    context_lens: torch.Tensor  # int32 [num_seqs]
    num_blocks: int


def blocks_needed(context_lens: list[int], block_size: int) -> int:
    """Blocks a set of sequences occupies when none shares a block."""
    return sum(-(-n // block_size) for n in context_lens)


def paged_batch(
    context_lens: list[int],
    block_size: int,
    *,
    spare_blocks: int = 0,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> PagedBatch:
    """Give each sequence its own blocks out of a pool of ``needed + spare_blocks`` blocks.

    With ``shuffle`` the ids are a random permutation (non-consecutive, out of order); without,
    sequences get consecutive runs (the layout of a contiguous strategy).
    """
    per_seq = [-(-n // block_size) for n in context_lens]
    num_blocks = sum(per_seq) + spare_blocks
    ids = torch.randperm(num_blocks, generator=generator) if shuffle else torch.arange(num_blocks)
    width = max([1, *per_seq])
    tables = torch.zeros((len(context_lens), width), dtype=torch.int32)
    taken = 0
    for seq, count in enumerate(per_seq):
        tables[seq, :count] = ids[taken : taken + count].to(torch.int32)
        taken += count
    return PagedBatch(
        block_tables=tables.to(device),
        context_lens=torch.tensor(context_lens, dtype=torch.int32, device=device),
        num_blocks=num_blocks,
    )


def random_kv_pool(
    num_blocks: int,
    block_size: int,
    num_kv_heads: int,
    head_dim: int,
    *,
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Key and value pools ``[num_blocks, block_size, num_kv_heads, head_dim]`` of N(0, 1).

    A (CPU) ``generator`` makes the draw reproducible across devices; without one the values are
    drawn directly on ``device``, which keeps multi-GB benchmark pools fast to build.
    """
    shape = (num_blocks, block_size, num_kv_heads, head_dim)

    def draw() -> torch.Tensor:
        if generator is None:
            return torch.empty(shape, dtype=dtype, device=device).normal_()
        return torch.randn(shape, generator=generator).to(device=device, dtype=dtype)

    return draw(), draw()


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """``||out - ref|| / ||ref||`` in float64 (NaN anywhere in ``out`` gives NaN)."""
    out64 = out.detach().to(torch.float64).cpu()
    ref64 = ref.detach().to(torch.float64).cpu()
    return float((out64 - ref64).norm() / ref64.norm())
