"""The machine's peak, measured: an FMA loop and sgemm, the benchmark suite's yardsticks.

The benchmark report (:mod:`fastconv._benchreport`) gives every conv kernel's GFLOP/s as a
share of what this machine can do, measured by the suite at its start (its conftest) rather
than typed in:

* :func:`fma_peak`: independent multiply-add chains on the widest SIMD registers the CPU
  has (``src_cython/fc_peak.h``: AVX-512, AVX2 + FMA or SSE2, chosen at run time like the
  kernels' ``target_clones``), one copy on each of ``threads`` OpenMP threads. No
  convolution can do more floating-point work per second.
* :func:`sgemm_peak`: numpy's float32 matrix product of two ``n x n`` matrices, with its
  BLAS (OpenBLAS in numpy's wheels) held to ``threads`` threads (threadpoolctl): what a
  tuned BLAS reaches, the ceiling of an im2col + GEMM convolution.
* :func:`measure`: both, for float32 and float64 and each thread count, as the JSON-ready
  dict the suite stores in its ``machine_info["peak"]``; :func:`best_of` combines the
  measurements made at the start and at the end of a run.

Each is the best of ``repeats`` timed runs: on a shared machine a run can only lose time to
other work, never gain it. Arguments are checked here, before compiled code runs.
"""

from __future__ import annotations

import math
import operator
import time

import numpy as np

__all__ = ["fma_peak", "fma_isa", "fma_isas", "sgemm_peak", "blas_kernels", "measure",
           "best_of"]

#: multiply-add iterations of one chain per run (about 30 ms a run at any SIMD width: a
#: wider register does more work per iteration and the iteration takes as long)
FMA_ITERATIONS = 1 << 24
#: the sgemm size (2 n**3 = 17.2 GFLOP a product at n = 2048)
SGEMM_N = 2048
_MAX_THREADS = 1024


def _cy():
    from . import _cy_peak

    return _cy_peak


def _int(value, name, minimum, maximum):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got bool {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") \
            from None
    if not minimum <= v <= maximum:
        raise ValueError(f"{name} must be in [{minimum}, {maximum}], got {v}")
    return v


def _dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def fma_isas() -> list:
    """The builds of the FMA loop this CPU runs, widest first (``"x86-64-v4"``: AVX-512,
    ``"x86-64-v3"``: AVX2 + FMA, ``"x86-64"``: SSE2 without FMA; ``"generic"`` elsewhere
    than x86-64 with gcc)."""
    cy = _cy()
    top = cy.level()
    return [cy.LEVELS[lv] for lv in range(top, 0 if top else -1, -1)]


def fma_isa() -> str:
    """The widest build of the FMA loop this CPU runs (see :func:`fma_isas`)."""
    return fma_isas()[0]


def fma_peak(dtype="float32", threads=1, *, iterations=FMA_ITERATIONS, repeats=5,
             isa=None) -> float:
    """GFLOP/s of multiply-add chains on ``threads`` threads: the machine's FMA peak.

    Each thread runs twelve independent chains ``a = a * m + c``, one SIMD register each
    (enough to cover the FMA latency on two FMA units), ``iterations`` times; a multiply-add
    counts as 2 floating-point operations. The result is the best of ``repeats`` runs.

    Parameters
    ----------
    dtype : float32 or float64
    threads : int
        OpenMP threads, one copy of the chains each (at least 1). Asking for more threads
        than the CPUs free to run them measures what they share.
    iterations : int
        Multiply-adds of each chain per run.
    repeats : int
        Timed runs; the fastest counts.
    isa : str, optional
        One of :func:`fma_isas` (default: the widest, :func:`fma_isa`).

    Returns
    -------
    float
        Giga floating-point operations per second, all threads together.

    Examples
    --------
    >>> from fastconv._peak import fma_peak
    >>> fma_peak("float32", threads=1, iterations=1000, repeats=1) > 0
    True
    """
    dt = _dtype(dtype)
    threads = _int(threads, "threads", 1, _MAX_THREADS)
    iterations = _int(iterations, "iterations", 1, 1 << 40)
    repeats = _int(repeats, "repeats", 1, 1000)
    cy = _cy()
    isas = fma_isas()
    if isa is None:
        isa = isas[0]
    elif not isinstance(isa, str):
        raise TypeError(f"isa must be a str or None, got {type(isa).__name__}")
    elif isa not in isas:
        raise ValueError(f"isa must be one of {isas} on this CPU, got {isa!r}")
    level = {name: lv for lv, name in cy.LEVELS.items()}[isa]
    is_double = dt == np.float64
    flops = 2.0 * cy.CHAINS * cy.lanes(level, is_double) * iterations * threads
    best = 0.0
    for _ in range(repeats):
        seconds, _ran, total = cy.run(is_double, threads, iterations, level)
        if not math.isfinite(total) or total <= 0:  # the chains stay near 1 by design
            raise RuntimeError(f"the FMA chains ended at {total!r}: the loop is broken")
        best = max(best, flops / max(seconds, 1e-9) / 1e9)
    return best


def blas_kernels() -> list:
    """numpy's BLAS as threadpoolctl reports it: ``"openblas 0.3.31 (Haswell)"``, the library
    (``internal_api``), its version and the kernel it picked for this CPU
    (``architecture``). The libraries loaded from numpy's folders (``numpy.libs``, the
    one :func:`sgemm_peak` runs), or every BLAS loaded when none is."""
    from threadpoolctl import threadpool_info

    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    numpys = [i for i in blas if "numpy" in str(i.get("filepath", ""))]
    return [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})"
            for i in numpys or blas]


