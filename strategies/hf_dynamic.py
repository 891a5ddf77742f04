"""`hf_dynamic`: Hugging Face Transformers' `DynamicCache`.

Transformers keeps, per request and layer, one contiguous K tensor and one V tensor and grows them
with `torch.cat` at every step: a new tensor one token longer is allocated, the old one copied into
it, then freed. So every decode step reallocates and copies the whole cache, and while it copies
the pool holds both (transient double occupancy): a growth needs room for the old run and the new
one at once, and the freed runs leave holes that first-fit placement must live with.

- `strategy.growth`: `exact` (one token more per step, as Transformers does) or `double` (capacity
  doubles when outgrown: what a better policy would save in copies, paid in reserved slots).
- Sizes as PyTorch's CUDA caching allocator rounds them (c10 `round_size` and
  `get_allocation_size`): each layer's tensor takes its bytes rounded up to a multiple of 512 B,
  and a tensor of 10 MiB or more gets a segment of its own rounded up to 2 MiB. The rounding is
  internal fragmentation. The pool is modelled as one region the allocator has reserved (no
  returning memory to the driver), with first-fit placement and coalescing of freed runs.
- Counted: `reallocations`, `tokens_copied` and `bytes_copied` (K and V of every layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from kvbench.strategies.allocators import FirstFitAllocator, next_pow2
from kvbench.strategies.base import KVCacheStrategy, PoolSnapshot, PoolUsage, SeqView, StrategyConfig, ceil_div
from kvbench.strategies.registry import register
from kvbench.strategies.run_table import RunTable, SeqRun

MiB = 1 << 20
ROUND_BYTES = 512  # every block the caching allocator hands out is a multiple of 512 B
LARGE_ALLOC_BYTES = 10 * MiB  # from here on an allocation gets its own segment...
ROUND_LARGE_BYTES = 2 * MiB  # ...rounded up to 2 MiB


class Growth(Enum):
    exact = "exact"
    double = "double"


@dataclass
class HFDynamicConfig(StrategyConfig):
    name: str = "hf_dynamic"
    block_size: int = 1  # tensors, not blocks: token-granular
    growth: Growth = Growth.exact
    # Set from the model by `configure` (0 without a model: no rounding, bytes_copied stays 0).
    layer_bytes_per_token: int = 0  # one layer's K (or V) of one token, per tensor-parallel worker
    kv_bytes_per_token: int = 0  # K and V of every layer, all workers


def allocated_tokens(num_tokens: int, layer_bytes_per_token: int) -> int:
    """Token slots a tensor of `num_tokens` tokens really occupies after the allocator's rounding."""
    if not layer_bytes_per_token:
        return num_tokens
    size = num_tokens * layer_bytes_per_token
    step = ROUND_LARGE_BYTES if size >= LARGE_ALLOC_BYTES else ROUND_BYTES
    return ceil_div(ceil_div(size, step) * step, layer_bytes_per_token)


