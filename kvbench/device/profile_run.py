"""Measure step times over a grid of step shapes, block sizes and layouts (`kvbench profile`).

One decoder (the run's seed, model and dtype) serves every block size; each block size gets its
own pool, sized like a run's (`num_blocks=`, `kv_cache_bytes=` or derived from the hardware), filled
with zeros since synthetic steps read contexts nobody wrote. Each shape is timed as the device
executor times a step (inputs to the device, the forward pass, greedy sampling): `do_bench`
medians with L2 flushed on CUDA, wall-clock medians on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from kvbench.device.decoder import Decoder
from kvbench.device.kv_pool import KVPool, kv_pool_bytes, pool_dtype
from kvbench.device.profile_grid import StepShape, synthetic_step, time_step, warm_up
from kvbench.device.settings import check_memory_fits
from kvbench.device.step_runner import StepRunner
from kvbench.device.weights import random_weights, weight_bytes
from kvbench.hardware import HardwareConfig, kv_budget
from kvbench.model_spec import ModelSpec


@dataclass
class ProfileSetup:
    model: ModelSpec
    hardware: HardwareConfig
    device: torch.device
    dtype: torch.dtype
    backend: str
    seed: int
    kv_cache_bytes: int | None  # the run config's pool settings, applied per block size
    num_blocks: int | None
    cpu_reps: int


def profile_steps(
    setup: ProfileSetup, shapes: list[StepShape], block_sizes: list[int], layouts: list[str], progress: bool = True
) -> pd.DataFrame:
    """One row per (layout, block size, shape): the columns of a profile table."""
    config = setup.model.config
    budgets = {
        bs: kv_budget(setup.hardware, setup.model, bs, setup.kv_cache_bytes, setup.num_blocks) for bs in block_sizes
    }
    kv_dtype = pool_dtype(setup.model.kv_format, setup.backend, setup.dtype)
    largest_pool = max(kv_pool_bytes(config, b.num_blocks, b.block_size, kv_dtype) for b in budgets.values())
    check_memory_fits(setup.device, weight_bytes(config, setup.dtype), largest_pool)
    decoder = Decoder(config, random_weights(config, setup.dtype, setup.device, setup.seed))
    rows = []
    total = len(shapes) * len(block_sizes) * len(layouts)
    bar = tqdm(total=total, unit="step", disable=not progress or None, leave=False)
    with bar:
        for block_size, budget in budgets.items():
            pool = KVPool(config, budget.num_blocks, block_size, kv_dtype, setup.device, fill=0.0)
            runner = StepRunner(decoder, pool, setup.backend, setup.device)
            if setup.device.type == "cuda":
                warm_up(runner)
            for layout in layouts:
                rng = np.random.default_rng(setup.seed)
                for shape in shapes:
                    inputs = synthetic_step(shape, block_size, budget.num_blocks, layout, config.vocab_size, rng)
                    step_time_s = time_step(runner, inputs, setup.cpu_reps)
                    rows.append({"layout": layout, "block_size": block_size, **vars(shape), "step_time_s": step_time_s})
                    bar.update()
            del runner, pool
            if setup.device.type == "cuda":
                torch.cuda.empty_cache()
    return pd.DataFrame(rows)
