"""KV-cache strategies: one file each, registered under the name of their YAML in conf/strategy/.

Importing this package registers every built-in strategy (and its config schema).
"""

from kvbench.strategies import contiguous, paged, paged_cow, paged_prefix, paged_radix  # noqa: F401  (registers)
from kvbench.strategies.base import KVCacheStrategy, PoolUsage, SeqView, StrategyConfig
from kvbench.strategies.registry import STRATEGIES, register

__all__ = ["KVCacheStrategy", "PoolUsage", "SeqView", "StrategyConfig", "STRATEGIES", "register"]
