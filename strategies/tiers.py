"""Tiered offload of the prefix cache: CPU memory, local disk and a remote pool below the GPU pool.

A component a prefix-caching strategy takes (`strategy.tiers`; paged_prefix today), off unless a
tier has a capacity, so a run without tiers is what it always was. The rules, as LMCache, SGLang's
HiCache and Mooncake Store keep KV below HBM:

- A cached block the GPU pool evicts is demoted to the first tier instead of being dropped
  (`write=write_back`), or every block is copied down as soon as it is registered
  (`write=write_through`), so an eviction moves nothing. A full tier pushes its least recently
  used block down to the next tier; the last tier drops it. A block lives in at most one tier;
  a tier block loaded back into the GPU stays where it is (a copy, counted in no tier twice).
- A hit is the longest run of leading blocks found anywhere: the GPU pool's run first, then the
  blocks after it found in any tier. Those are loaded into fresh GPU blocks at admission and
  cost `block bytes / bytes_per_s + latency_s` per tier each admission: the step that admits the
  request takes that much longer (`overlap_load=false`), or as long as the larger of its
  compute and its loads (`overlap_load=true`, layer-wise loading as LMCache does).
- Writes down (demotions, write-through copies) are asynchronous: counted in bytes, never in time.

Counters per tier `t` (steps-table columns, summary fields): `tier_t_hit_tokens` (tokens loaded
from it), `tier_t_load_bytes` (tier to GPU) and `tier_t_store_bytes` (into the tier, from the GPU
or the tier above). The time spent loading is in the step plan (`kv_load_s`) and the summary.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import Enum

from kvbench.strategies.block_pool import Block, BlockPool
from kvbench.strategies.eviction import EvictionPolicy, LRUFreeQueue
from kvbench.strategies.tier_store import TierStore

TIER_NAMES = ("cpu", "disk", "remote")  # top to bottom


class WritePolicy(Enum):
    write_back = "write_back"  # copied down when the GPU pool evicts it
    write_through = "write_through"  # copied down as soon as it is registered


@dataclass
class TierSpec:
    capacity_bytes: int = 0  # 0: no such tier
    bytes_per_s: float = 25e9  # load bandwidth into the GPU
    latency_s: float = 0.0  # per load (a disk access, a network round trip)


@dataclass
class TiersConfig:
    # PCIe 4.0 x16 host memory; an NVMe SSD; a 200 Gb/s RDMA pool (Mooncake Store's transfer engine).
    cpu: TierSpec = field(default_factory=lambda: TierSpec(0, 25e9, 0.0))
    disk: TierSpec = field(default_factory=lambda: TierSpec(0, 5e9, 1e-4))
    remote: TierSpec = field(default_factory=lambda: TierSpec(0, 25e9, 2e-5))
    write: WritePolicy = WritePolicy.write_back
    overlap_load: bool = False  # loads overlap the step's compute (layer by layer) or come before it
    # Set from the model by the strategy's `configure` (leave at 0): K/V bytes of one token.
    kv_bytes_per_token: int = 0


def enabled_tiers(config: TiersConfig | None) -> list[str]:
    """The names of the tiers with a capacity, top to bottom."""
    if config is None:
        return []
    return [name for name in TIER_NAMES if getattr(config, name).capacity_bytes > 0]


def tier_event_names(config: TiersConfig | None) -> tuple[str, ...]:
    return tuple(
        f"tier_{name}_{what}" for name in enabled_tiers(config) for what in ("hit_tokens", "load_bytes", "store_bytes")
    )


def remote_store(config: TiersConfig, block_size: int) -> TierStore:
    """A remote tier, to share between the replicas of a fleet (kvbench/fleet.py)."""
    return TierStore("remote", _capacity_blocks(config, "remote", block_size))


def _capacity_blocks(config: TiersConfig, name: str, block_size: int) -> int:
    spec = getattr(config, name)
    block_bytes = block_size * config.kv_bytes_per_token
    if block_bytes <= 0:
        raise ValueError("strategy.tiers.kv_bytes_per_token is not set: the strategy's configure sets it from the model")
    if spec.bytes_per_s <= 0:
        raise ValueError(f"strategy.tiers.{name}.bytes_per_s={spec.bytes_per_s} must be > 0")
    num_blocks = spec.capacity_bytes // block_bytes
    if num_blocks < 1:
        raise ValueError(
            f"strategy.tiers.{name}.capacity_bytes={spec.capacity_bytes} holds no block of {block_bytes} bytes"
        )
    return num_blocks


class TieredCache:
    """The tiers below one GPU pool, with the strategy's counters."""

    def __init__(self, config: TiersConfig, block_size: int, counters: dict[str, int], remote: TierStore | None = None):
        self.names = enabled_tiers(config)
        self.specs = [getattr(config, name) for name in self.names]
        self.stores = [
            remote if name == "remote" and remote is not None else TierStore(name, _capacity_blocks(config, name, block_size))
            for name in self.names
        ]
        self.block_size = block_size
        self.block_bytes = block_size * config.kv_bytes_per_token
        self.write_through = WritePolicy(config.write) is WritePolicy.write_through
        self.overlap_load = config.overlap_load
        self.counters = counters
        self._pending_load_s = 0.0

    def share_remote(self, store: TierStore) -> None:
        """Use a remote tier shared with other replicas instead of this cache's own."""
        self.stores[self.names.index("remote")] = store

    def find(self, key: Hashable) -> int | None:
        """The tier holding a block (its index, top first), or None. Changes nothing."""
        for level, store in enumerate(self.stores):
            if key in store:
                return level
        return None

    def store(self, key: Hashable) -> None:
        """Copy a block the GPU pool held down to the first tier, unless a tier holds it already."""
        if self.find(key) is None:
            self._insert(0, key)

    def discard(self, key: Hashable) -> None:
        """Forget a block whose content turned out never computed (see TieredBlockPool.uncache)."""
        level = self.find(key)
        if level is not None:
            self.stores[level].remove(key)

    def _insert(self, level: int, key: Hashable) -> None:
        while key is not None and level < len(self.stores):
            self.counters[f"tier_{self.names[level]}_store_bytes"] += self.block_bytes
            key = self.stores[level].insert(key)
            level += 1

    def load(self, levels: list[int]) -> None:
        """Blocks at these tiers (one entry per block) were read into the GPU pool: count them and
        add their transfer time to the step being planned."""
        num_per_level = [0] * len(self.stores)
        for level in levels:
            num_per_level[level] += 1
        for level, num_blocks in enumerate(num_per_level):
            if num_blocks:
                name, spec = self.names[level], self.specs[level]
                num_bytes = num_blocks * self.block_bytes
                self.counters[f"tier_{name}_hit_tokens"] += num_blocks * self.block_size
                self.counters[f"tier_{name}_load_bytes"] += num_bytes
                self._pending_load_s += num_bytes / spec.bytes_per_s + spec.latency_s

    def pop_load_s(self) -> float:
        """Transfer time of the loads since the last call (the step being planned)."""
        load_s, self._pending_load_s = self._pending_load_s, 0.0
        return load_s

    def contents(self) -> dict[str, list[Hashable]]:
        """Each tier's keys, least recently used first (tests, the invariant checker)."""
        return {name: store.keys() for name, store in zip(self.names, self.stores)}


class TieredBlockPool(BlockPool):
    """A block pool whose evicted cache entries go down to the tiers instead of being dropped."""

    def __init__(
        self, num_blocks: int, block_size: int, tiers: TieredCache, eviction: type[EvictionPolicy] = LRUFreeQueue,
        counters: dict[str, int] | None = None,
    ):
        super().__init__(num_blocks, block_size, eviction, counters)
        self.tiers = tiers
        self._evicting = False

    def _evict(self, block: Block) -> None:
        key = block.cache_key
        self._evicting = True
        super()._evict(block)
        self._evicting = False
        if self.lookup(key) is None:  # a twin still on the GPU keeps the content there
            self.tiers.store(key)

    def cache(self, block: Block, key: Hashable, key_hash: int | None = None) -> None:
        super().cache(block, key, key_hash)
        if self.tiers.write_through:
            self.tiers.store(key)

    def uncache(self, block: Block) -> None:
        key = block.cache_key
        super().uncache(block)
        # Outside an eviction, an entry is dropped because its tokens were never computed (a
        # sequence preempted before its step ran): its write-through copy must go too (so would an
        # older copy of the same content: conservative, and rare).
        if self.tiers.write_through and not self._evicting and self.lookup(key) is None:
            self.tiers.discard(key)
