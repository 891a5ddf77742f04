"""numpy columns to Arrow arrays and back, without pandas.

pyarrow's own conversions (`pa.array(ndarray)`, `Array.to_numpy()`) import pandas to look at what
they are given (a third of a second that a simulator run otherwise never spends), so the run's
tables go through the arrays' buffers here: int64 and float64 columns, copied at most once. A NaN
is written as null, as pandas writes it (a figure with nothing to measure, such as the TPOT of a
one-token request), and null is read back as NaN.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

ARROW_TYPES = {np.dtype(np.int64): pa.int64(), np.dtype(np.float64): pa.float64()}
NUMPY_TYPES = {arrow: dtype for dtype, arrow in ARROW_TYPES.items()}


def to_arrow(values: np.ndarray | list) -> pa.Array:
    """A table column as an Arrow array: an int64 or float64 array from its buffer (NaN as null);
    anything else (an engine's lists) through `pa.array`."""
    if not isinstance(values, np.ndarray) or values.dtype not in ARROW_TYPES:
        return pa.array(values, from_pandas=True)
    values = np.ascontiguousarray(values)
    validity, null_count = None, 0
    if values.dtype.kind == "f":
        missing = np.isnan(values)
        null_count = int(missing.sum())
        if null_count:
            validity = pa.py_buffer(np.packbits(~missing, bitorder="little"))
    return pa.Array.from_buffers(ARROW_TYPES[values.dtype], len(values), [validity, pa.py_buffer(values)], null_count)


def to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    """An int64 or float64 Arrow column as one numpy array, null as NaN."""
    dtype = NUMPY_TYPES[column.type]
    values = np.empty(len(column), dtype)
    start = 0
    for chunk in column.chunks:
        end = start + len(chunk)
        validity, data = chunk.buffers()
        values[start:end] = np.frombuffer(data, dtype, count=len(chunk), offset=chunk.offset * dtype.itemsize)
        if chunk.null_count:  # only a float column has nulls: NaN where the bit is clear
            bits = np.unpackbits(np.frombuffer(validity, np.uint8), count=chunk.offset + len(chunk), bitorder="little")
            values[start:end][bits[chunk.offset:] == 0] = np.nan
        start = end
    return values
