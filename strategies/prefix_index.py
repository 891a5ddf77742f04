"""Automatic prefix caching's index: which cached block holds a sequence's leading content.

vLLM v1's rules:
- A full block is keyed by (hash of the previous block's key, its content), so a key names the
  whole prefix up to it; the content itself is part of the key, so equal hashes of different token
  ids never match (the chain's 64-bit parent hash is trusted, as in vLLM).
- A hit is a run of leading full blocks, capped below the sequence's known length by the caller.

Registered is not the same as filed. vLLM registers every full block (it computes its hash and
puts it in the map), though most blocks are never looked up: an output nobody quotes, a prompt
nobody repeats. Here a newly admitted sequence's own blocks (those after its hits) form a
`PendingRun`: registered, so counted and evicted as cached blocks, but with no key computed and no
map entry. The only way to their content is through the run's first block (a key names its whole
prefix), so the index keeps one entry per run, under the hash of that block's key, and files the
whole run, in order, the first time anything reaches it:
- a lookup that misses that key (the content may be the run's: filed, it hits), or
- a block filed under that key (the run's block was registered first: it stays the entry).
A run is not started where that would change what vLLM's order of registration decides: when its
first block's content is filed already (the run's would be a twin behind it), or another run's first
block has it (two runs' blocks could be twins). Such a sequence registers each block as it fills
(`register`, `register_fills`), as every sequence did before runs. A live sequence's run holds its
full blocks from `num_cached_blocks` on, up to what the strategy says it has written
(paged_prefix.py); a freed one's, its computed full blocks not taken for new content since.

Each sequence's key chain is computed as far as needed and kept while the sequence is known (a
request waiting at the head of the queue is looked up at every retry): a lookup computes the first
block's key, then, on a hit, its prompt's; a filed sequence's chain reaches its final length at its
first registration, so that decoding then registers a block without computing anything. The
block pool holds the key -> block map (caching, uncaching and eviction are its job); the index
only computes keys, looks them up, registers full blocks and keeps the runs.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from kvbench.strategies.block_pool import Block, BlockPool
from kvbench.strategies.paged_tables import SeqBlocks
from kvbench.tokens import TokenSequence


class KeyChain:
    """The cache keys of a token stream's leading full blocks, and their hashes, extended on demand."""

    __slots__ = ("stream", "block_size", "keys", "hashes")

    def __init__(self, stream: TokenSequence, block_size: int, keys: list[Hashable] | None = None,
                 hashes: list[int] | None = None):
        self.stream = stream
        self.block_size = block_size
        self.keys: list[Hashable] = keys or []
        # hash(keys[i]): the pool's map is filed by them (block_pool.py), and the next key holds the last.
        if not keys:
            hashes = []
        elif hashes is None:
            hashes = [hash(key) for key in keys]
        self.hashes: list[int] = hashes

    def key(self, block_index: int) -> Hashable:
        keys = self.keys
        if block_index >= len(keys):
            self.extend(block_index + 1)
        return keys[block_index]

    def extend(self, num_blocks: int) -> list[Hashable]:
        """The keys of (at least) the first `num_blocks` blocks: the chain's own list, extended
        (`hashes` with it)."""
        keys = self.keys
        num_known = len(keys)
        if num_blocks > num_known:
            bs = self.block_size
            hashes = self.hashes
            more, more_hashes = self.stream.chain_keys(hashes[-1] if hashes else None, num_known * bs, num_blocks - num_known, bs)
            keys += more
            hashes += more_hashes
        return keys

    def extend_for(self, num_blocks: int, num_final_tokens: int) -> list[Hashable]:
        """`extend(num_blocks)`, and in the same pass every block that a sequence holding
        `num_final_tokens` tokens when it finishes fills (as far as the stream reaches): one pass
        over the stream per sequence, whether its lookup or its first registration comes first."""
        stream_tokens = self.stream.num_tokens
        if stream_tokens is not None and stream_tokens < num_final_tokens:
            num_final_tokens = stream_tokens
        num_final_blocks = num_final_tokens // self.block_size
        return self.extend(num_final_blocks if num_final_blocks > num_blocks else num_blocks)


