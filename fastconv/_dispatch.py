"""The one place that maps (op, backend) to a kernel, and decides what ``"auto"`` means.

Backends
--------
``"numpy"``
    :mod:`fastconv.reference`, always available: the oracle and the fallback.
``"cython"``
    The compiled extension modules ``fastconv._cy_conv`` and ``fastconv._cy_pool`` (OpenMP,
    BLAS through ``scipy.linalg.cython_blas``). Available when they import.
``"numba"``
    :mod:`fastconv._numba`, available when Numba imports. Compiled on first use.

Nothing is imported until it is needed, so ``import fastconv`` stays cheap. A backend that
fails to import is not listed by :func:`backends`, and the reason is kept for
:func:`fastconv.info`; asking for it by name raises a ValueError that lists the available
ones and says why it is missing.

``"auto"`` (the default) picks, for every call, the compiled kernel expected to be fastest:
``cython`` when it is available, else ``numba``, else ``numpy``. (The Cython kernels need no
JIT warm-up.) The compiled convolution kernels then run the algorithm :mod:`fastconv._plan`
gives the call's shapes, passed to them as ``algo``.

Calls
-----
``run(op, backend, spec, out)``: ``spec`` is the call's :mod:`fastconv._spec` spec and
``out`` the array the kernel fills. The kernel gets ``spec.kernel_args(out)``, under the
rules of :mod:`fastconv._postconditions` (the semantics that the kernels leave to it).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
import threading
import time

from . import _chunks, _plan, _postconditions, _threads

__all__ = ["BACKENDS", "backends", "set_backend", "get_backend", "use_backend", "kernel", "run",
           "call_kernel"]

BACKENDS = ("numpy", "cython", "numba")
_AUTO_ORDER = ("cython", "numba", "numpy")

# The modules behind each backend, per op family.
_MODULES = {
    "numpy": {"conv2d": "fastconv.reference", "pool": "fastconv.reference",
              "pool3d": "fastconv.reference",
              "local": "fastconv.reference", "grad": "fastconv.reference",
              "fold": "fastconv.reference",
              "adaptive": "fastconv.reference",
              "conv3d": "fastconv.reference",
              "ndimage": "fastconv.reference",
              },
    "cython": {"conv2d": "fastconv._cy_conv", "pool": "fastconv._cy_pool",
               "pool3d": "fastconv._cy_pool3d",
               "grad": "fastconv._cy_grad", "local": "fastconv._cy_local",
               "fold": "fastconv._cy_fold",
               "adaptive": "fastconv._cy_adaptive",
               "conv3d": "fastconv._cy_conv3d",
               "ndimage": "fastconv._cy_ndfilt",
               },
    "numba": {"conv2d": "fastconv._numba", "pool": "fastconv._numba", "local": "fastconv._numba",
              "pool3d": "fastconv._numba.pool3d",
              "grad": "fastconv._numba.grad",
              "fold": "fastconv._numba.fold",
              "adaptive": "fastconv._numba.adaptive",
              "conv3d": "fastconv._numba.conv3d",
              "ndimage": "fastconv._numba.ndimage",
              },
}
_FAMILY = {"conv2d": "conv2d", "max_pool2d": "pool", "avg_pool2d": "pool",
           "max_pool3d": "pool3d",
           "avg_pool3d": "pool3d",
           "avg_pool3d_backward": "pool3d",
           "locally_connected2d": "local",
           "adaptive_avg_pool3d": "adaptive",
           "adaptive_max_pool3d": "adaptive",
           "adaptive_avg_pool3d_backward": "adaptive",
           "conv2d_input": "grad", "conv2d_weight": "grad", "max_pool2d_backward": "grad",
           "avg_pool2d_backward": "grad",
           "unfold": "fold",
           "fold": "fold",
           "max_unpool": "fold",
           "max_unpool_backward": "fold",
           "conv3d": "conv3d",
           "conv3d_input": "conv3d",
           "conv3d_weight": "conv3d",
           "nd_correlate1d": "ndimage",
           "nd_uniform1d": "ndimage",
           "nd_correlate": "ndimage",
           "nd_sepcorr": "ndimage",
           "nd_sepbox": "ndimage",
           }

# The ops whose compiled kernels call BLAS (from inside their parallel regions).
_BLAS_OPS = frozenset({"conv2d", "conv2d_input", "conv2d_weight",
                       "conv3d",
                       "conv3d_input",
                       "conv3d_weight",
                       })

_lock = threading.Lock()
_first_call_s: dict = {}  # (backend, op) -> seconds, see first_call_seconds()
_loaded: dict = {}  # backend -> {family: module}
_failed: dict = {}  # backend -> reason it is unavailable


def _load(backend: str):
    """Import a backend's modules once; return them, or None if they do not import."""
    if backend in _loaded:
        return _loaded[backend]
    if backend in _failed:
        return None
    with _lock:
        if backend in _loaded or backend in _failed:
            return _loaded.get(backend)
        try:
            mods = {fam: importlib.import_module(name) for fam, name in _MODULES[backend].items()}
        except ImportError as exc:
            _failed[backend] = f"{type(exc).__name__}: {exc}"
            return None
        _loaded[backend] = mods
        return mods


