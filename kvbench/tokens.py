"""Token contents described by segments, so that nothing works token by token.

A prompt is rarely needed as a list of ids: the simulator only asks "is this block's content the
same as that block's?" (prefix caching), and the device executor asks for ids once per prefill.
A `TokenSequence` is a tuple of segments:

- `Synthetic(key, num_tokens)`: positions 0..num_tokens-1 of a pseudo-random stream named by `key`.
  Equal keys give equal tokens, distinct keys give distinct streams. A trace's hash id, a shared
  system prompt, a ShareGPT message: each is one synthetic segment, so two requests share exactly
  the content their workload says they share, whatever the block size.
- `Explicit(ids)`: real token ids (a user's request list, a tokenised prompt).

`block_key(start, end)` returns a hashable description of the content in [start, end) that is equal
for two ranges exactly when their ids are equal (synthetic streams never collide with each other or
with explicit ids). The last segment may be open-ended (`num_tokens=None`): that is how a running
sequence's not-yet-generated output is represented.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

_MASK64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class Synthetic:
    """`num_tokens` positions of the pseudo-random stream `key` (None: unbounded)."""

    key: Hashable
    num_tokens: int | None


@dataclass(frozen=True, slots=True)
class Explicit:
    """Real token ids."""

    ids: tuple[int, ...]

    @property
    def num_tokens(self) -> int:
        return len(self.ids)


Segment = Synthetic | Explicit


def stable_key_hash(key: Hashable) -> int:
    """A 64-bit hash of `key` that is the same in every process (Python's str hash is salted)."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def synthetic_ids(key: Hashable, start: int, end: int, vocab_size: int) -> np.ndarray:
    """Token ids at positions [start, end) of the synthetic stream `key` (splitmix64 of position)."""
    with np.errstate(over="ignore"):
        x = np.arange(start, end, dtype=np.uint64) + np.uint64(stable_key_hash(key))
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(_MASK64)
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & np.uint64(_MASK64)
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & np.uint64(_MASK64)
        x = x ^ (x >> np.uint64(31))
    return (x % np.uint64(vocab_size)).astype(np.int64)


def _content(seg: Segment, lo: int, hi: int) -> tuple:
    """Positions [lo, hi) of a segment, as a hashable piece of a block key (tagged: the two kinds never equal)."""
    return (0, seg.key, lo, hi) if isinstance(seg, Synthetic) else (1, seg.ids[lo:hi])


class TokenSequence:
    """An immutable sequence of tokens made of segments. Only the last segment may be unbounded."""

    # `_parts`: what a `_Deferred` sequence makes its segments from; unset on every other one.
    __slots__ = ("segments", "_starts", "num_tokens", "_parts")

    def __init__(self, segments: Iterable[Segment]):
        segs = tuple(s for s in segments if s.num_tokens != 0)
        starts = []
        position = 0
        for i, seg in enumerate(segs):
            if seg.num_tokens is None and i != len(segs) - 1:
                raise ValueError("only the last segment of a TokenSequence may be unbounded")
            if seg.num_tokens is not None and seg.num_tokens < 0:
                raise ValueError(f"segment with negative length: {seg}")
            starts.append(position)
            if seg.num_tokens is not None:
                position += seg.num_tokens
        self.segments = segs
        self._starts = starts
        # None when the sequence is unbounded.
        self.num_tokens: int | None = None if segs and segs[-1].num_tokens is None else position

    @classmethod
    def from_ids(cls, ids: Iterable[int]) -> TokenSequence:
        return cls((Explicit(tuple(int(i) for i in ids)),))

    @classmethod
    def synthetic(cls, key: Hashable, num_tokens: int | None) -> TokenSequence:
        if num_tokens is not None and num_tokens <= 0:
            return cls((Synthetic(key, num_tokens),))  # empty, or the error for a negative length
        seq = object.__new__(_DeferredSynthetic)
        seq.num_tokens, seq._parts = num_tokens, key
        return seq

    @classmethod
    def deferred(cls, num_tokens: int, make: Callable[[Any], TokenSequence], arg: Any) -> TokenSequence:
        """The sequence `make(arg)`, which has `num_tokens` tokens, made when its content is first read.

        For workloads that know their lengths as columns but look content up (a conversation's
        message keys, scattered in memory): strategies that read only lengths never pay for it.
        """
        seq = object.__new__(_DeferredCall)
        seq.num_tokens, seq._parts = num_tokens, (make, arg)
        return seq

    @staticmethod
    def deferred_many(lengths: Iterable[int], make: Callable[[Any], TokenSequence], args: Iterable) -> list[TokenSequence]:
        """`deferred(num_tokens, make, arg)` for each pair of `lengths` and `args`: the sequences of a
        chunk of requests at once (kvbench/request_stream.py), without a call per sequence."""
        return _new_many(_DeferredCall, lengths, make, args)

    @staticmethod
    def synthetic_keys_read_later(lengths: Iterable[int], key_of: Callable[[Any], Hashable], args: Iterable) -> list[TokenSequence]:
        """`synthetic(key_of(arg), num_tokens)` for each pair of `lengths` (each > 0) and `args`, with
        the key looked up when the content is first read: as `deferred_many` for a maker that gives
        one synthetic segment, without making (and checking) a sequence per read."""
        return _new_many(_DeferredKey, lengths, key_of, args)

    def __len__(self) -> int:
        if self.num_tokens is None:
            raise TypeError("an unbounded TokenSequence has no length")
        return self.num_tokens

    def __repr__(self) -> str:
        return f"TokenSequence({list(self.segments)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TokenSequence) and self.segments == other.segments

    def __hash__(self) -> int:
        return hash(self.segments)

    def __add__(self, other: TokenSequence) -> TokenSequence:
        if other.num_tokens == 0:
            return self
        if self.num_tokens == 0:
            return other
        if self.num_tokens is None:
            raise ValueError("only the last segment of a TokenSequence may be unbounded")
        num_tokens = None if other.num_tokens is None else self.num_tokens + other.num_tokens
        seq = object.__new__(_DeferredJoin)
        seq.num_tokens, seq._parts = num_tokens, (self, other)
        return seq

    def truncate(self, num_tokens: int) -> TokenSequence:
        """The first `num_tokens` tokens."""
        out: list[Segment] = []
        for seg, start in zip(self.segments, self._starts):
            if start >= num_tokens:
                break
            take = num_tokens - start
            if seg.num_tokens is None or seg.num_tokens > take:
                seg = Synthetic(seg.key, take) if isinstance(seg, Synthetic) else Explicit(seg.ids[:take])
            out.append(seg)
        return TokenSequence(out)

    def _check_range(self, start: int, end: int) -> None:
        if start < 0 or end < start or (self.num_tokens is not None and end > self.num_tokens):
            raise IndexError(f"range [{start}, {end}) outside a sequence of {self.num_tokens} tokens")

    def _pieces(self, start: int, end: int):
        self._check_range(start, end)
        i = bisect.bisect_right(self._starts, start) - 1
        while start < end:
            seg, seg_start = self.segments[i], self._starts[i]
            seg_end = end if seg.num_tokens is None else min(end, seg_start + seg.num_tokens)
            yield seg, start - seg_start, seg_end - seg_start
            start = seg_end
            i += 1

    def block_key(self, start: int, end: int) -> tuple:
        """Hashable content of [start, end): equal keys if and only if equal token ids."""
        i = bisect.bisect_right(self._starts, start) - 1
        seg = self.segments[i] if i >= 0 else None
        if seg is not None and (seg.num_tokens is None or end <= self._starts[i] + seg.num_tokens) and start < end:
            return (_content(seg, start - self._starts[i], end - self._starts[i]),)  # one segment: the common case
        self._check_range(start, end)
        return self._span_key(i, start, end)

    def _span_key(self, i: int, start: int, end: int) -> tuple:
        """`block_key(start, end)` of a range inside the sequence whose first token is in segment `i`."""
        segments, starts = self.segments, self._starts
        pieces: list[tuple] = []
        while start < end:
            seg, seg_start = segments[i], starts[i]
            lo, hi = start - seg_start, end - seg_start
            if seg.num_tokens is not None and seg.num_tokens < hi:
                hi = seg.num_tokens
            if type(seg) is Synthetic:
                pieces.append((0, seg.key, lo, hi))
            elif pieces and pieces[-1][0] == 1:
                # Adjacent explicit ids form one piece, so the key does not depend on where a
                # request list split them into segments (a quoted output, a multi-turn prompt).
                pieces[-1] = (1, pieces[-1][1] + seg.ids[lo:hi])
            else:
                pieces.append((1, seg.ids[lo:hi]))
            start = seg_start + hi
            i += 1
        return tuple(pieces)

    def chain_keys(self, parent_hash: int | None, start: int, num_blocks: int, block_size: int) -> tuple[list[tuple], list[int]]:
        """Prefix-cache keys of `num_blocks` consecutive blocks of `block_size` tokens from `start`,
        and the `hash` of each. Each key holds the hash of the key before it (`parent_hash` for the
        first), so it names its whole prefix. For blocks of one size, equal keys mean equal ids:
        a block inside one synthetic segment is `(parent hash, segment key, offset)` (its size
        implied: short and quick to hash), any other `(parent hash, block_key(...))`. The hashes
        come free (each is the next key's parent), and the block pool files its map by them.
        """
        keys: list[tuple] = []
        hashes: list[int] = []
        append, append_hash = keys.append, hashes.append
        segments, starts = self.segments, self._starts
        end = start + num_blocks * block_size
        self._check_range(start, end)
        i = bisect.bisect_right(starts, start) - 1
        last = len(starts) - 1
        while start < end:
            while i < last and starts[i + 1] <= start:
                i += 1
            seg = segments[i] if i >= 0 else None
            if type(seg) is Synthetic:
                # The whole blocks left inside this segment, in one tight loop: a prompt's or an
                # output's keys are mostly these, computed for every request.
                lo = start - starts[i]
                num_inside = end - start
                if seg.num_tokens is not None and seg.num_tokens - lo < num_inside:
                    num_inside = seg.num_tokens - lo
                num_inside -= num_inside % block_size
                if num_inside:
                    seg_key = seg.key
                    for lo in range(lo, lo + num_inside, block_size):
                        key = (parent_hash, seg_key, lo)
                        append(key)
                        parent_hash = hash(key)
                        append_hash(parent_hash)
                    start += num_inside
                    continue
            key = (parent_hash, self._span_key(i, start, start + block_size))
            append(key)
            parent_hash = hash(key)
            append_hash(parent_hash)
            start += block_size
        return keys, hashes

    def _make(self) -> tuple[tuple[Segment, ...], list[int]]:
        """`(segments, _starts)`; a deferred sequence makes them without keeping them (see `_Deferred`)."""
        return self.segments, self._starts

    def ids(self, start: int, end: int, vocab_size: int) -> np.ndarray:
        """Token ids of [start, end) as int64, synthetic streams folded into [0, vocab_size)."""
        parts = [
            synthetic_ids(seg.key, lo, hi, vocab_size)
            if isinstance(seg, Synthetic)
            else np.asarray(seg.ids[lo:hi], dtype=np.int64) % vocab_size
            for seg, lo, hi in self._pieces(start, end)
        ]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


class _Deferred(TokenSequence):
    """A `TokenSequence` whose segments are made when something first reads them.

    The scheduler builds three sequences per request (its prompt, its recorded output, its first
    branch: prompt + output), and strategies without prefix caching only ever read their lengths.
    So `synthetic`, `deferred`, `synthetic_keys_read_later` and `+` keep the length and what the
    segments are made of (`_parts`).
    The first read of `segments` or `_starts`, slots still unset, reaches `__getattr__`, which fills
    them and turns the object into a plain `TokenSequence`: from then on they are read at a slot's
    speed (the prefix-cache key functions read them at every block). The content is what building
    eagerly gives, since it is a pure function of the parts. (A slot that `__init__` derives from
    the segments must be derived in `__getattr__` too.)

    The operands of `+` and what a maker returns are read by the sequence made of them, usually
    once: their content is made without being kept (`_make`), so that reading a
    request's branch (its prompt + its output, both deferred) costs one conversion, not five.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name != "segments" and name != "_starts":
            raise AttributeError(f"'TokenSequence' object has no attribute {name!r}")
        self.segments, self._starts = self._make()
        del self._parts  # a concatenation holds its operands until then
        self.__class__ = TokenSequence  # the same slots: only the class changes
        return self.segments if name == "segments" else self._starts

    def __reduce_ex__(self, protocol: Any) -> Any:
        # Copying or pickling reads the slots, which would change the class midway: make the
        # content first, and copy the plain sequence this one becomes.
        self.segments
        return self.__reduce_ex__(protocol)

    def _make(self) -> tuple[tuple[Segment, ...], list[int]]:
        raise NotImplementedError


class _DeferredSynthetic(_Deferred):
    """`TokenSequence.synthetic(key, num_tokens)` with num_tokens > 0 or None; `_parts` is the key."""

    __slots__ = ()

    def _make(self) -> tuple[tuple[Segment, ...], list[int]]:
        return (Synthetic(self._parts, self.num_tokens),), [0]


class _DeferredKey(_Deferred):
    """`TokenSequence.synthetic_keys_read_later`'s sequences; `_parts` is (key_of, arg)."""

    __slots__ = ()

    def _make(self) -> tuple[tuple[Segment, ...], list[int]]:
        key_of, arg = self._parts
        return (Synthetic(key_of(arg), self.num_tokens),), [0]


class _DeferredJoin(_Deferred):
    """`left + right`, both non-empty and `left` bounded; `_parts` is (left, right)."""

    __slots__ = ()

    def _make(self) -> tuple[tuple[Segment, ...], list[int]]:
        left, right = self._parts
        offset = left.num_tokens
        left_segments, left_starts = left._make()
        right_segments, right_starts = right._make()
        return left_segments + right_segments, left_starts + [offset + start for start in right_starts]

    def chain_keys(self, parent_hash: int | None, start: int, num_blocks: int, block_size: int) -> tuple[list[tuple], list[int]]:
        # Keys inside the left part need only its content: a prefix cache's first lookup reads the
        # first block of a request's prompt, and its output is then not made for nothing.
        left = self._parts[0]
        if start + num_blocks * block_size <= left.num_tokens:
            return left.chain_keys(parent_hash, start, num_blocks, block_size)
        return TokenSequence.chain_keys(self, parent_hash, start, num_blocks, block_size)


def _new_many(cls: type[_Deferred], lengths: Iterable[int], fn: Callable[[Any], Any], args: Iterable) -> list[TokenSequence]:
    """A `cls` sequence of each length whose parts are (fn, arg): a chunk's sequences in one loop."""
    made = []
    append, new = made.append, object.__new__
    for num_tokens, arg in zip(lengths, args):
        seq = new(cls)
        seq.num_tokens, seq._parts = num_tokens, (fn, arg)
        append(seq)
    return made


class _DeferredCall(_Deferred):
    """`TokenSequence.deferred(num_tokens, make, arg)`; `_parts` is (make, arg)."""

    __slots__ = ()

    def _make(self) -> tuple[tuple[Segment, ...], list[int]]:
        make, arg = self._parts
        made = make(arg)
        if made.num_tokens != self.num_tokens:
            raise ValueError(f"a deferred TokenSequence said {self.num_tokens} tokens, but {make.__qualname__}({arg!r}) "
                             f"made {made.num_tokens}")
        return made._make()


def common_prefix_len(a: TokenSequence, a_start: int, b: TokenSequence, b_start: int, max_len: int) -> int:
    """How many tokens `a[a_start:]` and `b[b_start:]` share from their start, at most `max_len`.

    Segment by segment, not token by token: two synthetic pieces agree only at the same stream and
    position (then for their whole overlap), explicit ids are compared, and the two kinds never agree.
    """
    pieces_a = list(a._pieces(a_start, a_start + max_len))
    pieces_b = list(b._pieces(b_start, b_start + max_len))
    matched = 0
    ia = ib = 0
    skip_a = skip_b = 0  # tokens of the current piece already matched
    while ia < len(pieces_a) and ib < len(pieces_b):
        seg_a, lo_a, hi_a = pieces_a[ia]
        seg_b, lo_b, hi_b = pieces_b[ib]
        lo_a += skip_a
        lo_b += skip_b
        n = min(hi_a - lo_a, hi_b - lo_b)
        if isinstance(seg_a, Synthetic) and isinstance(seg_b, Synthetic):
            if seg_a.key != seg_b.key or lo_a != lo_b:
                return matched
        elif isinstance(seg_a, Explicit) and isinstance(seg_b, Explicit):
            ids_a, ids_b = seg_a.ids[lo_a : lo_a + n], seg_b.ids[lo_b : lo_b + n]
            if ids_a != ids_b:
                return matched + next(i for i, (x, y) in enumerate(zip(ids_a, ids_b)) if x != y)
        else:
            return matched
        matched += n
        skip_a, skip_b = skip_a + n, skip_b + n
        if lo_a + n == hi_a:
            ia, skip_a = ia + 1, 0
        if lo_b + n == hi_b:
            ib, skip_b = ib + 1, 0
    return matched
