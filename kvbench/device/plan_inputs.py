"""A scheduler's StepPlan as device inputs: which tokens, at which positions, into which slots.

The plan is the contract: `step.prefills` computes tokens [num_computed, num_computed + num_new)
of a sequence (sampling when that reaches the request's prefill target), and every `(seq,
position)` of `step.decodes` computes its token at that position and samples the next. Block
tables are the plan's (as the strategy held them after planning); so are the block copies made
since the last step (forks at the end of the previous step, copy-on-write while planning this
one), which the step applies before any attention.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvbench.device.step_inputs import StepInputs, StepInputsBuilder
from kvbench.device.token_book import TokenBook
from kvbench.scheduler import StepPlan
from kvbench.sequence import Sequence


@dataclass
class PlannedStep:
    inputs: StepInputs
    sampled: list[tuple[Sequence, int]]  # per sampled row: the sequence and the position it samples after


def plan_step_inputs(step: StepPlan, block_size: int, book: TokenBook) -> PlannedStep:
    builder = StepInputsBuilder(block_size)
    sampled: list[tuple[Sequence, int]] = []
    for chunk in step.prefills:
        seq, start = chunk.seq, chunk.num_computed_tokens
        end = start + chunk.num_new_tokens
        sample = end == seq.group.num_prefill_target_tokens
        what = f"seq {seq.seq_id} (request {seq.group.request_id})"
        builder.add_prefill(book.prefill_ids(seq, start, end), start, step.block_tables[seq.seq_id], sample, what)
        if sample:
            sampled.append((seq, end - 1))
    for seq, position in step.decodes:
        what = f"seq {seq.seq_id} (request {seq.group.request_id})"
        builder.add_decode(book.decode_id(seq, position), position, step.block_tables[seq.seq_id], what)
        sampled.append((seq, position))
    return PlannedStep(builder.build(step.block_copies), sampled)
