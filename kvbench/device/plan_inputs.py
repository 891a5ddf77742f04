"""A scheduler's StepPlan as device inputs: which tokens, at which positions, into which slots.

The schedule is the contract: `step.prefills` computes tokens [num_computed, num_computed +
num_new) of a sequence (sampling when that reaches the request's prefill target), and every
sequence of `scheduler.decode_batch(step)` computes its token at position num_computed and
samples the next. Block tables come from the strategy as they are after planning; so do the block
copies it made since the last step (forks at the end of the previous step, copy-on-write while
planning this one), which the step applies before any attention.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvbench.device.step_inputs import StepInputs, StepInputsBuilder
from kvbench.device.token_book import TokenBook
from kvbench.scheduler import Scheduler, StepPlan
from kvbench.sequence import Sequence


@dataclass
class PlannedStep:
    inputs: StepInputs
    sampled: list[tuple[Sequence, int]]  # per sampled row: the sequence and the position it samples after


def plan_step_inputs(step: StepPlan, scheduler: Scheduler, book: TokenBook) -> PlannedStep:
    strategy = scheduler.strategy
    builder = StepInputsBuilder(strategy.block_size)
    sampled: list[tuple[Sequence, int]] = []
    for chunk in step.prefills:
        seq, start = chunk.seq, chunk.num_computed_tokens
        end = start + chunk.num_new_tokens
        sample = end == seq.group.num_prefill_target_tokens
        what = f"seq {seq.seq_id} (request {seq.group.request_id})"
        builder.add_prefill(book.prefill_ids(seq, start, end), start, strategy.block_table(seq.seq_id), sample, what)
        if sample:
            sampled.append((seq, end - 1))
    for seq, position in scheduler.decode_batch(step):
        what = f"seq {seq.seq_id} (request {seq.group.request_id})"
        builder.add_decode(book.decode_id(seq, position), position, strategy.block_table(seq.seq_id), what)
        sampled.append((seq, position))
    return PlannedStep(builder.build(strategy.pop_block_copies()), sampled)
