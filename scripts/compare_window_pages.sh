#!/usr/bin/env bash
# What window-aware allocation saves on interleaved sliding-window models (docs/models.md).
#
#   scripts/compare_window_pages.sh [OUT_DIR]      (default: results/window_pages)
#   ARXIV_CSV=path/to/arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv (default: ../shared/data/arxiv/...)
#
# For gemma-3-12b (5 local : 1 global, window 1024) with an 8 GiB KV pool and gpt-oss-20b (1 : 1,
# window 128, a fifth of the KV per token) with 1 GiB (memory-bound on purpose), 300 requests of ShareGPT (rate 32/s) and of the
# arxiv-summarization length table (long prompts, rate 8/s), five ways:
#   paged         vLLM's hybrid KV cache manager: a table per layer group, uniform pages drawn
#                 from one shared pool (Jenga's allocator when every group's page has one size),
#                 blocks released as they leave the window
#   paged_static  the same tables over static per-group pools: each group a fixed equal share of
#                 the pool (strategy.group_pools=static), the per-type partition Jenga compares with
#   paged_prefix  paged with prefix caching, each group's hit rules (window_prefix.py)
#   paged_nowin   paged with every layer treated as full attention (vLLM's
#                 --disable-hybrid-kv-cache-manager): every token of every layer is kept
#   orca_max      contiguous reservation of max_model_len per request (keeps every token too)
set -euo pipefail
out="${1:-results/window_pages}"
arxiv="${ARXIV_CSV:-../shared/data/arxiv/arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv}"
common=(hardware=h100-sxm model.max_model_len=16384 workload.num_requests=300 seed=0 engine=sim)
run() {  # run DIR OVERRIDES...: skipped when DIR holds a completed run (rerun by deleting it)
  local dir="$1"; shift
  [ -f "$dir/summary.json" ] || kvbench run --overwrite "$@" "${common[@]}" "hydra.run.dir=$dir" > /dev/null
}
for model in gemma-3-12b gpt-oss-20b; do
  if [ "$model" = gemma-3-12b ]; then pool=kv_cache_bytes=8589934592; else pool=kv_cache_bytes=1073741824; fi
  for wl in sharegpt arxiv; do
    if [ "$wl" = sharegpt ]; then w=(workload=sharegpt workload.rate=32); else w=(workload=length_table "workload.path=$arxiv" workload.rate=8); fi
    w+=("$pool")
    run "$out/$model-$wl-paged" strategy=paged "model=$model" "${w[@]}"
    run "$out/$model-$wl-paged_static" strategy=paged strategy.group_pools=static "model=$model" "${w[@]}"
    run "$out/$model-$wl-paged_prefix" strategy=paged_prefix "model=$model" "${w[@]}"
    run "$out/$model-$wl-paged_nowin" strategy=paged "model=$model" "model.layer_pattern=[full]" "${w[@]}"
    run "$out/$model-$wl-orca_max" strategy=orca_max "model=$model" "${w[@]}"
  done
done
python - "$out" <<'PY'
import json, sys
from pathlib import Path
rows = []
for run in sorted(Path(sys.argv[1]).iterdir()):
    s = json.loads((run / "summary.json").read_text())
    model, wl, how = run.name.rsplit("-", 2)
    used = 1 - s["mem_free_frac"] - s["mem_cached_frac"]  # held by requests: tokens, reservations, fragments
    groups = [s[f"kv_group{g}_held_frac"] for g in range(64) if f"kv_group{g}_held_frac" in s]
    split = f"{groups[0]:.1%} / {sum(groups[1:]):.1%}" if len(groups) > 1 else "-"
    rows.append((model, wl, how, s["output_tokens_per_s"], s["mean_batch_size"], s["max_batch_size"], s["preemptions"],
                 used, s["mem_token_frac"], split))
print("| model | workload | allocation | out tok/s | mean batch | max batch | preemptions | KV used | KV tokens | full / sliding groups |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.1f} | {r[4]:.2f} | {r[5]} | {r[6]} | {r[7]:.1%} | {r[8]:.1%} | {r[9]} |")
PY
