"""The requests table streamed in id order is the table kept whole; the summary reads the same numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kvbench import request_rows
from kvbench.request_rows import REQUEST_COLUMNS, SUMMARY_COLUMNS, RequestRows


def finished_rows(num_requests: int, seed: int = 0) -> list[tuple]:
    """Rows of requests with shuffled ids, finishing in a jumbled order (later ids sometimes first)."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.arange(0, 3 * num_requests, 3))  # not 0..N-1: a trace's own ids
    order = np.argsort(ids + rng.integers(0, 40, num_requests) * 3, kind="stable")  # roughly in id order
    rows = []
    for i in order:
        ttft, latency = float(rng.random()), float(1 + rng.random())
        num_output = int(rng.integers(1, 20))
        tpot = (latency - ttft) / (num_output - 1) if num_output > 1 else np.nan
        rows.append((int(ids[i]), 0.1 * i, ttft, latency, int(rng.integers(1, 500)), num_output, 1 + i % 2, 1,
                     num_output, 0, 0, ttft, latency, tpot, latency / num_output))
    return rows


def test_streamed_chunks_in_id_order_make_the_whole_table(monkeypatch):
    monkeypatch.setattr(request_rows, "REQUEST_CHUNK_ROWS", 64)
    rows = finished_rows(1000)
    kept = RequestRows()
    chunks: list[pd.DataFrame] = []
    streamed = RequestRows(chunks.append, np.array([row[0] for row in rows]))
    for row in rows:
        kept.add(row, {})
        streamed.add(row, {})
    streamed.flush()
    whole = kept.table()
    assert len(chunks) > 10
    assert pd.concat(chunks, ignore_index=True).equals(whole)
    assert list(whole.columns) == list(REQUEST_COLUMNS) and whole["request_id"].is_monotonic_increasing
    summary = streamed.summary_table()
    assert summary.equals(whole[list(SUMMARY_COLUMNS)].astype({"n": np.int64, "beam_width": np.int64}))
    assert summary["normalized_latency_s"].mean() == whole["normalized_latency_s"].mean()  # same order, same sum


def test_a_row_waits_only_for_the_smaller_ids_still_running(monkeypatch):
    monkeypatch.setattr(request_rows, "REQUEST_CHUNK_ROWS", 4)
    chunks: list[pd.DataFrame] = []
    streamed = RequestRows(chunks.append, np.arange(10))
    rows = {row[0]: row for row in finished_rows(10)}
    rows = {i: (i, *rows[3 * i][1:]) for i in range(10)}  # ids 0..9
    for request_id in (1, 2, 3, 4, 5):
        streamed.add(rows[request_id], {})
    assert not chunks  # all behind request 0
    streamed.add(rows[0], {})
    assert [list(chunk["request_id"]) for chunk in chunks] == [[0, 1, 2, 3, 4, 5]]


def test_the_summary_refuses_when_a_request_never_came():
    streamed = RequestRows(lambda chunk: None, np.arange(3))
    for row in finished_rows(3):
        if row[0] != 3:  # ids 0, 3, 6: 3 never finishes
            streamed.add((row[0] // 3, *row[1:]), {})
    streamed.flush()
    with pytest.raises(RuntimeError, match="not written"):
        streamed.summary_table()
