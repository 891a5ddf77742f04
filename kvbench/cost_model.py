"""How long a step takes in the simulator: a roofline over the step's work, or a measured profile.

Roofline: a step reads every weight once (for an MoE model, the active experts'), reads the K/V of every context token its decodes and
prefills attend to, writes the K/V of its new tokens, and does the matmul and attention FLOPs of its
tokens. Its time is the larger of bytes / (bandwidth x efficiency) and FLOPs / (peak x efficiency)
on one GPU (tensor parallelism splits both), plus the all-reduces of tensor parallelism. CPU time
outside the GPU is added by the executor (kvbench/cpu_overhead.py).

Profile (`engine.cost_model=profile`): step times measured on a real device by `kvbench profile`,
interpolated over the measured grid (see profile_table.py).
"""

from __future__ import annotations

from typing import NamedTuple

from kvbench.hardware import HardwareConfig
from kvbench.model_spec import ModelSpec
from kvbench.profile_table import ProfileTable
from kvbench.scheduler import StepPlan


class StepWork(NamedTuple):
    """The work of one step, in tokens (a tuple: one is made per simulated step)."""

    num_prefill_tokens: int
    prefill_attention_pairs: int  # (query, key) pairs of prefill attention, causal
    prefill_context_tokens: int  # K/V tokens prefill attention reads (prefix + new)
    num_decode_seqs: int
    decode_context_tokens: int  # K/V tokens decode attention reads (new tokens included)
    num_sampled_tokens: int  # tokens whose logits are computed

    @classmethod
    def of(cls, step: StepPlan) -> StepWork:
        if not step.prefills:  # most steps of a run decode only
            return cls(0, 0, 0, step.num_decode_seqs, step.decode_context_tokens, step.num_decode_seqs)
        pairs = context = sampled = 0
        for chunk in step.prefills:
            c, n = chunk.num_computed_tokens, chunk.num_new_tokens
            pairs += n * c + n * (n + 1) // 2
            context += c + n
            sampled += c + n == chunk.seq.group.num_prefill_target_tokens
        num_decode_seqs = step.num_decode_seqs
        # Positional, in the fields' order: a keyword call costs more, once per step with prefills.
        return cls(step.num_prefill_tokens, pairs, context, num_decode_seqs, step.decode_context_tokens,
                   sampled + num_decode_seqs)


class RooflineCostModel:
    def __init__(self, model: ModelSpec, hardware: HardwareConfig):
        if hardware.bandwidth_efficiency <= 0 or hardware.flops_efficiency <= 0:
            raise ValueError("hardware.bandwidth_efficiency and hardware.flops_efficiency must be > 0")
        tp = hardware.tensor_parallel
        # The model's sizes are properties computed on access: read them once, the loop is hot.
        self._flops_per_token = model.flops_per_token
        self._lm_head_flops = model.lm_head_flops
        self._attention_flops_per_pair = model.attention_flops_per_pair
        # The weights one token reads (an MoE model's active experts) and the KV every worker reads
        # (in the model's KV format; an MLA latent is replicated on every worker).
        self._weight_bytes = model.active_weight_bytes
        self._kv_bytes_per_token = model.kv_pool_bytes_per_token(tp)
        self._bytes_per_s = hardware.mem_bandwidth_bytes_per_s * hardware.bandwidth_efficiency * tp
        self._flops_per_s = hardware.peak_flops * hardware.flops_efficiency * tp
        # Two all-reduces of the hidden states per layer; a ring moves 2 (tp - 1) / tp of the data.
        if tp > 1:
            if hardware.interconnect_bytes_per_s <= 0:
                raise ValueError("hardware.interconnect_bytes_per_s must be > 0 with tensor_parallel > 1")
            c = model.config
            bytes_per_token = 2 * c.num_layers * c.hidden_size * c.dtype_bytes * 2 * (tp - 1) / tp
            self._comm_s_per_token = bytes_per_token / hardware.interconnect_bytes_per_s
        else:
            self._comm_s_per_token = 0.0

    def step_time_s(self, work: StepWork) -> float:
        return self.time_s(*work)

    def time_s(
        self, num_prefill_tokens: int, prefill_attention_pairs: int, prefill_context_tokens: int,
        num_decode_seqs: int, decode_context_tokens: int, num_sampled_tokens: int,
    ) -> float:
        """`step_time_s` over StepWork's fields given positionally: the simulator passes a decode-only
        step's numbers straight from its plan, with no StepWork built for each of its steps."""
        num_tokens = num_prefill_tokens + num_decode_seqs
        flops = (
            self._flops_per_token * num_tokens
            + self._lm_head_flops * num_sampled_tokens
            + self._attention_flops_per_pair * (prefill_attention_pairs + decode_context_tokens)
        )
        kv_tokens_moved = decode_context_tokens + prefill_context_tokens + num_tokens
        bytes_moved = self._weight_bytes + self._kv_bytes_per_token * kv_tokens_moved
        compute_s = max(flops / self._flops_per_s, bytes_moved / self._bytes_per_s)
        return compute_s + self._comm_s_per_token * num_tokens


class ProfileCostModel:
    """Step times interpolated from a table measured by `kvbench profile` (see profile_table.py).

    A step is placed in the table's grid by its decode batch, mean decode context, prefill tokens
    and mean keys per prefill token; the table is picked by the strategy's block-table layout
    (`contiguous` for contiguous reservation, `paged` otherwise) and its block size. The profile
    times the device part of a step; the executor adds CPU time as for the roofline.
    """

    def __init__(self, table: ProfileTable, block_size: int):
        self.table = table
        self.block_size = block_size
        self.num_steps_outside_grid = 0  # steps whose time was extrapolated

    @classmethod
    def load(
        cls, path: str, model: ModelSpec, hardware: HardwareConfig, block_size: int
    ) -> ProfileCostModel:
        table = ProfileTable.load(path)
        table.check_covers(model.config, hardware, block_size)
        return cls(table, block_size)

    def step_time_s(self, work: StepWork, layout: str) -> float:
        grid = self.table.grid(layout, self.block_size)
        b, n = work.num_decode_seqs, work.num_prefill_tokens
        c = work.decode_context_tokens / b if b else grid.axes[1][0]
        k = work.prefill_attention_pairs / n if n else grid.axes[3][0]
        if not grid.covers(b, c, n, k):
            self.num_steps_outside_grid += 1
        return grid(b, c, n, k)
