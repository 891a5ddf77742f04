#!/usr/bin/env bash
# Install vLLM 0.33.0 as the differential test suite's oracle (tests/fidelity), CPU only.
#
# Only vLLM's Python code is needed (its scheduler and KV-cache manager): the wheel is installed
# without its dependencies (CUDA kernels, a pinned torch), then the packages that importing
# vllm.v1.core.sched.scheduler pulls in. Run it inside the venv that has kvbench and torch.
# Usage: scripts/install_vllm_oracle.sh   (then: pytest tests/fidelity)
set -euo pipefail
VLLM_VERSION=0.33.0
python -m pip install --no-deps "vllm==${VLLM_VERSION}"
python -m pip install \
    "pydantic>=2.12" "regex" "cbor2" "psutil" "pyzmq" "urllib3" "requests" "aiohttp" \
    "transformers>=5.16" "openai" "openai-harmony" "pybase64" "cachetools" "msgspec" "uvloop" \
    "prometheus_client" "xgrammar" "fastapi" "partial-json-parser" "llguidance" "einops" "pillow" \
    "cloudpickle" "py-cpuinfo"
# Checked from outside the checkout: there its kernels/ and kvbench/ folders would shadow the
# installed packages (vLLM imports a top-level `kernels` package when one is importable).
(cd / && python -c "from kvbench.oracle.vllm_replay import vllm_available; v = vllm_available(); print('vLLM oracle:', v); assert v == '${VLLM_VERSION}'")
