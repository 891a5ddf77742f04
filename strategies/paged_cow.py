"""`paged_cow`: paged + reference counts. A fork shares every block; the first write into a shared
block copies it (copy-on-write), and the copy is counted (`cow_copies`).

This is how parallel sampling and beam search keep one copy of the prompt: only the partially
filled last block is ever copied, once per sharer but the last. The copy-on-write itself is part
of the block tables' mechanism (paged_tables.py): it triggers whenever a block is shared.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvbench.strategies.base import SeqView, StrategyConfig
from kvbench.strategies.paged import PagedStrategy
from kvbench.strategies.registry import register


@dataclass
class PagedCowConfig(StrategyConfig):
    name: str = "paged_cow"


@register("paged_cow", PagedCowConfig)
class PagedCowStrategy(PagedStrategy):
    # `paged` in everything but the fork (no class docstring: `kvbench list` shows the module's).

    def fork(self, parent_id: int, child: SeqView, num_computed_tokens: int) -> bool:
        self.tables.fork_shared(parent_id, child, num_computed_tokens)
        return True