def backends() -> tuple:
    """The names of the backends available in this installation, e.g.
    ``('numpy', 'cython', 'numba')``."""
    return tuple(b for b in BACKENDS if _load(b) is not None)


def unavailable() -> dict:
    """Backends that failed to import, with the reason (for :func:`fastconv.info`)."""
    backends()
    return dict(_failed)


def _check_name(name, what="backend"):
    if not isinstance(name, str) or (name != "auto" and name not in BACKENDS):
        raise ValueError(
            f"{what} must be 'auto' or one of {backends()}, got {name!r}"
        )
    if name != "auto" and _load(name) is None:
        raise ValueError(
            f"{what} {name!r} is not available ({_failed.get(name)}); "
            f"available: {backends()}"
        )
    return name


def _initial_backend():
    env = os.environ.get("FASTCONV_BACKEND")
    if not env:
        return "auto"
    if env != "auto" and env not in BACKENDS:
        raise ValueError(
            f"FASTCONV_BACKEND must be 'auto' or one of {BACKENDS}, got {env!r}"
        )
    return env


_default = _initial_backend()
_context: contextvars.ContextVar = contextvars.ContextVar("fastconv_backend", default=None)


def set_backend(name: str) -> None:
    """Set the default backend for calls that pass no ``backend=`` (or ``backend=None``).

    Parameters
    ----------
    name : str
        ``"auto"`` or one of :func:`backends`.
    """
    global _default
    _default = _check_name(name)


def get_backend() -> str:
    """The default backend in force here (the innermost :func:`use_backend`, else the
    :func:`set_backend` value, else ``FASTCONV_BACKEND``, else ``"auto"``)."""
    ctx = _context.get()
    return _default if ctx is None else ctx


@contextlib.contextmanager
def use_backend(name: str):
    """Context manager: use ``name`` as the default backend inside the ``with`` block.

    The setting is local to the current thread (and asyncio task).

    Examples
    --------
    >>> import fastconv
    >>> with fastconv.use_backend("numpy"):
    ...     fastconv.get_backend()
    'numpy'
    """
    token = _context.set(_check_name(name))
    try:
        yield
    finally:
        _context.reset(token)


def resolve(backend, op="conv2d") -> str:
    """The concrete backend a call of ``op`` will run on.

    Every op has all three backends today; the check keeps a future op that lacks one
    from failing obscurely (a ValueError names the backends that have it).
    """
    name = get_backend() if backend is None else _check_name(backend)
    fam = _FAMILY[op]
    if name == "auto":
        for b in _AUTO_ORDER:
            if _load(b) is not None and fam in _MODULES[b]:
                return b
    if fam not in _MODULES[name]:
        has = tuple(b for b in backends() if fam in _MODULES[b])
        raise ValueError(f"backend {name!r} has no {op} kernel; available for it: {has}")
    return name


def kernel(op: str, backend=None):
    """The kernel function for ``op`` on ``backend`` (None: the default)."""
    name = resolve(backend, op)
    return name, getattr(_load(name)[_FAMILY[op]], op)


def _forked_child_kernel(op: str):
    """The kernel a Numba call runs in a process forked after Numba's OpenMP layer ran in
    the parent, where Numba's parallel kernels would abort it: Cython's, else the
    reference."""
    for b in ("cython", "numpy"):
        mods = _load(b)
        if mods is not None and _FAMILY[op] in mods:
            return b, getattr(mods[_FAMILY[op]], op)
    raise RuntimeError("unreachable: the numpy backend always loads")  # pragma: no cover


def _calls_blas(name: str, op: str, algo, args=None) -> bool:
    """Whether this kernel call may call BLAS: the conv kernels on a compiled backend, except
    when the plan (``algo``, :mod:`fastconv._plan`) runs their direct loops (capping BLAS
    costs about 10 us, which a small call notices). An input gradient taken "forward" calls
    BLAS when its forward layer's algorithm does (``args``: the kernel's, to tell)."""
    if algo == _plan.FORWARD and op == "conv2d_input" and args is not None:
        gy, w, gx, _, pad, dilation, groups = args
        algo = _plan.input_as_forward(gx.shape, w.shape, gy.shape, pad, dilation, groups,
                                      w.itemsize)
    return name != "numpy" and op in _BLAS_OPS and algo != _plan.DIRECT


