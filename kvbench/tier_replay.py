"""Replay a trace's prompts through a tiered prefix cache alone (no scheduler, no cost model).

Each request in arrival order is admitted into `paged_prefix` with a CPU tier of the given
capacity (write-through, so the tier holds every block the GPU pool registered) and freed at once:
the hit rate this gives against the capacity is the question Mooncake's FAST'25 paper answers
for its conversation trace (how much cache a hit rate needs), asked of kvbench's own tier
component. The GPU pool is as small as the longest prompt allows, so the capacity is the tier's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kvbench.request import Request
from kvbench.strategies.base import ceil_div
from kvbench.strategies.paged_prefix import PagedPrefixConfig, PagedPrefixStrategy
from kvbench.strategies.tiers import TiersConfig, TierSpec, WritePolicy


@dataclass(frozen=True, slots=True)
class _Seq:
    seq_id: int
    stream: object
    final_num_kv_tokens: int


@dataclass(frozen=True, slots=True)
class ReplayResult:
    capacity_tokens: int
    prompt_tokens: int
    hit_tokens: int  # GPU and tier hits together
    tier_hit_tokens: int

    @property
    def hit_rate(self) -> float:
        return self.hit_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


def replay_hit_rate(requests: Sequence[Request], capacity_tokens: int, block_size: int = 256) -> ReplayResult:
    """Hit tokens of every prompt against a cache of `capacity_tokens` (its CPU tier)."""
    longest = max(r.num_prompt_tokens for r in requests)
    tiers = TiersConfig(
        cpu=TierSpec(capacity_tokens, bytes_per_s=1.0), write=WritePolicy.write_through, kv_bytes_per_token=1,
    )
    config = PagedPrefixConfig(block_size=block_size, tiers=tiers)
    strategy = PagedPrefixStrategy(config, ceil_div(longest, block_size) + 1, longest)
    prompt_tokens = hit_tokens = 0
    for seq_id, request in enumerate(sorted(requests, key=lambda r: r.arrival_time_s)):
        n = request.num_prompt_tokens
        seq = _Seq(seq_id, request.prompt, n)
        hit = strategy.cached_prefix_tokens(seq, n)
        if strategy.allocate(seq, hit, n - hit) is None:
            raise RuntimeError(f"request {request.request_id} does not fit the replay's pool")
        strategy.free(seq_id, n)
        prompt_tokens += n
        hit_tokens += hit
    return ReplayResult(capacity_tokens, prompt_tokens, hit_tokens, strategy.counters["tier_cpu_hit_tokens"])
