"""`paged_cow`: paged + reference counts. A fork shares every block; the first write into a shared
block copies it (copy-on-write), and the copy is counted.

This is how parallel sampling and beam search keep one copy of the prompt: only the partially
filled last block is ever copied, once per sharer but the last.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvbench.strategies.base import SeqView, StrategyConfig
from kvbench.strategies.paged import PagedStrategy, SeqBlocks, ceil_div
from kvbench.strategies.registry import register


@dataclass
class PagedCowConfig(StrategyConfig):
    name: str = "paged_cow"


@register("paged_cow", PagedCowConfig)
class PagedCowStrategy(PagedStrategy):
    def fork(self, parent_id: int, child: SeqView, num_computed_tokens: int) -> bool:
        parent = self._seqs[parent_id]
        self._sync(parent, num_computed_tokens)
        shared = parent.blocks[: ceil_div(num_computed_tokens, self.block_size)]
        for block in shared:
            self.pool.touch(block)
        state = SeqBlocks(list(shared), num_computed_tokens, child.final_num_kv_tokens, child.stream)
        state.num_cached_blocks = parent.num_cached_blocks  # registered blocks are full, so shared
        self._seqs[child.seq_id] = state
        self._num_logical_blocks += len(shared)
        return True
