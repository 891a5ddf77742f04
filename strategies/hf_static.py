"""`hf_static`: Hugging Face Transformers' `StaticCache`.

Transformers allocates one tensor per layer for K and for V of shape (batch, heads, max_cache_len,
head_dim) when `generate` starts, and frees it when the whole batch is done: every batch slot holds
`max_cache_len` tokens (here `model.max_model_len`) for the batch's life, however short its request.

So a sequence reserves a run of `max_model_len` tokens at admission, and a finished sequence's run
is released only when the last sequence of its batch finishes (the pool holds no live sequence):
until then its whole run counts as internal fragmentation. Run it with `scheduler.batching=static`
(Transformers' `generate`: a batch runs until its longest member ends) for the vLLM paper's HF
baseline. Forks (parallel samples, beams) take slots of their own (a finished row's slot when the
pool has no other) and copy the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvbench.strategies.allocators import FirstFitAllocator
from kvbench.strategies.base import KVCacheStrategy, PoolSnapshot, PoolUsage, SeqView, StrategyConfig, ceil_div
from kvbench.strategies.registry import register
from kvbench.strategies.run_table import RunTable, SeqRun


@dataclass
class HFStaticConfig(StrategyConfig):
    name: str = "hf_static"
    block_size: int = 1  # a tensor, not blocks: token-granular


@register("hf_static", HFStaticConfig)
class HFStaticStrategy(KVCacheStrategy):
    layout = "contiguous"
    swap_unsupported = "Transformers' generate never preempts a request, so it has nothing to swap"

    def __init__(self, config: HFStaticConfig, num_blocks: int, max_model_len: int):
        super().__init__(config, num_blocks, max_model_len)
        self.allocator = FirstFitAllocator(num_blocks)
        self.runs = RunTable(num_blocks, self.block_size)
        self.num_slot_blocks = ceil_div(max_model_len, self.block_size)
        self.done: list[int] = []  # finished sequences whose slots wait for the batch to end

    def _reserve(self, seq: SeqView, num_tokens: int, reuse_done: bool = False) -> SeqRun | None:
        start = self.allocator.allocate(self.num_slot_blocks)
        if start is None:
            if not (reuse_done and self.done):
                return None
            start = self.runs.remove(self.done.pop(), 0).start
        run = SeqRun(start, self.num_slot_blocks, self.num_slot_blocks, num_tokens, seq.final_num_kv_tokens)
        return self.runs.add(seq.seq_id, run)

    def allocate(self, seq: SeqView, num_computed_tokens: int, num_new_tokens: int) -> int | None:
        run = self.runs.seqs.get(seq.seq_id)
        if run is None:
            if num_computed_tokens:
                raise ValueError(f"seq {seq.seq_id}: hf_static caches no prefix, got {num_computed_tokens}")
            if self._reserve(seq, 0) is None:
                return None
        else:
            self.runs.sync(run, num_computed_tokens)
        return self.runs.headroom(seq.seq_id)

    def headroom(self, seq_id: int) -> int:
        return self.runs.headroom(seq_id)

    def fork(self, parent_id: int, child: SeqView, num_computed_tokens: int) -> bool:
        parent = self.runs.seqs[parent_id]
        # Transformers expands a request's samples into batch rows up front; here they fork after
        # the prefill, so a fork may take a finished row's slot rather than wait for the batch.
        run = self._reserve(child, num_computed_tokens, reuse_done=True)
        if run is None:
            return False
        self._count_fork_copies(self.runs.fork_copies(parent, run, num_computed_tokens))
        return True

    def free(self, seq_id: int, num_computed_tokens: int) -> bool:
        """The slot stays until the batch ends: when no live sequence is left, every slot is freed."""
        run = self.runs.seqs[seq_id]
        self.runs.sync(run, num_computed_tokens)
        # Its tokens are dead now: the whole slot is waste until the batch ends.
        self.runs.token_slots -= run.num_tokens
        self.runs.reserved_slots -= run.final_num_kv_tokens - run.num_tokens
        run.num_tokens = run.final_num_kv_tokens = 0
        self.done.append(seq_id)
        if len(self.done) < len(self.runs.seqs):
            return False
        for done_id in self.done:
            freed = self.runs.remove(done_id, 0)
            self.allocator.free(freed.start, freed.num_reserved_blocks)
        self.done.clear()
        return True

    def block_table(self, seq_id: int) -> list[int]:
        return self.runs.block_table(seq_id)

    def usage(self) -> PoolUsage:
        return self.runs.usage(self.allocator.num_free_blocks)

    def max_seq_kv_tokens(self) -> int:
        return self.max_model_len if self.num_slot_blocks <= self.num_blocks else 0

    def snapshot(self) -> PoolSnapshot:
        snap = self.runs.snapshot(self.allocator.holes())
        for seq_id in self.done:  # not sequences any more: slots held by the batch
            snap.extra_held.setdefault(seq_id, []).extend(snap.tables.pop(seq_id))
            snap.tables[seq_id] = []
        return snap
