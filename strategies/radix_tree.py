"""A radix tree over token ids whose pages are pool blocks: SGLang's RadixAttention cache, for `paged_radix`.

- An edge holds a run of whole pages (`block_size` tokens each): its tokens are a range of some
  sequence's stream, and its blocks hold their K/V. Children are keyed by their first page's
  content. Where a match ends inside an edge, the edge splits there, so a node is always used whole.
- "In use" is kept apart from "resident": `lock_ref` counts the sequences whose path runs through
  a node (a lock walks up to the root). Only an unlocked leaf whose pages no block table holds can
  lose pages (a forked sequence holds its parent's blocks without locking what the parent inserts
  later, so the tail's reference count is checked too). Unused pages are free in the pool but keep
  their content until evicted (the pool's "cached" slots).
- Eviction takes the tail page of the unlocked leaf the policy ranks first (`LEAF_PRIORITIES`:
  least recently used, least frequently used, or first inserted), so a pool gives up exactly the
  pages it needs; a leaf left empty disappears and its parent may become a leaf. SGLang evicts whole
  leaves; taking pages is the same order at page granularity.
- Time is a logical clock the tree advances itself (one tick per match or insert), never the wall
  clock, so a simulation is deterministic. A match and an insert both count as an access of the
  nodes on their path (SGLang updates `last_access_time` in both).

A sequence's blocks that the tree holds are always a prefix of its block table: an insert stops
where the tree already holds the same content in other blocks (a twin computed concurrently),
so locks and holders agree.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from kvbench.strategies.eviction import Block
from kvbench.tokens import TokenSequence, common_prefix_len


class RadixNode:
    __slots__ = (
        "parent", "children", "key", "stream", "start", "blocks", "lock_ref", "last_access", "hit_count", "birth",
        "heap_version",
    )

    def __init__(self, parent: RadixNode | None, key: object, stream: TokenSequence | None, start: int,
                 blocks: list[Block], clock: int):
        self.parent = parent
        self.children: dict[object, RadixNode] = {}  # first page's content -> child
        self.key = key  # its first page's content: its entry in the parent's children
        self.stream = stream  # the edge's tokens are stream[start : start + len(blocks) * block_size]
        self.start = start
        self.blocks = blocks
        self.lock_ref = 0
        self.last_access = clock
        self.hit_count = 0
        self.birth = clock
        self.heap_version = -1  # the eviction-heap entry that is current for this node (-1: none)


# Eviction policies: the leaf with the smallest value loses its pages first.
LEAF_PRIORITIES: dict[str, Callable[[RadixNode], tuple]] = {
    "lru": lambda node: (node.last_access,),
    "lfu": lambda node: (node.hit_count, node.last_access),
    "fifo": lambda node: (node.birth,),
}


@dataclass(slots=True)
class Match:
    """The cached prefix of a stream: its blocks, and where in the tree it ends."""

    num_tokens: int
    blocks: list[Block]
    node: RadixNode  # the node the match ends in
    num_node_tokens: int  # tokens of `node` the match covers (all of them unless it ends inside)


class RadixTree:
    def __init__(self, block_size: int, eviction: str, register: Callable[[list[Block]], None]):
        self.block_size = block_size
        self.priority = LEAF_PRIORITIES[eviction]
        self._register = register  # called with the blocks the tree takes in (the pool marks them cached)
        self.clock = 0
        self.root = RadixNode(None, None, None, 0, [], 0)
        self.root.lock_ref = 1  # never evicted
        self._heap: list[tuple[tuple, int, RadixNode]] = []  # (priority, version, leaf), lazily pruned
        self._tails: dict[int, RadixNode] = {}  # a node's last block id -> the node
        self._next_version = 0
        self.num_inserts = 0  # inserts that made new content findable: the prefix cache's version

    # -- lookups -----------------------------------------------------------------------------------

    def match(self, stream: TokenSequence, max_num_tokens: int) -> Match:
        """The longest cached prefix of `stream`, in whole pages, at most `max_num_tokens` (pure)."""
        bs = self.block_size
        node, pos, blocks = self.root, 0, []
        while pos + bs <= max_num_tokens:
            child = node.children.get(stream.block_key(pos, pos + bs))
            if child is None:
                break
            edge_tokens = len(child.blocks) * bs
            n = common_prefix_len(child.stream, child.start, stream, pos, min(edge_tokens, max_num_tokens - pos))
            n -= n % bs
            blocks.extend(child.blocks[: n // bs])
            pos += n
            if n < edge_tokens:
                return Match(pos, blocks, child, n)
            node = child
        return Match(pos, blocks, node, len(node.blocks) * bs)

    def lock_match(self, match: Match) -> RadixNode:
        """A sequence starts using a match: split its last edge where it ends, lock the path, count the hit."""
        node = match.node
        if match.num_node_tokens < len(node.blocks) * self.block_size:
            node = self._split(node, match.num_node_tokens // self.block_size)
        self.clock += 1
        walk = node
        while walk is not None:
            walk.last_access = self.clock
            walk.hit_count += 1
            walk = walk.parent
        self.lock(node)
        return node

    # -- locks -------------------------------------------------------------------------------------

    def lock(self, node: RadixNode) -> None:
        while node is not None:
            node.lock_ref += 1
            node = node.parent

    def unlock(self, node: RadixNode) -> None:
        leaf = node
        while node is not None:
            node.lock_ref -= 1
            node = node.parent
        self._push_if_evictable(leaf)

    def block_freed(self, block: Block) -> None:
        """A cached block left its last block table: its node may have become evictable."""
        node = self._tails.get(block.block_id)
        if node is not None:
            self._push_if_evictable(node)

    def _push_if_evictable(self, node: RadixNode) -> None:
        if node.lock_ref == 0 and not node.children and node.blocks and node.blocks[-1].ref_cnt == 0:
            self._push(node)

    # -- inserts -----------------------------------------------------------------------------------

    def insert(self, stream: TokenSequence, blocks: list[Block], num_tokens: int) -> RadixNode:
        """Make a sequence's first `num_tokens` (whole pages, computed) findable; its blocks hold them.

        Returns the deepest node whose blocks are the sequence's own: the node it should lock.
        Where the tree holds the same content in other blocks, the insert stops there.
        """
        bs = self.block_size
        node, pos = self.root, 0
        self.clock += 1  # an insert uses the path it walks: LRU counts it as an access, as SGLang does
        while pos < num_tokens:
            key = stream.block_key(pos, pos + bs)
            child = node.children.get(key)
            if child is None:
                new = RadixNode(node, key, stream, pos, blocks[pos // bs : num_tokens // bs], self.clock)
                self._register(new.blocks)
                node.children[key] = new
                self._tails[new.blocks[-1].block_id] = new
                self.num_inserts += 1
                return new
            edge_tokens = len(child.blocks) * bs
            n = common_prefix_len(child.stream, child.start, stream, pos, min(edge_tokens, num_tokens - pos))
            num_pages = self._num_own_pages(child, blocks, pos // bs, n // bs)
            if num_pages == 0:
                return node
            if num_pages < len(child.blocks):
                child = self._split(child, num_pages)
            child.last_access = self.clock
            node, pos = child, pos + num_pages * bs
            if num_pages * bs < n - n % bs:
                return node  # the content goes on, in another sequence's blocks
        return node

    @staticmethod
    def _num_own_pages(node: RadixNode, blocks: list[Block], first: int, num_pages: int) -> int:
        """Leading pages among `num_pages` of `node` that are the sequence's own blocks (a prefix)."""
        if num_pages and node.blocks[num_pages - 1] is blocks[first + num_pages - 1]:
            return num_pages
        lo, hi = 0, num_pages - 1  # node.blocks[:lo] are its own, node.blocks[hi] is not
        while lo < hi:
            mid = (lo + hi) // 2
            if node.blocks[mid] is blocks[first + mid]:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _split(self, node: RadixNode, num_pages: int) -> RadixNode:
        """Cut `node`'s edge after `num_pages` pages; the new upper node is returned."""
        upper = RadixNode(node.parent, node.key, node.stream, node.start, node.blocks[:num_pages], node.birth)
        upper.lock_ref = node.lock_ref
        upper.last_access = node.last_access
        upper.hit_count = node.hit_count
        node.parent.children[node.key] = upper
        node.parent = upper
        node.start += num_pages * self.block_size
        node.blocks = node.blocks[num_pages:]
        node.key = node.stream.block_key(node.start, node.start + self.block_size)
        upper.children[node.key] = node
        self._tails[upper.blocks[-1].block_id] = upper
        return upper

    # -- eviction ----------------------------------------------------------------------------------

    def _push(self, node: RadixNode) -> None:
        node.heap_version = self._next_version
        heapq.heappush(self._heap, (self.priority(node), self._next_version, node))
        self._next_version += 1

    def evict_page(self) -> Block:
        """Take the tail page of the unlocked leaf ranked first. IndexError when there is none."""
        heap, tails = self._heap, self._tails
        while heap:
            _, version, node = heap[0]
            blocks = node.blocks
            if version != node.heap_version or node.lock_ref or node.children or not blocks or blocks[-1].ref_cnt:
                heapq.heappop(heap)  # stale: locked, grew a child, held, or gone (re-pushed when that ends)
                continue
            block = blocks.pop()
            del tails[block.block_id]
            if blocks:
                tails[blocks[-1].block_id] = node
            else:
                heapq.heappop(heap)
                parent = node.parent
                del parent.children[node.key]
                node.heap_version = -1
                self._push_if_evictable(parent)
            return block
        raise IndexError("no evictable page")

    # -- inspection (tests and the invariant checker) ----------------------------------------------

    def nodes(self):
        stack = list(self.root.children.values())
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.children.values())

    def block_positions(self) -> dict[int, tuple[int, object]]:
        """block id -> (its first token's position, its page's content) for every block in the tree."""
        bs = self.block_size
        out = {}
        for node in self.nodes():
            depth = 0
            walk = node.parent
            while walk is not self.root:
                depth += len(walk.blocks) * bs
                walk = walk.parent
            for i, block in enumerate(node.blocks):
                start = node.start + i * bs
                out[block.block_id] = (depth + i * bs, node.stream.block_key(start, start + bs))
        return out


