"""fastconv.ndimage's compiled 1-D correlation pass (issue 18): Cython + OpenMP.

``nd_correlate1d(x, w, idx, cval, out, nthreads)``: ``x`` and ``out`` are C-contiguous
``(outer, n, inner)`` arrays of one float type, ``w`` the ``k`` float64 weights (sums in
double, as scipy's),
``idx`` the ``n + k - 1`` int64 source indices of the extended line (the boundary mode
applied; -1 reads ``cval``). ``out[o, i, c] = sum_j w[j] * x[o, idx[i + j], c]``, as
:func:`fastconv.reference.nd_correlate1d`.

Two paths: ``inner == 1`` (a pass along the last axis) copies each line into its extended
form and runs :c:func:`fc_ndline` on it; otherwise the lines run in blocks of columns, each
output row summing the ``k`` input rows its taps read (row pointers: no copy of the input,
memory read in rows). Lines or (outer, column block) items run in parallel (OpenMP).
"""

from cython.parallel cimport parallel, prange
from libc.stdlib cimport free, malloc

cimport cython
from cython cimport floating


cdef extern from "fc_ndfilt.h" nogil:
    void fc_ndrow_f(float* out, const float** rows, const double* w, Py_ssize_t k,
                    Py_ssize_t m)
    void fc_ndrow_d(double* out, const double** rows, const double* w, Py_ssize_t k,
                    Py_ssize_t m)
    void fc_ndline_f(float* out, const float* ext, const double* w, Py_ssize_t k,
                     Py_ssize_t n)
    void fc_ndline_d(double* out, const double* ext, const double* w, Py_ssize_t k,
                     Py_ssize_t n)
    void fc_ndbox_f(float* out, Py_ssize_t os, Py_ssize_t cs, const float** rows,
                    Py_ssize_t size, Py_ssize_t n, Py_ssize_t m, double* tmp)
    void fc_ndbox_d(double* out, Py_ssize_t os, Py_ssize_t cs, const double** rows,
                    Py_ssize_t size, Py_ssize_t n, Py_ssize_t m, double* tmp)


cdef inline void _row(floating* out, const floating** rows, const double* w, Py_ssize_t k,
                      Py_ssize_t m) noexcept nogil:
    if floating is float:
        fc_ndrow_f(out, rows, w, k, m)
    else:
        fc_ndrow_d(out, rows, w, k, m)


cdef inline void _line(floating* out, const floating* ext, const double* w, Py_ssize_t k,
                       Py_ssize_t n) noexcept nogil:
    if floating is float:
        fc_ndline_f(out, ext, w, k, n)
    else:
        fc_ndline_d(out, ext, w, k, n)


cdef inline void _box(floating* out, Py_ssize_t os, Py_ssize_t cs, const floating** rows,
                      Py_ssize_t size, Py_ssize_t n, Py_ssize_t m,
                      double* tmp) noexcept nogil:
    if floating is float:
        fc_ndbox_f(out, os, cs, rows, size, n, m, tmp)
    else:
        fc_ndbox_d(out, os, cs, rows, size, n, m, tmp)


