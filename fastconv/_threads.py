"""Threads are a resource fastconv controls: one count, and BLAS kept from multiplying it.

* :func:`get_num_threads` is the number of threads the Cython (OpenMP) and Numba kernels use.
  It starts at ``FASTCONV_NUM_THREADS`` if set, else the CPUs this process may run on.
* While a compiled kernel runs, the BLAS it calls from inside its own parallel region is
  capped to one thread (:func:`blas_single_threaded`), so OpenMP x OpenBLAS threads never
  multiply. The cap touches only the BLAS that ``scipy.linalg.cython_blas`` uses and is
  restored afterwards; numpy's BLAS is left alone.
* Fork safety (:func:`forked_after_openmp`): a process forked after fastconv (or Numba) ran
  an OpenMP region runs its kernels on one thread, and Numba's calls elsewhere (see below).
"""

from __future__ import annotations

import contextlib
import operator
import os
import sys
import threading

from numpy import bool_ as np_bool

__all__ = ["get_num_threads", "set_num_threads", "kernel_threads", "forked_after_openmp",
           "note_openmp_use", "blas_single_threaded", "blas_info"]


def _usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _initial_threads() -> int:
    env = os.environ.get("FASTCONV_NUM_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"FASTCONV_NUM_THREADS must be a positive int, got {env!r}") from None
        if n < 1:
            raise ValueError(f"FASTCONV_NUM_THREADS must be a positive int, got {env!r}")
        return n
    return _usable_cpus()


_num_threads = _initial_threads()


def get_num_threads() -> int:
    """The number of threads fastconv's compiled kernels use."""
    return _num_threads


def set_num_threads(n: int) -> None:
    """Set the number of threads of the Cython (OpenMP) and Numba kernels.

    Parameters
    ----------
    n : int
        A positive thread count. Numba's share is capped at ``numba.config.NUMBA_NUM_THREADS``
        (its pool is sized at start-up).
    """
    global _num_threads
    if isinstance(n, (bool, np_bool)):
        raise TypeError(f"set_num_threads: n must be a positive int, got {n!r}")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"set_num_threads: n must be a positive int, got {n!r}") from None
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    _num_threads = int(n)


# --------------------------------------------------------------------------------------------
# BLAS
# --------------------------------------------------------------------------------------------
_lock = threading.Lock()
_blas_state = {"controller": None, "depth": 0, "saved": None}


def _scipy_blas():
    """threadpoolctl's handles on the BLAS libraries scipy links (found once)."""
    if _blas_state["controller"] is None:
        import scipy.linalg  # noqa: F401  (loads scipy's BLAS)
        from threadpoolctl import ThreadpoolController

        ctl = ThreadpoolController()
        libs = [m for m in ctl.lib_controllers if m.user_api == "blas"]
        # scipy's own copy (scipy.libs/ in wheels); numpy's lives in numpy.libs/
        scipy_libs = [m for m in libs if f"scipy.libs{os.sep}" in (m.filepath or "")
                      or f"{os.sep}scipy{os.sep}" in (m.filepath or "")]
        _blas_state["controller"] = scipy_libs or libs
    return _blas_state["controller"]


@contextlib.contextmanager
def blas_single_threaded():
    """Cap scipy's BLAS at one thread for the duration (re-entrant, thread-safe)."""
    libs = _scipy_blas()
    with _lock:
        if _blas_state["depth"] == 0:
            _blas_state["saved"] = [m.num_threads for m in libs]
            for m in libs:
                if m.num_threads != 1:
                    m.set_num_threads(1)
        _blas_state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _blas_state["depth"] -= 1
            if _blas_state["depth"] == 0:
                for m, n in zip(libs, _blas_state["saved"]):
                    if n != 1:
                        m.set_num_threads(n)


def blas_info() -> list:
    """One dict per BLAS/OpenMP library loaded in the process (threadpoolctl's view)."""
    from threadpoolctl import threadpool_info

    return threadpool_info()


# --------------------------------------------------------------------------------------------
# fork safety
# --------------------------------------------------------------------------------------------
# GNU libgomp is not fork-safe. Measured here (tests/test_fork.py): in a child forked after
# the parent ran an OpenMP region, the next region with more than one thread hangs (Cython
# prange and Numba alike), and a Numba parallel kernel aborts the child whatever its thread
# count once Numba's "omp" layer ran in the parent ("fork() called from a process already
# using GNU OpenMP"). A region with num_threads=1 never touches libgomp's thread pool and runs
# fine. So such a child runs the Cython kernels on one thread, and :mod:`fastconv._dispatch`
# sends its Numba calls to the Cython kernels (else the NumPy reference). Processes started
# with "spawn" or "forkserver" are unaffected and keep every thread.
_fork = {"openmp_used": False, "unsafe_child": False}


def note_openmp_use() -> None:
    """Record that this process ran (or is about to run) a compiled, OpenMP kernel."""
    _fork["openmp_used"] = True


def _numba_layer_started() -> bool:
    """Whether Numba's threading layer was launched here (by fastconv or anybody else)."""
    par = sys.modules.get("numba.np.ufunc.parallel")
    return bool(getattr(par, "_is_initialized", False))


def _after_fork_in_child() -> None:
    global _lock
    if _fork["openmp_used"] or _numba_layer_started():
        _fork["unsafe_child"] = True
    # a thread of the parent may have held it at fork time; that thread is gone here
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def forked_after_openmp() -> bool:
    """True in a process forked after its parent used OpenMP: kernels then run serially."""
    return _fork["unsafe_child"]


def kernel_threads() -> int:
    """The thread count handed to the kernels: :func:`get_num_threads`, or 1 in a process
    forked after OpenMP use (:func:`forked_after_openmp`)."""
    return 1 if _fork["unsafe_child"] else _num_threads
