"""Threads: concurrent callers get the single-threaded results, the compiled kernels release
the GIL, and results do not depend on set_num_threads."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastconv
from conftest import BACKENDS, assert_close

G = fastconv.grad


def _calls(rng, dtype, n):
    """Every public function on inputs of a size set by ``n``: [(name, thunk(backend))]."""
    x = rng.standard_normal((2, 4, 6 + n, 7 + n)).astype(dtype)
    w = rng.standard_normal((4, 2, 3, 2)).astype(dtype)
    y, idx = fastconv.max_pool2d(x, 2, return_indices=True, backend="numpy")
    y1, idx1 = fastconv.max_pool1d(x[:, :, 0], 2, return_indices=True, backend="numpy")
    gy = rng.standard_normal((2, 4, 4 + n, 6 + n)).astype(dtype)
    lw = rng.standard_normal((4 + n, 6 + n, 3, 4, 3, 2)).astype(dtype)
    return [
        ("conv2d", lambda b: fastconv.conv2d(x, w, groups=2, backend=b)),
        ("conv1d", lambda b: fastconv.conv1d(x[:, :, 0], w[:, :, 0], padding=1, groups=2,
                                             backend=b)),
        ("max_pool2d", lambda b: fastconv.max_pool2d(x, 3, 2, 1, return_indices=True,
                                                     backend=b)),
        ("max_pool1d", lambda b: fastconv.max_pool1d(x[:, :, 0], 2, backend=b)),
        ("avg_pool2d", lambda b: fastconv.avg_pool2d(x, 3, 1, 1, backend=b)),
        ("convolve", lambda b: fastconv.convolve(x[0, 0, 0], w[0, 0, 0], backend=b)),
        ("correlate", lambda b: fastconv.correlate(x[0, 0, 0], w[0, 0, :, 0], "same",
                                                   backend=b)),
        ("convolve2d", lambda b: fastconv.convolve2d(x[0, 0], w[0, 0], backend=b)),
        ("correlate2d", lambda b: fastconv.correlate2d(x[0, 0], w[0, 0], "same", "symm",
                                                       backend=b)),
        ("locally_connected2d", lambda b: fastconv.locally_connected2d(x, lw, backend=b)),
        ("grad.conv2d_input", lambda b: G.conv2d_input(x.shape, w, gy, groups=2, backend=b)),
        ("grad.conv2d_weight", lambda b: G.conv2d_weight(x, w.shape, gy, groups=2,
                                                         backend=b)),
        ("grad.max_pool2d", lambda b: G.max_pool2d(y, idx, x.shape, backend=b)),
        ("grad.max_pool1d", lambda b: G.max_pool1d(y1, idx1, x[:, :, 0].shape, backend=b)),
        ("grad.avg_pool2d", lambda b: G.avg_pool2d(y, x.shape, 2, backend=b)),
    ]


def _as_tuple(r):
    return r if isinstance(r, tuple) else (r,)


def _check(got, expected, name):
    for g, e in zip(_as_tuple(got), _as_tuple(expected)):
        if e.dtype.kind == "i":
            np.testing.assert_array_equal(g, e, err_msg=name)
        else:
            assert_close(g, e, terms=64)


def test_many_threads_calling_everything_at_once(rng, threads):
    """16 Python threads run every function on every backend, with different shapes and
    dtypes, all at once and in a shuffled order: each result equals the one computed alone."""
    fastconv.set_num_threads(2)  # every call also starts its own OpenMP/Numba team
    jobs = []
    for dtype in (np.float32, np.float64):
        for n in (0, 3, 6):
            for name, f in _calls(rng, dtype, n):
                for b in BACKENDS:
                    jobs.append((name, b, f, f(b)))  # expected: computed alone
    order = rng.permutation(len(jobs))
    jobs = [jobs[i] for i in order] * 3
    with ThreadPoolExecutor(16) as pool:
        futures = [(name, exp, pool.submit(f, b)) for name, b, f, exp in jobs]
        for name, exp, fut in futures:
            _check(fut.result(timeout=300), exp, name)


def test_use_backend_is_per_thread():
    """use_backend in one thread does not change another thread's default."""
    seen = {}
    barrier = threading.Barrier(2)

    def worker(name):
        with fastconv.use_backend(name):
            barrier.wait(timeout=30)
            seen[name] = fastconv.get_backend()
            barrier.wait(timeout=30)

    names = ["numpy", BACKENDS[-1]]
    ts = [threading.Thread(target=worker, args=(n,)) for n in names]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=60)
    assert seen == {n: n for n in names}


@pytest.mark.parametrize("nthreads", [1, 2, 3, 5])
def test_results_do_not_depend_on_set_num_threads(rng, threads, nthreads):
    calls = _calls(rng, np.float64, 5)
    fastconv.set_num_threads(1)
    expected = {(name, b): f(b) for name, f in calls for b in BACKENDS}
    fastconv.set_num_threads(nthreads)
    for name, f in calls:
        for b in BACKENDS:
            _check(f(b), expected[name, b], f"{name} {b} nthreads={nthreads}")


