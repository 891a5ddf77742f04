"""Differential replay against a real serving engine's scheduler and block pool (vLLM 0.33.0).

`cases` builds seeded request lists, `vllm_replay` runs them through vLLM's own `Scheduler` and
`KVCacheManager` (the installed wheel's code, CPU only, no model), `kvbench_replay` through
kvbench's scheduler and `paged_prefix`, and `compare` finds the first step where they differ.
Install the oracle with `scripts/install_vllm_oracle.sh`; `kvbench.oracle.vllm_replay` imports
vLLM lazily, so the rest of this package works without it.
"""
