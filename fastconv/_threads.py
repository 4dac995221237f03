"""Threads are a resource fastconv controls: one count, and BLAS kept from multiplying it.

* :func:`get_num_threads` is the number of threads the Cython (OpenMP) and Numba kernels use
  at most. It starts at ``FASTCONV_NUM_THREADS`` if set, else the CPUs this process may run
  on.
* While a compiled kernel runs, the BLAS it calls from inside its own parallel region is
  capped to one thread (:func:`blas_single_threaded`), so OpenMP x OpenBLAS threads never
  multiply. The cap touches only the BLAS that ``scipy.linalg.cython_blas`` uses and is
  restored afterwards; the kernels leave numpy's BLAS alone.
* Subnormals (:func:`set_flush_denormal`): when on, every work item of a compiled kernel
  runs with the CPU's flush-to-zero and denormals-are-zero modes (x86-64 MXCSR), set in the
  kernel thread for that item and restored after it. The flag lives here; the Cython modules
  keep a C copy (:func:`register_flush_hook`) and the Numba kernels take it as an argument.
* Fork safety: in a process made by ``fork``, the thread that forked runs the kernels on a
  thread the child started itself, with all their threads, whatever OpenMP user (fastconv,
  Numba, torch) ran in the parent; and Numba's calls run Cython's kernels once Numba's
  OpenMP layer ran in the parent (see below).
* Threads by work size (:func:`threads_for`): a kernel call gets only the threads its work
  keeps busy, at least one ``grain`` of work each, so a small call runs on one thread.
* numpy's BLAS while :mod:`fastconv.nn` trains (:func:`hold_numpy_blas`,
  :func:`numpy_blas_for`): held to the same rule and count, and restored afterwards.

The grain
---------
A parallel region ends when its slowest thread does. A second thread that is already
awake and has a core to itself saves time even on tiny work, but one that has to be woken
and scheduled on a busy core can cost milliseconds, far more than a small call's whole
work. A second thread is worth that risk only for work that takes long enough, so
``threads_for(work, grain) = clamp(work // grain, 1, kernel_threads())``: every thread
gets at least one grain, and a second thread starts at two grains, as torch's
``at::parallel_for`` sizes its tasks by a grain. The grains sit just below the work at
which two threads began to win, measured with ``tools/grain_measure.py`` on a loaded
machine (the measurements: docs/guide/performance-notes.md):

* convolutions (forward, both gradients, ``locally_connected2d``), work in FLOPs (``2 x``
  multiply-adds): :data:`GRAIN_FLOPS` = 2**21, so 2 threads from 4.2 MFLOP.
* pools, work in elements (window taps read forward; elements touched backward):
  :data:`GRAIN_ELEMENTS` = 2**16, so 2 threads from 131k taps.

The bench's smallest target shapes keep two threads (conv2d lenet1 4.7 MFLOP, max_pool2d
pool_small 260k taps); a single 28x28 image's LeNet layer (73 kFLOP, 4.7k taps) gets one.
Above two grains a region can still wait for a descheduled thread under load: the grain
bounds the loss to calls long enough to have something to gain. The estimate is O(1), a
few multiplications from the shapes (:func:`fastconv._dispatch._work`, then
:func:`threads_for`). Each kernel's tiles and row blocks depend on the shapes only, so a
result is bitwise the same whatever count this picks. The grains are module attributes:
setting them to 0 gives every call all the threads.
"""

from __future__ import annotations

import contextlib
import operator
import os
import platform
import sys
import threading

from numpy import bool_ as np_bool

