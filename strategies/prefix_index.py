"""Automatic prefix caching's index: which cached block holds a sequence's leading content.

vLLM v1's rules:
- A full block is keyed by (hash of the previous block's key, its content), so a key names the
  whole prefix up to it; the content itself is part of the key, so equal hashes of different token
  ids never match (the chain's 64-bit parent hash is trusted, as in vLLM).
- A hit is a run of leading full blocks, capped below the sequence's known length by the caller.

Each sequence's chain of keys is computed once, block by block as it is needed, and kept while the
sequence is known: a request waiting at the head of the queue is looked up at every retry. The
block pool holds the key -> block map (caching, uncaching and eviction are its job); the index
only computes keys, looks them up and registers full blocks.
"""

from __future__ import annotations

from collections.abc import Hashable

from kvbench.strategies.block_pool import Block, BlockPool
from kvbench.strategies.paged_tables import SeqBlocks
from kvbench.tokens import TokenSequence


class KeyChain:
    """The cache keys of a token stream's leading full blocks, extended on demand."""

    __slots__ = ("stream", "block_size", "keys", "_last_hash")

    def __init__(self, stream: TokenSequence, block_size: int, keys: list[Hashable] | None = None):
        self.stream = stream
        self.block_size = block_size
        self.keys: list[Hashable] = keys or []
        self._last_hash = hash(self.keys[-1]) if self.keys else None

    def key(self, block_index: int) -> Hashable:
        bs = self.block_size
        while len(self.keys) <= block_index:
            i = len(self.keys)
            key = (self._last_hash, self.stream.block_key(i * bs, (i + 1) * bs))
            self.keys.append(key)
            self._last_hash = hash(key)
        return self.keys[block_index]


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
        """The sequence's key chain (kept while the sequence is known, as for lookups)."""
        return self._chain(seq_id, stream)

    def lookup(self, seq_id: int, stream: TokenSequence, max_num_blocks: int) -> list[Block]:
        """Cached blocks holding the stream's leading full blocks, at most `max_num_blocks`."""
        chain = self._chain(seq_id, stream)
        lookup = self.pool.lookup
        hits: list[Block] = []
        for i in range(max_num_blocks):
            block = lookup(chain.key(i))
            if block is None:
                break
            hits.append(block)
        return hits

    def register(self, seq_id: int, state: SeqBlocks, num_tokens: int) -> None:
        """Make the blocks that `num_tokens` tokens fill findable by content."""
        num_full_blocks = min(num_tokens // self.block_size, len(state.blocks))
        if num_full_blocks <= state.num_cached_blocks:
            return
        chain = self._chain(seq_id, state.stream)
        for i in range(state.num_cached_blocks, num_full_blocks):
            # Registered even when a twin holds the same content: lookups find the earlier one,
            # and this one keeps the content findable after the twin is evicted.
            self.pool.cache(state.blocks[i], chain.key(i))
        state.num_cached_blocks = num_full_blocks

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
            shared_keys = parent_chain.keys[: num_tokens // self.block_size]
            self.chains[child_id] = KeyChain(child_stream, self.block_size, shared_keys)

    def track(self, seq_id: int, stream: TokenSequence) -> None:
        """Know a sequence that arrives with its blocks (swapped back in), as a lookup would."""
        self._chain(seq_id, stream)

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
