"""What the differential suites share: vLLM's own code at the version its rules are checked against
(installed by scripts/install_vllm_oracle.sh, else they skip), and how many seeded cases they run."""

from __future__ import annotations

import os

import pytest

from kvbench.oracle.vllm_replay import VLLM_VERSION, vllm_available

NUM_CASES = int(os.environ.get("KVBENCH_ORACLE_CASES", "60"))

installed = vllm_available()
NEEDS_ORACLE = [
    pytest.mark.skipif(installed is None, reason="vLLM oracle not installed (scripts/install_vllm_oracle.sh)"),
    pytest.mark.skipif(
        installed is not None and installed != VLLM_VERSION,
        reason=f"the rules are checked against vLLM {VLLM_VERSION}, found {installed}",
    ),
]
