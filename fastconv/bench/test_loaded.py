"""Tiny calls under load (issue 15): fastconv's default thread choice against one thread,
while another process keeps one core busy.

A parallel region ends when its slowest thread does. With a busy-loop process on one of the
cores, a second thread shares a core with it, and a region that waits for it can take a
scheduler time slice (milliseconds) for microseconds of work. fastconv sizes each call's
threads by its work (:mod:`fastconv._threads`: the grain), so a tiny call runs on one thread
and ``auto`` with THREADS threads must be as fast as ``auto`` forced to one thread: the
target is ``auto-1t / auto <= 1.1``.

The cases are LeNet's first layer and first pool on one 28x28 image (a single-image
inference step): conv2d (1, 1, 28, 28) -> 6 filters 3x3 (73 kFLOP), and max_pool2d 2x2/2 on
(1, 6, 28, 28) (4,704 window taps). The busy loop (a Python ``while True: pass``
subprocess) runs for the whole measurement, started and stopped by a fixture. The two sides
take turns in bursts as in test_paired.py (same burst, gap and round counts), and the
results go to the report's "paired" group, where the targets table reads them.
"""

import subprocess
import sys
import time

import numpy as np
import pytest

import fastconv

from .conftest import THREADS
from .test_paired import ROUNDS, _check, interleave

TINY = {
    "conv2d-tiny-float32-loaded": "conv2d",
    "max_pool2d-2x2s2-tiny-float32-loaded": "max_pool2d",
}
PAIRS = [(g, "auto-1t", "auto") for g in TINY]


def _callables(group):
    """[auto-1t's callable, auto's] (the same call: the burst sets the threads), and the
    NumPy reference's result."""
    rng = np.random.default_rng(0)
    if TINY[group] == "conv2d":
        x = rng.standard_normal((1, 1, 28, 28), dtype=np.float32)
        w = rng.standard_normal((6, 1, 3, 3), dtype=np.float32)
        return ([lambda: fastconv.conv2d(x, w)] * 2, fastconv.conv2d(x, w, backend="numpy"))
    x = rng.standard_normal((1, 6, 28, 28), dtype=np.float32)
    return ([lambda: fastconv.max_pool2d(x, 2)] * 2, fastconv.max_pool2d(x, 2, backend="numpy"))


def _threads(impl):
    return 1 if impl.endswith("-1t") else THREADS


@pytest.fixture(scope="module")
def busy_core():
    """A process that keeps one core busy while the module's measurements run."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.2)  # let it start spinning
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def loaded_rounds(request, busy_core):
    """{pair: (ratios, A's times, B's times, A's callable)} measured in ROUNDS passes (one
    with ``--benchmark-disable``), A then B in even passes and B then A in odd ones."""
    fns = {}
    for pair in PAIRS:
        both, expected = _callables(pair[0])
        _check(both, expected, pair[1:])
        fns[pair] = both
    results = {pair: ([], [], [], fns[pair][0]) for pair in PAIRS}
    rounds = 1 if request.config.getoption("benchmark_disable", False) else ROUNDS
    interleave(fns, results, rounds, _threads)
    assert busy_core.poll() is None, "the busy loop stopped during the measurement"
    return results


@pytest.mark.quick
@pytest.mark.parametrize(("group", "a", "b"), PAIRS, ids=[f"{g}-{a}/{b}" for g, a, b in PAIRS])
def test_loaded_ratio(benchmark, loaded_rounds, group, a, b):
    ratios, ta, tb, fa = loaded_rounds[group, a, b]
    benchmark.group = "paired"
    benchmark.extra_info.update(impl=f"{a} / {b}", target_group=group, a=a, b=b,
                                ratio=float(np.median(ratios)), ratios=ratios,
                                a_median_s=float(np.median(ta)),
                                b_median_s=float(np.median(tb)), background="one busy core")
    benchmark.pedantic(fa, rounds=1, iterations=1)
