"""Runs of consecutive blocks, one per sequence: the bookkeeping every contiguous-style strategy shares.

Where a run goes is a free-space allocator's business (allocators.py); how long it is, the
strategy's policy. The table keeps each sequence's run and the memory accounting over all runs:
slots holding tokens, slots reserved for tokens still to come (known in simulation), and slots
held (the allocator may round a run up), so usage is O(1).
"""

from __future__ import annotations

from kvbench.strategies.base import PoolSnapshot, PoolUsage, ceil_div


class SeqRun:
    __slots__ = ("start", "num_reserved_blocks", "num_run_blocks", "num_tokens", "final_num_kv_tokens")

    def __init__(self, start: int, num_reserved_blocks: int, num_run_blocks: int, num_tokens: int, final: int):
        self.start = start
        self.num_reserved_blocks = num_reserved_blocks  # what the policy asked for: the block table
        self.num_run_blocks = num_run_blocks  # what the allocator holds (buddy rounds up)
        self.num_tokens = num_tokens
        self.final_num_kv_tokens = final


class RunTable:
    def __init__(self, num_blocks: int, block_size: int):
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.seqs: dict[int, SeqRun] = {}
        self.token_slots = 0
        self.reserved_slots = 0  # slots for tokens the sequences will still write
        self.held_slots = 0

    def add(self, seq_id: int, run: SeqRun) -> SeqRun:
        self.seqs[seq_id] = run
        self.token_slots += run.num_tokens
        self.reserved_slots += run.final_num_kv_tokens - run.num_tokens
        self.held_slots += run.num_run_blocks * self.block_size
        return run

    def sync(self, run: SeqRun, num_tokens: int) -> None:
        if num_tokens < run.num_tokens:
            raise ValueError(f"a sequence cannot shrink ({run.num_tokens} -> {num_tokens} tokens)")
        self.token_slots += num_tokens - run.num_tokens
        self.reserved_slots -= num_tokens - run.num_tokens
        run.num_tokens = num_tokens

    def fork_copies(self, parent: SeqRun, child: SeqRun, num_computed_tokens: int) -> list[tuple[int, int]]:
        """Sync the parent to the fork point; the (src, dst) blocks a copying fork moves into the child."""
        self.sync(parent, num_computed_tokens)
        num_blocks = ceil_div(num_computed_tokens, self.block_size)
        return [(parent.start + i, child.start + i) for i in range(num_blocks)]

    def remove(self, seq_id: int, num_computed_tokens: int) -> SeqRun:
        """Forget a sequence; the caller returns its run to the allocator."""
        run = self.seqs.pop(seq_id)
        self.sync(run, num_computed_tokens)
        self.token_slots -= run.num_tokens
        self.reserved_slots -= run.final_num_kv_tokens - run.num_tokens
        self.held_slots -= run.num_run_blocks * self.block_size
        return run

    def block_table(self, seq_id: int) -> list[int]:
        run = self.seqs[seq_id]
        return list(range(run.start, run.start + run.num_reserved_blocks))

    def headroom(self, seq_id: int) -> int:
        run = self.seqs[seq_id]
        return run.num_reserved_blocks * self.block_size - run.num_tokens

    def usage(self, num_free_blocks: int) -> PoolUsage:
        token_slots, reserved_slots, held_slots = self.token_slots, self.reserved_slots, self.held_slots
        internal_frag_slots = held_slots - token_slots - reserved_slots
        free_slots = num_free_blocks * self.block_size
        # Positional (PoolUsage's field order): a keyword call costs several times more, once per step.
        return PoolUsage(self.num_blocks * self.block_size, token_slots, reserved_slots, internal_frag_slots, 0,
                         free_slots, 0, held_slots)

    def snapshot(self, holes: list[tuple[int, int]]) -> PoolSnapshot:
        ref_cnt = [0] * self.num_blocks
        for run in self.seqs.values():
            for block_id in range(run.start, run.start + run.num_run_blocks):
                ref_cnt[block_id] += 1
        return PoolSnapshot(
            block_size=self.block_size,
            num_blocks=self.num_blocks,
            tables={sid: self.block_table(sid) for sid in self.seqs},
            num_tokens={sid: r.num_tokens for sid, r in self.seqs.items()},
            final_num_kv_tokens={sid: r.final_num_kv_tokens for sid, r in self.seqs.items()},
            num_inherited_tokens={sid: 0 for sid in self.seqs},
            ref_cnt=ref_cnt,
            free_queue=[b for start, size in holes for b in range(start, start + size)],
            extra_held={
                sid: list(range(r.start + r.num_reserved_blocks, r.start + r.num_run_blocks))
                for sid, r in self.seqs.items()
            },
        )