def sgemm_peak(threads=1, *, n=SGEMM_N, repeats=3) -> float:
    """GFLOP/s of numpy's float32 ``n x n`` matrix product (``2 n**3`` operations) with
    numpy's BLAS held to ``threads`` threads (threadpoolctl); the best of ``repeats``
    products after one untimed.

    Examples
    --------
    >>> from fastconv._peak import sgemm_peak
    >>> sgemm_peak(1, n=64, repeats=1) > 0
    True
    """
    threads = _int(threads, "threads", 1, _MAX_THREADS)
    n = _int(n, "n", 1, 1 << 15)
    repeats = _int(repeats, "repeats", 1, 1000)
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    best = math.inf
    with threadpool_limits(limits=threads, user_api="blas"):
        np.matmul(a, b, out=c)
        for _ in range(repeats):
            t = time.perf_counter()
            np.matmul(a, b, out=c)
            best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / max(best, 1e-9) / 1e9


def measure(threads=(1, 2), *, repeats=5, iterations=FMA_ITERATIONS, sgemm_n=SGEMM_N) -> dict:
    """The peaks the benchmark suite records (``machine_info["peak"]``), for each thread
    count in ``threads``: ``{"isa": ..., "fma": {"float32": {"1": GFLOP/s, ...},
    "float64": {...}}, "sgemm": {"1": ..., ...}, "sgemm_n": n, "blas": [...],
    "seconds": time taken}``. Thread counts are keys as strings (JSON). ``repeats`` runs of
    :func:`fma_peak` of ``iterations`` each, ``repeats - 2`` (at least 1) of
    :func:`sgemm_peak` of size ``sgemm_n``."""
    if isinstance(threads, (str, bytes)) or not hasattr(threads, "__iter__"):
        raise TypeError(f"threads must be a sequence of ints, got {threads!r}")
    counts = sorted({_int(t, "threads", 1, _MAX_THREADS) for t in threads})
    if not counts:
        raise ValueError("threads must name at least one thread count")
    start = time.perf_counter()
    out = {"isa": fma_isa(), "fma": {}, "sgemm": {}, "sgemm_n": sgemm_n,
           "blas": blas_kernels()}
    for dt in ("float32", "float64"):
        out["fma"][dt] = {str(t): fma_peak(dt, t, iterations=iterations, repeats=repeats)
                          for t in counts}
    for t in counts:
        out["sgemm"][str(t)] = sgemm_peak(t, n=sgemm_n, repeats=max(1, repeats - 2))
    out["seconds"] = time.perf_counter() - start
    return out


def best_of(*measurements) -> dict:
    """One :func:`measure` result from several (the suite measures at the start and at the
    end of its run): each peak the highest any of them found, ``"seconds"`` their sum, and
    ``"measurements"`` the list of the originals' ``fma`` and ``sgemm`` (a drop between
    them shows other work on the machine)."""
    if not measurements:
        raise ValueError("best_of needs at least one measurement")
    out = {k: v for k, v in measurements[0].items() if k not in ("fma", "sgemm")}
    out["fma"] = {}
    for m in measurements:
        for dt, per in m["fma"].items():
            d = out["fma"].setdefault(dt, {})
            for t, v in per.items():
                d[t] = max(d.get(t, 0.0), v)
    out["sgemm"] = {}
    for m in measurements:
        for t, v in m["sgemm"].items():
            out["sgemm"][t] = max(out["sgemm"].get(t, 0.0), v)
    out["seconds"] = sum(m.get("seconds", 0.0) for m in measurements)
    out["measurements"] = [{"fma": m["fma"], "sgemm": m["sgemm"]} for m in measurements]
    return out
