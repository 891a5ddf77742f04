"""One step's inputs in the kernels' layout, built on the host and moved to the device at once.

The packed tokens are every prefill chunk (sequence by sequence), then one token per decoding
sequence. A token at position `p` of a sequence goes to slot `table[p // block_size] *
block_size + p % block_size`; each sequence's block table is cut to the blocks its context
covers and padded with block 0 to a width that is a multiple of 16 (Triton specialises integer
arguments divisible by 16, so the table stride never triggers a recompile).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

# Block-table widths are rounded up to this (see the module docstring).
TABLE_WIDTH_MULTIPLE = 16


@dataclass
class StepInputs:
    token_ids: np.ndarray  # int64 [num_tokens]
    positions: np.ndarray  # int64 [num_tokens]
    slot_mapping: np.ndarray  # int64 [num_tokens]
    prefill_block_tables: np.ndarray  # int32 [num_prefill_seqs, width]
    prefill_query_start_loc: np.ndarray  # int32 [num_prefill_seqs + 1]
    prefill_context_lens: np.ndarray  # int32 [num_prefill_seqs], cached prefix + new tokens
    decode_block_tables: np.ndarray  # int32 [num_decode_seqs, width]
    decode_context_lens: np.ndarray  # int32 [num_decode_seqs], the new token included
    sample_rows: np.ndarray  # int64 [num_sampled]: packed rows whose logits give a next token
    block_copies: list[tuple[int, int]]  # (src, dst) block copies to apply before attention

    @property
    def num_prefill_tokens(self) -> int:
        return int(self.prefill_query_start_loc[-1])

    @property
    def max_query_len(self) -> int:
        return int(np.diff(self.prefill_query_start_loc).max(initial=0))

    @property
    def max_decode_context_len(self) -> int:
        return int(self.decode_context_lens.max(initial=0))

    def to(self, device: torch.device) -> DeviceStepInputs:
        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(array).to(device)

        groups = [
            (tensor(np.array(src, dtype=np.int64)), tensor(np.array(dst, dtype=np.int64)))
            for src, dst in copy_groups(self.block_copies)
        ]
        return DeviceStepInputs(
            token_ids=tensor(self.token_ids),
            positions=tensor(self.positions),
            slot_mapping=tensor(self.slot_mapping),
            prefill_block_tables=tensor(self.prefill_block_tables),
            prefill_query_start_loc=tensor(self.prefill_query_start_loc),
            prefill_context_lens=tensor(self.prefill_context_lens),
            decode_block_tables=tensor(self.decode_block_tables),
            decode_context_lens=tensor(self.decode_context_lens),
            sample_rows=tensor(self.sample_rows),
            copy_groups=groups,
            num_prefill_tokens=self.num_prefill_tokens,
            max_query_len=self.max_query_len,
            max_decode_context_len=self.max_decode_context_len,
        )


@dataclass
class DeviceStepInputs:
    """StepInputs as device tensors, with the host integers the kernels take as launch hints."""

    token_ids: torch.Tensor
    positions: torch.Tensor
    slot_mapping: torch.Tensor
    prefill_block_tables: torch.Tensor
    prefill_query_start_loc: torch.Tensor
    prefill_context_lens: torch.Tensor
    decode_block_tables: torch.Tensor
    decode_context_lens: torch.Tensor
    sample_rows: torch.Tensor
    copy_groups: list[tuple[torch.Tensor, torch.Tensor]]  # (src ids, dst ids), applied in order
    num_prefill_tokens: int
    max_query_len: int
    max_decode_context_len: int


def copy_groups(copies: Sequence[tuple[int, int]]) -> list[tuple[list[int], list[int]]]:
    """Split block copies, kept in order, into groups the copy kernel may run in parallel.

    Its pairs run at once, so within a group no destination may repeat or be another pair's
    source. A pair that would break that starts a new group: groups run one after the other,
    which keeps the order's meaning (a block freed and reused as a destination after it was
    copied from still gives its old content to the earlier copy).
    """
    groups: list[tuple[list[int], list[int]]] = []
    srcs: set[int] = set()
    dsts: set[int] = set()
    for src, dst in copies:
        if not groups or src in dsts or dst in dsts or dst in srcs:
            groups.append(([], []))
            srcs, dsts = set(), set()
        groups[-1][0].append(src)
        groups[-1][1].append(dst)
        srcs.add(src)
        dsts.add(dst)
    return groups


def _padded_tables(rows: list[np.ndarray]) -> np.ndarray:
    width = max((len(row) for row in rows), default=0)
    width = -(-width // TABLE_WIDTH_MULTIPLE) * TABLE_WIDTH_MULTIPLE
    tables = np.zeros((len(rows), width), dtype=np.int32)
    for i, row in enumerate(rows):
        tables[i, : len(row)] = row
    return tables


class StepInputsBuilder:
    """Collects a step's prefill chunks and decodes, then packs them into a StepInputs."""

    def __init__(self, block_size: int):
        self.block_size = block_size
        self._prefill_ids: list[np.ndarray] = []
        self._prefill_starts: list[int] = []
        self._prefill_tables: list[np.ndarray] = []
        self._prefill_sampled: list[bool] = []
        self._decode_ids: list[int] = []
        self._decode_positions: list[int] = []
        self._decode_tables: list[np.ndarray] = []

    def _table(self, block_table: Sequence[int], context_len: int, what: str) -> np.ndarray:
        num_blocks = -(-context_len // self.block_size)
        if len(block_table) < num_blocks:
            raise ValueError(
                f"{what}: its block table holds {len(block_table)} blocks, fewer than its {context_len} "
                f"tokens need ({num_blocks} of {self.block_size})"
            )
        return np.asarray(block_table[:num_blocks], dtype=np.int32)

    def add_prefill(
        self, token_ids: np.ndarray, num_computed_tokens: int, block_table: Sequence[int], sample: bool, what: str
    ) -> None:
        """Tokens [num_computed_tokens, + len(token_ids)) of a sequence; `sample`: its last one
        gives the next token. `what` names the sequence in errors."""
        context_len = num_computed_tokens + len(token_ids)
        self._prefill_ids.append(np.asarray(token_ids, dtype=np.int64))
        self._prefill_starts.append(num_computed_tokens)
        self._prefill_tables.append(self._table(block_table, context_len, what))
        self._prefill_sampled.append(sample)

    def add_decode(self, token_id: int, position: int, block_table: Sequence[int], what: str) -> None:
        self._decode_ids.append(token_id)
        self._decode_positions.append(position)
        self._decode_tables.append(self._table(block_table, position + 1, what))

    def build(self, block_copies: list[tuple[int, int]]) -> StepInputs:
        bs = self.block_size
        q_lens = np.array([len(ids) for ids in self._prefill_ids], dtype=np.int64)
        query_start_loc = np.zeros(len(q_lens) + 1, dtype=np.int32)
        np.cumsum(q_lens, out=query_start_loc[1:])
        prefill_positions = [start + np.arange(len(ids)) for start, ids in zip(self._prefill_starts, self._prefill_ids)]
        prefill_slots = [
            table[pos // bs].astype(np.int64) * bs + pos % bs
            for table, pos in zip(self._prefill_tables, prefill_positions)
        ]
        decode_positions = np.array(self._decode_positions, dtype=np.int64)
        decode_tables = _padded_tables(self._decode_tables)
        decode_blocks = decode_tables[np.arange(len(decode_positions)), decode_positions // bs].astype(np.int64)
        num_prefill_tokens = int(query_start_loc[-1])
        prefill_sample_rows = query_start_loc[1:][np.array(self._prefill_sampled, dtype=bool)] - 1
        return StepInputs(
            token_ids=np.concatenate([*self._prefill_ids, np.array(self._decode_ids, dtype=np.int64)]),
            positions=np.concatenate([*prefill_positions, decode_positions]).astype(np.int64),
            slot_mapping=np.concatenate([*prefill_slots, decode_blocks * bs + decode_positions % bs]).astype(np.int64),
            prefill_block_tables=_padded_tables(self._prefill_tables),
            prefill_query_start_loc=query_start_loc,
            prefill_context_lens=(np.array(self._prefill_starts, dtype=np.int64) + q_lens).astype(np.int32),
            decode_block_tables=decode_tables,
            decode_context_lens=(decode_positions + 1).astype(np.int32),
            sample_rows=np.concatenate(
                [prefill_sample_rows.astype(np.int64), num_prefill_tokens + np.arange(len(decode_positions))]
            ).astype(np.int64),
            block_copies=list(block_copies),
        )
