#!/usr/bin/env bash
# The simulator sweep behind kvbench's regression gate, slimmed to what `kvbench compare` reads.
#
#   scripts/make_baselines.sh                  regenerate results/baselines/sharegpt_sim (commit the result)
#   scripts/make_baselines.sh OUT_DIR          the same sweep into OUT_DIR (CI: the NEW side of the comparison)
#
# Set KVBENCH_SWEEP_DIR to keep the full sweep (steps and requests tables) there, e.g. for `kvbench report`.
# Regenerate the baselines whenever a change to the simulator, a strategy or a config default is
# intended: the gate compares runs with the same resolved config, so a changed default leaves
# them unmatched until they are regenerated. Takes a few seconds on a laptop CPU.
set -euo pipefail

out="${1:-results/baselines/sharegpt_sim}"
sweep="${KVBENCH_SWEEP_DIR:-$(mktemp -d)/sweep}"
rm -rf "$sweep"

# 4 strategies x 2 request rates, 100 ShareGPT requests each, Llama-2-13B on an A100-40GB.
kvbench run -m \
  strategy=orca_max,orca_oracle,paged,paged_prefix \
  workload=sharegpt workload.rate=2,8 workload.num_requests=100 \
  model=llama-2-13b hardware=a100-40gb engine=sim seed=0 \
  hydra.sweep.dir="$sweep" > /dev/null

rm -rf "$out"
mkdir -p "$out"
cp "$sweep/multirun.yaml" "$out/"
for job in "$sweep"/*/; do
  name="$(basename "$job")"
  mkdir -p "$out/$name/.hydra"
  cp "$job/summary.json" "$job/config.yaml" "$job/manifest.json" "$out/$name/"
  cp "$job/.hydra/overrides.yaml" "$out/$name/.hydra/"
done
echo "baselines: $out ($(find "$out" -name summary.json | wc -l) runs)"
