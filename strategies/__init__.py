"""KV-cache strategies: one file each, registered under their name (`strategy=NAME`).

The registry finds every strategy: each module of this folder, and every installed package's
`kvbench.strategies` entry point (see examples/kvbench-fifo-strategy). No list of names is kept by
hand. Modules are imported when a name is first asked for (kvbench.registry), so `strategy=paged`
imports paged.py and what it needs, and `kvbench list` imports them all.
"""

from kvbench.strategies.base import KVCacheStrategy, PoolUsage, SeqView, StrategyConfig
from kvbench.strategies.registry import STRATEGIES, register

__all__ = ["KVCacheStrategy", "PoolUsage", "SeqView", "StrategyConfig", "STRATEGIES", "register"]

STRATEGIES.find_plugins(__name__, __path__, "kvbench.strategies")