class RadixFreeQueue:
    """A block pool's free blocks when a radix tree owns the cached ones (an EvictionPolicy).

    Never-used blocks go first, then freed blocks holding nothing findable (oldest first), and only
    then does the tree give up a page. Cached blocks freed into the pool stay in the tree; the queue
    only counts them.
    """

    def __init__(self, num_blocks: int, materialise: Callable[[int], Block], tree: RadixTree):
        self._materialise = materialise
        self._num_pool_blocks = num_blocks
        self._next_fresh_id = 0
        self._uncached: deque[Block] = deque()
        self.tree = tree
        self.num_blocks = num_blocks

    def push(self, block: Block) -> None:
        if block.cache_key is None:
            self._uncached.append(block)
        else:
            self.tree.block_freed(block)
        self.num_blocks += 1

    def pop(self) -> Block:
        if self._next_fresh_id < self._num_pool_blocks:
            block = self._materialise(self._next_fresh_id)
            self._next_fresh_id += 1
        elif self._uncached:
            block = self._uncached.popleft()
        else:
            block = self.tree.evict_page()
        self.num_blocks -= 1
        return block

    def remove(self, block: Block) -> None:
        """A cached block revived by a hit: the tree keeps it, the pool no longer counts it free."""
        self.num_blocks -= 1

    def block_ids(self) -> list[int]:
        ids = list(range(self._next_fresh_id, self._num_pool_blocks)) + [b.block_id for b in self._uncached]
        return ids + sorted(b.block_id for node in self.tree.nodes() for b in node.blocks if b.ref_cnt == 0)