@register("hf_dynamic", HFDynamicConfig)
class HFDynamicStrategy(KVCacheStrategy):
    layout = "contiguous"
    counted_events = ("reallocations", "tokens_copied", "bytes_copied")
    swap_unsupported = "Transformers' generate never preempts a request, so it has nothing to swap"

    @classmethod
    def configure(cls, config: HFDynamicConfig, model, tensor_parallel: int) -> HFDynamicConfig:
        config.layer_bytes_per_token = model.kv_tensor_bytes_per_token(tensor_parallel)  # in the KV format
        config.kv_bytes_per_token = model.kv_pool_bytes_per_token(tensor_parallel)
        return config

    def __init__(self, config: HFDynamicConfig, num_blocks: int, max_model_len: int):
        super().__init__(config, num_blocks, max_model_len)
        self.growth = Growth(config.growth)
        self.layer_bytes_per_token = config.layer_bytes_per_token
        self.kv_bytes_per_token = config.kv_bytes_per_token
        self.allocator = FirstFitAllocator(num_blocks)
        self.runs = RunTable(num_blocks, self.block_size)

    def _capacity(self, old_capacity: int, num_tokens: int) -> int:
        if self.growth is Growth.exact:
            return num_tokens
        return max(num_tokens, 2 * old_capacity) if old_capacity else next_pow2(num_tokens)

    def _place(self, seq: SeqView, capacity: int, num_tokens: int) -> SeqRun | None:
        """A run for `capacity` tokens (rounded as the allocator rounds), or None."""
        num_blocks = ceil_div(capacity, self.block_size)
        num_run_blocks = ceil_div(allocated_tokens(capacity, self.layer_bytes_per_token), self.block_size)
        start = self.allocator.allocate(num_run_blocks)
        if start is None:
            return None
        # The run's reservation ends at its capacity: growing past it is a new run.
        final = min(seq.final_num_kv_tokens, num_blocks * self.block_size)
        return SeqRun(start, num_blocks, num_run_blocks, num_tokens, final)

    def allocate(self, seq: SeqView, num_computed_tokens: int, num_new_tokens: int) -> int | None:
        num_total_tokens = num_computed_tokens + num_new_tokens
        old = self.runs.seqs.get(seq.seq_id)
        if old is None:
            if num_computed_tokens:
                raise ValueError(f"seq {seq.seq_id}: hf_dynamic caches no prefix, got {num_computed_tokens}")
            run = self._place(seq, self._capacity(0, num_total_tokens), 0)
            if run is None:
                return None
            self.runs.add(seq.seq_id, run)
            return self.runs.headroom(seq.seq_id)
        if num_total_tokens <= old.num_reserved_blocks * self.block_size:
            self.runs.sync(old, num_computed_tokens)
            return self.runs.headroom(seq.seq_id)
        # torch.cat: the new tensor is allocated while the old one is still held, then the old freed.
        run = self._place(seq, self._capacity(old.num_reserved_blocks * self.block_size, num_total_tokens),
                          num_computed_tokens)
        if run is None:
            return None
        self.runs.remove(seq.seq_id, num_computed_tokens)
        self.allocator.free(old.start, old.num_run_blocks)
        self.runs.add(seq.seq_id, run)
        num_copied_blocks = ceil_div(num_computed_tokens, self.block_size)
        self._log_copies((old.start + i, run.start + i) for i in range(num_copied_blocks))
        self.counters["reallocations"] += 1
        self.counters["tokens_copied"] += num_computed_tokens
        self.counters["bytes_copied"] += num_computed_tokens * self.kv_bytes_per_token
        return self.runs.headroom(seq.seq_id)

    def headroom(self, seq_id: int) -> int:
        return self.runs.headroom(seq_id)

    def prefix_cache_version(self) -> int:
        # A growth frees the old run: its hole, coalesced with its neighbours, may hold a refused
        # admission that did not fit before, so a blocked head retries after each (rule 4).
        return self.counters["reallocations"]

    def fork(self, parent_id: int, child: SeqView, num_computed_tokens: int) -> bool:
        """A sample or beam gets its own tensors, a copy of the parent's (Transformers repeats the cache)."""
        parent = self.runs.seqs[parent_id]
        run = self._place(child, self._capacity(0, num_computed_tokens), num_computed_tokens)
        if run is None:
            return False
        self.runs.add(child.seq_id, run)
        self._count_fork_copies(self.runs.fork_copies(parent, run, num_computed_tokens))
        return True

    def free(self, seq_id: int, num_computed_tokens: int) -> bool:
        run = self.runs.remove(seq_id, num_computed_tokens)
        self.allocator.free(run.start, run.num_run_blocks)
        return True

    def block_table(self, seq_id: int) -> list[int]:
        return self.runs.block_table(seq_id)

    def usage(self) -> PoolUsage:
        return self.runs.usage(self.allocator.num_free_blocks)

    def external_frag_slots(self, seq: SeqView, num_new_tokens: int) -> int:
        run = self.runs.seqs.get(seq.seq_id)
        capacity = self._capacity(run.num_reserved_blocks * self.block_size if run else 0, num_new_tokens)
        need = ceil_div(allocated_tokens(capacity, self.layer_bytes_per_token), self.block_size)
        return self.allocator.unusable_free_blocks(need) * self.block_size

    def max_seq_kv_tokens(self) -> int:
        # Growing needs the old run and the new one at once.
        divisor = 3 if self.growth is Growth.double else 2
        return self.pool_slots // divisor

    def snapshot(self) -> PoolSnapshot:
        return self.runs.snapshot(self.allocator.holes())
