"""The requests table streamed in id order is the table kept whole; the summary read back from disk,
a column at a time, is the summary of the table in memory, to the bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kvbench import request_rows
from kvbench.inter_token_latency import InterTokenLatencies
from kvbench.metrics import StepTotals, summarize
from kvbench.request_rows import REQUEST_COLUMNS, RequestRows
from kvbench.results import TableColumns, TableFormat, TableWriter
from kvbench.serving_metrics import SLOConfig, vllm_metrics, vllm_result


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
    chunks: list[dict] = []
    streamed = RequestRows(chunks.append, np.array([row[0] for row in rows]))
    for row in rows:
        kept.add(row, {})
        streamed.add(row, {})
    streamed.flush()
    streamed.check_all_written()
    whole = kept.table()
    assert len(chunks) > 10
    assert pd.concat([pd.DataFrame(chunk) for chunk in chunks], ignore_index=True).equals(whole)
    assert list(whole.columns) == list(REQUEST_COLUMNS) and whole["request_id"].is_monotonic_increasing
    assert set(whole.dtypes.astype(str)) == {"int64", "float64"}


@pytest.mark.parametrize("table_format", list(TableFormat))
def test_the_summary_of_the_table_on_disk_is_that_of_the_table_in_memory(tmp_path, monkeypatch, table_format):
    """Read back a column at a time (Parquet: NaN written as null; CSV: floats as their shortest
    repr), the requests table gives every figure to the bit, NaN TPOTs of one-token requests included."""
    monkeypatch.setattr(request_rows, "REQUEST_CHUNK_ROWS", 100)
    rows = finished_rows(1000, seed=2)
    assert any(np.isnan(row[13]) for row in rows)
    kept = RequestRows()
    writer = TableWriter(tmp_path, "requests", table_format)
    streamed = RequestRows(writer.write, np.array([row[0] for row in rows]))
    for row in rows:
        kept.add(row, {})
        streamed.add(row, {})
    streamed.flush()
    on_disk = TableColumns(writer.finish(RequestRows.empty_columns()))
    in_memory = kept.table()
    assert len(on_disk) == len(in_memory) == 1000
    slo = SLOConfig(ttft_ms=500, tpot_ms=60)

    def figures(requests) -> dict:
        summary = summarize(StepTotals(), requests, pool_bytes=1, end_time_s=9.0)
        metrics = vllm_metrics(requests, 9.0, slo, InterTokenLatencies())
        result = vllm_result(summary, requests, None, slo)
        return {**summary, **metrics, **{key: result[key]().tolist() for key in ("input_lens", "output_lens", "ttfts")}}

    expected, got = figures(in_memory), figures(on_disk)
    assert got.keys() == expected.keys()
    for key, value in expected.items():  # NaN == NaN here: the same figure missing on both sides
        assert got[key] == value or (value != value and got[key] != got[key]), key


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


def test_a_table_missing_a_request_is_refused():
    streamed = RequestRows(lambda chunk: None, np.arange(3))
    for row in finished_rows(3):
        if row[0] != 3:  # ids 0, 3, 6: 3 never finishes
            streamed.add((row[0] // 3, *row[1:]), {})
    streamed.flush()
    with pytest.raises(RuntimeError, match="not written"):
        streamed.check_all_written()
