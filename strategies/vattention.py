"""`vattention`: contiguous virtual memory, physical pages mapped on demand (Prabhu et al., ASPLOS'25).

Each request owns a contiguous virtual run of `max_model_len` tokens per layer for K and for V, so
attention kernels see one contiguous tensor per request (the block-table layout is `contiguous`,
and the profile cost model times it on the contiguous path). Virtual address space is not a limit;
physical memory is. Physical memory is mapped in pages of `strategy.page_bytes` (64 KiB, 128 KiB,
256 KiB with vAttention's driver; 2 MiB with stock CUDA) as the request grows, and unmapped when it
finishes.

- Tokens per page follow from the model: a page holds one layer's K (or V) for
  `page_bytes / (num_kv_heads / tensor_parallel * head_dim * dtype_bytes)` tokens, the same for
  every layer, so a kvbench block is those tokens' pages over every layer, K and V, and TP worker:
  `2 * num_layers * tensor_parallel` pages mapped together. The waste is at most one partly filled
  page per layer per K/V per worker and request (the paper's Table 8).
- KV formats (kvbench/kv_format.py): the element bytes are the format's
  (`ModelSpec.kv_tensor_payload_bytes_per_token`); quantization scales sit in tensors of their own,
  counted per token in the pool's bytes per token (not rounded to pages). An MLA model caches one
  latent per layer, whole on every worker: `num_layers * tensor_parallel` pages per block.
- `deferred_reclamation`: a finished request's pages stay mapped to its virtual run, and the next
  request admitted takes that run over (most recently freed first) and grows into them without
  mapping; another request that finds no unmapped page reclaims (unmaps) idle runs' pages, oldest
  run first, from the tail. Mapped idle pages are reported as cached slots.
- Counted: `pages_mapped`, `pages_unmapped` and `bytes_mapped` (the driver calls vAttention makes),
  and `pages_reused` (mappings deferral saved). Forks copy (no sharing): `fork_copied_blocks`.

Block ids are physical page-group ids (what the device executor's pool indexes): consecutive in
the request's virtual run, anywhere in physical memory.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from kvbench.strategies.base import KVCacheStrategy, PoolSnapshot, PoolUsage, SeqView, StrategyConfig, ceil_div
from kvbench.strategies.registry import register

KiB = 1024


@dataclass
class VAttentionConfig(StrategyConfig):
    name: str = "vattention"
    page_bytes: int = 64 * KiB  # 64 KiB, 128 KiB, 256 KiB (vAttention's driver) or 2 MiB (stock CUDA)
    deferred_reclamation: bool = False
    # Set from the model by `configure` (leave at 0): pages per block, 2 * num_layers * tensor_parallel (MLA: 1 *).
    pages_per_block: int = 0


class VirtualRun:
    """A request's virtual run: its mapped pages in token order, the first `num_used` in its table."""

    __slots__ = ("pages", "num_used", "num_tokens", "final_num_kv_tokens")

    def __init__(self, pages: list[int], final_num_kv_tokens: int):
        self.pages = pages
        self.num_used = 0
        self.num_tokens = 0
        self.final_num_kv_tokens = final_num_kv_tokens


