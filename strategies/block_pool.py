"""The paged family's pool: blocks, reference counts, the prefix-cache map and the accounting.

Free blocks that hold a cache entry live in an eviction policy (eviction.py; LRU today, vLLM v1's
free queue), which also hands out the blocks never used yet. A freed block keeps its cache entry
until the policy hands it out for new content: "free" and "cached" are one set, and
`num_cached_free_blocks` counts the latter. Freed blocks without a cache entry can never serve a
hit, so they are reused before anything else, the latest freed first (in a release, in the order
released), as vLLM 0.33.0's `BlockPool.free_blocks` puts them at its free queue's head
(`vllm/v1/core/block_pool.py`). The pool owns caching and uncaching, and counts the entries it
evicts into the strategy's `evicted_blocks` counter when it has one.

A registered block need not be filed in the map: prefix caching keeps most blocks pending until
a lookup reaches them (prefix_index.PendingRun). Such a block holds `cache_key` (its run) and no
`map_key`, and is freed, counted and evicted as a cached block; taking it drops no map entry, but
counts its run down, and a run left with no block leaves `pending_runs`.

Several blocks can hold the same content (a prompt recomputed while its twin was cached): each is
registered under the key, a lookup finds the earliest, and when that one loses its entry the next
takes its place, so the content stays findable (vLLM 0.33.0's `BlockHashToBlockMap`).

The map is filed by each key's 64-bit `hash`, not by the key itself. Every block of every output is
registered once and evicted once, and a key tuple is hashed again at each map operation (tuples
do not keep their hash), touching key objects made long before; the prefix index hands over the
hash its key chain computed anyway (`KeyChain.hashes`), so an eviction is an integer delete. The
content still decides a hit: a lookup compares the block's full key with the one asked for, and
when two different keys with one hash are both registered (a collision: about n^2 / 2^65 for n
entries, and ids -1 and -2 hash alike in Python), the pool refiles every entry under its full key
and keeps doing so (`_file_by_full_keys`), so a collision can cost speed, never a wrong hit.

The pool also keeps the memory accounting of held blocks (ref_cnt > 0): each block knows how many
of its slots hold tokens (`num_tokens`) and up to which offset the owning sequence will still
write (`reserve_end`); the rest is internal fragmentation. Aggregates change only when a block
changes, never by scanning. Only blocks a run has used exist as objects (see eviction.py), so a
huge pool costs no more than a small one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable

from kvbench.strategies.eviction import Block, EvictionPolicy, LRUFreeQueue

__all__ = ["Block", "BlockPool"]


class BlockPool:
    """All blocks of a paged strategy, with ref counts, free blocks, cache map and accounting."""

    def __init__(
        self, num_blocks: int, block_size: int, eviction: type[EvictionPolicy] = LRUFreeQueue,
        counters: dict[str, int] | None = None,
    ):
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.blocks: list[Block] = []  # materialised blocks; block_id == index (handed out in id order first)
        self.free_queue: EvictionPolicy = eviction(num_blocks, self._materialise)
        self._push_all = getattr(self.free_queue, "push_all", None) or self._push_each
        self._reusable: deque[Block] = deque()  # freed blocks holding no cache entry: handed out first
        # (PagedTables.grow_decodes takes from `_reusable` and `free_queue` itself, as take_reserved does.)
        self.cached: dict[Hashable, Block] = {}  # map key -> the block a lookup finds (held or free)
        self._twins: dict[Hashable, list[Block]] = {}  # map key -> later blocks with that content
        # Prefix caching's runs of registered blocks not filed in the map, by their first block's
        # key hash (prefix_index.py); an eviction takes a freed run's blocks out of it.
        self.pending_runs: dict[int, object] = {}
        # Map keys are the keys' hashes until two different keys share one, then the keys themselves.
        self._by_full_key = False
        self.lookup_version = 0  # bumped whenever a lookup could find more or another block
        self.num_cached_free_blocks = 0  # free blocks that still hold a cache entry
        self.token_slots = 0  # over held blocks
        self.reserved_slots = 0  # over held blocks
        # Evictions go to the strategy's counters when it declares them (an extra steps.csv column).
        self._counters = counters if counters is not None and "evicted_blocks" in counters else None
        self.num_evicted_blocks = 0
        # Free blocks (reusable + the policy's), counted here rather than summed: every allocation reads it.
        self.num_free_blocks = num_blocks
        # Whether evicting and caching are only this class's map updates (no subclass adds to them,
        # as tiers do): then the hot paths do them themselves (PagedTables.grow_decodes evicts a
        # twin-free block and counts once per call; PrefixIndex.register_fills files a block).
        self.evicts_plainly = type(self)._evict is BlockPool._evict
        self._caches_plainly = type(self).cache is BlockPool.cache

    def _materialise(self, block_id: int) -> Block:
        block = Block(block_id)
        self.blocks.append(block)
        return block

    @property
    def num_held_blocks(self) -> int:
        return self.num_blocks - self.num_free_blocks

    def free_block_ids(self) -> list[int]:
        """Free block ids in the order they will be handed out."""
        return [b.block_id for b in self._reusable] + self.free_queue.block_ids()

    def ref_cnts(self) -> list[int]:
        """ref_cnt of every block id (never-used blocks: 0)."""
        return [b.ref_cnt for b in self.blocks] + [0] * (self.num_blocks - len(self.blocks))

    def take_new(self, num_blocks: int) -> list[Block]:
        """Blocks for new content, reserved for nothing yet (the caller sets their fill). Caller
        checked the count."""
        return self.take_reserved(num_blocks, 0)

    def take_reserved(self, num_blocks: int, num_tokens_to_write: int) -> list[Block]:
        """Blocks for new content, in order, reserved for the `num_tokens_to_write` tokens their
        owner will still write from the first one's start (slots beyond are internal
        fragmentation): a sequence's blocks at admission, or one at a decode block boundary.
        Caller checked the count."""
        bs = self.block_size
        out = []
        append = out.append
        reusable = self._reusable
        queue = self.free_queue
        # Once every block has been used, LRUFreeQueue's freed blocks are taken here (its `pop`
        # written out), and `_evict` where it is only dropping the entry (no twins, no tier), the
        # evictions counted once: every admission evicts a prompt's worth once the pool has cycled.
        freed = queue.freed_once_all_used if type(queue) is LRUFreeQueue else None
        num_reserved = num_evicted = num_freed_taken = 0
        for _ in range(num_blocks):
            if reusable:
                block = reusable.popleft()  # freed without a cache entry: nothing to evict
            elif freed is not None:
                block = freed.popleft()
                if block.num_stale_entries:
                    block = queue.skip_stale(block)
                num_freed_taken += 1
            else:
                block = queue.pop()
            if block.cache_key is not None:
                if self.evicts_plainly and not self._twins:
                    map_key = block.map_key
                    if map_key is not None:
                        del self.cached[map_key]
                        block.map_key = None
                    else:  # registered, not filed: `_unpend` written out
                        run = block.cache_key
                        run.num_pending -= 1
                        if not run.num_pending:
                            del self.pending_runs[run.first_hash]
                    block.cache_key = None
                    num_evicted += 1
                else:
                    self._evict(block)
            reserve_end = bs if num_tokens_to_write > bs else (num_tokens_to_write if num_tokens_to_write > 0 else 0)
            block.ref_cnt = 1
            block.num_tokens = 0
            block.reserve_end = reserve_end
            num_reserved += reserve_end
            num_tokens_to_write -= bs
            append(block)
        self.reserved_slots += num_reserved
        self.num_free_blocks -= num_blocks
        if num_evicted:
            self.count_evictions(num_evicted)
        queue.num_blocks -= num_freed_taken
        return out

    def _evict(self, block: Block) -> None:
        # Once the pool has cycled, every block taken for new content passes here: with no content
        # held twice the entry is simply this block's, so `uncache` is written out for that case.
        if self._twins:
            self.uncache(block)
        else:
            if block.map_key is not None:
                del self.cached[block.map_key]
                block.map_key = None
            else:
                self._unpend(block)
            block.cache_key = None
        self.count_evictions(1)

    def _unpend(self, block: Block) -> None:
        """A registered block that is not filed loses its entry: its run has one block less."""
        run = block.cache_key
        run.num_pending -= 1
        if not run.num_pending:
            del self.pending_runs[run.first_hash]

    def count_evictions(self, num_blocks: int) -> None:
        """`num_blocks` cached free blocks lost their entries (taken for new content)."""
        self.num_cached_free_blocks -= num_blocks
        self.num_evicted_blocks += num_blocks
        if self._counters is not None:
            self._counters["evicted_blocks"] += num_blocks

    def cache(self, block: Block, key: Hashable, key_hash: int | None = None) -> None:
        """Register a held, full block under `key` (whose `hash` is `key_hash`, when the caller has
        it), behind any block already registered there."""
        block.cache_key = key
        if self._by_full_key:
            map_key = key
        else:
            map_key = hash(key) if key_hash is None else key_hash
        block.map_key = map_key
        first = self.cached.setdefault(map_key, block)
        if first is block:
            self.lookup_version += 1
        elif first.cache_key is key or first.cache_key == key:
            self._twins.setdefault(map_key, []).append(block)
        else:  # another content under this hash: from now on entries are filed by their full keys
            self._file_by_full_keys()
            self.cache(block, key)

    def filing(self) -> Callable[[Hashable, Block], Block] | None:
        """The map's `setdefault`, for a caller that files a block under its key's hash itself
        (`cache` written out: set the block's `cache_key` and `map_key`, and where it returns
        another block, call `cache`, which sorts out a twin or a collision), or None where `cache`
        must be called: entries filed by full keys, or a subclass's `cache`. Ask again after any
        call to `cache`, which can refile the map."""
        return self.cached.setdefault if self._caches_plainly and not self._by_full_key else None

    def _file_by_full_keys(self) -> None:
        """Refile every entry under its full key, in the same order (a lookup finds the same block)."""
        self._by_full_key = True
        cached, self.cached = self.cached, {}
        for block in cached.values():
            self.cached[block.cache_key] = block
            block.map_key = block.cache_key
        twins, self._twins = self._twins, {}
        for map_key, blocks in twins.items():
            self._twins[cached[map_key].cache_key] = blocks
            for twin in blocks:
                twin.map_key = twin.cache_key

    def uncache(self, block: Block) -> None:
        """Drop a block's cache entry; the next block registered under its key takes its place."""
        key = block.map_key
        if key is None:  # registered but not filed (prefix_index.PendingRun): nothing in the map
            self._unpend(block)
            block.cache_key = None
            return
        block.cache_key = block.map_key = None
        if not self._twins:  # no content held twice (the common case): the entry is this block's
            del self.cached[key]
            return
        twins = self._twins.get(key)
        if self.cached[key] is block:
            if twins:
                self.cached[key] = twins.pop(0)
                self.lookup_version += 1
            else:
                del self.cached[key]
        else:
            twins.remove(block)
        if twins is not None and not twins:
            del self._twins[key]

    def cached_blocks(self) -> list[Block]:
        """Every block with a cache entry, twins included."""
        return [*self.cached.values(), *(b for twins in self._twins.values() for b in twins)]

    def lookup(self, key: Hashable, key_hash: int | None = None) -> Block | None:
        """The block a hit on `key` (whose `hash` is `key_hash`, when the caller has it) reuses."""
        if self._by_full_key:
            return self.cached.get(key)
        block = self.cached.get(hash(key) if key_hash is None else key_hash)
        if block is None or block.cache_key is key or block.cache_key == key:
            return block
        return None  # another content with the same hash: this one is not cached

    def touch(self, block: Block) -> None:
        """Add a reference to a block that holds wanted content (a prefix hit or a fork)."""
        if block.ref_cnt == 0:
            self.free_queue.remove(block)
            self.num_free_blocks -= 1
            self.num_cached_free_blocks -= 1
            self.token_slots += block.num_tokens
            self.reserved_slots += block.reserve_end - block.num_tokens
        block.ref_cnt += 1

    def release(self, blocks_tail_first: Iterable[Block]) -> bool:
        """Drop one reference from each block; blocks reaching zero become free.

        Pass a sequence's blocks tail first: with LRU its cached tail is then evicted before its
        head, and its uncached blocks are reused in that order, ahead of every block freed earlier.
        Returns whether any block became free.
        """
        reusable: list[Block] = []
        append = reusable.append
        cached: list[Block] = []  # freed holding a cache entry: into the eviction policy, in order
        append_cached = cached.append
        # What the freed blocks held, summed (every sequence's release walks all of its blocks).
        num_token_slots = num_reserve_end_slots = 0
        for block in blocks_tail_first:
            ref_cnt = block.ref_cnt - 1
            block.ref_cnt = ref_cnt
            if not ref_cnt:
                num_token_slots += block.num_tokens
                num_reserve_end_slots += block.reserve_end
                if block.cache_key is None:
                    block.num_tokens = block.reserve_end = 0
                    append(block)
                else:
                    append_cached(block)
        num_cached = len(cached)
        if num_cached:
            self._push_all(cached)
        num_freed = len(reusable) + num_cached
        self._reusable.extendleft(reversed(reusable))
        self.num_cached_free_blocks += num_cached
        self.num_free_blocks += num_freed
        self.token_slots -= num_token_slots
        self.reserved_slots -= num_reserve_end_slots - num_token_slots
        return num_freed > 0

    def _push_each(self, blocks: list[Block]) -> None:
        """`push_all` for an eviction policy without it."""
        push = self.free_queue.push
        for block in blocks:
            push(block)

    def release_sole(self, blocks: list[Block], num_token_slots: int, num_reserved_slots: int, num_cached: int = 0) -> None:
        """`release(reversed(blocks))` for blocks that one sequence alone holds (one reference each),
        of which the first `num_cached` hold a cache entry and the rest none, whose held token and
        reserved slots the caller knows (a sequence of plain `paged`, or one of paged_prefix that
        nobody shares: see PagedTables.free_sole and release_registered). They all become free,
        reused and evicted tail first; nothing is summed block by block, only each block's own
        fields are reset (a cached block keeps its fill: its entry still serves hits)."""
        if num_cached:
            for block in blocks:
                block.ref_cnt = 0
            uncached = blocks[num_cached:]
            for block in uncached:
                block.num_tokens = block.reserve_end = 0
            self._push_all(blocks[num_cached - 1 :: -1])
            self.num_cached_free_blocks += num_cached
        else:
            uncached = blocks
            for block in blocks:
                block.ref_cnt = block.num_tokens = block.reserve_end = 0
        self._reusable.extendleft(uncached)  # the tail ends up first, as `release` puts it
        self.num_free_blocks += len(blocks)
        self.token_slots -= num_token_slots
        self.reserved_slots -= num_reserved_slots

    def set_fill(self, block: Block, num_tokens: int, reserve_end: int) -> None:
        """Set a held block's filled slots and reservation end, keeping the aggregates."""
        self.token_slots += num_tokens - block.num_tokens
        self.reserved_slots += (reserve_end - num_tokens) - (block.reserve_end - block.num_tokens)
        block.num_tokens = num_tokens
        block.reserve_end = reserve_end