class PendingRun:
    """A sequence's registered blocks that are not filed in the pool's map yet.

    While the sequence lives, they are its full blocks from `state.num_cached_blocks` on, up to
    what the strategy says it has registered (`end` None). Once it is freed, they are its blocks
    [first, end) that still hold `cache_key is self`, `num_pending` of them: taking one for new
    content clears it and counts the run down, and the pool drops a run left with none.
    `first_hash` is the hash of its first pending block's key: the only way to its content.
    """

    __slots__ = ("state", "first_hash", "first", "end", "num_pending")

    def __init__(self, state: SeqBlocks, first_hash: int):
        self.state = state
        self.first_hash = first_hash
        self.first = 0
        self.end: int | None = None
        self.num_pending = 0


class PrefixIndex:
    def __init__(self, pool: BlockPool, end_live_run: Callable[[SeqBlocks], None] | None = None):
        self.pool = pool
        self.block_size = pool.block_size
        self.chains: dict[int, KeyChain] = {}  # seq_id -> its key chain (live or looked up)
        # hash of a run's first pending key -> the run (see the module docstring: a lookup that
        # misses that key, or a block filed under it, files the run first). The pool's, whose
        # evictions drop a freed run once none of its blocks is left.
        self.runs: dict[int, PendingRun] = pool.pending_runs
        # Files a live sequence's pending blocks and ends its run (the strategy knows how far it wrote).
        self._end_live_run = end_live_run

    def _chain(self, seq_id: int, stream: TokenSequence) -> KeyChain:
        chain = self.chains.get(seq_id)
        if chain is None:
            chain = self.chains[seq_id] = KeyChain(stream, self.block_size)
        return chain

    def chain(self, seq_id: int, stream: TokenSequence) -> KeyChain:
        """The sequence's key chain, kept while the sequence is known (looked up, held, swapped back in)."""
        return self._chain(seq_id, stream)

    def lookup(self, seq_id: int, stream: TokenSequence, max_num_blocks: int) -> list[Block]:
        """Cached blocks holding the stream's leading full blocks, at most `max_num_blocks`.

        Keys are computed as far as the walk goes: the first block's alone, then, on a hit, all
        `max_num_blocks` at once (most prompts miss at once; a hit usually continues).
        """
        # (`_chain` written out: every admission looks its sequence up twice.)
        chain = self.chains.get(seq_id)
        if chain is None:
            chain = self.chains[seq_id] = KeyChain(stream, self.block_size)
        keys = chain.keys
        hashes = chain.hashes
        lookup = self.pool.lookup
        runs = self.runs
        hits: list[Block] = []
        for i in range(max_num_blocks):
            if i == len(keys):
                chain.extend(max_num_blocks if i else 1)
            block = lookup(keys[i], hashes[i])
            if block is None and (not runs or (block := self.find_after_miss(chain, i)) is None):
                break
            hits.append(block)
        return hits

    def find_after_miss(self, chain: KeyChain, i: int) -> Block | None:
        """Block i of `chain` missed: file the run whose first pending block has its content, if one
        does, and look again."""
        run = self.runs.get(chain.hashes[i])
        if run is None:
            return None
        self.flush(run)
        return self.pool.lookup(chain.keys[i], chain.hashes[i])

    def register(self, state: SeqBlocks, num_tokens: int) -> None:
        """Make the blocks that `num_tokens` tokens fill findable by content (keys: `state.chain`)."""
        num_full_blocks = num_tokens // self.block_size
        first = state.num_cached_blocks
        if num_full_blocks <= first:
            return
        blocks = state.blocks
        if num_full_blocks > len(blocks):
            num_full_blocks = len(blocks)
        chain = state.chain
        keys = chain.keys
        if num_full_blocks > len(keys):
            # Every block it will fill, at once: decoding then registers a block at a time.
            keys = chain.extend_for(num_full_blocks, state.final_num_kv_tokens)
        pool = self.pool
        cache = pool.cache
        setdefault = pool.filing()  # BlockPool.cache written out, as in register_fills
        hashes = chain.hashes
        runs = self.runs
        num_first = 0
        for i in range(first, num_full_blocks):
            block = blocks[i]
            key_hash = hashes[i]
            if runs and key_hash in runs:  # a run's block with this content was registered first
                self.flush(runs[key_hash])
                setdefault = pool.filing()
            # Registered even when a twin holds the same content: lookups find the earlier one,
            # and this one keeps the content findable after the twin is evicted.
            if setdefault is not None:
                block.cache_key = keys[i]
                block.map_key = key_hash
                if setdefault(key_hash, block) is block:
                    num_first += 1
                    continue
            cache(block, keys[i], key_hash)
            setdefault = pool.filing()
        pool.lookup_version += num_first
        state.num_cached_blocks = num_full_blocks

    def register_fills(self, states: list[SeqBlocks], tick: int) -> None:
        """`register` for each decoding sequence of `states`, in order, up to the tokens it holds
        after `tick`: it writes position `decode_base + t` at tick t (SeqBlocks.decode_base), so
        `decode_base + tick + 1`. A sequence that stopped decoding since (freed, or allocated
        otherwise) has no `decode_base` and is skipped.

        Almost every one has filled the next block to register, whose key its chain already holds
        (the strategy computes a filed sequence's keys to its final length): that case is written
        out.
        """
        bs = self.block_size
        num_tokens_after = tick + 1  # + decode_base
        pool = self.pool
        cache = pool.cache
        # BlockPool.cache written out for a block whose content nobody else registered (its hash
        # comes free): almost every output block.
        setdefault = pool.filing()
        runs = self.runs
        num_first = 0  # blocks that became their content's entry: each bumps the lookup version
        for state in states:
            base = state.decode_base
            if base is None:
                continue
            i = state.num_cached_blocks
            num_full_blocks = (base + num_tokens_after) // bs
            if num_full_blocks == i + 1:
                chain = state.chain
                try:
                    key = chain.keys[i]
                except IndexError:  # its keys reach no further (a stream of unknown length)
                    key = chain.key(i)
                block = state.blocks[i]
                state.num_cached_blocks = num_full_blocks
                key_hash = chain.hashes[i]
                if runs and key_hash in runs:
                    self.flush(runs[key_hash])
                    setdefault = pool.filing()
                if setdefault is not None:
                    block.cache_key = key
                    block.map_key = key_hash
                    if setdefault(key_hash, block) is block:
                        num_first += 1
                        continue
                # A twin, a collision, or a map filed by full keys: the pool sorts it out.
                cache(block, key, key_hash)
                setdefault = pool.filing()
            elif num_full_blocks > i:
                self.register(state, num_full_blocks * bs)
                setdefault = pool.filing()
        pool.lookup_version += num_first

    def start_run(self, state: SeqBlocks) -> bool:
        """Register the blocks a newly admitted `state` fills (after its hits) without filing them:
        a PendingRun, where that is exact. It is not if its first one's content is filed already
        (the block would be a twin, behind it) or another run's first block has that content (their
        blocks could be twins, filed in the order they filled). False: the caller files them."""
        first = state.num_cached_blocks
        chain = state.chain
        num_final_tokens = state.final_num_kv_tokens
        stream_tokens = chain.stream.num_tokens
        if stream_tokens is not None and stream_tokens < num_final_tokens:
            num_final_tokens = stream_tokens
        if (first + 1) * self.block_size > num_final_tokens:
            return False  # it fills no block of its own: nothing to defer
        keys = chain.keys
        if first == len(keys):  # its lookup stopped short of the first block (a capped hit)
            chain.extend(first + 1)
        first_hash = chain.hashes[first]
        if first_hash in self.runs or self.pool.lookup(keys[first], first_hash) is not None:
            return False
        state.run = self.runs[first_hash] = PendingRun(state, first_hash)
        return True

    def retire_run(self, state: SeqBlocks, num_computed_tokens: int) -> None:
        """A sequence with a run is freed: its computed full blocks are registered, and stay pending
        (each marked `cache_key = run`; `map_key` is None on any block not filed) until a lookup
        or a filing reaches them, or they are taken for new content."""
        run = state.run
        state.run = None
        first = state.num_cached_blocks
        end = min(num_computed_tokens // self.block_size, len(state.blocks))
        if end <= first:
            del self.runs[run.first_hash]
            return
        for block in state.blocks[first:end]:
            block.cache_key = run
        run.first, run.end, run.num_pending = first, end, end - first
        state.num_cached_blocks = end

    def flush(self, run: PendingRun) -> None:
        """File a run's pending blocks in the pool's map, in order (as they were registered), and end it."""
        del self.runs[run.first_hash]
        if run.end is None:
            self._end_live_run(run.state)
            return
        state = run.state
        chain = state.chain
        keys = chain.extend(run.end)
        hashes = chain.hashes
        pool = self.pool
        runs = self.runs
        blocks = state.blocks
        for i in range(run.first, run.end):
            block = blocks[i]
            if block.cache_key is run:  # not taken for new content since
                if runs and hashes[i] in runs:
                    self.flush(runs[hashes[i]])
                pool.cache(block, keys[i], hashes[i])

    def pending_blocks(self, registered_tokens: Callable[[SeqBlocks], int]) -> list[Block]:
        """Every block registered but not filed: live runs' (their full blocks by
        `registered_tokens(state)`) and retired runs' not yet taken."""
        pending = []
        for run in self.runs.values():
            state = run.state
            if run.end is None:
                pending += state.blocks[state.num_cached_blocks : registered_tokens(state) // self.block_size]
            else:
                pending += [b for b in state.blocks[run.first : run.end] if b.cache_key is run]
        return pending

    def unregister_uncomputed(self, state: SeqBlocks, num_computed_tokens: int) -> None:
        """Forget entries of blocks whose tokens were scheduled but never computed (a sequence
        preempted before its step ran): their K/V is incomplete, so nobody may find them."""
        num_computed_blocks = num_computed_tokens // self.block_size
        for block in state.blocks[num_computed_blocks:]:
            if block.cache_key is not None and block.ref_cnt == 1:
                self.pool.uncache(block)
        state.num_cached_blocks = min(state.num_cached_blocks, num_computed_blocks)

    def share_chain(self, parent_id: int, child_id: int, child_stream: TokenSequence, num_tokens: int) -> None:
        """A forked child's full blocks hold the parent's content: reuse its keys."""
        parent_chain = self.chains.get(parent_id)
        if parent_chain is not None:
            num_shared = num_tokens // self.block_size
            self.chains[child_id] = KeyChain(
                child_stream, self.block_size, parent_chain.keys[:num_shared], parent_chain.hashes[:num_shared],
            )

    def forget(self, seq_id: int) -> None:
        del self.chains[seq_id]

    def key_checks(self, seqs: dict[int, SeqBlocks]) -> list[tuple[int, object, object]]:
        """(block id, its key, the key re-derived from scratch from a holder's content) for every
        registered block of every live sequence, for the invariant checker."""
        checks = []
        for state in seqs.values():
            fresh = KeyChain(state.stream, self.block_size)
            for i, block in enumerate(state.blocks):
                if block.cache_key is not None:
                    checks.append((block.block_id, block.cache_key, fresh.key(i)))
        return checks
