"""Shared set-up of the benchmark suite: thread counts pinned for every library.

Every test gets THREADS threads for fastconv, torch and OpenCV (``FASTCONV_BENCH_THREADS``,
default 2); an implementation whose name ends in ``-1t`` runs with one thread instead. Each
test starts after SETTLE seconds of quiet (``FASTCONV_BENCH_SETTLE``, default 0.3), so the
threads the previous one left spinning do not slow it.
Tests marked ``quick`` form the subset that ``fastconv bench --quick`` runs.
"""

import os
import time

import pytest

import fastconv

THREADS = int(os.environ.get("FASTCONV_BENCH_THREADS", "2"))
# Seconds of quiet before each benchmark. An implementation that calls BLAS leaves its
# worker threads spinning for a while after its last call, and they take a core from the
# next implementation's threads (the measurement: docs/guide/performance-notes.md).
SETTLE = float(os.environ.get("FASTCONV_BENCH_SETTLE", "0.3"))


def pytest_configure(config):
    config.addinivalue_line("markers", "quick: the small subset run by `fastconv bench --quick`")


def _set_all(n):
    fastconv.set_num_threads(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:
        pass


@pytest.fixture(autouse=True)
def _pinned_threads(request):
    before = fastconv.get_num_threads()
    impl = request.node.callspec.params.get("impl", "") if hasattr(request.node, "callspec") else ""
    n = 1 if str(impl).endswith("-1t") else THREADS
    _set_all(n)
    time.sleep(SETTLE)
    yield n
    _set_all(THREADS)
    fastconv.set_num_threads(before)
