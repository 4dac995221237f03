"""Threads are a resource fastconv controls: one count, and BLAS kept from multiplying it.

* :func:`get_num_threads` is the number of threads the Cython (OpenMP) and Numba kernels use.
  It starts at ``FASTCONV_NUM_THREADS`` if set, else the CPUs this process may run on.
* While a compiled kernel runs, the BLAS it calls from inside its own parallel region is
  capped to one thread (:func:`blas_single_threaded`), so OpenMP x OpenBLAS threads never
  multiply. The cap touches only the BLAS that ``scipy.linalg.cython_blas`` uses and is
  restored afterwards; numpy's BLAS is left alone.
* Subnormals (:func:`set_flush_denormal`): when on, every work item of a compiled kernel
  runs with the CPU's flush-to-zero and denormals-are-zero modes (x86-64 MXCSR), set in the
  kernel thread for that item and restored after it. The flag lives here; the Cython modules
  keep a C copy (:func:`register_flush_hook`) and the Numba kernels take it as an argument.
* Fork safety (:func:`forked_after_openmp`): a process forked after fastconv (or Numba) ran
  an OpenMP region runs its kernels on one thread, and Numba's calls elsewhere (see below).
"""

from __future__ import annotations

import contextlib
import operator
import os
import platform
import sys
import threading

from numpy import bool_ as np_bool

__all__ = ["get_num_threads", "set_num_threads", "kernel_threads", "forked_after_openmp",
           "note_openmp_use", "blas_single_threaded", "blas_info", "set_flush_denormal",
           "get_flush_denormal", "flush_denormal_supported", "register_flush_hook"]


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
# subnormals: flush-to-zero in the kernel threads
# --------------------------------------------------------------------------------------------
# SSE's MXCSR holds FTZ (a subnormal result is written as zero) and DAZ (a subnormal input is
# read as zero); it is x86-64's only. The register is per thread, and the kernels' threads are
# OpenMP pool threads that other libraries (torch, Numba) share, so the kernels set the modes
# at the start of each work item and restore the thread's register at its end
# (src_cython/fc_fpenv.h, fastconv/_numba/_common.py): the modes never leak into the caller's
# thread or into another library's use of the pool.
_FTZ_SUPPORTED = platform.machine().lower() in ("x86_64", "amd64")
_flush_denormal = False
_flush_hooks: list = []


def flush_denormal_supported() -> bool:
    """Whether :func:`set_flush_denormal` can flush on this CPU (x86-64)."""
    return _FTZ_SUPPORTED


def get_flush_denormal() -> bool:
    """Whether the compiled kernels flush subnormals to zero (see :func:`set_flush_denormal`)."""
    return _flush_denormal


def set_flush_denormal(mode: bool) -> bool:
    """Flush subnormal floats to zero in fastconv's compiled kernels, as
    ``torch.set_flush_denormal`` does in torch's.

    Subnormal (denormal) numbers, nonzero floats below the smallest normal one
    (``np.finfo(dtype).tiny``: about 1.2e-38 in float32, 2.2e-308 in float64), make the
    CPU's arithmetic 10-100x slower. With ``mode=True`` every work item of the Cython and
    Numba kernels (and the BLAS they call) runs with the x86-64 FTZ and DAZ modes: a
    subnormal input is read as zero and a subnormal result is written as zero, so such
    inputs cost nothing, and results equal torch's under ``torch.set_flush_denormal(True)``.
    Max-pooling computes nothing: it compares (a subnormal compares as zero) and returns
    the maximum as it is, possibly subnormal, as torch's ``max_pool2d`` with indices does.
    The modes are set in each kernel thread for the duration of fastconv's work and
    restored after it: the calling thread, and other libraries sharing the OpenMP threads,
    keep their own modes. Only the compiled kernels flush: not the ``"numpy"`` backend
    (the reference; also ``"auto"`` where no compiled backend is available), nor what
    NumPy computes around them (``fastconv.grad.conv2d_bias`` is a NumPy sum).

    The setting is process-wide (like :func:`set_num_threads`); change it between calls,
    not while a kernel runs in another thread. Off by default.

    Parameters
    ----------
    mode : bool
        True to flush subnormals to zero, False (the default) to keep them (IEEE 754).

    Returns
    -------
    bool
        True if the CPU supports flushing (x86-64). Elsewhere False, and the setting stays
        off, as in torch.

    Raises
    ------
    TypeError
        If ``mode`` is not a bool (or ``numpy.bool_``).

    Examples
    --------
    >>> import numpy as np
    >>> import fastconv
    >>> x = np.full((1, 1, 3, 3), 1e-39, dtype=np.float32)   # subnormal in float32
    >>> w = np.ones((1, 1, 3, 3), dtype=np.float32)
    >>> bool(fastconv.conv2d(x, w)[0, 0, 0, 0] > 0)      # 9e-39, a subnormal sum
    True
    >>> fastconv.set_flush_denormal(True)
    True
    >>> float(fastconv.conv2d(x, w)[0, 0, 0, 0])
    0.0
    >>> fastconv.set_flush_denormal(False)
    True
    """
    global _flush_denormal
    if not isinstance(mode, (bool, np_bool)):
        raise TypeError(f"set_flush_denormal: mode must be a bool, got {mode!r}")
    if not _FTZ_SUPPORTED:
        return False
    with _lock:
        _flush_denormal = bool(mode)
        for hook in _flush_hooks:
            hook(_flush_denormal)
    return True


def register_flush_hook(hook) -> None:
    """Call ``hook(flag)`` now and on every :func:`set_flush_denormal` change: a compiled
    module keeps its C copy of the flag with it."""
    with _lock:
        _flush_hooks.append(hook)
        hook(_flush_denormal)


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
