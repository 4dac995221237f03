"""Fork safety: a process forked after fastconv ran its OpenMP kernels must not hang or abort.

GNU libgomp is not fork-safe: without care, the child's next multi-threaded region hangs, and
Numba aborts the child ("fork() called from a process already using GNU OpenMP"). fastconv
marks such a child (``os.register_at_fork``) and runs its kernels on one thread, sending the
Numba calls to the Cython kernels (see ``fastconv._threads``). A hang fails these tests by a
timeout instead of hanging CI; an aborted pool worker shows up the same way (its task never
returns).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastconv
from fastconv import _threads

from conftest import BACKENDS

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

TIMEOUT = 120  # s; a healthy child answers in a second or two


def _every_function(backend):
    """Every public function once, on small inputs: {name: result}."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 12, 12))
    w = rng.standard_normal((6, 2, 3, 3))
    g = fastconv.grad
    y, idx = fastconv.max_pool2d(x, 2, return_indices=True, backend="numpy")
    y1, idx1 = fastconv.max_pool1d(x[:, :, 0], 2, return_indices=True, backend="numpy")
    kw = dict(backend=backend)
    return {
        "conv2d": fastconv.conv2d(x, w, rng.standard_normal(6), padding=1, groups=2, **kw),
        "conv1d": fastconv.conv1d(x[:, :, 0], w[:, :, 0], stride=2, groups=2, **kw),
        "max_pool2d": fastconv.max_pool2d(x, 3, 2, 1, return_indices=True, **kw),
        "max_pool1d": fastconv.max_pool1d(x[:, :, 0], 2, **kw),
        "avg_pool2d": fastconv.avg_pool2d(x, 2, **kw),
        "convolve": fastconv.convolve(x[0, 0, 0], w[0, 0, 0], **kw),
        "correlate": fastconv.correlate(x[0, 0, 0], w[0, 0, 0], mode="same", **kw),
        "convolve2d": fastconv.convolve2d(x[0, 0], w[0, 0], **kw),
        "correlate2d": fastconv.correlate2d(x[0, 0], w[0, 0], boundary="wrap", **kw),
        "locally_connected2d": fastconv.locally_connected2d(
            x, rng.standard_normal((10, 10, 2, 4, 3, 3)), **kw),
        "grad.conv2d_input": g.conv2d_input(x.shape, w, rng.standard_normal((3, 6, 10, 10)),
                                            groups=2, **kw),
        "grad.conv2d_weight": g.conv2d_weight(x, w.shape, rng.standard_normal((3, 6, 10, 10)),
                                              groups=2, **kw),
        "grad.max_pool2d": g.max_pool2d(y, idx, x.shape, **kw),
        "grad.max_pool1d": g.max_pool1d(y1, idx1, x[:, :, 0].shape, **kw),
        "grad.avg_pool2d": g.avg_pool2d(y, x.shape, 2, **kw),
    }


def _child(backend):
    """Runs in a forked pool worker."""
    return (_threads.forked_after_openmp(), _threads.kernel_threads(),
            _every_function(backend))


def _compare(got, expected):
    assert got.keys() == expected.keys()
    for name in expected:
        g = got[name] if isinstance(got[name], tuple) else (got[name],)
        e = expected[name] if isinstance(expected[name], tuple) else (expected[name],)
        for a, b in zip(g, e):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("parent", [b for b in BACKENDS if b != "numpy"])
def test_fork_pool_after_openmp_use_computes(parent, threads):
    """The parent runs every kernel of ``parent`` on 2 threads, then a fork-started pool runs
    every function on every backend: no hang, no abort, the reference's results."""
    fastconv.set_num_threads(2)
    expected = _every_function("numpy")
    _every_function(parent)  # OpenMP (and for numba: Numba's "omp" layer) now in use
    assert not _threads.forked_after_openmp()
    ctx = mp.get_context("fork")
    pool = ctx.Pool(2)
    try:
        answers = pool.map_async(_child, list(BACKENDS) * 2).get(timeout=TIMEOUT)
    except mp.TimeoutError:
        pytest.fail(f"a fork-started worker hung or died (parent used {parent})")
    finally:
        pool.terminate()
        pool.join()
    for marked, nthreads, results in answers:
        assert marked and nthreads == 1
        _compare(results, expected)
    assert not _threads.forked_after_openmp()  # the parent keeps its threads
    assert _threads.kernel_threads() == 2


_SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np
    import fastconv
    from fastconv import _threads

    fastconv.set_num_threads(2)
    x, w = np.ones((2, 3, 9, 9)), np.ones((4, 3, 3, 3))
    if sys.argv[1] == "after":
        fastconv.conv2d(x, w, backend=sys.argv[2])
    pid = os.fork()
    if pid == 0:
        ok = (fastconv.conv2d(x, w, backend=sys.argv[2]) == 27).all()
        pid2 = os.fork()  # the child has used OpenMP now: the grandchild is marked
        if pid2 == 0:
            ok2 = (fastconv.conv2d(x, w, backend=sys.argv[2]) == 27).all()
            os._exit(0 if ok2 and _threads.forked_after_openmp() else 3)
        _, st = os.waitpid(pid2, 0)
        print(_threads.forked_after_openmp(), _threads.kernel_threads(), ok,
              os.waitstatus_to_exitcode(st), flush=True)
        os._exit(0)
    _, st = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(st))
""")


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_bare_fork_in_a_fresh_process(when, backend):
    """os.fork() directly, in a fresh interpreter: a child forked before any OpenMP use keeps
    its threads, one forked after runs serially; neither hangs, nor does a grandchild (forked
    after the child used OpenMP, so serial too)."""
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, when, backend], capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    marked, nthreads, ok, grandchild = proc.stdout.split()
    assert ok == "True" and grandchild == "0"
    if when == "after":
        assert (marked, nthreads) == ("True", "1")
    else:
        assert (marked, nthreads) == ("False", "2")


def test_spawned_workers_keep_their_threads(threads):
    """spawn (and forkserver) start a fresh interpreter: nothing to protect, all threads."""
    fastconv.set_num_threads(2)
    _every_function(BACKENDS[-1])
    with mp.get_context("spawn").Pool(1) as pool:
        marked, nthreads = pool.apply_async(_spawn_child).get(timeout=TIMEOUT)
    assert not marked
    assert nthreads == fastconv.get_num_threads()


def _spawn_child():
    from fastconv import _threads as t

    return t.forked_after_openmp(), t.kernel_threads()
