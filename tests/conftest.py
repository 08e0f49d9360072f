"""Fixtures shared by the test modules."""

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """torch runs on one intra-op thread during the test (short training runs: exact and fast on 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
