"""The paged family's sequences: a block table per sequence over a shared BlockPool.

The mechanism every paged strategy composes (paged, paged_cow, paged_prefix, and plugins): admit a
sequence (with the cached blocks it hit), grow it block by block, fork it by copying or by sharing,
copy a shared block before the first write into it (copy-on-write), drop it, and report usage and
a snapshot. Policy (whether forks share, whether content is cached) stays in the strategies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from operator import attrgetter

from kvbench.strategies.base import PoolSnapshot, PoolUsage, SeqView, ceil_div
from kvbench.strategies.block_pool import Block, BlockPool
from kvbench.strategies.eviction import LRUFreeQueue
from kvbench.tokens import TokenSequence

_REF_CNT = attrgetter("ref_cnt")


class SeqBlocks:
    """A live sequence's blocks and what the strategy knows of its length."""

    __slots__ = (
        "blocks", "num_tokens", "num_scheduled_tokens", "final_num_kv_tokens", "stream", "num_cached_blocks",
        "num_inherited_tokens", "chain", "decode_base", "order", "run",
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
        # Prefix caching's (paged_prefix.py): leading blocks registered in the cache map, the
        # sequence's KeyChain, `num_computed_tokens - tick` while it decodes (it writes position
        # decode_base + t at tick t; None otherwise) and (admission, seq_id), the order it decodes in.
        self.num_cached_blocks = 0
        self.chain = None
        self.decode_base: int | None = None
        self.order: tuple[int, int] | None = None
        # Its PendingRun while the blocks it fills are registered without being filed (prefix_index.py).
        self.run = None


class PagedTables:
    def __init__(self, pool: BlockPool, counters: dict[str, int], log_copies: Callable[[Iterable[tuple[int, int]]], None]):
        self.pool = pool
        self.block_size = pool.block_size
        self.seqs: dict[int, SeqBlocks] = {}
        self.num_logical_blocks = 0
        self._counters = counters
        self._log_copies = log_copies

    def fits(self, hits: list[Block], num_total_tokens: int) -> bool:
        """Whether a new sequence holding the cached blocks `hits`, with room up to
        `num_total_tokens`, fits now: cached hits that are free leave the free blocks too."""
        num_reviving = sum(1 for block in hits if block.ref_cnt == 0)
        num_needed = ceil_div(num_total_tokens, self.block_size) - len(hits)
        return num_needed <= self.pool.num_free_blocks - num_reviving

    def admit(self, seq: SeqView, hits: list[Block], num_total_tokens: int) -> SeqBlocks | None:
        """A new sequence holding the cached blocks `hits`, with room up to `num_total_tokens`."""
        bs = self.block_size
        if not hits:
            # Most admissions hit nothing (every one of plain paged): `fits` and `_append_blocks`
            # written out, as admission runs once per request.
            num_blocks = -(-num_total_tokens // bs)
            pool = self.pool
            if num_blocks > pool.num_free_blocks:
                return None
            final_num_kv_tokens = seq.final_num_kv_tokens
            blocks = pool.take_reserved(num_blocks, final_num_kv_tokens) if num_blocks else []
            state = self.seqs[seq.seq_id] = SeqBlocks(blocks, 0, final_num_kv_tokens, seq.stream)
            self.num_logical_blocks += num_blocks
            state.num_scheduled_tokens = num_total_tokens
            return state
        if not self.fits(hits, num_total_tokens):
            return None
        for block in hits:
            self.pool.touch(block)
        state = SeqBlocks(list(hits), len(hits) * bs, seq.final_num_kv_tokens, seq.stream)
        self.seqs[seq.seq_id] = state
        self.num_logical_blocks += len(hits)
        state.num_cached_blocks = len(hits)
        self._append_blocks(state, ceil_div(num_total_tokens, bs) - len(hits))
        state.num_scheduled_tokens = num_total_tokens
        return state

    def grow(self, state: SeqBlocks, num_computed_tokens: int, num_new_tokens: int) -> bool:
        """Room for `num_new_tokens` more after `num_computed_tokens`, copying a shared block first."""
        # The hot path of every paged strategy (once per block boundary of every decoding sequence):
        # arithmetic inlined, no call when nothing is needed.
        bs = self.block_size
        blocks = state.blocks
        num_blocks = len(blocks)
        idx = num_computed_tokens // bs
        copy_on_write = (
            num_new_tokens > 0 and idx < num_blocks and num_computed_tokens % bs != 0 and blocks[idx].ref_cnt > 1
        )
        num_needed = -(-(num_computed_tokens + num_new_tokens) // bs) - num_blocks
        if num_needed < 0:
            num_needed = 0
        if num_needed + copy_on_write > self.pool.num_free_blocks:
            return False
        if num_computed_tokens != state.num_tokens:
            self.sync(state, num_computed_tokens)
        if copy_on_write:
            self._copy_on_write(state, idx)
        if num_needed:
            self._append_blocks(state, num_needed)
        state.num_scheduled_tokens = num_computed_tokens + num_new_tokens
        return True

    def grow_one(self, state: SeqBlocks, num_computed_tokens: int) -> int | None:
        """`grow(state, num_computed_tokens, 1)` then `headroom(state)` (None when refused): a decoding
        sequence at a block boundary, handled in one step (`grow_decodes` does it for a whole batch)."""
        bs = self.block_size
        blocks = state.blocks
        num_blocks = len(blocks)
        pool = self.pool
        if num_computed_tokens != num_blocks * bs:  # not exactly at the end of its last block
            idx = num_computed_tokens // bs
            if idx >= num_blocks or blocks[idx].ref_cnt != 1:  # more than one block, or a copy first
                return self.headroom(state) if self.grow(state, num_computed_tokens, 1) else None
            if num_computed_tokens != state.num_tokens:  # inside its own block: nothing to take
                self.sync(state, num_computed_tokens)
            state.num_scheduled_tokens = num_computed_tokens + 1
            return self.headroom(state)
        if not pool.num_free_blocks:
            return None
        if num_computed_tokens != state.num_tokens:
            self.sync(state, num_computed_tokens)
        blocks += pool.take_reserved(1, state.final_num_kv_tokens - num_computed_tokens)
        self.num_logical_blocks += 1
        state.num_scheduled_tokens = num_computed_tokens + 1
        return bs  # its own fresh block: nothing shared to copy first

    def grow_decodes(self, batch: list[tuple[SeqView, int]]) -> list[int]:
        """`grow_one` for each held (seq, num_computed_tokens) in order, up to the first refusal:
        the headrooms granted (KVCacheStrategy.allocate_decodes for the paged family).

        Almost every call is a decoding sequence that has just filled its last block: the block is
        synced full and a fresh one appended, written out here (one pass, no call) because the
        simulator does it once per block of every output; the pool's counts are updated once per
        call. Anything else (a position inside a block, which may need a copy first, or no free
        block) takes `grow_one`, with the pool's counts brought up to date first.
        """
        bs = self.block_size
        pool = self.pool
        seqs = self.seqs
        headrooms = [bs] * len(batch)  # a fresh block of its own each: nothing shared to copy first
        num_taken = num_written = num_reserved = 0  # not yet in the pool's counts
        # The pool's free blocks, read here rather than through a BlockPool method: a call per block
        # boundary costs as much as the rest of the take (see BlockPool.take_reserved).
        reusable = pool._reusable
        queue = pool.free_queue
        pop = queue.pop
        # Once every block has been used, LRUFreeQueue's freed blocks are taken here too (a call
        # per block costs as much again); counted off the policy's count with the pool's.
        freed = queue.freed_once_all_used if type(queue) is LRUFreeQueue else None
        num_freed_taken = 0
        # The pool's free count as of the last flush: nothing in the one-pass case below changes it
        # (a sync moves slots, an eviction moves a cached block), so it is read once, not per block.
        num_free = pool.num_free_blocks
        # Once a prefix-caching pool has cycled, every block taken evicts a cached one: with no
        # content held twice and no tier to write it to, that is dropping its entry, done here and
        # counted once per call too (BlockPool._evict otherwise).
        cached, pending_runs = pool.cached, pool.pending_runs
        evict_here = pool.evicts_plainly and not pool._twins
        num_evicted = 0
        for i, (seq, num_computed_tokens) in enumerate(batch):
            state = seqs[seq.seq_id]
            blocks = state.blocks
            if num_computed_tokens != len(blocks) * bs or num_taken == num_free:
                pool.num_free_blocks = num_free - num_taken
                pool.token_slots += num_written
                pool.reserved_slots += num_reserved - num_written
                self.num_logical_blocks += num_taken
                if num_evicted:
                    pool.count_evictions(num_evicted)
                queue.num_blocks -= num_freed_taken
                num_taken = num_written = num_reserved = num_evicted = num_freed_taken = 0
                headroom = self.grow_one(state, num_computed_tokens)
                num_free = pool.num_free_blocks
                if headroom is None:
                    del headrooms[i:]
                    break
                headrooms[i] = headroom
                continue
            num_unsynced = num_computed_tokens - state.num_tokens
            if 0 < num_unsynced <= bs:  # written into its last block only
                last = blocks[-1]
                # What `sync` asserts: nobody else holds it (a fork's share is copied before a
                # write), and the sequence writes it whole (it was reserved up to its end).
                assert last.ref_cnt == 1 or last.cache_key is not None, f"write into shared block {last.block_id}"
                assert last.reserve_end == bs, f"write past the reservation of block {last.block_id}"
                last.num_tokens = bs
                num_written += num_unsynced
                state.num_tokens = num_computed_tokens
            elif num_unsynced:  # blocks ago: its prompt, computed before its first decode
                self.sync(state, num_computed_tokens)
            state.num_scheduled_tokens = num_computed_tokens + 1
            # BlockPool.take_reserved for one block, its counts added up above.
            if reusable:
                block = reusable.popleft()
            elif freed is not None:
                block = freed.popleft()
                if block.num_stale_entries:
                    block = queue.skip_stale(block)
                num_freed_taken += 1
            else:
                block = pop()
            if block.cache_key is not None:
                if evict_here:
                    map_key = block.map_key
                    if map_key is not None:
                        del cached[map_key]
                        block.map_key = None
                    else:  # registered, not filed: BlockPool._unpend written out
                        run = block.cache_key
                        run.num_pending -= 1
                        if not run.num_pending:
                            del pending_runs[run.first_hash]
                    block.cache_key = None
                    num_evicted += 1
                else:
                    pool._evict(block)
            num_to_write = state.final_num_kv_tokens - num_computed_tokens
            block.reserve_end = reserve_end = bs if num_to_write > bs else (num_to_write if num_to_write > 0 else 0)
            block.ref_cnt = 1
            block.num_tokens = 0
            num_reserved += reserve_end
            blocks.append(block)
            num_taken += 1
        pool.num_free_blocks = num_free - num_taken
        pool.token_slots += num_written
        pool.reserved_slots += num_reserved - num_written
        self.num_logical_blocks += num_taken
        if num_evicted:
            pool.count_evictions(num_evicted)
        queue.num_blocks -= num_freed_taken
        return headrooms

    def headroom(self, state: SeqBlocks) -> int:
        """Up to the capacity, unless the first position after the last call's tokens lies in a block
        shared by a fork (it must be copied first): then only up to there."""
        scheduled = state.num_scheduled_tokens
        capacity = len(state.blocks) * self.block_size
        if scheduled < capacity:
            block = state.blocks[scheduled // self.block_size]
            if block.ref_cnt > 1 and block.cache_key is None:
                return scheduled - state.num_tokens
        return capacity - state.num_tokens

    def fork_copied(self, parent_id: int, child: SeqView, num_computed_tokens: int) -> SeqBlocks | None:
        """The child gets a copy of every block the parent's tokens fill (no sharing)."""
        parent = self.seqs[parent_id]
        num_blocks = ceil_div(num_computed_tokens, self.block_size)
        if num_blocks > self.pool.num_free_blocks:
            return None
        self.sync(parent, num_computed_tokens)
        state = SeqBlocks([], 0, child.final_num_kv_tokens, child.stream)
        self.seqs[child.seq_id] = state
        self._append_blocks(state, num_blocks)
        self.sync(state, num_computed_tokens)  # the copies hold the parent's tokens
        self._log_copies((src.block_id, dst.block_id) for src, dst in zip(parent.blocks, state.blocks))
        self._counters["fork_copied_blocks"] += num_blocks
        return state

    def fork_shared(self, parent_id: int, child: SeqView, num_computed_tokens: int) -> SeqBlocks:
        """The child shares every block the parent's tokens fill; the first write copies (never fails)."""
        parent = self.seqs[parent_id]
        self.sync(parent, num_computed_tokens)
        shared = parent.blocks[: ceil_div(num_computed_tokens, self.block_size)]
        for block in shared:
            self.pool.touch(block)
        state = SeqBlocks(list(shared), num_computed_tokens, child.final_num_kv_tokens, child.stream)
        state.num_cached_blocks = parent.num_cached_blocks  # registered blocks are full, so shared
        self.seqs[child.seq_id] = state
        self.num_logical_blocks += len(shared)
        return state

    def drop(self, seq_id: int, num_computed_tokens: int) -> SeqBlocks:
        """Forget a sequence (synced to its final length); `release` then frees its blocks."""
        state = self.seqs.pop(seq_id)
        self.sync(state, num_computed_tokens)
        return state

    def release(self, state: SeqBlocks) -> bool:
        """Drop a dropped sequence's references, tail first. Whether a block became free."""
        self.num_logical_blocks -= len(state.blocks)
        return self.pool.release(reversed(state.blocks))

    def release_registered(self, state: SeqBlocks, unshared: bool = False) -> bool:
        """`release` for a dropped sequence whose blocks holding a cache entry are its first
        `num_cached_blocks` (paged_prefix keeps them so: PrefixIndex.register). One that inherited
        nothing and that nobody shares (every reference its own: almost every request) is released
        as `free_sole` releases one, its slots following from its synced and final lengths. Nobody
        shares it when the caller says so (`unshared`), or when no block has another reference."""
        blocks = state.blocks
        if state.num_inherited_tokens or not (unshared or sum(map(_REF_CNT, blocks)) == len(blocks)):
            return self.release(state)
        num_blocks = len(blocks)
        num_synced = state.num_tokens
        num_reserve_end_slots = min(num_blocks * self.block_size, max(0, state.final_num_kv_tokens))
        self.num_logical_blocks -= num_blocks
        self.pool.release_sole(blocks, num_synced, num_reserve_end_slots - num_synced, state.num_cached_blocks)
        return num_blocks > 0

    def free_sole(self, seq_id: int, num_computed_tokens: int) -> bool:
        """`release(drop(seq_id, num_computed_tokens))` for a sequence that alone holds each of its
        blocks, none cached and none inherited (every sequence of plain `paged`, which shares
        nothing). Whether a block became free.

        Every request passes here once, with about twenty blocks, so what its blocks hold is not
        summed block by block: their tokens are its synced length (blocks hold the tokens synced
        into them, and it wrote all of them), and each block was reserved, when it was taken, up to
        the sequence's final length from the block's start, so together they reserve up to
        `min(capacity, final length)`. Syncing first would only move the tokens written since the
        last sync from reserved to token slots, which are both released here.
        """
        state = self.seqs.pop(seq_id)
        num_synced = state.num_tokens
        if num_computed_tokens < num_synced:
            raise ValueError(f"a sequence cannot shrink ({num_synced} -> {num_computed_tokens} tokens)")
        assert not state.num_inherited_tokens, "free_sole: the sequence shares blocks it inherited"
        blocks = state.blocks
        num_blocks = len(blocks)
        capacity = num_blocks * self.block_size
        assert num_computed_tokens <= capacity, f"a sequence wrote past its blocks ({num_computed_tokens} > {capacity})"
        num_reserve_end_slots = min(capacity, max(0, state.final_num_kv_tokens))
        self.num_logical_blocks -= num_blocks
        self.pool.release_sole(blocks, num_synced, num_reserve_end_slots - num_synced)
        return num_blocks > 0

    def block_table(self, seq_id: int) -> list[int]:
        return [block.block_id for block in self.seqs[seq_id].blocks]

    def usage(self) -> PoolUsage:
        bs = self.block_size
        pool = self.pool
        token_slots, reserved_slots = pool.token_slots, pool.reserved_slots
        internal_frag_slots = pool.num_held_blocks * bs - token_slots - reserved_slots
        cached_slots = pool.num_cached_free_blocks * bs
        free_slots = pool.num_free_blocks * bs - cached_slots
        # Positional (PoolUsage's field order): a keyword call costs several times more, once per step.
        return PoolUsage(pool.num_blocks * bs, token_slots, reserved_slots, internal_frag_slots, 0, free_slots,
                         cached_slots, self.num_logical_blocks * bs)

    def snapshot(self) -> PoolSnapshot:
        seqs = self.seqs
        return PoolSnapshot(
            block_size=self.block_size,
            num_blocks=self.pool.num_blocks,
            tables={sid: [b.block_id for b in s.blocks] for sid, s in seqs.items()},
            num_tokens={sid: s.num_tokens for sid, s in seqs.items()},
            final_num_kv_tokens={sid: s.final_num_kv_tokens for sid, s in seqs.items()},
            num_inherited_tokens={sid: s.num_inherited_tokens for sid, s in seqs.items()},
            ref_cnt=self.pool.ref_cnts(),
            free_queue=self.pool.free_block_ids(),
            cached={b.block_id for b in self.pool.cached_blocks() if b.ref_cnt == 0},
            registered={b.block_id for b in self.pool.cached_blocks()},
        )

    # -- mechanics -------------------------------------------------------------------------------

    def _reserve_end(self, state: SeqBlocks, block_index: int) -> int:
        """Slots of this block that the sequence will still write by the time it finishes."""
        return min(self.block_size, max(0, state.final_num_kv_tokens - block_index * self.block_size))

    def _append_blocks(self, state: SeqBlocks, num_blocks: int) -> None:
        """Fresh blocks at the end of its table: no tokens, reserved up to its final length."""
        if num_blocks:
            start = len(state.blocks) * self.block_size
            state.blocks += self.pool.take_reserved(num_blocks, state.final_num_kv_tokens - start)
            self.num_logical_blocks += num_blocks

    def sync(self, state: SeqBlocks, num_tokens: int) -> None:
        """Record tokens the sequence wrote into its own blocks since it last told us.

        They went into reserved slots (a sequence never writes past its final length), so each
        moves from reserved to token; shared blocks are never written (copy-on-write comes first).
        """
        bs = self.block_size
        old_num_tokens = state.num_tokens
        if num_tokens < old_num_tokens:
            raise ValueError(f"a sequence cannot shrink ({old_num_tokens} -> {num_tokens} tokens)")
        num_written = 0
        i = old_num_tokens // bs
        block_start = i * bs
        for block in state.blocks[i : -(-num_tokens // bs)]:
            fill = num_tokens - block_start
            if fill > bs:
                fill = bs
            if fill != block.num_tokens:
                # A shared block is written only by the sequence computing it while others already
                # reuse it through the prefix cache (admitted in the same step); a block shared by
                # a fork is copied before any write.
                assert block.ref_cnt == 1 or block.cache_key is not None, f"write into shared block {block.block_id}"
                assert fill <= block.reserve_end, f"write past the reservation of block {block.block_id}"
                num_written += fill - block.num_tokens
                block.num_tokens = fill
            block_start += bs
        pool = self.pool
        pool.token_slots += num_written
        pool.reserved_slots -= num_written
        state.num_tokens = num_tokens
        if num_tokens > state.num_scheduled_tokens:
            state.num_scheduled_tokens = num_tokens

    def _copy_on_write(self, state: SeqBlocks, block_index: int) -> None:
        shared = state.blocks[block_index]
        (copy,) = self.pool.take_new(1)
        self.pool.set_fill(copy, state.num_tokens - block_index * self.block_size, self._reserve_end(state, block_index))
        state.blocks[block_index] = copy
        self.pool.release([shared])  # still held by the other sharers
        self._log_copies([(shared.block_id, copy.block_id)])
        self._counters["cow_copies"] += 1
