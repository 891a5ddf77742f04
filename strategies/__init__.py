"""KV-cache strategies: one file each, registered under their name (`strategy=NAME`).

Importing this package registers every strategy it finds: each module of this folder, and every
installed package's `kvbench.strategies` entry point (see examples/kvbench-fifo-strategy). No list
of names is kept by hand.
"""

from kvbench.strategies.base import KVCacheStrategy, PoolUsage, SeqView, StrategyConfig
from kvbench.strategies.registry import STRATEGIES, register

__all__ = ["KVCacheStrategy", "PoolUsage", "SeqView", "StrategyConfig", "STRATEGIES", "register"]

from kvbench.registry import discover  # noqa: E402  (after the names a plugin imports from here)

discover(__name__, __path__, "kvbench.strategies")
