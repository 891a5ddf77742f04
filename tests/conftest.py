"""Test-wide setup.

TRITON_INTERPRET must be set before anything imports triton, so it is set here, at the top of the
first module pytest loads: without CUDA, Triton kernels run in the interpreter on CPU tensors.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
