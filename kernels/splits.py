"""How many split-K partitions a decode launch uses (flash-decoding).

Decode attention launches one program per (sequence, KV head). With a small batch that is too
few programs to occupy the GPU, and each one streams a long context alone. Split-K cuts every
sequence's context into ``num_splits`` runs of whole tiles, computes them in parallel (each
writes a normalised partial output and its log-sum-exp), and a small reduction kernel combines
them. The split costs an fp32 partial output per (query head, split): the policy below only
splits when programs are scarce and keeps each split long enough that this extra traffic stays
small next to the K/V bytes the split reads.

Pure Python (no triton) so executors can reason about launches on any platform.
"""

from __future__ import annotations

import functools
import math

import torch

# A split streams at least this many tokens: per KV head it reads 2*256*head_dim cache elements
# and writes group_size*head_dim fp32 partials, so the partials stay a few percent of the traffic.
MIN_TOKENS_PER_SPLIT = 256
# Upper bound on splits; also bounds the reduction kernel's tile.
MAX_SPLITS = 64
# Decode programs resident per SM (4 warps, a few pipelined K/V tiles each): the device runs
# PROGRAMS_PER_SM * num_sms programs at once, a "wave".
PROGRAMS_PER_SM = 2
# Splitting pays off only while the unsplit launch fills less than this fraction of a wave.
FULL_WAVE_FRACTION = 0.8
# Among split factors, take the smallest whose wave efficiency is within this factor of the best.
EFFICIENCY_SLACK = 0.85


def choose_num_splits(num_seqs: int, num_kv_heads: int, max_context_len: int, num_sms: int) -> int:
    """Pick the split-K factor for a decode launch of ``num_seqs * num_kv_heads`` programs.

    1 (no split, no reduction kernel) when those programs already fill most of a wave of
    ``PROGRAMS_PER_SM * num_sms``. Otherwise, like FlashAttention-2's split heuristic, each
    factor ``s`` is scored by its wave efficiency ``waves / ceil(waves)`` with ``waves =
    programs * s / wave`` (a launch of 1.05 waves wastes most of its second wave), and the smallest
    ``s`` within ``EFFICIENCY_SLACK`` of the best wins: fewer splits mean fewer partials to
    reduce. ``s`` is capped so every split covers at least ``MIN_TOKENS_PER_SPLIT`` tokens of
    the longest context, and at ``MAX_SPLITS``.
    """
    if min(num_seqs, num_kv_heads, num_sms) < 1:
        raise ValueError("num_seqs, num_kv_heads and num_sms must be positive")
    programs = num_seqs * num_kv_heads
    wave = PROGRAMS_PER_SM * num_sms
    if programs >= FULL_WAVE_FRACTION * wave:
        return 1
    max_splits = max(1, min(MAX_SPLITS, max_context_len // MIN_TOKENS_PER_SPLIT))

    def efficiency(splits: int) -> float:
        waves = programs * splits / wave
        return waves / math.ceil(waves)

    best = max(efficiency(s) for s in range(1, max_splits + 1))
    return next(s for s in range(1, max_splits + 1) if efficiency(s) >= EFFICIENCY_SLACK * best)


def device_parallelism(device: torch.device) -> int:
    """Number of SMs on a CUDA device; 1 elsewhere (the interpreter runs programs one by one)."""
    if device.type == "cuda":
        return _sm_count(torch.device(device).index or torch.cuda.current_device())
    return 1


@functools.cache
def _sm_count(device_index: int) -> int:
    # Cached: decode launches ask on every call and the answer never changes.
    return torch.cuda.get_device_properties(device_index).multi_processor_count
