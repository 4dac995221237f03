"""Shared set-up of the benchmark suite: thread counts pinned for every library.

Every test gets THREADS threads for fastconv, torch and OpenCV (``FASTCONV_BENCH_THREADS``,
default 2); an implementation whose name ends in ``-1t`` runs with one thread instead. Each
test starts after SETTLE seconds of quiet (``FASTCONV_BENCH_SETTLE``, default 0.3), so the
threads the previous one left spinning do not slow it.
Tests marked ``quick`` form the subset that ``fastconv bench --quick`` runs.

The run's JSON records, in its ``machine_info``:

* ``peak``: the machine's peak, measured at the start of the session and again at its end
  for 1 and THREADS threads (:func:`fastconv._peak.measure`: an FMA loop in float32 and
  float64, and numpy's sgemm with the BLAS kernel threadpoolctl reports), the better of the
  two (:func:`fastconv._peak.best_of`), which the report divides every conv row's GFLOP/s
  by. Not measured with ``--benchmark-disable`` (nothing is timed) nor with
  ``--torch-target-rows`` (the second, malloc-defaults pass of ``fastconv bench``);
* ``malloc``: the glibc malloc settings the process started with (every ``MALLOC_*``
  variable, ``GLIBC_TUNABLES``, ``LD_PRELOAD`` and the C library), which glibc reads at
  start-up only. ``fastconv bench`` fixes them (:data:`fastconv._benchreport.HEAP_KEPT`);
  a direct pytest run records whatever the shell had;
* ``bench_threads``: THREADS.

Every benchmark's ``extra_info["threads"]`` is the thread count it ran with.

``--torch-target-rows`` keeps only the torch rows that speed targets compare with (torch
with THREADS threads in the conv2d, pooling, backward and digits training-epoch groups, and
the interleaved ``auto / torch`` pairs): ``fastconv bench`` reruns them with glibc's
malloc defaults (:func:`torch_target_item`).
"""

import os
import time

import pytest

import fastconv
from fastconv import _benchreport

THREADS = int(os.environ.get("FASTCONV_BENCH_THREADS", "2"))
# Seconds of quiet before each benchmark. An implementation that calls BLAS leaves its
# worker threads spinning for a while after its last call, and they take a core from the
# next implementation's threads (the measurement: docs/guide/performance-notes.md).
SETTLE = float(os.environ.get("FASTCONV_BENCH_SETTLE", "0.3"))


def pytest_addoption(parser):
    parser.addoption("--torch-target-rows", action="store_true", default=False,
                     help="run only the torch rows that speed targets compare with (fastconv "
                     "bench's second pass, under glibc's malloc defaults)")


def pytest_configure(config):
    config.addinivalue_line("markers", "quick: the small subset run by `fastconv bench --quick`")


# the tests whose torch rows (impl "torch") are the reference of a speed target
_TORCH_TARGET_TESTS = ("test_conv2d", "test_pool2d", "test_conv2d_backward",
                       "test_training_epoch", "test_training_epoch_other_models",
                       "test_training_epoch_translated")


def torch_target_item(name, params) -> bool:
    """Whether the test function ``name`` with these parameters is a torch row a speed target
    compares with: torch with THREADS threads in test_peers' conv2d, pooling and backward
    groups and test_training's epochs (every study model), and the interleaved pairs of test_paired whose
    reference side is torch."""
    if name == "test_paired_ratio":
        return params.get("b") == "torch"
    return name in _TORCH_TARGET_TESTS and params.get("impl") == "torch"


def pytest_collection_modifyitems(config, items):
    if not config.getoption("torch_target_rows"):
        return
    keep, drop = [], []
    for item in items:
        params = item.callspec.params if hasattr(item, "callspec") else {}
        name = getattr(getattr(item, "function", None), "__name__", "")
        (keep if torch_target_item(name, params) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# the peaks measured at the session's start, for pytest_benchmark_update_machine_info
_PEAK = {}


@pytest.fixture(scope="session", autouse=True)
def _machine_peak(request):
    """Measure the machine's peak (fastconv._peak.measure) before the first benchmark, and
    again after the last: the peak recorded is the better of the two (other work on the
    shared machine can only lower a measurement), with both kept beside it."""
    config = request.config
    if config.getoption("benchmark_disable", False) or config.getoption("torch_target_rows"):
        yield
        return
    from fastconv import _peak

    counts = sorted({1, THREADS})
    start = _peak.measure(counts)
    _PEAK.update(start)
    time.sleep(SETTLE)  # sgemm's BLAS threads spin for a while after it
    yield
    _PEAK.update(_peak.best_of(start, _peak.measure(counts)))


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["bench_threads"] = THREADS
    machine_info["malloc"] = _benchreport.malloc_settings(os.environ)
    if _PEAK:
        machine_info["peak"] = dict(_PEAK)


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
    if impl and "benchmark" in request.fixturenames:  # the report reads a row's threads
        request.getfixturevalue("benchmark").extra_info["threads"] = n
    _set_all(n)
    time.sleep(SETTLE)
    yield n
    _set_all(THREADS)
    fastconv.set_num_threads(before)
