"""Offline runs have no request rate (NaN): each series must still be drawn once, not once per run."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from kvbench.reporting.charts import memory_breakdown  # noqa: E402
from kvbench.reporting.charts.common import grouped_bars  # noqa: E402
from kvbench.reporting.series import scenarios  # noqa: E402


def offline_runs() -> pd.DataFrame:
    rows = []
    for preset, token in (("orca_max", 0.2), ("paged", 0.9)):
        rows.append({
            "strategy": preset, "workload": "sharegpt", "model": "m", "hardware": "h", "tensor_parallel": 1,
            "engine": "sim", "scheduler": "default", "cfg.workload.arrival": "offline", "cfg.workload.rate": 2.0,
            "cfg.seed": 0, "mem_token_frac": token, "mem_reserved_frac": 0.0, "mem_internal_frag_frac": 1 - token,
            "mem_external_frag_frac": 0.0, "mem_free_frac": 0.0, "mem_cached_frac": 0.0,
        })
    return pd.DataFrame(rows)


def test_grouped_bars_draw_one_group_for_offline_runs():
    data = pd.DataFrame({"series": ["a", "b"], "color": ["C0", "C1"], "rate": [math.nan, math.nan], "v": [1.0, 2.0]})
    fig, ax = plt.subplots()
    grouped_bars(ax, data, "v")
    assert len(ax.patches) == 2 and [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    plt.close(fig)


def test_memory_breakdown_of_offline_runs_has_one_panel(tmp_path, monkeypatch):
    (scenario,) = scenarios(offline_runs())
    panels = []
    monkeypatch.setattr(memory_breakdown, "save_figure", lambda fig, out, name: panels.append(len(fig.axes)) or [])
    memory_breakdown.draw(scenario, tmp_path)
    assert panels == [1]