# --------------------------------------------------------------------------------------------
# the GIL
# --------------------------------------------------------------------------------------------
class Ticker:
    """A pure-Python thread that records a time stamp per loop while it holds the GIL."""

    def __init__(self):
        self.stamps = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        stamps, now, stop = self.stamps, time.perf_counter, self.stop
        while not stop.is_set():
            stamps.append(now())
            for _ in range(200):  # pure Python work, needing the GIL
                pass

    def __enter__(self):
        self.thread.start()
        while not self.stamps:  # running
            time.sleep(0.001)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=30)

    def ticks_inside(self, t0, t1):
        """Stamps in the middle half of [t0, t1]: away from the call's Python parts."""
        q = (t1 - t0) / 4
        return sum(t0 + q <= s <= t1 - q for s in self.stamps)


def _overlap(f, attempts=3):
    """Ticks the Ticker thread made while ``f()`` ran (best of a few attempts: a loaded
    machine may deschedule the ticker for a while)."""
    best = 0
    for _ in range(attempts):
        with Ticker() as tick:
            t0 = time.perf_counter()
            f()
            t1 = time.perf_counter()
        best = max(best, tick.ticks_inside(t0, t1))
        if best > 10:
            break
    return best


def _long(make, target=0.15):
    """Grow a call (``make(scale)``) until it runs for about ``target`` seconds."""
    scale = 1
    while True:
        f = make(scale)
        f()  # a first call may JIT-compile (which holds the GIL): not the kernel's run
        t0 = time.perf_counter()
        f()
        if time.perf_counter() - t0 >= target or scale >= 256:
            return f
        scale *= 2


def _long_calls(backend):
    rng = np.random.default_rng(0)
    x = lambda s: rng.standard_normal((s, 16, 64, 64)).astype(np.float32)  # noqa: E731
    w = rng.standard_normal((16, 16, 5, 5)).astype(np.float32)
    return {
        "conv2d": lambda s: (lambda a=x(s): fastconv.conv2d(a, w, backend=backend)),
        "max_pool2d": lambda s: (lambda a=x(4 * s): fastconv.max_pool2d(a, 3, 1, 1,
                                                                        backend=backend)),
        "avg_pool2d": lambda s: (lambda a=x(4 * s): fastconv.avg_pool2d(a, 3, 1, 1,
                                                                        backend=backend)),
        "grad.conv2d_input": lambda s: (
            lambda g=x(s)[:, :, 4:, 4:]: G.conv2d_input((s, 16, 64, 64), w, g,
                                                        backend=backend)),
        "grad.conv2d_weight": lambda s: (
            lambda a=x(s), g=x(s)[:, :, 4:, 4:]: G.conv2d_weight(a, w.shape, g,
                                                                 backend=backend)),
        "locally_connected2d": lambda s: (
            lambda a=x(s)[:, :4], lw=rng.standard_normal((62, 62, 8, 4, 3, 3)).astype(
                np.float32): fastconv.locally_connected2d(a, lw, backend=backend)),
    }


def test_the_ticker_detects_a_call_holding_the_gil():
    """The control: sorted() of a long list holds the GIL throughout; the ticker is stopped."""
    data = list(np.random.default_rng(0).random(2_000_000))
    assert _overlap(lambda: sorted(data), attempts=1) == 0


@pytest.mark.parametrize("op", ["conv2d", "max_pool2d", "avg_pool2d", "grad.conv2d_input",
                                "grad.conv2d_weight", "locally_connected2d"])
@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_compiled_kernels_release_the_gil(backend, op, threads):
    """A pure-Python thread keeps running (its time stamps fall inside the middle half of
    the call) while a long compiled kernel runs on one thread in the main thread."""
    fastconv.set_num_threads(1)  # leave a core to the ticker
    f = _long(_long_calls(backend)[op])
    assert _overlap(f) > 0, f"{backend} {op} held the GIL"


@pytest.mark.skipif(sys.platform != "linux", reason="Linux thread names")
def test_two_kernels_overlap_in_time(threads):
    """Two Python threads each run a long kernel: with the GIL released they overlap, i.e.
    each starts before the other ends (time stamps, no duration threshold)."""
    fastconv.set_num_threads(1)
    backend = BACKENDS[-1] if len(BACKENDS) > 1 else "numpy"
    f = _long(_long_calls(backend)["conv2d"])
    spans = {}
    barrier = threading.Barrier(2)

    def run(i):
        barrier.wait(timeout=30)
        t0 = time.perf_counter()
        f()
        spans[i] = (t0, time.perf_counter())

    ts = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
    (a0, a1), (b0, b1) = spans[0], spans[1]
    assert a0 < b1 and b0 < a1
