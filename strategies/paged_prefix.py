"""`paged_prefix`: paged + copy-on-write + automatic prefix caching, with vLLM v1's rules.

Composed of the block pool (which caches, uncaches and evicts: LRU, least recently freed first,
and a sequence's blocks are freed tail first, so its tail is evicted before its head), the block
tables (forks share, copy-on-write) and the prefix index (keys, lookups; see prefix_index.py).

- Blocks are registered as soon as the tokens scheduled into them fill them, so requests admitted
  in the same step already share. A decoding sequence is not stopped for that: the scheduler's
  decode ticks (`begin_decode_tick`) say when each of its writes happens, so the block its headroom
  will fill is queued for the tick that fills it and registered just before anything could tell
  (a lookup, the cache's version, a fork, a free, another registration, a snapshot). Registering a
  block commutes with everything else a tick does (taking and evicting blocks), so the state is
  the one registering at the fill would give. With tiers, an eviction asks whether a twin still
  holds the content, so there a decoding sequence stops at the fill as prefills do.
- A registered block is filed in the cache map only once something reaches its content (a
  PendingRun, prefix_index.py): a newly admitted sequence's own blocks wait in its run, which needs
  only to know how far the sequence has written (`_registered_tokens`). So a sequence with a run
  queues no fills, and is not stopped where its prompt's last block fills either: the scheduler
  says when it starts decoding (`start_decoding`). A sequence without one (its run could not start,
  or was filed early, or tiers are on) registers blocks as they fill, as above.
- A hit is a run of leading full blocks, capped below the sequence's known length: the last token
  is always computed, since its logits give the next token.
- Blocks registered for tokens that were never computed (a sequence preempted before its step
  ran) are forgotten when it is freed.
- With `strategy.tiers` (tiers.py), evicted blocks go down to CPU / disk / remote tiers and a hit
  continues past the GPU pool's run into them; off by default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, ClassVar

from kvbench.strategies import paged_swap
from kvbench.strategies.base import (
    KVCacheStrategy, PoolSnapshot, PoolUsage, SeqView, StrategyConfig, SwappedKV,
)
from kvbench.strategies.block_pool import BlockPool
from kvbench.strategies.eviction import EvictionPolicy, LRUFreeQueue
from kvbench.strategies.paged_tables import PagedTables, SeqBlocks
from kvbench.strategies.prefix_index import KeyChain, PrefixIndex
from kvbench.strategies.registry import register
from kvbench.strategies.tiers import TieredBlockPool, TieredCache, TiersConfig, enabled_tiers, tier_event_names
from kvbench.tokens import TokenSequence

if TYPE_CHECKING:
    from kvbench.model_spec import KVGroup

_DECODE_ORDER = attrgetter("order")  # a tick's fills are registered in the order of decodes


@dataclass
class PagedPrefixConfig(StrategyConfig):
    name: str = "paged_prefix"
    tiers: TiersConfig = field(default_factory=TiersConfig)  # below the GPU pool; off unless a tier has a capacity


@register("paged_prefix", PagedPrefixConfig)
class PagedPrefixStrategy(KVCacheStrategy):
    counted_events = ("evicted_blocks",)
    supports_swap = True
    # Which cached block dies first; a plugin swaps it (examples/kvbench-prefix-mru).
    eviction_policy: ClassVar[type[EvictionPolicy]] = LRUFreeQueue

    @classmethod
    def configure(cls, config: PagedPrefixConfig, model, tensor_parallel: int) -> PagedPrefixConfig:
        if hasattr(config, "tiers"):  # a plugin's config may extend StrategyConfig alone
            config.tiers.kv_bytes_per_token = model.kv_bytes_per_token
        return config

    def event_names(self) -> tuple[str, ...]:
        """The declared events, and each enabled tier's counters (tiers.py)."""
        return super().event_names() + tier_event_names(getattr(self.config, "tiers", None))

    # On a model with sliding-window layers it is WindowPrefixStrategy (window_prefix.py: a table
    # per layer group, each group's hit rules, as vLLM's hybrid manager): `__new__` builds that.
    window_aware = True

    def __new__(cls, *args, kv_groups: list[KVGroup] | None = None, **kwargs):
        if kv_groups and any(group.is_sliding for group in kv_groups):
            from kvbench.strategies.window_prefix import WindowPrefixStrategy

            return WindowPrefixStrategy(*args, kv_groups=kv_groups, eviction_policy=cls.eviction_policy, **kwargs)
        return super().__new__(cls)

    def __init__(self, config: StrategyConfig, num_blocks: int, max_model_len: int, kv_groups: list[KVGroup] | None = None):
        super().__init__(config, num_blocks, max_model_len)
        self.tiers: TieredCache | None = None
        if enabled_tiers(getattr(config, "tiers", None)):
            self.tiers = TieredCache(config.tiers, self.block_size, self.counters)
            self.pool = TieredBlockPool(num_blocks, self.block_size, self.tiers, self.eviction_policy, self.counters)
        else:
            self.pool = BlockPool(num_blocks, self.block_size, self.eviction_policy, counters=self.counters)
        self.tables = PagedTables(self.pool, self.counters, self._log_copies)
        self.index = PrefixIndex(self.pool, self._end_run)
        # Deferred registrations (see the module docstring): tick -> the states of the sequences
        # whose decode fills a block in that tick, registered in the scheduler's order of decodes
        # (SeqBlocks.order: an admission, a fork or a swap-in numbers it) up to what they hold then
        # (SeqBlocks.decode_base); a state that has stopped decoding since has none and is skipped.
        self._fills: dict[int, list[SeqBlocks]] = {}
        self._num_admissions = 0
        # The tick being allocated (between begin and end_decode_tick); never set with tiers, whose
        # evictions look for twins, so there a decoding sequence stops at each fill (module docstring).
        self._decode_tick: int | None = None
        self._done_tick = 0  # the last tick whose tokens are all scheduled: its fills are due
        self._registered_tick = 0  # the fills of every tick up to here are registered
        self._turn: tuple[int, int] | None = None  # the order of the decode allocate_decodes is at

    def begin_decode_tick(self, tick: int) -> None:
        if self.tiers is None:
            self._decode_tick = tick

    def end_decode_tick(self, tick: int) -> None:
        self._decode_tick = None
        self._done_tick = tick

    def _register_filled(self) -> None:
        """Register the deferred blocks whose tick has come, in the order the decodes fill them."""
        tick, done_tick = self._registered_tick, self._done_tick
        if tick == done_tick:
            return
        fills, register_fills = self._fills, self.index.register_fills
        if not fills:  # (sequences with a run queue none)
            self._registered_tick = done_tick
            return
        while tick < done_tick:
            tick += 1
            due = fills.pop(tick, None)
            if due:
                if len(due) > 1:
                    due.sort(key=_DECODE_ORDER)
                register_fills(due, tick)
        self._registered_tick = done_tick

    def _admitted(self, seq_id: int, state: SeqBlocks) -> None:
        state.order = (self._num_admissions, seq_id)
        self._num_admissions += 1
        state.chain = self.index.chains[seq_id]

    def cached_prefix_tokens(self, seq: SeqView, num_tokens: int) -> int:
        if self._registered_tick != self._done_tick:  # asked once per admission
            self._register_filled()
        max_num_blocks = (num_tokens - 1) // self.block_size
        num_hits = len(self.index.lookup(seq.seq_id, seq.stream, max_num_blocks))
        if self.tiers is not None:
            num_hits += len(self._tier_run(self.index.chain(seq.seq_id, seq.stream), num_hits, max_num_blocks))
        return num_hits * self.block_size

    def probe_prefix_tokens(self, stream: TokenSequence, num_tokens: int, memo: dict) -> int:
        self._register_filled()
        chain = memo.get(("paged_prefix", self.block_size))
        if chain is None:
            chain = memo[("paged_prefix", self.block_size)] = KeyChain(stream, self.block_size)
        max_num_blocks = (num_tokens - 1) // self.block_size
        lookup = self.pool.lookup
        num_hits = 0
        while num_hits < max_num_blocks and (
            lookup(chain.key(num_hits), chain.hashes[num_hits]) is not None
            or self.index.find_after_miss(chain, num_hits) is not None
        ):
            num_hits += 1
        if self.tiers is not None:
            num_hits += len(self._tier_run(chain, num_hits, max_num_blocks))
        return num_hits * self.block_size

    def _tier_run(self, chain: KeyChain, first: int, max_num_blocks: int) -> list[int]:
        """The tier of each block from `first` on that a tier holds, up to the first it lacks."""
        levels = []
        for i in range(first, max_num_blocks):
            level = self.tiers.find(chain.key(i))
            if level is None:
                break
            levels.append(level)
        return levels

    def _read_tiers(self, seq: SeqView, first: int, levels: list[int]) -> None:
        """The tier blocks of a hit are read (most recently used) before the admission's own
        evictions push blocks down the tiers."""
        chain = self.index.chain(seq.seq_id, seq.stream)
        for i, level in enumerate(levels, start=first):
            self.tiers.stores[level].touch(chain.key(i))
        self.tiers.load(levels)

    def _fill_loaded(self, state, first: int, num_loaded: int) -> None:
        """The fresh blocks after the GPU hits hold the K/V read from the tiers."""
        bs = self.block_size
        for block in state.blocks[first : first + num_loaded]:
            self.pool.set_fill(block, bs, bs)
        state.num_tokens = state.num_inherited_tokens = (first + num_loaded) * bs

    @property
    def loads_kv(self) -> bool:
        return self.tiers is not None

    def pop_kv_load(self) -> tuple[float, bool]:
        return self.tiers.pop_load_s(), self.tiers.overlap_load

    def prefix_cache_version(self) -> int:
        # Blocks of a PendingRun become findable as they fill, and one can take an evicted twin's
        # place, without the map knowing: so the version also moves with every tick and eviction.
        self._register_filled()
        pool = self.pool
        return pool.lookup_version + self._done_tick + pool.num_evicted_blocks

    def can_hold(self, seq: SeqView, num_computed_tokens: int, num_tokens: int) -> bool:
        self._register_filled()
        hits = self.index.lookup(seq.seq_id, seq.stream, num_computed_tokens // self.block_size)
        return self.tables.fits(hits, num_tokens)

    def allocate(self, seq: SeqView, num_computed_tokens: int, num_new_tokens: int) -> int | None:
        bs = self.block_size
        num_total_tokens = num_computed_tokens + num_new_tokens
        if self._registered_tick != self._done_tick:
            self._register_filled()
        state = self.tables.seqs.get(seq.seq_id)
        if state is None:
            hits = self.index.lookup(seq.seq_id, seq.stream, num_computed_tokens // bs)
            loads = self._tier_run(self.index.chain(seq.seq_id, seq.stream), len(hits), num_computed_tokens // bs) if self.tiers is not None else ()
            if (len(hits) + len(loads)) * bs != num_computed_tokens:
                raise ValueError(
                    f"seq {seq.seq_id}: num_computed_tokens={num_computed_tokens} is not its cached prefix "
                    f"({(len(hits) + len(loads)) * bs} tokens)"
                )
            if loads:
                if not self.tables.fits(hits, num_total_tokens):
                    return None
                self._read_tiers(seq, len(hits), loads)
            state = self.tables.admit(seq, hits, num_total_tokens)  # loaded blocks are among its fresh ones
            if state is None:
                return None
            if loads:
                self._fill_loaded(state, len(hits), len(loads))
            self._admitted(seq.seq_id, state)
            if self.tiers is None:  # tiers look up evicted blocks' keys: every block filed there
                self.index.start_run(state)
        elif num_new_tokens == 1 and self._decode_tick is not None:
            return self._decode(state, num_computed_tokens)
        elif num_new_tokens == 1:
            if self.tables.grow_one(state, num_computed_tokens) is None:
                return None
        elif not self.tables.grow(state, num_computed_tokens, num_new_tokens):
            return None
        # A block filled (the table covers the tokens): registered now, or pending in the run.
        if num_total_tokens // bs > state.num_cached_blocks and state.run is None:
            self.index.register(state, num_total_tokens)
        state.decode_base = None
        return self._headroom(state)

    def _decode(self, state: SeqBlocks, num_computed_tokens: int) -> int | None:
        """A decoding sequence writes position `num_computed_tokens` now and one more every tick: grant
        all the room its blocks have, and queue the blocks it fills in later ticks."""
        headroom = self.tables.grow_one(state, num_computed_tokens)
        if headroom is None:
            return None
        state.decode_base = num_computed_tokens - self._decode_tick
        if state.run is None:
            self._queue_fills(state, num_computed_tokens, headroom)
        return headroom

    def _registered_tokens(self, state: SeqBlocks) -> int:
        """The tokens a sequence with a run has registered (PrefixIndex.flush files their blocks):
        what its last allocate scheduled, or, while it decodes, what it holds after the last tick
        whose fills are due (and in the tick under way, the block its own allocate's write fills,
        which `_queue_fills` would have registered then)."""
        base = state.decode_base
        if base is None:
            return state.num_scheduled_tokens
        tick = self._decode_tick
        if tick is None:
            num_tokens = base + self._done_tick + 1
        else:
            num_tokens = base + tick
            # Its own allocate in this tick registers the block its write fills, in the order of
            # decodes: count it once that turn has come (allocate_decodes grows the whole batch first).
            if state.num_scheduled_tokens == num_tokens + 1 and (self._turn is None or state.order < self._turn):
                num_tokens += 1
        capacity = len(state.blocks) * self.block_size
        return num_tokens if num_tokens < capacity else capacity

    def _end_run(self, state: SeqBlocks) -> None:
        """A lookup, a filing or a fork reached a live sequence's PendingRun: file what it registered
        so far, and from now on register its blocks as they fill (a decoding one's queued for their
        ticks)."""
        state.run = None
        num_tokens = self._registered_tokens(state)
        self.index.register(state, num_tokens)
        if state.decode_base is not None:
            bs = self.block_size
            self._queue_later_fills(state, (num_tokens // bs + 1) * bs, len(state.blocks) * bs)

    def allocate_decodes(self, batch: list[tuple[SeqView, int]]) -> list[int]:
        """`_decode` for a tick's decoding sequences in one pass (the simulator's most frequent event):
        the tables grow them all at once (`grow_decodes`, as for paged), then each without a run
        queues its fills.
        Registering a block commutes with taking and evicting blocks (module docstring), so growing
        the whole batch before the few blocks registered now leaves the state `_decode` leaves."""
        tick = self._decode_tick
        if tick is None or type(self).allocate is not PagedPrefixStrategy.allocate:
            return super().allocate_decodes(batch)  # ticks unknown (tiers), or a subclass's allocate
        if self._registered_tick != self._done_tick:
            self._register_filled()
        headrooms = self.tables.grow_decodes(batch)
        bs = self.block_size
        seqs = self.tables.seqs
        # Almost every sequence was at a block boundary and got a fresh block of its own: it fills
        # that block bs - 1 ticks from now, so those fills make one list (in the batch's order, the
        # order of decodes), written out here.
        fills_at_block_end = []
        append_fill = fills_at_block_end.append
        fresh_block_headroom = bs if bs > 1 else 0  # with one slot a block, the write fills it now
        run_bases_set = not self.index.runs
        granted = batch if len(headrooms) == len(batch) else batch[: len(headrooms)]
        for seq, num_computed_tokens in granted:
            state = seqs[seq.seq_id]
            state.decode_base = num_computed_tokens - tick
            if state.run is not None:
                continue  # its fills are registered in its run
            headroom = self.tables.headroom(state)  # what grow_decodes granted it
            if headroom == fresh_block_headroom and not num_computed_tokens % bs:
                append_fill(state)
            else:
                # Its write may fill a block, registered now, which may file the run of a sequence of
                # this batch whose turn has not come: see _registered_tokens.
                if not run_bases_set:
                    self._set_run_bases(granted, tick)
                    run_bases_set = True
                self._turn = state.order
                self._queue_fills(state, num_computed_tokens, headroom)
        self._turn = None
        if fills_at_block_end:
            due = self._fills.get(tick + bs - 1)
            if due is None:
                self._fills[tick + bs - 1] = fills_at_block_end
            else:
                due += fills_at_block_end
        return headrooms

    def _set_run_bases(self, batch: list[tuple[SeqView, int]], tick: int) -> None:
        """The decode_base of each sequence of a granted batch that has a run, ahead of its turn."""
        seqs = self.tables.seqs
        for seq, num_computed_tokens in batch:
            state = seqs[seq.seq_id]
            if state.run is not None:
                state.decode_base = num_computed_tokens - tick

    def _queue_fills(self, state: SeqBlocks, num_computed_tokens: int, headroom: int) -> None:
        """A decoding sequence granted `headroom` writes position `num_computed_tokens` in this tick
        and one more each tick after: register the block this write fills, if it fills one, and
        queue each later block its headroom fills for the tick that fills it."""
        bs = self.block_size
        fill_end = (num_computed_tokens // bs + 1) * bs  # the end of the block it writes now
        if fill_end == num_computed_tokens + 1:  # this write fills it: registered now, as a prefill's
            if fill_end // bs > state.num_cached_blocks:
                self.index.register(state, fill_end)
            fill_end += bs
        self._queue_later_fills(state, fill_end, num_computed_tokens + headroom)

    def _queue_later_fills(self, state: SeqBlocks, fill_end: int, room_end: int) -> None:
        """Queue each block a decoding sequence fills, from the one ending at `fill_end` while it
        ends within `room_end`, for the tick that writes its last slot (position decode_base + tick)."""
        bs = self.block_size
        fills = self._fills
        tick = fill_end - 1 - state.decode_base
        while fill_end <= room_end:
            due = fills.get(tick)
            if due is None:
                fills[tick] = [state]
            else:
                due.append(state)
            fill_end += bs
            tick += bs

    def headroom(self, seq_id: int) -> int:
        # A sequence whose last allocate was a decode (it has a decode_base) has room to its
        # capacity: its fills are queued. Any other stops where it fills a block (`_headroom`).
        state = self.tables.seqs[seq_id]
        return self.tables.headroom(state) if state.decode_base is not None else self._headroom(state)

    def start_decoding(self, seq_id: int, tick: int) -> int:
        # A sequence with a run needs no stop where its prompt's block fills (`_headroom`): knowing
        # when it writes is enough to tell, when asked, which of its blocks are full.
        state = self.tables.seqs[seq_id]
        if state.run is None:
            return self.headroom(seq_id)
        state.decode_base = state.num_scheduled_tokens - tick - 1  # its prompt is computed
        return self.tables.headroom(state)

    def _headroom(self, state) -> int:
        """Stop also at the write that fills a block not registered yet, so it is registered then."""
        headroom = self.tables.headroom(state)
        bs = self.block_size
        first_unregistered = state.num_scheduled_tokens // bs
        if first_unregistered < state.num_cached_blocks:
            first_unregistered = state.num_cached_blocks
        until_registration = (first_unregistered + 1) * bs - 1 - state.num_tokens
        return headroom if headroom < until_registration else until_registration

    def fork(self, parent_id: int, child: SeqView, num_computed_tokens: int) -> bool:
        self._register_filled()
        parent = self.tables.seqs[parent_id]
        if parent.run is not None:
            self.index.flush(parent.run)
        state = self.tables.fork_shared(parent_id, child, num_computed_tokens)
        self.index.share_chain(parent_id, child.seq_id, child.stream, num_computed_tokens)
        state.chain = self.index.chain(child.seq_id, child.stream)
        state.order = (self.tables.seqs[parent_id].order[0], child.seq_id)  # decodes in the parent's turn
        return True

    def free(self, seq_id: int, num_computed_tokens: int) -> bool:
        self._register_filled()
        self.index.unregister_uncomputed(self.tables.seqs[seq_id], num_computed_tokens)
        state = self.tables.drop(seq_id, num_computed_tokens)
        state.decode_base = None  # its queued fills are skipped
        unshared = state.run is not None  # nobody can find a run's blocks, so nobody holds them
        if unshared:
            self.index.retire_run(state, num_computed_tokens)
        else:
            self.index.register(state, num_computed_tokens)
        freed = self.tables.release_registered(state, unshared)
        self.index.forget(seq_id)
        return freed

    def num_swap_blocks(self, seqs: list[tuple[int, int]]) -> int:
        return paged_swap.num_swap_blocks(self.tables, seqs)

    def swap_out(self, seqs: list[tuple[int, int]]) -> SwappedKV:
        """Released as by `free`: the blocks' content stays cached in the pool until evicted."""
        return paged_swap.swap_out(self.tables, seqs, self.free)

    def swap_in(self, swapped: SwappedKV) -> list[int] | None:
        """The restored full blocks are registered again (twins of any still cached copy)."""
        self._register_filled()
        block_ids = paged_swap.swap_in(self.tables, swapped)
        if block_ids is not None:
            admission = self._num_admissions
            self._num_admissions += 1
            for seq_id, seq in swapped.seqs.items():
                state = self.tables.seqs[seq_id]
                state.order = (admission, seq_id)
                state.chain = self.index.chain(seq_id, seq.stream)
                # Blocks shared with a sequence restored before it are registered already.
                while (state.num_cached_blocks < len(state.blocks)
                       and state.blocks[state.num_cached_blocks].cache_key is not None):
                    state.num_cached_blocks += 1
                self.index.register(state, seq.num_tokens)
        return block_ids

    def block_table(self, seq_id: int) -> list[int]:
        return self.tables.block_table(seq_id)

    def usage(self) -> PoolUsage:
        return self.tables.usage()

    def max_seq_kv_tokens(self) -> int:
        return self.pool_slots

    def snapshot(self) -> PoolSnapshot:
        self._register_filled()
        snap = self.tables.snapshot()
        pending = self.index.pending_blocks(self._registered_tokens)
        snap.registered |= {block.block_id for block in pending}
        snap.cached |= {block.block_id for block in pending if block.ref_cnt == 0}
        snap.cache_key_checks = self.index.key_checks(self.tables.seqs)
        if self.tiers is not None:
            snap.tiers = self.tiers.contents()
            snap.tier_capacity_blocks = {s.name: s.capacity_blocks for s in self.tiers.stores}
        return snap
