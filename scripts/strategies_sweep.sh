#!/usr/bin/env bash
# The sweep behind docs/strategies.md: every strategy on ShareGPT (300 requests at 8 req/s) and on
# the first 300 rows of Mooncake's conversation trace (Llama-3-8B, simulator, a 4 GiB KV pool so
# that memory is what limits the batch), then `kvbench report` and the event table. A few minutes
# on 2 cores.
# Usage: [WORKLOADS=mooncake] scripts/strategies_sweep.sh [MOONCAKE_JSONL]
set -euo pipefail
mooncake=${1:-../shared/data/mooncake/conversation_trace.jsonl}
out=results/sweeps/strategies
common=(model=llama-3-8b hardware=a100-40gb kv_cache_bytes=4294967296 seed=0)
strategies=paged,paged_prefix,paged_radix,vattention,orca_max,orca_oracle,hf_dynamic,hf_static
for workload in ${WORKLOADS:-sharegpt mooncake}; do
  rm -rf "${out:?}/$workload"  # a rerun replaces the previous sweep (runs refuse to write over a run)
  extra=(workload.num_requests=300)
  if [[ $workload == mooncake ]]; then extra+=(workload.path="$(realpath "$mooncake")"); else extra+=(workload.rate=8); fi
  kvbench run -m "${common[@]}" workload=$workload "${extra[@]}" strategy=$strategies \
    hydra.sweep.dir=$out/$workload/all
  # Page granularity: radix at 16-token pages; vAttention at 256 KiB and 2 MiB pages.
  kvbench run -m "${common[@]}" workload=$workload "${extra[@]}" strategy=paged_radix strategy.block_size=16 \
    hydra.sweep.dir=$out/$workload/radix16
  kvbench run -m "${common[@]}" workload=$workload "${extra[@]}" strategy=vattention \
    strategy.page_bytes=262144,2097152 hydra.sweep.dir=$out/$workload/vattention_pages
  rm -rf "docs/strategies/$workload"  # no chart of an earlier report left behind
  kvbench report $out/$workload --out docs/strategies/$workload
  rm -f docs/strategies/$workload/figures/*.pdf  # PNG and CSV are enough in the repository
  sed -i 's/ (\[PDF\]([^)]*), / (/' docs/strategies/$workload/report.md
  python scripts/strategy_events_table.py $out/$workload > docs/strategies/$workload/events.md
done
