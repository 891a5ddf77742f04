"""A table column made a chunk of rows at a time, so a million-row workload holds one chunk, not the column.

A generated workload's columns are seeded draws (lengths, prefix groups, which turn a resampled
request repeats) and what is computed from them. `drawn_column` keeps a draw as the generator's
state at the start of each chunk of `ROWS_PER_CHUNK` values, taken while drawing it once in
chunks: drawing a chunk again from its state gives exactly that part of the one whole draw that
the workload used to make, because numpy's Generator draws each value of `integers`,
`exponential`, `gamma`, `lognormal` and `zipf` from the bit stream in turn, with no dependence on
how many are asked for at once (tests/workloads/test_chunked_column.py checks each). Draws whose
algorithm depends on their size (`choice` without replacement, `permutation`) stay whole arrays.

A `ChunkedColumn` answers `values(start, stop)` (an array) and `item(row)` (a Python number, from
the one chunk it keeps), which is all the replay controls and the request stream ask of a column
(workloads/generated_stream.py). Reading rows in order, as the scheduler does, makes each chunk once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# Rows per chunk: a chunk of int64 values is 128 KiB, and a million rows have 62 generator states.
ROWS_PER_CHUNK = 16_384


class ChunkedColumn:
    def __init__(self, num_rows: int, make: Callable[[int, int], np.ndarray]):
        """`make(start, stop)`: the values of rows [start, stop), stop - start <= ROWS_PER_CHUNK, one chunk's at most."""
        self.num_rows = num_rows
        self._make = make
        self._chunk_index = -1  # the chunk kept, and its values
        self._chunk = np.empty(0)

    def __len__(self) -> int:
        return self.num_rows

    def __repr__(self) -> str:
        return f"ChunkedColumn({self.num_rows} rows)"

    def chunk(self, index: int) -> np.ndarray:
        """The values of chunk `index` (rows from index * ROWS_PER_CHUNK), kept until another is asked for."""
        if index != self._chunk_index:
            start = index * ROWS_PER_CHUNK
            self._chunk = self._make(start, min(start + ROWS_PER_CHUNK, self.num_rows))
            self._chunk_index = index
        return self._chunk

    def values(self, start: int, stop: int) -> np.ndarray:
        """The values of rows [start, stop), as an array."""
        if stop <= start:
            return self.chunk(0)[:0].copy() if self.num_rows else np.empty(0, dtype=np.int64)
        first, last = start // ROWS_PER_CHUNK, (stop - 1) // ROWS_PER_CHUNK
        parts = [self.chunk(k)[max(start - k * ROWS_PER_CHUNK, 0):stop - k * ROWS_PER_CHUNK]
                 for k in range(first, last + 1)]
        return parts[0].copy() if len(parts) == 1 else np.concatenate(parts)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The values of `rows` (made from the chunks that hold rows[0] to rows[-1]: a request stream's
        chunk, whose rows increase)."""
        if not len(rows):
            return self.values(0, 0)
        first = int(rows.min())
        return self.values(first, int(rows.max()) + 1)[rows - first]

    def item(self, row: int) -> int | float:
        index, offset = divmod(row, ROWS_PER_CHUNK)
        return self.chunk(index).item(offset)

    def map(self, fn: Callable[[np.ndarray], np.ndarray]) -> ChunkedColumn:
        """A column whose chunks are `fn` of this one's (elementwise arithmetic, lookups)."""
        return ChunkedColumn(self.num_rows, lambda start, stop: fn(self.values(start, stop)))


def drawn_column(
    rng: np.random.Generator, num_rows: int, draw: Callable[[np.random.Generator, int], np.ndarray]
) -> ChunkedColumn:
    """`draw(rng, num_rows)` as a chunked column. Draws it now, chunk by chunk, so that `rng` moves on
    exactly as one whole draw moves it, keeping only each chunk's starting state."""
    states = []
    for start in range(0, num_rows, ROWS_PER_CHUNK):
        states.append(rng.bit_generator.state)
        draw(rng, min(ROWS_PER_CHUNK, num_rows - start))
    redraw = np.random.Generator(type(rng.bit_generator)())

    def make(start: int, stop: int) -> np.ndarray:
        redraw.bit_generator.state = states[start // ROWS_PER_CHUNK]
        return draw(redraw, stop - start)

    return ChunkedColumn(num_rows, make)


def column_values(column: np.ndarray | ChunkedColumn, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) of a column, whole (an array) or chunked."""
    return column.values(start, stop) if isinstance(column, ChunkedColumn) else column[start:stop]
