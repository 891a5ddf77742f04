"""A fleet's routers: which replica serves a request, decided when it arrives (kvbench/fleet.py).

- `round_robin`: replicas in turn.
- `least_loaded`: the replica with the fewest tokens waiting and running (the prompt tokens of the
  requests it holds, queued or running).
- `prefix_aware`: the replica holding the longest cached prefix of the prompt, unless the load is
  out of balance, as SGLang's cache-aware router and llm-d's prefix scorer do. Out of balance when
  the most loaded replica holds `balance_abs_threshold_tokens` more than the least loaded and more
  than `balance_rel_threshold` times as many: then the least loaded takes it. Otherwise the longest
  match takes it when it covers at least `cache_threshold` of the prompt, else the least loaded
  does (SGLang sends those to the replica with the most room in its tree). Ties go to the less
  loaded replica, then the lower index. The match is what the replica's strategy holds now (its
  GPU pool and its tiers), not an approximate tree of what was routed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from kvbench.errors import ConfigError
from kvbench.request import Request


@dataclass
class FleetConfig:
    num_replicas: int = 1  # engines behind the router, each its own scheduler, strategy and pool
    router: str = "round_robin"  # round_robin | least_loaded | prefix_aware
    balance_abs_threshold_tokens: int = 32768  # prefix_aware: imbalance in tokens...
    balance_rel_threshold: float = 1.5  # ...and as a ratio, beyond which load wins over cache
    cache_threshold: float = 0.3  # prefix_aware: shortest match (share of the prompt) worth following


class ReplicaView(Protocol):
    load_tokens: int  # prompt tokens of the requests it holds, queued or running

    def cached_prefix_tokens(self, request: Request, memo: dict) -> int:
        """Leading prompt tokens it holds cached (pure)."""


class Router(ABC):
    def __init__(self, config: FleetConfig):
        self.config = config

    @abstractmethod
    def route(self, request: Request, replicas: Sequence[ReplicaView]) -> int:
        """The index of the replica that serves `request`."""


def least_loaded(replicas: Sequence[ReplicaView], candidates: Sequence[int] | None = None) -> int:
    indices = range(len(replicas)) if candidates is None else candidates
    return min(indices, key=lambda i: (replicas[i].load_tokens, i))


class RoundRobin(Router):
    def __init__(self, config: FleetConfig):
        super().__init__(config)
        self._next = 0

    def route(self, request: Request, replicas: Sequence[ReplicaView]) -> int:
        index = self._next
        self._next = (index + 1) % len(replicas)
        return index


class LeastLoaded(Router):
    def route(self, request: Request, replicas: Sequence[ReplicaView]) -> int:
        return least_loaded(replicas)


class PrefixAware(Router):
    def route(self, request: Request, replicas: Sequence[ReplicaView]) -> int:
        c = self.config
        loads = [r.load_tokens for r in replicas]
        if max(loads) - min(loads) > c.balance_abs_threshold_tokens and max(loads) > c.balance_rel_threshold * min(loads):
            return least_loaded(replicas)
        memo: dict = {}
        matched = [r.cached_prefix_tokens(request, memo) for r in replicas]
        best = max(matched)
        if best == 0 or best < c.cache_threshold * request.num_prompt_tokens:
            return least_loaded(replicas)
        return least_loaded(replicas, [i for i, m in enumerate(matched) if m == best])


ROUTERS: dict[str, type[Router]] = {"round_robin": RoundRobin, "least_loaded": LeastLoaded, "prefix_aware": PrefixAware}


def make_router(config: FleetConfig) -> Router:
    if config.router not in ROUTERS:
        raise ConfigError(f"fleet.router={config.router!r} must be one of {', '.join(ROUTERS)}")
    if config.num_replicas < 1:
        raise ConfigError(f"fleet.num_replicas={config.num_replicas} must be >= 1")
    if not 0 <= config.cache_threshold <= 1:
        raise ConfigError(f"fleet.cache_threshold={config.cache_threshold} must be between 0 and 1")
    return ROUTERS[config.router](config)
