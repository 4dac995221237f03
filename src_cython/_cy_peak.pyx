"""The machine's multiply-add peak: independent FMA chains on SIMD registers (fc_peak.h).

Used by the benchmark suite through :mod:`fastconv._peak`, which validates the arguments;
the functions here trust them. ``run(is_double, nthreads, iterations, level)`` runs one
copy of the chains on each of ``nthreads`` OpenMP threads (a ``prange`` of one item per
thread, without the GIL) and returns the wall time of the parallel region, the number of
distinct threads that ran an item (fewer than asked when OpenMP gives fewer: the items then
run one after another and the wall time says so) and the chains' sum (a check that the work
was done; every copy computes the same value).
"""

import time

from cython.parallel cimport prange, threadid
from libc.stdlib cimport free, malloc

cdef extern from "fc_peak.h" nogil:
    int FC_PEAK_ACC
    int fc_peak_level()
    int fc_peak_lanes(int level, int is_double)
    double fc_peak_run_f(int level, long long n, float m, float c)
    double fc_peak_run_d(int level, long long n, double m, double c)

#: the independent chains of one thread (each one register of the level's width)
CHAINS = FC_PEAK_ACC
#: the level names, by number (see fc_peak.h)
LEVELS = {3: "x86-64-v4", 2: "x86-64-v3", 1: "x86-64", 0: "generic"}


def level():
    """The highest level of the chains this CPU runs (3: AVX-512, 2: AVX2 + FMA, 1: SSE2,
    0: another CPU or compiler)."""
    return fc_peak_level()


def lanes(int lvl, bint is_double):
    """Lanes of one chain's register at level ``lvl``."""
    return fc_peak_lanes(lvl, is_double)


def run(bint is_double, int nthreads, long long iterations, int lvl):
    """(seconds, threads that ran, sum of the chains) of ``nthreads`` copies of the chains,
    ``iterations`` multiply-adds each, one copy per OpenMP thread."""
    cdef double* sums = <double*>malloc(nthreads * sizeof(double))
    cdef int* who = <int*>malloc(nthreads * sizeof(int))
    cdef int t
    # chains a = a * m + c with 0 < m < 1 stay near c / (1 - m) = 1: finite, not subnormal;
    # m and c are run-time values, so nothing is folded at compile time
    cdef double m = 0.999, c = 0.001
    if sums == NULL or who == NULL:
        free(sums)
        free(who)
        raise MemoryError()
    try:
        start = time.perf_counter()
        with nogil:
            for t in prange(nthreads, schedule="static", chunksize=1, num_threads=nthreads):
                who[t] = threadid()
                if is_double:
                    sums[t] = fc_peak_run_d(lvl, iterations, m, c)
                else:
                    sums[t] = fc_peak_run_f(lvl, iterations, <float>m, <float>c)
        seconds = time.perf_counter() - start
        total = 0.0
        for t in range(nthreads):
            total += sums[t]
        ran = len({who[t] for t in range(nthreads)})
    finally:
        free(sums)
        free(who)
    return seconds, ran, total