def run(op: str, backend, spec, out, compute=None):
    """Compute ``op`` described by ``spec`` (a :mod:`fastconv._spec` spec) into ``out`` (the
    array its kernel fills, allocated and validated by the caller) on ``backend`` (a name or
    None: :func:`resolve`), with the configured thread count; return ``out``.

    The kernel receives ``spec.kernel_args(out)``. Around it, the rules of
    :data:`fastconv._postconditions.POSTCONDITIONS` that name ``op`` (an empty batch runs
    no kernel and gives zeros; max-pool indices outside the plane; a non-finite gradient
    meeting the zero padding). ``compute(op, name, spec, out)`` replaces the kernel call
    inside them (:func:`call_kernel` on ``spec.kernel_args(out)``): grad.py passes its
    long-row tiling, whose tiles call :func:`call_kernel`.

    Compiled kernels call BLAS from inside their own parallel regions, so BLAS is held at one
    thread while they run: OpenMP and OpenBLAS threads never multiply. In a forked process,
    the thread that forked runs the compiled kernels on a thread the child started, and
    Numba's calls run Cython's kernels once Numba's OpenMP layer ran in the parent (see
    :mod:`fastconv._threads`: fork safety).

    Ctrl-C: a call estimated to take long (over ``fastconv._chunks.SPLIT_SECONDS``) runs
    as independent pieces of about ``PIECE_SECONDS`` each, and a SIGINT raises a plain
    KeyboardInterrupt between two of them (:mod:`fastconv._chunks`). ``out`` then holds
    the results of the pieces finished before the interrupt; the rest of it is
    unspecified. Small calls run in one piece, as before.
    """
    if spec.op != op:  # a caller's mistake: the kernel would misread its arguments
        raise ValueError(f"run({op!r}) was given the spec of {spec.op!r}")
    # a backend that callers resolved already (call_kernel's kernel() checks the op)
    name = backend if backend in _loaded else resolve(backend, op)
    _postconditions.apply(op, name, spec, out, _compute if compute is None else compute)
    return out


def _compute(op, name, spec, out):
    call_kernel(op, name, spec.kernel_args(out))


def call_kernel(op: str, name: str, args) -> None:
    """The kernel of ``op`` on the resolved backend ``name``, on its positional arguments
    ``args`` (the output array among them), in pieces when it is long
    (:func:`fastconv._chunks.call`); no postconditions: for the whole call, or a piece of a
    call that :func:`run` covers."""
    name, fn = kernel(op, name)
    if name == "numba" and _threads.forked_after_openmp():  # fastconv._threads: fork safety
        name, fn = _forked_child_kernel(op)
    key = (name, op)
    if key in _first_call_s:
        _chunks.call(op, name, fn, args, _call)
        return
    # the first call of this kernel in this process: Numba compiles (or loads its cache) here
    t0 = time.perf_counter()
    _chunks.call(op, name, fn, args, _call)
    _first_call_s.setdefault(key, time.perf_counter() - t0)


def first_call_seconds() -> dict:
    """{(backend, op): wall seconds} of the first successful, non-empty call of each kernel
    in this process: for Numba, its JIT compilation (or the load of its on-disk cache) for
    that call's dtypes, plus one run."""
    return dict(_first_call_s)


def _work(op, args):
    """(work, grain) of one kernel call, in O(1) from the shapes (:func:`fastconv._plan.work`:
    FLOPs for the convolutions, elements for the pools; the grain: :mod:`fastconv._threads`)."""
    amount, flops = _plan.work(op, args)
    return amount, _threads.GRAIN_FLOPS if flops else _threads.GRAIN_ELEMENTS


def _call(op, name, fn, args):
    if name != "numpy" and _threads.needs_fresh_thread():  # fastconv._threads: fork safety
        return _threads.call_in_fork_safe_thread(lambda: _call_here(op, name, fn, args))
    return _call_here(op, name, fn, args)


def _call_here(op, name, fn, args):
    # threads by work size: a small call runs on one thread (fastconv._threads: the grain)
    nthreads = _threads.threads_for(*_work(op, args))
    algo = _plan.algorithm(op, name, args)
    if algo is None:  # an op or backend without a choice of algorithm
        return fn(*args, nthreads)
    if not _calls_blas(name, op, algo, args):
        return fn(*args, algo, nthreads)
    with _threads.blas_single_threaded():
        return fn(*args, algo, nthreads)
