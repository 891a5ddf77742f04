"""Step-by-step comparison of two replays of the same case."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import zip_longest

from kvbench.oracle.state import StepState


@dataclass(frozen=True)
class Divergence:
    step_index: int
    differences: list[str]  # 'field: expected vs actual'; a missing step reads 'no step'

    def __str__(self) -> str:
        return f"step {self.step_index}: " + "; ".join(self.differences)


def first_divergence(expected: Iterable[StepState], actual: Iterable[StepState]) -> Divergence | None:
    """The first step whose states differ (or that only one replay has), or None: step-exact."""
    for i, (e, a) in enumerate(zip_longest(expected, actual)):
        if e is None or a is None:
            return Divergence(i, [f"{'expected' if e is None else 'actual'} has no step {i}"])
        differences = e.differences(a)
        if differences:
            return Divergence(i, differences)
    return None
