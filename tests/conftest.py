"""Test-wide setup.

TRITON_INTERPRET must be set before anything imports triton, so it is set here, at the top of the
first module pytest loads: without CUDA, Triton kernels run in the interpreter on CPU tensors.

Hypothesis example counts come from a profile, never from the tests: `ci` (the default, what
`pytest` runs) and `nightly` (`pytest --hypothesis-profile=nightly`, 25x the examples; the
scheduled workflow .github/workflows/nightly.yml runs it). A test that needs more or fewer than
its peers scales the profile's count (`settings().max_examples`).
"""

import atexit
import os
import shutil
import tempfile

import torch
from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None)
settings.register_profile("nightly", max_examples=1500, deadline=None)
settings.load_profile("ci")  # --hypothesis-profile=NAME, handled by Hypothesis's plugin, loads another

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Parsed length tables (kvbench/workloads/sharegpt_table_cache.py) go to a folder of the session's,
# not the user's ~/.cache; subprocesses inherit it.
if "KVBENCH_CACHE_DIR" not in os.environ:
    os.environ["KVBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="kvbench-test-cache-")
    atexit.register(shutil.rmtree, os.environ["KVBENCH_CACHE_DIR"], ignore_errors=True)