@register("vattention", VAttentionConfig)
class VAttentionStrategy(KVCacheStrategy):
    layout = "contiguous"
    counted_events = ("pages_mapped", "pages_unmapped", "bytes_mapped", "pages_reused")
    swap_unsupported = (
        "vAttention's pages could move like blocks, but its virtual runs are not modelled across a "
        "swap (not implemented); use paged"
    )
    max_block_size = 1 << 16

    @classmethod
    def configure(cls, config: VAttentionConfig, model, tensor_parallel: int) -> VAttentionConfig:
        c = model.config
        if c.num_kv_heads % tensor_parallel and not model.is_mla:
            raise ValueError(
                f"model.num_kv_heads={c.num_kv_heads} does not split over hardware.tensor_parallel={tensor_parallel}"
            )
        # In the model's KV format; an MLA latent is one tensor per layer, whole on every worker.
        # Quantization scales live in tensors of their own (as KIVI's and vLLM's caches keep them), so
        # a page's tokens follow the elements alone; the scales' bytes are counted per token in the
        # pool's bytes per token, not rounded to pages of their own.
        layer_k_bytes_per_token = model.kv_tensor_payload_bytes_per_token(tensor_parallel)
        if config.page_bytes % layer_k_bytes_per_token:
            raise ValueError(
                f"strategy.page_bytes={config.page_bytes} is not a whole number of tokens of one layer's K "
                f"({layer_k_bytes_per_token} bytes per token per worker)"
            )
        config.block_size = config.page_bytes // layer_k_bytes_per_token
        config.pages_per_block = model.kv_tensors_per_layer * c.num_layers * tensor_parallel
        return config

    def __init__(self, config: VAttentionConfig, num_blocks: int, max_model_len: int):
        super().__init__(config, num_blocks, max_model_len)
        self.page_bytes = config.page_bytes
        self.pages_per_block = config.pages_per_block or 2  # 2: without a model (unit tests), one layer
        self.deferred = config.deferred_reclamation
        self.runs: dict[int, VirtualRun] = {}
        self._next_fresh = 0  # physical page groups never mapped: ids from here up
        self._unmapped: list[int] = []  # freed and unmapped, reused last freed first
        self._idle: deque[list[int]] = deque()  # deferred: finished runs' mapped pages, oldest first
        self._num_mapped_idle = 0  # mapped pages no request uses (idle runs and runs' spare tails)
        self.token_slots = 0
        self.reserved_slots = 0
        self.num_used_blocks = 0

    # -- physical pages ----------------------------------------------------------------------------

    @property
    def num_free_blocks(self) -> int:
        return self.num_blocks - self.num_used_blocks

    def _count_map(self, num_blocks: int, event: str) -> None:
        self.counters[event] += num_blocks * self.pages_per_block
        if event == "pages_mapped":
            self.counters["bytes_mapped"] += num_blocks * self.pages_per_block * self.page_bytes

    def _map_new(self, run: VirtualRun) -> None:
        """Map one more page group at the end of the run's used pages."""
        if run.num_used < len(run.pages):  # mapped before (deferred reclamation): just use it
            self._num_mapped_idle -= 1
            self.counters["pages_reused"] += self.pages_per_block
        else:
            if self._next_fresh < self.num_blocks:
                page = self._next_fresh
                self._next_fresh += 1
            elif self._unmapped:
                page = self._unmapped.pop()
            else:
                page = self._reclaim(run)
            run.pages.append(page)
            self._count_map(1, "pages_mapped")
        run.num_used += 1
        self.num_used_blocks += 1

    def _reclaim(self, needy: VirtualRun) -> int:
        """Unmap an idle page (oldest idle run first, then other runs' spare tails) for `needy`."""
        while self._idle:
            pages = self._idle[0]
            if pages:
                self._num_mapped_idle -= 1
                self._count_map(1, "pages_unmapped")
                return pages.pop()
            self._idle.popleft()
        for run in self.runs.values():
            if run is not needy and len(run.pages) > run.num_used:
                self._num_mapped_idle -= 1
                self._count_map(1, "pages_unmapped")
                return run.pages.pop()
        raise AssertionError("no free page although the count said so")

    # -- the seam ----------------------------------------------------------------------------------

    def allocate(self, seq: SeqView, num_computed_tokens: int, num_new_tokens: int) -> int | None:
        run = self.runs.get(seq.seq_id)
        num_needed = ceil_div(num_computed_tokens + num_new_tokens, self.block_size) - (run.num_used if run else 0)
        if num_needed > self.num_free_blocks:
            return None
        if run is None:
            if num_computed_tokens:
                raise ValueError(f"seq {seq.seq_id}: vattention caches no prefix, got {num_computed_tokens}")
            # Deferred reclamation: take over the most recently freed run and its mapped pages.
            pages = self._idle.pop() if self.deferred and self._idle else []
            run = self.runs[seq.seq_id] = VirtualRun(pages, seq.final_num_kv_tokens)
        self._sync(run, num_computed_tokens)
        for _ in range(num_needed):
            self._grow_reservation(run)
        return self.headroom(seq.seq_id)

    def _grow_reservation(self, run: VirtualRun) -> None:
        bs = self.block_size
        start = run.num_used * bs
        self._map_new(run)
        self.reserved_slots += max(0, min(bs, run.final_num_kv_tokens - start))

    def _sync(self, run: VirtualRun, num_tokens: int) -> None:
        if num_tokens < run.num_tokens:
            raise ValueError(f"a sequence cannot shrink ({run.num_tokens} -> {num_tokens} tokens)")
        self.token_slots += num_tokens - run.num_tokens
        self.reserved_slots -= num_tokens - run.num_tokens
        run.num_tokens = num_tokens

    def headroom(self, seq_id: int) -> int:
        run = self.runs[seq_id]
        return run.num_used * self.block_size - run.num_tokens

    def fork(self, parent_id: int, child: SeqView, num_computed_tokens: int) -> bool:
        num_blocks = ceil_div(num_computed_tokens, self.block_size)
        if num_blocks > self.num_free_blocks:
            return False
        parent = self.runs[parent_id]
        self._sync(parent, num_computed_tokens)
        run = self.runs[child.seq_id] = VirtualRun([], child.final_num_kv_tokens)
        for _ in range(num_blocks):
            self._grow_reservation(run)
        self._sync(run, num_computed_tokens)
        self._count_fork_copies(list(zip(parent.pages[:num_blocks], run.pages)))
        return True

    def free(self, seq_id: int, num_computed_tokens: int) -> bool:
        run = self.runs.pop(seq_id)
        self._sync(run, num_computed_tokens)
        bs = self.block_size
        self.token_slots -= run.num_tokens
        self.reserved_slots -= min(run.final_num_kv_tokens, run.num_used * bs) - run.num_tokens
        self.num_used_blocks -= run.num_used
        if self.deferred:
            self._num_mapped_idle += run.num_used
            self._idle.append(run.pages)
        else:
            self._num_mapped_idle -= len(run.pages) - run.num_used
            self._count_map(len(run.pages), "pages_unmapped")
            self._unmapped.extend(reversed(run.pages))
        return run.num_used > 0

    def block_table(self, seq_id: int) -> list[int]:
        run = self.runs[seq_id]
        return run.pages[: run.num_used]

    def usage(self) -> PoolUsage:
        bs = self.block_size
        held_slots = self.num_used_blocks * bs
        token_slots, reserved_slots = self.token_slots, self.reserved_slots
        internal_frag_slots = held_slots - token_slots - reserved_slots
        free_slots = (self.num_free_blocks - self._num_mapped_idle) * bs
        cached_slots = self._num_mapped_idle * bs
        # Positional (PoolUsage's field order): a keyword call costs several times more, once per step.
        return PoolUsage(self.pool_slots, token_slots, reserved_slots, internal_frag_slots, 0, free_slots,
                         cached_slots, held_slots)

    def max_seq_kv_tokens(self) -> int:
        return self.pool_slots

    def worst_case_waste_bytes(self) -> int:
        """Bytes a request can waste at most: one page per layer per K/V per worker, less one token."""
        return self.pages_per_block * (self.page_bytes - self.page_bytes // self.block_size)

    def snapshot(self) -> PoolSnapshot:
        ref_cnt = [0] * self.num_blocks
        for run in self.runs.values():
            for page in run.pages[: run.num_used]:
                ref_cnt[page] += 1
        mapped_idle = {p for pages in self._idle for p in pages}
        mapped_idle.update(p for run in self.runs.values() for p in run.pages[run.num_used :])
        return PoolSnapshot(
            block_size=self.block_size,
            num_blocks=self.num_blocks,
            tables={sid: self.block_table(sid) for sid in self.runs},
            num_tokens={sid: r.num_tokens for sid, r in self.runs.items()},
            final_num_kv_tokens={sid: r.final_num_kv_tokens for sid, r in self.runs.items()},
            num_inherited_tokens={sid: 0 for sid in self.runs},
            ref_cnt=ref_cnt,
            free_queue=list(range(self._next_fresh, self.num_blocks)) + self._unmapped + sorted(mapped_idle),
            cached=mapped_idle,
            registered=set(mapped_idle),
        )
