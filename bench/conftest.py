"""Shared fixtures of the benchmark suite: thread counts pinned for every library."""

import os

import pytest

import fastconv

THREADS = int(os.environ.get("FASTCONV_BENCH_THREADS", "2"))


@pytest.fixture(autouse=True)
def _pinned_threads():
    """fastconv and torch get THREADS threads each; restored afterwards."""
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(THREADS)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        t_before = torch.get_num_threads()
        torch.set_num_threads(THREADS)
    yield
    fastconv.set_num_threads(before)
    if torch is not None:
        torch.set_num_threads(t_before)