__all__ = ["get_num_threads", "set_num_threads", "kernel_threads", "forked_child",
           "forked_after_openmp", "needs_fresh_thread", "call_in_fork_safe_thread",
           "blas_single_threaded", "blas_info", "threads_for", "GRAIN_FLOPS",
           "GRAIN_ELEMENTS", "hold_numpy_blas", "numpy_blas_for", "set_flush_denormal",
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
    """The number of threads fastconv's compiled kernels use at most (a call uses as many
    as its work keeps busy: :func:`threads_for`)."""
    return _num_threads


def set_num_threads(n: int) -> None:
    """Set the number of threads of the Cython (OpenMP) and Numba kernels: the most a call
    uses (a small call uses one; see the grain above).

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


def _blas_libs():
    """threadpoolctl's handles on every BLAS library loaded now (scipy's loaded first)."""
    import scipy.linalg  # noqa: F401  (loads scipy's BLAS)
    from threadpoolctl import ThreadpoolController

    return [m for m in ThreadpoolController().lib_controllers if m.user_api == "blas"]


def _in_package(m, pkg) -> bool:
    """Whether a BLAS handle is ``pkg``'s own copy: ``<pkg>.libs/`` in wheels (numpy's and
    scipy's are separate OpenBLAS builds), or a library inside the package's folder."""
    path = m.filepath or ""
    return f"{pkg}.libs{os.sep}" in path or f"{os.sep}{pkg}{os.sep}" in path


def _scipy_blas():
    """threadpoolctl's handles on the BLAS libraries scipy links (found once)."""
    if _blas_state["controller"] is None:
        libs = _blas_libs()
        _blas_state["controller"] = [m for m in libs if _in_package(m, "scipy")] or libs
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
# GNU libgomp is not fork-safe. Its thread pool hangs off the thread that ran a parallel
# region (thread-local state); a fork copies that state into the child but not the pool's
# threads, so the child's next region on the forking thread waits for them forever. Any
# OpenMP user in the parent does it: fastconv, Numba's "omp" layer, torch (whose libgomp has
# the same soname, so one copy serves everybody), a raw GOMP_parallel (tests/test_fork.py:
# without what follows, a conv after torch-then-fork hangs). Nothing tells us whether some
# library ran a region, so in every forked child the thread that forked runs fastconv's
# kernels on a fresh thread of the child's own (:func:`call_in_fork_safe_thread`): a new
# thread has no pool, libgomp builds one, and the kernels keep all their threads. One such
# thread is started in the child on first use and kept. Each call in the child pays for a
# hand-off to that thread (docs/guide/performance-notes.md).
# Threads the child starts itself are fresh already and call the kernels directly.
# Numba adds its own guard: once its "omp" layer ran in the parent, a Numba parallel kernel
# aborts the child whatever thread calls it ("fork() called from a process already using GNU
# OpenMP"); :mod:`fastconv._dispatch` then sends the child's Numba calls to the Cython kernels
# (else the NumPy reference). Processes started with "spawn" or "forkserver" are unaffected.
# A fork while another thread is inside OpenBLAS can still deadlock inside OpenBLAS itself, as
# with plain numpy: use the "spawn" or "forkserver" start method for such programs.
_fork = {"child": False, "thread": None, "numba_unsafe": False, "worker": None}


def _numba_layer_started() -> bool:
    """Whether Numba's threading layer was launched here (by fastconv or anybody else)."""
    par = sys.modules.get("numba.np.ufunc.parallel")
    return bool(getattr(par, "_is_initialized", False))


def _after_fork_in_child() -> None:
    global _lock
    _fork["child"] = True
    _fork["thread"] = threading.get_ident()  # the one thread that carries the parent's state
    _fork["numba_unsafe"] = _fork["numba_unsafe"] or _numba_layer_started()
    _fork["worker"] = None  # the parent's worker thread (if any) does not exist here
    # a thread of the parent may have held it at fork time; that thread is gone here
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def forked_child() -> bool:
    """True in a process made by ``fork`` (without exec) from a Python process."""
    return _fork["child"]


def forked_after_openmp() -> bool:
    """True in a forked child whose parent (or an earlier ancestor) ran Numba's OpenMP layer:
    Numba's parallel kernels would abort this process, so its Numba calls run Cython's
    kernels."""
    return _fork["numba_unsafe"]


def needs_fresh_thread() -> bool:
    """True when the calling thread is the one that forked this process: OpenMP regions run
    from it may hang, so kernels run on :func:`call_in_fork_safe_thread`'s thread."""
    return _fork["child"] and threading.get_ident() == _fork["thread"]


class _Worker:
    """One daemon thread that runs the calls handed to it, in order."""

    def __init__(self):
        import queue

        self._jobs = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="fastconv-kernels",
                                        daemon=True)
        self._thread.start()

    def _loop(self):
        while True:
            fn, box, done = self._jobs.get()
            try:
                box.append((True, fn()))
            except BaseException as exc:  # handed back to the caller, raised there
                box.append((False, exc))
            finally:
                done.set()

    def call(self, fn):
        box, done = [], threading.Event()
        self._jobs.put((fn, box, done))
        interrupted = False
        while not done.is_set():
            try:
                done.wait()
            except KeyboardInterrupt:
                # the kernel cannot be stopped midway: let it finish (no thread is left
                # running), then raise
                interrupted = True
        if interrupted:
            raise KeyboardInterrupt
        ok, value = box[0]
        if ok:
            return value
        raise value


