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
# threads by work size (issue 15)
# --------------------------------------------------------------------------------------------
T = fastconv._threads


@pytest.mark.real_grains
def test_issue15_threads_for_is_one_for_small_work_all_for_large_and_monotone(threads):
    fastconv.set_num_threads(4)
    g = T.GRAIN_FLOPS
    assert T.threads_for(0, g) == 1
    assert T.threads_for(2 * g - 1, g) == 1  # below two grains a second thread costs more
    assert T.threads_for(2 * g, g) == 2
    assert T.threads_for(10**12, g) == 4
    counts = [T.threads_for(w, g) for w in range(0, 6 * g, g // 7)]
    assert counts == sorted(counts) and counts[0] == 1 and counts[-1] == 4
    assert T.threads_for(1, 0) == 4  # grain 0: every thread
    fastconv.set_num_threads(1)
    assert T.threads_for(10**12, g) == 1  # never more than asked for


def _spy_threads(monkeypatch):
    """[(op, nthreads)] of every compiled kernel call from now on."""
    seen = []
    real = fastconv._dispatch.kernel

    def kernel(op, backend=None):
        name, fn = real(op, backend)

        def spy(*args):
            # float32 conv2d_weight at stride 1 may run as conv3d_weight on a depth of 1
            # (fastconv._plan.conv2d_weight_as_3d): the same call, by the name it was made as
            seen.append(("conv2d_weight" if op == "conv3d_weight" else op, args[-1]))
            return fn(*args)

        return name, spy

    monkeypatch.setattr(fastconv._dispatch, "kernel", kernel)
    return seen


@pytest.mark.real_grains
@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_issue15_a_tiny_call_gets_one_thread_a_big_one_all(rng, threads, monkeypatch, backend):
    fastconv.set_num_threads(2)
    tiny = rng.standard_normal((1, 6, 28, 28)).astype(np.float32)  # 4,704 window taps
    big = rng.standard_normal((8, 16, 64, 64)).astype(np.float32)  # 131,072 taps
    w = rng.standard_normal((6, 6, 3, 3)).astype(np.float32)
    gy = fastconv.conv2d(tiny, w, backend="numpy")
    seen = _spy_threads(monkeypatch)
    fastconv.max_pool2d(tiny, 2, backend=backend)
    fastconv.max_pool2d(big, 2, backend=backend)
    fastconv.conv2d(tiny, w, backend=backend)  # 0.26 MFLOP
    fastconv.conv2d(big[:, :6], w, backend=backend)  # 30 MFLOP
    fastconv.grad.conv2d_weight(tiny, w.shape, gy, backend=backend)
    fastconv.grad.conv2d_input(tiny.shape, w, gy, backend=backend)
    assert seen == [("max_pool2d", 1), ("max_pool2d", 2), ("conv2d", 1), ("conv2d", 2),
                    ("conv2d_weight", 1), ("conv2d_input", 1)]


def _near_grain_calls(rng):
    """Calls whose work lies on both sides of two grains (where the count goes 1 -> 2)."""
    out = []
    for hw in (32, 48, 64, 96):  # 2 x 72 taps x 8 x hw x hw FLOPs: 1.2 to 10.6 MFLOP
        x = rng.standard_normal((1, 8, hw + 2, hw + 2)).astype(np.float32)
        w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
        gy = rng.standard_normal((1, 8, hw, hw)).astype(np.float32)
        out += [("conv2d", lambda x=x, w=w: fastconv.conv2d(x, w)),
                ("conv2d_input", lambda x=x, w=w, gy=gy: G.conv2d_input(x.shape, w, gy)),
                ("conv2d_weight", lambda x=x, w=w, gy=gy: G.conv2d_weight(x, w.shape, gy))]
    for n in (1, 2, 3, 4, 6):  # max-pool 3x3/2: n x 8 x 31 x 31 x 9 = n x 69,192 taps
        x = rng.standard_normal((n, 8, 63, 63)).astype(np.float32)
        y, idx = fastconv.max_pool2d(x, 3, 2, return_indices=True, backend="numpy")
        out += [("max_pool2d", lambda x=x: fastconv.max_pool2d(x, 3, 2, return_indices=True)),
                ("avg_pool2d", lambda x=x: fastconv.avg_pool2d(x, 3, 2, 1)),
                ("grad.max_pool2d", lambda y=y, idx=idx, s=x.shape: G.max_pool2d(y, idx, s)),
                ("grad.avg_pool2d", lambda y=y, s=x.shape: G.avg_pool2d(y, s, 3, 2))]
    return out


@pytest.mark.real_grains
def test_issue15_results_are_bitwise_equal_across_thread_counts_near_the_grain(rng, threads,
                                                                               monkeypatch):
    """Around the grain a call's thread count depends on its size, and with
    set_num_threads: none of it may change a bit of the result (the default backend)."""
    calls = _near_grain_calls(rng)
    fastconv.set_num_threads(1)
    expected = [f() for _, f in calls]
    seen = _spy_threads(monkeypatch)
    for n in (2, 3):
        fastconv.set_num_threads(n)
        for (name, f), e in zip(calls, expected):
            for g, e_ in zip(_as_tuple(f()), _as_tuple(e)):
                np.testing.assert_array_equal(g, e_, err_msg=f"{name} nthreads={n}")
    for op in ("conv2d", "conv2d_input", "conv2d_weight", "max_pool2d", "avg_pool2d",
               "max_pool2d_backward", "avg_pool2d_backward"):
        counts = {c for o, c in seen if o == op}
        assert 1 in counts and len(counts) > 1, (op, counts)  # both sides of the grain


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
