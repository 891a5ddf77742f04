"""`paged`: vLLM's PagedAttention. A sequence gets a block when it crosses a block boundary.

Without sharing, a fork (parallel sampling, beam search) copies every block of the parent at once;
`paged_cow` and `paged_prefix` share instead. The copy-on-write path lives here because it is part
of the block mechanism: it simply never triggers until a subclass lets two tables hold one block.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvbench.strategies.base import KVCacheStrategy, PoolSnapshot, PoolUsage, SeqView, StrategyConfig
from kvbench.strategies.block_pool import Block, BlockPool
from kvbench.strategies.registry import register
from kvbench.tokens import TokenSequence


@dataclass
class PagedConfig(StrategyConfig):
    name: str = "paged"


class SeqBlocks:
    """A live sequence's blocks and what the strategy knows of its length."""

    __slots__ = (
        "blocks", "num_tokens", "num_scheduled_tokens", "final_num_kv_tokens", "stream", "num_cached_blocks",
        "num_inherited_tokens",
    )

    def __init__(self, blocks: list[Block], num_tokens: int, final_num_kv_tokens: int, stream: TokenSequence):
        self.blocks = blocks
        self.num_tokens = num_tokens  # synced length
        self.num_scheduled_tokens = num_tokens  # the end of what the last call made room for
        # Leading tokens it shares rather than wrote (a prefix hit, a fork): another sequence writes
        # them, possibly in the same step.
        self.num_inherited_tokens = num_tokens
        self.final_num_kv_tokens = final_num_kv_tokens
        self.stream = stream
        self.num_cached_blocks = 0  # prefix caching: leading blocks registered in the cache map


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@register("paged", PagedConfig)
class PagedStrategy(KVCacheStrategy):
    def __init__(self, config: StrategyConfig, num_blocks: int, max_model_len: int):
        super().__init__(config, num_blocks, max_model_len)
        self.pool = BlockPool(num_blocks, self.block_size)
        self._seqs: dict[int, SeqBlocks] = {}
        self._num_logical_blocks = 0

    # -- hooks for subclasses ------------------------------------------------------------------

    def _lookup_prefix(self, seq: SeqView, max_num_blocks: int) -> list[Block]:
        """Cached blocks holding the leading content of `stream` (none without prefix caching)."""
        return []

    def _register_full_blocks(self, seq_id: int, state: SeqBlocks, num_tokens: int) -> None:
        """Make the blocks that `num_tokens` tokens fill findable by content (prefix caching)."""

    # -- the interface ---------------------------------------------------------------------------

    def cached_prefix_tokens(self, seq: SeqView, num_tokens: int) -> int:
        return len(self._lookup_prefix(seq, (num_tokens - 1) // self.block_size)) * self.block_size

    def allocate(self, seq: SeqView, num_computed_tokens: int, num_new_tokens: int) -> bool:
        bs = self.block_size
        num_total_tokens = num_computed_tokens + num_new_tokens
        state = self._seqs.get(seq.seq_id)
        if state is None:
            hits = self._lookup_prefix(seq, num_computed_tokens // bs)
            if len(hits) * bs != num_computed_tokens:
                raise ValueError(
                    f"seq {seq.seq_id}: num_computed_tokens={num_computed_tokens} is not its cached prefix "
                    f"({len(hits) * bs} tokens)"
                )
            num_needed = ceil_div(num_total_tokens, bs) - len(hits)
            if not self._fits_new(hits, num_needed):
                return False
            for block in hits:
                self.pool.touch(block)
            state = SeqBlocks(list(hits), num_computed_tokens, seq.final_num_kv_tokens, seq.stream)
            self._seqs[seq.seq_id] = state
            self._num_logical_blocks += len(hits)
            state.num_cached_blocks = len(hits)
        else:
            idx = num_computed_tokens // bs
            copy_on_write = (
                num_new_tokens > 0
                and num_computed_tokens % bs != 0
                and idx < len(state.blocks)
                and state.blocks[idx].ref_cnt > 1
            )
            num_needed = max(0, ceil_div(num_total_tokens, bs) - len(state.blocks)) + copy_on_write
            if num_needed > self.pool.num_free_blocks:
                return False
            if num_computed_tokens != state.num_tokens:
                self._sync(state, num_computed_tokens)
            if copy_on_write:
                self._copy_on_write(state, idx)
            num_needed -= copy_on_write
        self._append_blocks(state, num_needed)
        state.num_scheduled_tokens = num_total_tokens
        self._register_full_blocks(seq.seq_id, state, num_total_tokens)
        return True

    def can_hold(self, seq: SeqView, num_computed_tokens: int, num_tokens: int) -> bool:
        hits = self._lookup_prefix(seq, num_computed_tokens // self.block_size)
        return self._fits_new(hits, ceil_div(num_tokens, self.block_size) - len(hits))

    def _fits_new(self, hits: list[Block], num_new_blocks: int) -> bool:
        """Whether a new sequence reusing `hits` and taking `num_new_blocks` more fits: cached hits
        that are free now leave the free queue, so they count against it too."""
        num_reviving = sum(1 for block in hits if block.ref_cnt == 0)
        return num_new_blocks <= self.pool.num_free_blocks - num_reviving

    def headroom(self, seq_id: int) -> int:
        """Up to the capacity, unless the first position after the last call's tokens lies in a block
        shared by a fork (it must be copied first): then only up to there."""
        state = self._seqs[seq_id]
        scheduled = state.num_scheduled_tokens
        capacity = len(state.blocks) * self.block_size
        if scheduled < capacity:
            block = state.blocks[scheduled // self.block_size]
            if block.ref_cnt > 1 and block.cache_key is None:
                return scheduled - state.num_tokens
        return capacity - state.num_tokens

    def fork(self, parent_id: int, child: SeqView, num_computed_tokens: int) -> bool:
        """Without sharing, the child gets a copy of every block the parent's tokens fill."""
        parent = self._seqs[parent_id]
        num_blocks = ceil_div(num_computed_tokens, self.block_size)
        if num_blocks > self.pool.num_free_blocks:
            return False
        self._sync(parent, num_computed_tokens)
        state = SeqBlocks([], 0, child.final_num_kv_tokens, child.stream)
        self._seqs[child.seq_id] = state
        self._append_blocks(state, num_blocks)
        self._sync(state, num_computed_tokens)  # the copies hold the parent's tokens
        self._log_copies((src.block_id, dst.block_id) for src, dst in zip(parent.blocks, state.blocks))
        self.counters.fork_copied_blocks += num_blocks
        return True

    def free(self, seq_id: int, num_computed_tokens: int) -> None:
        state = self._seqs.pop(seq_id)
        self._sync(state, num_computed_tokens)
        self._register_full_blocks(seq_id, state, num_computed_tokens)
        self._num_logical_blocks -= len(state.blocks)
        if self.pool.release(reversed(state.blocks)):
            self.admission_epoch += 1

    def block_table(self, seq_id: int) -> list[int]:
        return [block.block_id for block in self._seqs[seq_id].blocks]

    def usage(self) -> PoolUsage:
        bs = self.block_size
        pool = self.pool
        held_slots = pool.num_held_blocks * bs
        cached_slots = pool.num_cached_free_blocks * bs
        return PoolUsage(
            pool_slots=self.pool_slots,
            token_slots=pool.token_slots,
            reserved_slots=pool.reserved_slots,
            internal_frag_slots=held_slots - pool.token_slots - pool.reserved_slots,
            external_frag_slots=0,
            free_slots=pool.num_free_blocks * bs - cached_slots,
            cached_slots=cached_slots,
            logical_slots=self._num_logical_blocks * bs,
        )

    def max_seq_kv_tokens(self) -> int:
        return self.pool_slots

    def snapshot(self) -> PoolSnapshot:
        return PoolSnapshot(
            block_size=self.block_size,
            num_blocks=self.num_blocks,
            tables={sid: [b.block_id for b in s.blocks] for sid, s in self._seqs.items()},
            num_tokens={sid: s.num_tokens for sid, s in self._seqs.items()},
            final_num_kv_tokens={sid: s.final_num_kv_tokens for sid, s in self._seqs.items()},
            num_inherited_tokens={sid: s.num_inherited_tokens for sid, s in self._seqs.items()},
            ref_cnt=[b.ref_cnt for b in self.pool.blocks],
            free_queue=self.pool.free_queue.block_ids(),
            cached={b.block_id for b in self.pool.cached_blocks() if b.ref_cnt == 0},
            registered={b.block_id for b in self.pool.cached_blocks()},
        )

    # -- mechanics -------------------------------------------------------------------------------

    def _reserve_end(self, state: SeqBlocks, block_index: int) -> int:
        """Slots of this block that the sequence will still write by the time it finishes."""
        return min(self.block_size, max(0, state.final_num_kv_tokens - block_index * self.block_size))

    def _append_blocks(self, state: SeqBlocks, num_blocks: int) -> None:
        if not num_blocks:
            return
        bs = self.block_size
        start = len(state.blocks) * bs
        reserved_slots = 0
        for block in self.pool.take_new(num_blocks):  # fresh: no tokens, reserved up to the final length
            block.reserve_end = min(bs, max(0, state.final_num_kv_tokens - start))
            reserved_slots += block.reserve_end
            state.blocks.append(block)
            start += bs
        self.pool.reserved_slots += reserved_slots
        self._num_logical_blocks += num_blocks

    def _sync(self, state: SeqBlocks, num_tokens: int) -> None:
        """Record tokens the sequence wrote into its own blocks since it last told us.

        They went into reserved slots (a sequence never writes past its final length), so each
        moves from reserved to token; shared blocks are never written (copy-on-write comes first).
        """
        bs = self.block_size
        if num_tokens < state.num_tokens:
            raise ValueError(f"a sequence cannot shrink ({state.num_tokens} -> {num_tokens} tokens)")
        num_written = 0
        blocks = state.blocks
        for i in range(state.num_tokens // bs, ceil_div(num_tokens, bs)):
            block = blocks[i]
            fill = min(bs, num_tokens - i * bs)
            if fill != block.num_tokens:
                # A shared block is written only by the sequence computing it while others already
                # reuse it through the prefix cache (admitted in the same step); a block shared by
                # a fork is copied before any write.
                assert block.ref_cnt == 1 or block.cache_key is not None, f"write into shared block {block.block_id}"
                assert fill <= block.reserve_end, f"write past the reservation of block {block.block_id}"
                num_written += fill - block.num_tokens
                block.num_tokens = fill
        self.pool.token_slots += num_written
        self.pool.reserved_slots -= num_written
        state.num_tokens = num_tokens
        state.num_scheduled_tokens = max(state.num_scheduled_tokens, num_tokens)

    def _copy_on_write(self, state: SeqBlocks, block_index: int) -> None:
        shared = state.blocks[block_index]
        (copy,) = self.pool.take_new(1)
        self.pool.set_fill(copy, state.num_tokens - block_index * self.block_size, self._reserve_end(state, block_index))
        state.blocks[block_index] = copy
        self.pool.release([shared])  # still held by the other sharers
        self._log_copies([(shared.block_id, copy.block_id)])
        self.counters.cow_copies += 1