def call_in_fork_safe_thread(fn):
    """``fn()``, run on a thread this (forked) process started itself."""
    worker = _fork["worker"]
    if worker is None:
        with _lock:
            if _fork["worker"] is None:
                _fork["worker"] = _Worker()
            worker = _fork["worker"]
    return worker.call(fn)


def kernel_threads() -> int:
    """The thread count handed to the kernels: :func:`get_num_threads`."""
    return _num_threads


# --------------------------------------------------------------------------------------------
# threads by work size (see the module docstring: the grain)
# --------------------------------------------------------------------------------------------
GRAIN_FLOPS = 1 << 21  # convolutions: the FLOPs each thread must get at least
GRAIN_ELEMENTS = 1 << 16  # pools: the elements each thread must get at least


def threads_for(work, grain, n=None) -> int:
    """The threads a call of ``work`` units keeps busy: ``work // grain``, at least 1 and at
    most ``n`` (default :func:`kernel_threads`). Monotone in ``work``; ``grain <= 0`` gives
    all of them."""
    if n is None:
        n = kernel_threads()
    if grain <= 0 or n == 1:
        return n
    return max(1, min(n, int(work) // int(grain)))


# --------------------------------------------------------------------------------------------
# numpy's BLAS (fastconv.nn's matrix products)
# --------------------------------------------------------------------------------------------
# The OpenBLAS limit is process-wide. threadpoolctl's threadpool_limits() rescans the loaded
# libraries at every call, far too slow for every matrix product; its cached library handles
# get or set a count cheaply (docs/guide/performance-notes.md). So the handles are found
# once, the caller's counts are saved and restored around a hold (a training loop), and
# within it a count is set only when it changes.
_np_blas = {"libs": None, "depth": 0, "saved": None, "current": None}


def _numpy_blas():
    """threadpoolctl's handles on the BLAS libraries numpy links (found once)."""
    if _np_blas["libs"] is None:
        libs = _blas_libs()
        mine = [m for m in libs if _in_package(m, "numpy")]
        if not mine:  # a BLAS shared with the system: every BLAS that is not scipy's copy
            mine = [m for m in libs if f"scipy.libs{os.sep}" not in (m.filepath or "")]
        _np_blas["libs"] = mine
    return _np_blas["libs"]


def _set_numpy_blas(n: int) -> None:
    if _np_blas["current"] != n:
        for m in _numpy_blas():
            m.set_num_threads(n)
        _np_blas["current"] = n


@contextlib.contextmanager
def hold_numpy_blas():
    """Hold numpy's BLAS at :func:`kernel_threads` threads for the duration (re-entrant,
    thread-safe); :func:`numpy_blas_for` may lower it per call inside. The counts found on
    entry to the outermost hold are restored when it ends."""
    with _lock:
        if _np_blas["depth"] == 0:
            libs = _numpy_blas()
            _np_blas["saved"] = [m.num_threads for m in libs]
            _np_blas["current"] = None
            _set_numpy_blas(kernel_threads())
        _np_blas["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _np_blas["depth"] -= 1
            if _np_blas["depth"] == 0:
                for m, n in zip(_numpy_blas(), _np_blas["saved"]):
                    if m.num_threads != n:
                        m.set_num_threads(n)
                _np_blas["current"] = None


class _NumpyBlasFor:
    """The context manager :func:`numpy_blas_for` returns (a class: a generator-based one
    costs a few us more per product)."""

    __slots__ = ("_n", "_hold")

    def __init__(self, n):
        self._n = n
        self._hold = None

    def __enter__(self):
        if _np_blas["depth"] == 0:  # outside a hold: one of its own, restored on exit
            self._hold = hold_numpy_blas()
            self._hold.__enter__()
        if _np_blas["current"] != self._n:
            with _lock:
                _set_numpy_blas(self._n)
        return self

    def __exit__(self, *exc):
        if self._hold is not None:
            self._hold.__exit__(*exc)
        return False


def numpy_blas_for(flops):
    """Context manager: numpy's BLAS on ``threads_for(flops, GRAIN_FLOPS)`` threads for one
    matrix product. Inside :func:`hold_numpy_blas` it sets the count only when it changes;
    outside one, it also saves and restores the caller's count, which costs more."""
    return _NumpyBlasFor(threads_for(flops, GRAIN_FLOPS))
