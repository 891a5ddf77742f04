"""`paged_prefix`: paged + copy-on-write + automatic prefix caching, with vLLM v1's rules.

- A full block is keyed by (hash of the previous block's key, its content), so a key names the
  whole prefix up to it; the content itself is part of the key, so equal hashes of different token
  ids never match (the chain's 64-bit parent hash is trusted, as in vLLM).
- Blocks are registered as soon as the tokens scheduled into them fill them, so requests admitted in
  the same step already share.
- A hit is a run of leading full blocks, capped below the sequence's known length: the last token
  is always computed, since its logits give the next token.
- Freed blocks keep their key in the free queue until popped for new content: least recently freed
  first, and a sequence's blocks are freed tail first, so its tail is evicted before its head.

Each sequence's chain of keys is computed once, block by block as it is needed, and kept while the
sequence is known: a request waiting at the head of the queue is looked up at every retry.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from kvbench.strategies.base import SeqView, StrategyConfig
from kvbench.strategies.block_pool import Block
from kvbench.strategies.paged import SeqBlocks
from kvbench.strategies.paged_cow import PagedCowStrategy
from kvbench.strategies.registry import register
from kvbench.tokens import TokenSequence


@dataclass
class PagedPrefixConfig(StrategyConfig):
    name: str = "paged_prefix"


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


@register("paged_prefix", PagedPrefixConfig)
class PagedPrefixStrategy(PagedCowStrategy):
    def __init__(self, config: StrategyConfig, num_blocks: int, max_model_len: int):
        super().__init__(config, num_blocks, max_model_len)
        self._chains: dict[int, KeyChain] = {}  # seq_id -> its key chain (live or looked up)

    def _chain(self, seq_id: int, stream: TokenSequence) -> KeyChain:
        chain = self._chains.get(seq_id)
        if chain is None:
            chain = self._chains[seq_id] = KeyChain(stream, self.block_size)
        return chain

    def _lookup_prefix(self, seq: SeqView, max_num_blocks: int) -> list[Block]:
        chain = self._chain(seq.seq_id, seq.stream)
        cached = self.pool.cached
        hits: list[Block] = []
        for i in range(max_num_blocks):
            block = cached.get(chain.key(i))
            if block is None:
                break
            hits.append(block)
        return hits

    def _register_full_blocks(self, seq_id: int, state: SeqBlocks, num_tokens: int) -> None:
        num_full_blocks = min(num_tokens // self.block_size, len(state.blocks))
        if num_full_blocks <= state.num_cached_blocks:
            return
        chain = self._chain(seq_id, state.stream)
        for i in range(state.num_cached_blocks, num_full_blocks):
            # Registered even when a twin holds the same content: lookups find the earlier one,
            # and this one keeps the content findable after the twin is evicted.
            self.pool.cache(state.blocks[i], chain.key(i))
        self.admission_epoch += 1
        state.num_cached_blocks = num_full_blocks

    def fork(self, parent_id: int, child: SeqView, num_computed_tokens: int) -> bool:
        if not super().fork(parent_id, child, num_computed_tokens):
            return False
        parent_chain = self._chains.get(parent_id)
        if parent_chain is not None:  # the child's full blocks hold the parent's content
            shared_keys = parent_chain.keys[: num_computed_tokens // self.block_size]
            self._chains[child.seq_id] = KeyChain(child.stream, self.block_size, shared_keys)
        return True

    def free(self, seq_id: int, num_computed_tokens: int) -> None:
        # Blocks registered for tokens that were scheduled but never computed (the sequence is
        # preempted before its step ran) must not be found by content: their K/V is incomplete.
        state = self._seqs[seq_id]
        for block in state.blocks[num_computed_tokens // self.block_size :]:
            if block.cache_key is not None and block.ref_cnt == 1:
                self.pool.uncache(block)
        state.num_cached_blocks = min(state.num_cached_blocks, num_computed_tokens // self.block_size)
        super().free(seq_id, num_computed_tokens)
        del self._chains[seq_id]

    def headroom(self, seq_id: int) -> int:
        """Stop also at the write that fills a block not registered yet, so it is registered then."""
        headroom = super().headroom(seq_id)
        state = self._seqs[seq_id]
        bs = self.block_size
        first_unregistered = max(state.num_scheduled_tokens // bs, state.num_cached_blocks)
        return min(headroom, (first_unregistered + 1) * bs - 1 - state.num_tokens)
