"""Fork safety: a process forked after any OpenMP use must not hang or abort.

GNU libgomp is not fork-safe: without care, the child's next multi-threaded region on the
forking thread hangs, whoever ran a region in the parent (fastconv, Numba, torch, a raw
GOMP_parallel), and Numba aborts the child once its own layer ran in the parent ("fork()
called from a process already using GNU OpenMP"). In a forked child fastconv runs the kernels
of the forking thread on a thread the child started (fresh OpenMP state, all threads kept),
and sends the Numba calls to the Cython kernels when Numba's layer ran in the parent (see
``fastconv._threads``). A hang fails these tests by a timeout instead of hanging CI; an
aborted pool worker shows up the same way (its task never returns).
"""

from __future__ import annotations

import importlib
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
    return (_threads.forked_child(), _threads.forked_after_openmp(),
            _threads.kernel_threads(), _every_function(backend))


def _compare(got, expected):
    assert got.keys() == expected.keys()
    for name in expected:
        g = got[name] if isinstance(got[name], tuple) else (got[name],)
        e = expected[name] if isinstance(expected[name], tuple) else (expected[name],)
        for a, b in zip(g, e):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10, err_msg=name)


def _fork_pool_answers(what):
    ctx = mp.get_context("fork")
    pool = ctx.Pool(2)
    try:
        return pool.map_async(_child, list(BACKENDS) * 2).get(timeout=TIMEOUT)
    except mp.TimeoutError:
        pytest.fail(f"a fork-started worker hung or died (parent used {what})")
    finally:
        pool.terminate()
        pool.join()


@pytest.mark.parametrize("parent", [b for b in BACKENDS if b != "numpy"])
def test_fork_pool_after_openmp_use_computes(parent, threads):
    """The parent runs every kernel of ``parent`` on 2 threads, then a fork-started pool runs
    every function on every backend: no hang, no abort, the reference's results, and the
    children keep their threads."""
    fastconv.set_num_threads(2)
    expected = _every_function("numpy")
    _every_function(parent)  # OpenMP (and for numba: Numba's "omp" layer) now in use
    assert not _threads.forked_child()
    numba_ran = _threads._numba_layer_started()  # here, or in an earlier test of this process
    assert numba_ran or parent != "numba"
    for child, numba_unsafe, nthreads, results in _fork_pool_answers(parent):
        assert child and nthreads == 2
        assert numba_unsafe == numba_ran
        _compare(results, expected)
    assert not _threads.forked_child()  # the parent is unchanged
    assert _threads.kernel_threads() == 2


def _gomp_parallel():
    """A raw GNU OpenMP region on 2 threads, as any C extension may run (the body is
    ``free(NULL)``, which does nothing)."""
    import ctypes
    import ctypes.util

    if "cython" in fastconv.backends():
        importlib.import_module("fastconv._cy_conv")  # loads the libgomp the kernels use
    try:
        gomp = ctypes.CDLL("libgomp.so.1")
    except OSError:
        pytest.skip("no GNU libgomp here")
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    gomp.GOMP_parallel.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint,
                                   ctypes.c_uint]
    gomp.GOMP_parallel(ctypes.cast(libc.free, ctypes.c_void_p), None, 2, 0)


def _torch_conv():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    x = torch.ones((8, 16, 32, 32))
    torch.nn.functional.conv2d(x, torch.ones((16, 16, 3, 3)))


def _numpy_blas():
    a = np.ones((400, 400))
    a @ a


@pytest.mark.parametrize("parent", ["torch", "gomp", "numpy-blas"])
def test_issue15_fork_after_a_foreign_openmp_user_computes(parent, threads):
    """A parent that ran a torch conv (the DataLoader pattern), a raw GOMP_parallel or numpy's
    BLAS, and no fastconv kernel, forks a pool: every function on every backend computes the
    reference's results and nothing hangs. (torch-then-fork hung before.)"""
    fastconv.set_num_threads(2)
    expected = _every_function("numpy")
    {"torch": _torch_conv, "gomp": _gomp_parallel, "numpy-blas": _numpy_blas}[parent]()
    for child, _, nthreads, results in _fork_pool_answers(parent):
        assert child and nthreads == 2
        _compare(results, expected)


_FOREIGN = textwrap.dedent("""
    import os, sys, threading
    import numpy as np
    import torch
    import fastconv
    from fastconv import _threads

    torch.set_num_threads(2)
    torch.nn.functional.conv2d(torch.ones((8, 16, 32, 32)), torch.ones((16, 16, 3, 3)))
    fastconv.set_num_threads(2)
    x, w = np.ones((2, 3, 9, 9)), np.ones((4, 3, 3, 3))
    pid = os.fork()
    if pid == 0:
        ok = all((fastconv.conv2d(x, w, backend=b) == 27).all() for b in ("cython", "numba"))
        # a thread the child starts calls the kernels directly (fresh OpenMP state)
        box = []
        t = threading.Thread(target=lambda: box.append(
            (not _threads.needs_fresh_thread()) and (fastconv.conv2d(x, w) == 27).all()))
        t.start(); t.join()
        os._exit(0 if ok and box == [True] else 3)
    _, st = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(st))
""")


def test_issue15_bare_fork_after_torch():
    pytest.importorskip("torch")
    if "cython" not in fastconv.backends() or "numba" not in fastconv.backends():
        pytest.skip("needs both compiled backends")
    proc = subprocess.run([sys.executable, "-c", _FOREIGN], capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr


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
        pid2 = os.fork()  # the child has used OpenMP now
        if pid2 == 0:
            ok2 = (fastconv.conv2d(x, w, backend=sys.argv[2]) == 27).all()
            os._exit(0 if ok2 and _threads.forked_child() else 3)
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
    """os.fork() directly, in a fresh interpreter: children forked before and after OpenMP use
    keep their threads and compute; neither hangs, nor does a grandchild (forked after the
    child used OpenMP). Numba's calls go to Cython only where Numba's layer ran before the
    fork."""
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, when, backend], capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    marked, nthreads, ok, grandchild = proc.stdout.split()
    assert ok == "True" and grandchild == "0"
    assert nthreads == "2"
    assert marked == str(when == "after" and backend == "numba")


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
