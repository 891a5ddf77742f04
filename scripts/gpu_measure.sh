#!/usr/bin/env bash
# The measurements kvbench cannot make without a GPU (docs/performance.md lists them). Run it on a
# CUDA machine from a checkout with kvbench installed; everything lands in one folder under
# results/gpu/, with every command in commands.txt next to what it wrote.
#
#   scripts/gpu_measure.sh                                   # H100 SXM, Llama-3-8B
#   HARDWARE=a100-80gb MODEL=llama-2-7b scripts/gpu_measure.sh
#   QUICK=1 scripts/gpu_measure.sh                            # smaller kernel grid and trace (~9 min on an H200)
#
# Steps: (1) the GPU tests, (2) the kernel benchmark, (3) `kvbench profile` (both block-table
# layouts at block size 16), (4) one throughput trace through the device executor and through
# the simulator with the measured profile and with the roofline, for paged and contiguous
# strategies, then (5) sim_vs_device.md: tokens/s of each simulation against the device run, and
# (6) fp8_kv.md: the same trace on the device with an fp8 KV pool (model.kv_dtype=fp8_e4m3) beside
# the DTYPE pool of step (4).
set -euo pipefail
cd "$(dirname "$0")/.."

HARDWARE=${HARDWARE:-h100-sxm}
MODEL=${MODEL:-llama-3-8b}
DTYPE=${DTYPE:-bfloat16}
NUM_REQUESTS=${NUM_REQUESTS:-$([ -n "${QUICK:-}" ] && echo 200 || echo 1000)}
# RESULTS_DIR, not OUT: remote GPU runners often export OUT as their own return folder.
RESULTS_DIR=${RESULTS_DIR:-results/gpu/$(date +%Y-%m-%d)_${HARDWARE}_${MODEL}}
PROFILE="$RESULTS_DIR/profiles/${HARDWARE}_${MODEL}_${DTYPE}.csv"

run() {  # run a command, recording it first
    printf '%s\n' "$*" >> "$RESULTS_DIR/commands.txt"
    "$@"
}

python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "scripts/gpu_measure.sh: needs a CUDA device" >&2
    exit 2
}
mkdir -p "$RESULTS_DIR"
{
    nvidia-smi
    python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
    git rev-parse HEAD 2>/dev/null || true
} > "$RESULTS_DIR/environment.txt"

# (1) GPU tests: kernels at realistic shapes (fp8 pools and sliding windows included), and the
#     device executor's proof in float64 and bf16 (over an fp8 pool, with a sliding window).
# A failure is recorded, not fatal: the measurements below still say something.
run python -m pytest -m gpu tests -q 2>&1 | tee "$RESULTS_DIR/pytest_gpu.txt" \
    || echo "GPU tests failed: see $RESULTS_DIR/pytest_gpu.txt" | tee -a "$RESULTS_DIR/commands.txt"

# (2) Kernel benchmark: decode bandwidth vs a device copy, GQA vs MHA, paged vs contiguous, block
#     sizes 1..256, copy-on-write, prefill with a cached prefix.
run python benchmarks/bench_kernels.py --out "$RESULTS_DIR/kernels" ${QUICK:+--quick}

# (3) Step-time profile for the simulator (engine.cost_model=profile).
run kvbench profile --out "$PROFILE" --block-sizes 16 --layouts paged,contiguous \
    hardware="$HARDWARE" model="$MODEL" engine.device=cuda engine.dtype="$DTYPE"

# (4) The same throughput trace (every request at t = 0, so both engines see one schedule) on the
#     device and in the simulator.
TRACE=(hardware="$HARDWARE" model="$MODEL" workload=sharegpt workload.num_requests="$NUM_REQUESTS"
       workload.arrival=offline seed=0)
for strategy in paged contiguous; do
    STRAT=(strategy="$strategy" strategy.block_size=16)
    run kvbench run "${TRACE[@]}" "${STRAT[@]}" engine=device engine.device=cuda engine.dtype="$DTYPE" \
        hydra.run.dir="$RESULTS_DIR/runs/device_$strategy"
    run kvbench run "${TRACE[@]}" "${STRAT[@]}" engine=sim engine.cost_model=profile \
        engine.profile_path="$PROFILE" hydra.run.dir="$RESULTS_DIR/runs/sim_profile_$strategy"
    run kvbench run "${TRACE[@]}" "${STRAT[@]}" engine=sim engine.cost_model=roofline \
        hydra.run.dir="$RESULTS_DIR/runs/sim_roofline_$strategy"
done

# (5) Agreement: output tokens/s of each simulation over the device run's (target: within 10%).
run python - "$RESULTS_DIR" <<'PY'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
lines = [
    "| strategy | device tok/s | sim (profile) tok/s | ratio | sim (roofline) tok/s | ratio | steps outside profile grid |",
    "|---|---|---|---|---|---|---|",
]
for strategy in ("paged", "contiguous"):
    runs = {k: json.loads((out / "runs" / f"{k}_{strategy}" / "summary.json").read_text())
            for k in ("device", "sim_profile", "sim_roofline")}
    device = runs["device"]["output_tokens_per_s"]
    profile = runs["sim_profile"]["output_tokens_per_s"]
    roofline = runs["sim_roofline"]["output_tokens_per_s"]
    lines.append(
        f"| {strategy} | {device:.0f} | {profile:.0f} | {profile / device:.3f} | {roofline:.0f} | "
        f"{roofline / device:.3f} | {runs['sim_profile']['profile_steps_outside_grid']} |"
    )
(out / "sim_vs_device.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
# (6) The fp8 KV pool (real float8 storage, dequantized in the Triton kernels) on the same trace:
#     the same bytes hold twice the blocks of a 16-bit pool, so the schedule differs too.
run kvbench run "${TRACE[@]}" strategy=paged strategy.block_size=16 engine=device engine.device=cuda \
    engine.dtype="$DTYPE" model.kv_dtype=fp8_e4m3 hydra.run.dir="$RESULTS_DIR/runs/device_paged_fp8"
run python - "$RESULTS_DIR" <<'PY'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
fields = ["device_kv_pool_dtype", "device_kv_pool_bytes", "num_blocks", "output_tokens_per_s",
          "kernel_decode_attention_s", "kernel_prefill_attention_s", "kernel_store_kv_s", "tokens_sha256"]
lines = ["| pool | " + " | ".join(fields) + " |", "|---|" + "---|" * len(fields)]
for name in ("device_paged", "device_paged_fp8"):
    summary = json.loads((out / "runs" / name / "summary.json").read_text())
    lines.append(f"| {name} | " + " | ".join(str(summary.get(f, "")) for f in fields) + " |")
(out / "fp8_kv.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "results: $RESULTS_DIR"
