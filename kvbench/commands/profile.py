"""`kvbench profile`: measure step times on a device and write a profile table for the simulator.

    kvbench profile hardware=h100-sxm model=llama-3-8b                     # CUDA, default grid
    kvbench profile --grid tiny model=tiny engine.device=cpu engine.dtype=float32 num_blocks=512

Options choose the grid (see kvbench/device/profile_grid.py for what a shape means); the other
arguments are Hydra overrides of the run config (`engine=device` is implied, so engine.device,
engine.dtype, engine.backend apply; model.num_layers= shrinks the model; num_blocks= or
kv_cache_bytes= size the pool). The table goes to a CSV with a JSON sidecar (see
kvbench/profile_table.py); a run uses it with `engine.cost_model=profile engine.profile_path=...`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from kvbench.compose import compose

GRIDS = {
    # Up to the default scheduler's limits: 256 sequences, 8192 batched tokens.
    "default": {
        "decode_seqs": [0, 1, 16, 64, 256],
        "decode_contexts": [512, 2048, 8192],
        "prefill_tokens": [0, 512, 2048, 8192],
        "prefill_keys": [256, 2048],
    },
    # Seconds on CPU with model=tiny: what the tests run.
    "tiny": {
        "decode_seqs": [0, 1, 4],
        "decode_contexts": [16, 64],
        "prefill_tokens": [0, 16, 64],
        "prefill_keys": [8, 32],
    },
}


def int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return values


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kvbench profile", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, help="profile CSV (default results/profiles/<hardware>_<model>_<dtype>.csv)")
    p.add_argument("--grid", choices=sorted(GRIDS), default="default", help="preset grid (default: default)")
    p.add_argument("--decode-seqs", type=int_list, help="decoding sequences per step, e.g. 0,1,16,64,256")
    p.add_argument("--decode-contexts", type=int_list, help="context tokens per decoding sequence")
    p.add_argument("--prefill-tokens", type=int_list, help="prefill tokens per step")
    p.add_argument("--prefill-keys", type=int_list, help="keys a prefill token attends to, on average")
    p.add_argument("--block-sizes", type=int_list, help="default: strategy.block_size")
    p.add_argument("--layouts", default="paged,contiguous", help="block-table layouts: paged,contiguous")
    p.add_argument("--cpu-reps", type=int, default=3, help="CPU: timed runs per shape (median)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. hardware=h100-sxm model=llama-3-8b")
    return p


def run_profile(options: argparse.Namespace, command: str) -> Path:
    from omegaconf import OmegaConf

    from kvbench.device.profile_grid import LAYOUTS, grid_shapes
    from kvbench.device.profile_run import ProfileSetup, profile_steps
    from kvbench.device.settings import attention_backend, device_description, torch_device, torch_dtype
    from kvbench.model_spec import ModelSpec
    from kvbench.profile_table import ProfileTable, config_fields
    from kvbench.results import git_revision, package_versions

    cfg = compose(["engine=device", *options.overrides])
    engine, model, hardware = (OmegaConf.to_object(cfg[k]) for k in ("engine", "model", "hardware"))
    spec = ModelSpec(model)
    if hardware.tensor_parallel != 1:
        raise ValueError(
            f"kvbench profile measures one device: hardware.tensor_parallel={hardware.tensor_parallel} must be 1"
        )
    device = torch_device(engine.device)
    dtype = torch_dtype(engine.dtype.value)
    backend = attention_backend(engine.backend.value, device, dtype)
    layouts = [x for x in options.layouts.split(",") if x]
    unknown = sorted(set(layouts) - set(LAYOUTS))
    if unknown or not layouts:
        raise ValueError(f"--layouts {options.layouts}: choose among {', '.join(LAYOUTS)}")
    preset = GRIDS[options.grid]
    grid = {key: getattr(options, key) or values for key, values in preset.items()}
    if options.cpu_reps < 1:
        raise ValueError("--cpu-reps must be >= 1")
    block_sizes = options.block_sizes or [cfg.strategy.block_size]
    shapes = list(
        grid_shapes(grid["decode_seqs"], grid["decode_contexts"], grid["prefill_tokens"], grid["prefill_keys"])
    )
    if not shapes:
        raise ValueError("the grid has no step with a token: give --decode-seqs or --prefill-tokens values above 0")
    setup = ProfileSetup(
        spec, hardware, device, dtype, backend, cfg.seed, cfg.kv_cache_bytes, cfg.num_blocks, options.cpu_reps
    )
    print(
        f"profiling {len(shapes)} step shapes x block sizes {block_sizes} x layouts {layouts} "
        f"of model={cfg.model.name} on {device_description(device)} ({engine.dtype.value}, {backend} kernels)",
        file=sys.stderr,
    )
    started = time.perf_counter()
    rows = profile_steps(setup, shapes, block_sizes, layouts, progress=not options.no_progress)
    dtype_name = engine.dtype.value
    meta = {
        "hardware": config_fields(hardware),
        "model": config_fields(model),
        "dtype": dtype_name,
        "device": device_description(device),
        "attention_backend": backend,
        "timing": (
            "triton.testing.do_bench median, L2 flushed before every call"
            if device.type == "cuda"
            else f"median wall time of {options.cpu_reps} runs after one warm-up run"
        ),
        "grid": {**grid, "block_sizes": block_sizes, "layouts": layouts},
        "seed": cfg.seed,
        "command": command,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "profile_wall_time_s": round(time.perf_counter() - started, 3),
        "git": git_revision(),
        "versions": package_versions(),
    }
    out = options.out or Path("results/profiles") / f"{hardware.name}_{cfg.model.name}_{dtype_name}.csv"
    ProfileTable(rows, meta, str(out)).save(out)
    return out


def main(args: list[str]) -> int:
    options = parser().parse_args(args)
    out = run_profile(options, shlex.join(["kvbench", "profile", *args]))  # input errors: commands/errors.py
    print(f"profile: {out} (+ {out.with_suffix('.json').name})")
    return 0


if __name__ == "__main__":
    from kvbench.commands.errors import run_command

    sys.exit(run_command("profile", main, sys.argv[1:]))
