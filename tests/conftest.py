"""Fixtures shared by the test modules."""

import os

import pytest
import torch

# The suite runs in float32 on every CPU: auto --amp would turn bfloat16 on where the CPU has it natively, and
# the bit-for-bit and fingerprint tests are float32's. Set here, before any run starts, so the command-line
# tests' subprocesses inherit it; tests/test_precision.py tests the detection itself.
os.environ["ACTORMIMIC_CPU_BF16"] = "0"


@pytest.fixture
def one_torch_thread():
    """torch runs on one intra-op thread during the test (short training runs: exact and fast on 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