def nd_correlate1d(const floating[:, :, ::1] x, const double[::1] w,
                   const long long[::1] idx, double cval, floating[:, :, ::1] out,
                   int nthreads):
    cdef Py_ssize_t outer = x.shape[0], n = x.shape[1], inner = x.shape[2]
    cdef Py_ssize_t k = w.shape[0], L = n + k - 1
    cdef Py_ssize_t o, i, p, q, c0, m, item, nb, B
    cdef floating* ext
    cdef floating* crow
    cdef const floating** rows
    cdef const floating* xb
    cdef floating fc = <floating>cval
    if outer == 0 or n == 0 or inner == 0:
        return
    if idx.shape[0] != L or out.shape[0] != outer or out.shape[1] != n \
            or out.shape[2] != inner:
        raise ValueError("nd_correlate1d: inconsistent shapes")
    for p in range(L):
        if idx[p] < -1 or idx[p] >= n:
            raise ValueError("nd_correlate1d: index out of range")
    if inner == 1:
        with nogil, parallel(num_threads=max(1, nthreads)):
            ext = <floating*>malloc(L * sizeof(floating))
            if ext != NULL:
                for o in prange(outer, schedule="static"):
                    xb = &x[o, 0, 0]
                    for p in range(L):
                        if idx[p] >= 0:
                            ext[p] = xb[idx[p]]
                        else:
                            ext[p] = fc
                    _line(&out[o, 0, 0], ext, &w[0], k, n)
                free(ext)
        return
    # columns per block: the k rows a block reads stay in L1 (about 32 KiB), 16..inner
    B = (32768 // <Py_ssize_t>sizeof(floating)) // k
    B = (B // 16) * 16
    if B < 16:
        B = 16
    if B > inner:
        B = inner
    nb = (inner + B - 1) // B
    with nogil, parallel(num_threads=max(1, nthreads)):
        rows = <const floating**>malloc(L * sizeof(floating*))
        crow = <floating*>malloc(B * sizeof(floating))
        if rows != NULL and crow != NULL:
            for q in range(B):
                crow[q] = fc
            for item in prange(outer * nb, schedule="static"):
                o = item // nb
                c0 = (item % nb) * B
                m = inner - c0
                if m > B:
                    m = B
                for p in range(L):
                    if idx[p] >= 0:
                        rows[p] = &x[o, idx[p], c0]
                    else:
                        rows[p] = crow
                for i in range(n):
                    _row(&out[o, i, c0], &rows[i], &w[0], k, m)
        free(rows)
        free(crow)


cdef enum:
    GROUP = 16  # lines of a last-axis box pass run together (vector lanes)


def nd_uniform1d(const floating[:, :, ::1] x, Py_ssize_t size, const long long[::1] idx,
                 double cval, floating[:, :, ::1] out, int nthreads):
    """scipy's running-sum uniform filter (see fc_ndbox) along axis 1 of ``(outer, n,
    inner)``; ``idx`` as :func:`nd_correlate1d`'s with ``k = size``. A pass along the last
    axis (``inner == 1``) runs GROUP lines at once from their transposed extended copies."""
    cdef Py_ssize_t outer = x.shape[0], n = x.shape[1], inner = x.shape[2]
    cdef Py_ssize_t L = n + size - 1
    cdef Py_ssize_t o, i, p, q, g, c0, m, item, nb, B, ng
    cdef floating* ext
    cdef floating* crow
    cdef double* tmp
    cdef const floating** rows
    cdef floating fc = <floating>cval
    if outer == 0 or n == 0 or inner == 0:
        return
    if size < 1 or idx.shape[0] != L or out.shape[0] != outer or out.shape[1] != n \
            or out.shape[2] != inner:
        raise ValueError("nd_uniform1d: inconsistent shapes")
    for p in range(L):
        if idx[p] < -1 or idx[p] >= n:
            raise ValueError("nd_uniform1d: index out of range")
    if inner == 1:
        ng = (outer + GROUP - 1) // GROUP
        with nogil, parallel(num_threads=max(1, nthreads)):
            ext = <floating*>malloc(L * GROUP * sizeof(floating))
            rows = <const floating**>malloc(L * sizeof(floating*))
            tmp = <double*>malloc(GROUP * sizeof(double))
            if ext != NULL and rows != NULL and tmp != NULL:
                for q in range(L):
                    rows[q] = ext + q * GROUP
                for item in prange(ng, schedule="static"):
                    o = item * GROUP
                    m = outer - o
                    if m > GROUP:
                        m = GROUP
                    for g in range(m):
                        for p in range(L):
                            if idx[p] >= 0:
                                ext[p * GROUP + g] = x[o + g, idx[p], 0]
                            else:
                                ext[p * GROUP + g] = fc
                    _box(&out[o, 0, 0], 1, n, rows, size, n, m, tmp)
            free(ext)
            free(<void*>rows)
            free(tmp)
        return
    B = 512 if inner > 512 else inner
    nb = (inner + B - 1) // B
    with nogil, parallel(num_threads=max(1, nthreads)):
        rows = <const floating**>malloc(L * sizeof(floating*))
        crow = <floating*>malloc(B * sizeof(floating))
        tmp = <double*>malloc(B * sizeof(double))
        if rows != NULL and crow != NULL and tmp != NULL:
            for q in range(B):
                crow[q] = fc
            for item in prange(outer * nb, schedule="static"):
                o = item // nb
                c0 = (item % nb) * B
                m = inner - c0
                if m > B:
                    m = B
                for p in range(L):
                    if idx[p] >= 0:
                        rows[p] = &x[o, idx[p], c0]
                    else:
                        rows[p] = crow
                _box(&out[o, 0, c0], inner, 1, rows, size, n, m, tmp)
        free(<void*>rows)
        free(crow)
        free(tmp)
