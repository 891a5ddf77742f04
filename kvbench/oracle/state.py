"""What both engines report after planning each step, in kvbench's vocabulary."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepState:
    """One step, observed right after it was planned (before the forward pass).

    Request ids are the workload's; block ids are kvbench's (vLLM's minus its reserved null block).
    """

    num_prefix_hit_tokens: int  # cached prompt tokens of the requests admitted in this step
    preempted: tuple[int, ...]  # in the order they were preempted
    scheduled_tokens: tuple[tuple[int, int], ...]  # (request id, tokens computed this step), sorted
    running: tuple[int, ...]  # in admission order
    waiting: tuple[int, ...]  # queue order
    num_free_blocks: int  # free for new content, cached-but-unreferenced blocks included
    block_tables: tuple[tuple[int, tuple[int, ...]], ...]  # (request id, table) of running requests
    # (request id, its table in every layer group), for models with sliding-window groups; a block
    # released out of the window is -1 (vLLM's null block)
    group_block_tables: tuple[tuple[int, tuple[tuple[int, ...], ...]], ...] = ()

    def differences(self, other: StepState) -> list[str]:
        """The fields that differ, each as 'name: self vs other'."""
        return [
            f"{name}: {getattr(self, name)} vs {getattr(other, name)}"
            for name in self.__dataclass_fields__
            if getattr(self, name) != getattr(other, name)
        ]
