#!/usr/bin/env bash
# The sweep behind docs/strategies.md: every strategy on ShareGPT and on a Mooncake conversation
# subset (Llama-3-8B on an A100-40GB, simulator), then `kvbench report`. Takes a few minutes on 2 cores.
# Usage: scripts/strategies_sweep.sh [MOONCAKE_JSONL]
set -euo pipefail
mooncake=${1:-../shared/data/mooncake/conversation_trace.jsonl}
out=results/sweeps/strategies
common=(model=llama-3-8b hardware=a100-40gb seed=0)
strategies=paged,paged_prefix,paged_radix,vattention,orca_max,orca_oracle,hf_dynamic,hf_static
for workload in sharegpt mooncake; do
  extra=(workload.num_requests=300)
  [[ $workload == mooncake ]] && extra+=(workload.path="$(realpath "$mooncake")")
  kvbench run -m "${common[@]}" workload=$workload "${extra[@]}" strategy=$strategies \
    hydra.sweep.dir=$out/$workload/all
  # Page granularity: radix at 16-token pages; vAttention at 256 KiB and 2 MiB pages.
  kvbench run -m "${common[@]}" workload=$workload "${extra[@]}" strategy=paged_radix strategy.block_size=16 \
    hydra.sweep.dir=$out/$workload/radix16
  kvbench run -m "${common[@]}" workload=$workload "${extra[@]}" strategy=vattention \
    strategy.page_bytes=262144,2097152 hydra.sweep.dir=$out/$workload/vattention_pages
  kvbench report $out/$workload --out docs/strategies/$workload
done
