"""`prefix_mru`: automatic prefix caching that evicts the most recently freed block first.

An example kvbench plugin, one file: `pip install examples/kvbench-prefix-mru`, then
`kvbench run strategy=prefix_mru`. kvbench finds it through the `kvbench.strategies` entry point
in pyproject.toml; the config dataclass is all `strategy=prefix_mru` needs (no YAML).

LRU (vLLM's choice) keeps what was used last; MRU keeps what was cached first, which protects an
old, popular prefix (a system prompt) from a stream of one-off requests. Everything but the
eviction order is paged_prefix's: the policy is a component of its block pool.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kvbench.strategies import StrategyConfig, register
from kvbench.strategies.eviction import Block
from kvbench.strategies.paged_prefix import PagedPrefixStrategy


class MRUFreeList:
    """Never-used blocks first (they hold nothing), then the most recently freed."""

    def __init__(self, num_blocks: int, materialise: Callable[[int], Block]):
        self._materialise = materialise
        self._num_pool_blocks = num_blocks
        self._next_fresh_id = 0
        self._freed: dict[int, Block] = {}  # insertion-ordered: popitem() takes the latest
        self.num_blocks = num_blocks

    def push(self, block: Block) -> None:
        self._freed[block.block_id] = block
        self.num_blocks += 1

    def pop(self) -> Block:
        if self._next_fresh_id < self._num_pool_blocks:
            self._next_fresh_id += 1
            self.num_blocks -= 1
            return self._materialise(self._next_fresh_id - 1)
        if not self._freed:
            raise IndexError("no free block")
        self.num_blocks -= 1
        return self._freed.popitem()[1]

    def remove(self, block: Block) -> None:
        del self._freed[block.block_id]
        self.num_blocks -= 1

    def block_ids(self) -> list[int]:
        return [*range(self._next_fresh_id, self._num_pool_blocks), *reversed(self._freed)]


@dataclass
class PrefixMRUConfig(StrategyConfig):
    name: str = "prefix_mru"


@register("prefix_mru", PrefixMRUConfig)
class PrefixMRUStrategy(PagedPrefixStrategy):
    eviction_policy = MRUFreeList
