#!/usr/bin/env bash
# What window-aware allocation saves on interleaved sliding-window models (docs/models.md).
#
#   scripts/compare_window_pages.sh [OUT_DIR]      (default: results/window_pages)
#   ARXIV_CSV=path/to/arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv (default: ../shared/data/arxiv/...)
#
# For gemma-3-12b (5 local : 1 global, window 1024) and gpt-oss-20b (1 : 1, window 128) with a
# 8 GiB KV pool (memory-bound on purpose), 300 requests of ShareGPT (rate 32/s) and of the
# arxiv-summarization length table (long prompts, rate 8/s), three ways:
#   paged         vLLM's hybrid KV cache manager: a table per layer group, uniform pages,
#                 blocks released as they leave the window
#   paged_nowin   the same strategy with every layer treated as full attention (vLLM's
#                 --disable-hybrid-kv-cache-manager): every token of every layer is kept
#   orca_max      contiguous reservation of max_model_len per request (keeps every token too)
set -euo pipefail
out="${1:-results/window_pages}"
arxiv="${ARXIV_CSV:-../shared/data/arxiv/arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv}"
common=(hardware=h100-sxm kv_cache_bytes=8589934592 model.max_model_len=16384 workload.num_requests=300 seed=0 engine=sim)
run() {  # run DIR OVERRIDES...: skipped when DIR holds a completed run (rerun by deleting it)
  local dir="$1"; shift
  [ -f "$dir/summary.json" ] || kvbench run --overwrite "$@" "${common[@]}" "hydra.run.dir=$dir" > /dev/null
}
for model in gemma-3-12b gpt-oss-20b; do
  for wl in sharegpt arxiv; do
    if [ "$wl" = sharegpt ]; then w=(workload=sharegpt workload.rate=32); else w=(workload=length_table "workload.path=$arxiv" workload.rate=8); fi
    run "$out/$model-$wl-paged" strategy=paged "model=$model" "${w[@]}"
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
    rows.append((model, wl, how, s["output_tokens_per_s"], s["mean_batch_size"], s["max_batch_size"], s["preemptions"],
                 s["mem_token_frac"], s["mem_free_frac"]))
print("| model | workload | allocation | out tok/s | mean batch | max batch | preemptions | KV tokens | free |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.1f} | {r[4]:.2f} | {r[5]} | {r[6]} | {r[7]:.1%} | {r[8]:.1%} |")
PY
