"""Automatic prefix caching's index: which cached block holds a sequence's leading content.

vLLM v1's rules:
- A full block is keyed by (hash of the previous block's key, its content), so a key names the
  whole prefix up to it; the content itself is part of the key, so equal hashes of different token
  ids never match (the chain's 64-bit parent hash is trusted, as in vLLM).
- A hit is a run of leading full blocks, capped below the sequence's known length by the caller.

Each sequence's chain of keys is computed once and kept while the sequence is known (a request
waiting at the head of the queue is looked up at every retry): up to its final length at its first
lookup (`cached_prefix_tokens` knows it), or else its prompt's there and the rest at its first
registration, so that decoding then registers a block without computing anything. The
block pool holds the key -> block map (caching, uncaching and eviction are its job); the index
only computes keys, looks them up and registers full blocks.
"""

from __future__ import annotations

from collections.abc import Hashable

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


class PrefixIndex:
    def __init__(self, pool: BlockPool):
        self.pool = pool
        self.block_size = pool.block_size
        self.chains: dict[int, KeyChain] = {}  # seq_id -> its key chain (live or looked up)

    def _chain(self, seq_id: int, stream: TokenSequence) -> KeyChain:
        chain = self.chains.get(seq_id)
        if chain is None:
            chain = self.chains[seq_id] = KeyChain(stream, self.block_size)
        return chain

    def chain(self, seq_id: int, stream: TokenSequence) -> KeyChain:
        """The sequence's key chain, kept while the sequence is known (looked up, held, swapped back in)."""
        return self._chain(seq_id, stream)

    def lookup(self, seq_id: int, stream: TokenSequence, max_num_blocks: int, num_final_tokens: int = 0) -> list[Block]:
        """Cached blocks holding the stream's leading full blocks, at most `max_num_blocks`.

        All the keys at once: a prefix computed after a miss registers its blocks under them. With
        `num_final_tokens` (the tokens the sequence holds when it finishes), the keys of every block
        it will fill are computed in the same pass, as `register` would compute them at its first
        registration: one pass over the stream per sequence rather than two.
        """
        # (`_chain` and `extend` written out: every admission looks its sequence up twice.)
        chain = self.chains.get(seq_id)
        if chain is None:
            chain = self.chains[seq_id] = KeyChain(stream, self.block_size)
        keys = chain.keys
        if max_num_blocks > len(keys):
            chain.extend_for(max_num_blocks, num_final_tokens)
        hashes = chain.hashes
        lookup = self.pool.lookup
        hits: list[Block] = []
        for i in range(max_num_blocks):
            block = lookup(keys[i], hashes[i])
            if block is None:
                break
            hits.append(block)
        return hits

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
        num_first = 0
        for i in range(first, num_full_blocks):
            # Registered even when a twin holds the same content: lookups find the earlier one,
            # and this one keeps the content findable after the twin is evicted.
            block = blocks[i]
            key_hash = hashes[i]
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
        (its first registration computed every block to its final length): that case is written
        out, since the simulator registers a block of every output this way.
        """
        bs = self.block_size
        num_tokens_after = tick + 1  # + decode_base
        pool = self.pool
        cache = pool.cache
        # BlockPool.cache written out for a block whose content nobody else registered (its hash
        # comes free): almost every output block.
        setdefault = pool.filing()
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
