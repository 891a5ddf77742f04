"""The most prefix caching could save on a workload: its infinite-cache hit rate at a block size.

Requests are taken in arrival order, and each finds every full block that any earlier request held
(its prompt, and its recorded reply when the workload fixes one), as if the cache never evicted
and every earlier request had finished: the upper bound on what `paged_prefix` reports as
`prefix_hit_rate`. The rules are the strategy's: a hit is a run of leading full blocks whose whole
prefix matches, and at most (prompt tokens - 1) rounded down to a block, since the last prompt
token is always computed. (A simulated run can only exceed it through preemptions: a re-admitted
request is looked up again and may find its own blocks.)

The held blocks form a trie (a node per distinct prefix, children by `TokenSequence.block_key`).
A long synthetic segment (a trace's hash block, a ShareGPT message) spans many blocks whose keys
follow from its stream key and offset, so such a stretch is one trie "run" (the node where it
starts, the stream, the offset there) that remembers how deep any request went along it: walking
a request costs O(segments), not O(blocks), which keeps a 145M-token trace at 16-token blocks in
seconds. Other blocks (explicit ids, blocks straddling two segments) are trie nodes of their own.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from kvbench.request import Request
from kvbench.tokens import Synthetic, TokenSequence


def infinite_cache_hits(requests: Iterable[Request], block_size: int) -> tuple[int, int]:
    """(hit tokens, prompt tokens looked up) over `requests` with an unlimited cache."""
    if block_size < 1:
        raise ValueError(f"block_size={block_size} must be >= 1")
    trie = BlockTrie(block_size)
    hit_tokens = prompt_tokens = 0
    for request in sorted(requests, key=lambda r: (r.arrival_time_s, r.request_id)):
        held = request.prompt
        if request.output is not None:  # a recorded reply stays in the cache after the request
            held = held + request.output.truncate(request.num_output_tokens - 1)
        max_hit_blocks = (request.num_prompt_tokens - 1) // block_size
        hit_tokens += min(trie.insert(held), max_hit_blocks) * block_size
        prompt_tokens += request.num_prompt_tokens
    return hit_tokens, prompt_tokens


class BlockTrie:
    """The full blocks of every sequence inserted so far, by prefix.

    A position in the trie is a node id (the root is 0) or a run: (the node where it starts, the
    stream, the stream offset there, blocks walked along it).
    """

    def __init__(self, block_size: int):
        self.block_size = block_size
        self._nodes: dict[tuple, int] = {}  # (parent node, block key) or a run position -> node id
        self._run_depths: dict[tuple, int] = {}  # (start node, stream, offset) -> blocks seen along the run

    def insert(self, sequence: TokenSequence) -> int:
        """Add the sequence's full blocks; return how many leading ones were there already."""
        bs = self.block_size
        num_blocks = len(sequence) // bs
        segments = list(_with_bounds(sequence.segments))
        position: int | tuple = 0
        num_found = 0  # below a block seen for the first time, every block is new: no need to stop counting
        s = i = 0
        while i < num_blocks:
            lo = i * bs
            while segments[s][2] <= lo:
                s += 1
            segment, start, end = segments[s]
            count = min((end - lo) // bs, num_blocks - i)  # blocks from lo wholly inside this segment
            if count and isinstance(segment, Synthetic):
                position, found = self._follow_run(position, segment.key, lo - start, count)
            else:
                count = 1
                position, found = self._follow_block(position, sequence.block_key(lo, lo + bs))
            num_found += found
            i += count
        return num_found

    def _follow_block(self, position: int | tuple, block_key: tuple) -> tuple[int, int]:
        """The node after one block from `position`, and 1 if it existed (else 0)."""
        key = (self._node(position), block_key)
        child = self._nodes.get(key)
        if child is not None:
            return child, 1
        self._nodes[key] = child = len(self._nodes) + 1
        return child, 0

    def _follow_run(self, position: int | tuple, stream: Hashable, offset: int, count: int) -> tuple[tuple, int]:
        """The position after `count` blocks of `stream` from `offset`, and how many of them existed.

        A run lies inside one segment (a segment restarts its stream at position 0, so the next
        segment never continues it): it starts at the current position's node.
        """
        run = (self._node(position), stream, offset)
        seen_depth = self._run_depths.get(run, 0)
        if count > seen_depth:
            self._run_depths[run] = count
        return (*run, count), min(seen_depth, count)

    def _node(self, position: int | tuple) -> int:
        """A position's node id (a run's end gets one when a different block follows it)."""
        if isinstance(position, int):
            return position
        node = self._nodes.get(position)
        if node is None:
            self._nodes[position] = node = len(self._nodes) + 1
        return node


def _with_bounds(segments: Iterable) -> Iterable[tuple]:
    """Each segment with its start and end positions."""
    start = 0
    for segment in segments:
        end = start + segment.num_tokens
        yield segment, start, end
        start = end
