"""The charts of a report, one module each; `draw_all` draws every chart that fits a scenario's runs."""

from __future__ import annotations

from pathlib import Path

from kvbench.reporting.charts import (
    batch_cdf,
    block_size,
    fragmentation_vs_rate,
    goodput,
    latency_cdf,
    latency_throughput,
    latency_vs_rate,
    memory_breakdown,
    sharing,
    throughput,
    timeline,
)
from kvbench.reporting.charts.common import Chart, Skipped
from kvbench.reporting.charts.latency_vs_rate import LatencyBound
from kvbench.reporting.series import Scenario

__all__ = ["Chart", "LatencyBound", "Skipped", "draw_all"]


def draw_all(scenario: Scenario, out_dir: Path, bound: LatencyBound) -> list[Chart | Skipped]:
    """Every chart for one scenario's runs (which need latency columns: `latency.with_request_latency`)."""
    return [
        memory_breakdown.draw(scenario, out_dir),
        throughput.draw(scenario, out_dir),
        latency_vs_rate.draw(scenario, out_dir, bound),
        latency_throughput.draw(scenario, out_dir),
        fragmentation_vs_rate.draw(scenario, out_dir),
        goodput.draw(scenario, out_dir),
        timeline.draw(scenario, out_dir),
        latency_cdf.draw(scenario, out_dir),
        batch_cdf.draw(scenario, out_dir),
        sharing.draw(scenario, out_dir),
        block_size.draw(scenario, out_dir),
    ]
