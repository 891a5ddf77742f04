"""The strategy registry: `STRATEGIES.get("paged")` is the class behind `strategy=paged`."""

from kvbench.registry import Registry
from kvbench.strategies.base import KVCacheStrategy

STRATEGIES: Registry[KVCacheStrategy] = Registry("strategy")
register = STRATEGIES.register
