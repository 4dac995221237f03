"""fastconv.ndimage's compiled kernels (issue 18): Cython + OpenMP, the loops in C
(``fc_ndfilt.h``, compiled per x86-64 level). The sums run in double, as scipy's, except
the correlation passes of float32 data (``nd_correlate1d``, ``nd_sepcorr``), which run in
float32 with the weights rounded to float32 (:func:`fastconv.reference.nd_correlate1d`).

``nd_correlate1d(x, w, idx, cval, out, nthreads)``: ``x`` and ``out`` are C-contiguous
``(outer, n, inner)`` arrays of one float type, ``w`` the ``k`` float64 weights, ``idx``
the ``n + k - 1`` int64 source indices of the extended line (the boundary mode applied;
-1 reads ``cval``). ``out[o, i, c] = sum_j w[j] * x[o, idx[i + j], c]`` in scipy's order
(:func:`fastconv.reference.nd_correlate1d`). A pass along the last axis (``inner == 1``)
copies each line into its extended form (runs of it) and runs ``fc_ndline`` on it; along
another axis, blocks of columns and chunks of rows run in parallel, each output row summing
the ``k`` input rows its taps read (kept in a ring of row copies), four output rows at a
time (``fc_ndrows``: the ``k - 1`` rows two outputs share are read from memory once).

``nd_uniform1d(x, size, idx, cval, out, nthreads)``: scipy's running-sum box mean along
axis 1, the same paths (``fc_ndboxline4`` on four lines at a time, ``fc_ndbox`` per block
of columns).

``nd_sepcorr(x, w0, idx0, w1, idx1, cval, out, nthreads)``: two correlation passes as one,
along axis 1 and then axis 2 of ``x``: each output row's first pass (its ``k0`` input rows
in a ring; four rows at a time) is rounded to the element type and runs through the
second at once (``fc_ndrows``, then ``fc_ndline``), so the array between
the passes never goes to memory; the results are two ``nd_correlate1d`` calls' to the bit.

``nd_sepbox(x, size0, idx0, size1, idx1, cval, out, nthreads)``: two box means as one, the
same way: the first pass's running sums carried down bands of rows (``fc_ndboxrun``), each
band rounded to the element type and read by the second pass (``fc_ndboxline4``) while in
cache; the threads take whole planes, or share one plane's bands (``fc_nd_barrier``).

Each thread's buffers are taken before the parallel region (``_scratch.pxd``): a failed
allocation raises MemoryError.

``nd_correlate(xp, base, offs, w, out, nthreads)``: the n-D correlation on the padded
input, each output line the sum of the shifted input lines of its taps (``fc_ndrow``).
"""

from cython.parallel cimport parallel, prange, threadid
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

cimport cython
from cython cimport floating
from _scratch cimport scratch


cdef enum:
    RC = 256  # output rows per item of a pass along a non-last axis
    NR = 4    # output rows per step of those passes (fc_ndrows): k + 3 rows read for four



cdef extern from "fc_ndfilt.h" nogil:
    void fc_ndrow_f(float* out, const float** rows, const double* w, Py_ssize_t k,
                    Py_ssize_t m, int sym)
    void fc_ndrow_d(double* out, const double** rows, const double* w, Py_ssize_t k,
                    Py_ssize_t m, int sym)
    void fc_ndline_d(double* out, const double* ext, const double* w, Py_ssize_t k,
                     Py_ssize_t n, int sym)
    void fc_ndrows_d(double* out, Py_ssize_t os, const double** rows, const double* w,
                     Py_ssize_t k, Py_ssize_t m, Py_ssize_t nr, int sym)
    void fc_ndrows_ff(float* out, Py_ssize_t os, const float** rows, const float* w,
                      Py_ssize_t k, Py_ssize_t m, Py_ssize_t nr, int sym)
    void fc_ndline_ff(float* out, const float* ext, const float* w, Py_ssize_t k,
                      Py_ssize_t n, int sym)
    void fc_ndbox_f(float* out, Py_ssize_t os, Py_ssize_t cs, const float** rows,
                    Py_ssize_t size, Py_ssize_t n, Py_ssize_t m, double* tmp)
    void fc_ndbox_d(double* out, Py_ssize_t os, Py_ssize_t cs, const double** rows,
                    Py_ssize_t size, Py_ssize_t n, Py_ssize_t m, double* tmp)
    void fc_ndboxrun_f(float* out, Py_ssize_t os, const float* xb, Py_ssize_t rs,
                       const long long* idx, const float* crow, Py_ssize_t size, Py_ssize_t i0,
                       Py_ssize_t i1, Py_ssize_t m, double* tmp)
    void fc_ndboxrun_d(double* out, Py_ssize_t os, const double* xb, Py_ssize_t rs,
                       const long long* idx, const double* crow, Py_ssize_t size,
                       Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t m, double* tmp)
    void fc_nd_barrier()
    void fc_ndboxline_f(float* out, const float* ext, Py_ssize_t size, Py_ssize_t n)
    void fc_ndboxline_d(double* out, const double* ext, Py_ssize_t size, Py_ssize_t n)
    void fc_ndboxline4_f(float* out, Py_ssize_t os, const float* ext, Py_ssize_t es,
                         Py_ssize_t size, Py_ssize_t n, double* tmp)
    void fc_ndboxline4_d(double* out, Py_ssize_t os, const double* ext, Py_ssize_t es,
                         Py_ssize_t size, Py_ssize_t n, double* tmp)


cdef inline void _row(floating* out, const floating** rows, const double* w, Py_ssize_t k,
                      Py_ssize_t m, int sym) noexcept nogil:
    if floating is float:
        fc_ndrow_f(out, rows, w, k, m, sym)
    else:
        fc_ndrow_d(out, rows, w, k, m, sym)


ctypedef fused ring_t:
    float
    double


cdef inline void _ring_rows(const ring_t** rows, ring_t* ring, Py_ssize_t i, Py_ssize_t K,
                            Py_ssize_t nq, Py_ssize_t Bp) noexcept nogil:
    """rows[q] = ring row (i + q) % K (rows Bp elements apart), for q < nq."""
    cdef Py_ssize_t q, r = i % K
    for q in range(nq):
        rows[q] = ring + r * Bp
        r = r + 1
        if r == K:
            r = 0


cdef inline void _rows(floating* out, Py_ssize_t os, const floating** rows,
                       const floating* w, Py_ssize_t k, Py_ssize_t m, Py_ssize_t nr,
                       int sym) noexcept nogil:
    if floating is float:
        fc_ndrows_ff(out, os, rows, w, k, m, nr, sym)
    else:
        fc_ndrows_d(out, os, rows, w, k, m, nr, sym)


cdef inline void _line(floating* out, const floating* ext, const floating* w, Py_ssize_t k,
                       Py_ssize_t n, int sym) noexcept nogil:
    if floating is float:
        fc_ndline_ff(out, ext, w, k, n, sym)
    else:
        fc_ndline_d(out, ext, w, k, n, sym)


cdef floating* _weights(const double[::1] w, floating* like) except NULL:
    """A new array (free() it) of the k weights in the element type (``like``, a null
    pointer of it, only picks the type): a float32 pass sums in float32 with its weights
    rounded to float32 once, here."""
    cdef Py_ssize_t j, k = w.shape[0]
    cdef floating* wk = <floating*>malloc((k if k > 0 else 1) * sizeof(floating))
    if wk == NULL:
        raise MemoryError()
    for j in range(k):
        wk[j] = <floating>w[j]
    return wk


cdef int _symmetry(const double[::1] w):
    """scipy's NI_Correlate1D test: 1 symmetric, -1 antisymmetric (odd k), else 0."""
    cdef Py_ssize_t k = w.shape[0], h = k // 2, j
    cdef double eps = 2.220446049250313e-16
    if k % 2 == 0 or k == 1:
        return 0
    for j in range(h):
        if abs(w[j] - w[k - 1 - j]) > eps:
            break
    else:
        return 1
    for j in range(h):
        if abs(w[j] + w[k - 1 - j]) > eps:
            return 0
    return -1


cdef inline void _box(floating* out, Py_ssize_t os, Py_ssize_t cs, const floating** rows,
                      Py_ssize_t size, Py_ssize_t n, Py_ssize_t m,
                      double* tmp) noexcept nogil:
    if floating is float:
        fc_ndbox_f(out, os, cs, rows, size, n, m, tmp)
    else:
        fc_ndbox_d(out, os, cs, rows, size, n, m, tmp)


cdef inline void _boxrun(floating* out, Py_ssize_t os, const floating* xb, Py_ssize_t rs,
                         const long long* idx, const floating* crow, Py_ssize_t size,
                         Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t m,
                         double* tmp) noexcept nogil:
    if floating is float:
        fc_ndboxrun_f(out, os, xb, rs, idx, crow, size, i0, i1, m, tmp)
    else:
        fc_ndboxrun_d(out, os, xb, rs, idx, crow, size, i0, i1, m, tmp)


cdef inline void _boxline4(floating* out, Py_ssize_t os, const floating* ext, Py_ssize_t es,
                           Py_ssize_t size, Py_ssize_t n, double* tmp) noexcept nogil:
    if floating is float:
        fc_ndboxline4_f(out, os, ext, es, size, n, tmp)
    else:
        fc_ndboxline4_d(out, os, ext, es, size, n, tmp)


cdef inline void _boxline(floating* out, const floating* ext, Py_ssize_t size,
                          Py_ssize_t n) noexcept nogil:
    if floating is float:
        fc_ndboxline_f(out, ext, size, n)
    else:
        fc_ndboxline_d(out, ext, size, n)


cdef inline void _fill(floating* dst, const floating[:, :, ::1] x, Py_ssize_t o,
                       long long src, Py_ssize_t c0, Py_ssize_t m, floating fc) noexcept nogil:
    """dst[:m] = x[o, src, c0:c0 + m], or cval when src is -1."""
    cdef Py_ssize_t c
    if src >= 0:
        memcpy(dst, &x[o, src, c0], m * sizeof(floating))
    else:
        for c in range(m):
            dst[c] = fc


cdef floating* _cval_row(Py_ssize_t m, floating fc, str kernel) except NULL:
    """A new row of ``m`` cval values (free() it), read by every thread where a pass's
    extended line reads cval; MemoryError naming ``kernel`` when it cannot be had."""
    cdef floating* row = <floating*>scratch(1, m * sizeof(floating), kernel)
    cdef Py_ssize_t c
    for c in range(m):
        row[c] = fc
    return row


cdef int _check_idx(const long long[::1] idx, Py_ssize_t n, str kernel) except -1:
    """ValueError unless every index of the extended line is a row of n (or -1, cval)."""
    cdef Py_ssize_t p
    for p in range(idx.shape[0]):
        if idx[p] < -1 or idx[p] >= n:
            raise ValueError(f"{kernel}: index out of range")
    return 0


cdef Py_ssize_t _runs(const long long[::1] idx, Py_ssize_t* run_p) noexcept:
    """The extended line's runs of consecutive source indices (or of cval, -1): starts in
    run_p[0:], source starts in run_p[L:], lengths in run_p[2L:]; returns their count."""
    cdef Py_ssize_t L = idx.shape[0], p = 0, q, nrun = 0
    while p < L:
        q = p + 1
        while q < L and ((idx[p] < 0 and idx[q] < 0)
                         or (idx[p] >= 0 and idx[q] == idx[p] + (q - p))):
            q += 1
        run_p[nrun] = p
        run_p[L + nrun] = idx[p]
        run_p[2 * L + nrun] = q - p
        nrun += 1
        p = q
    return nrun


cdef inline void _extend(floating* ext, const floating* xb, const Py_ssize_t* run_p,
                         Py_ssize_t L, Py_ssize_t nrun, floating fc) noexcept nogil:
    cdef Py_ssize_t g, i
    for g in range(nrun):
        if run_p[L + g] >= 0:
            memcpy(ext + run_p[g], xb + run_p[L + g], run_p[2 * L + g] * sizeof(floating))
        else:
            for i in range(run_p[g], run_p[g] + run_p[2 * L + g]):
                ext[i] = fc


def nd_correlate1d(const floating[:, :, ::1] x, const double[::1] w,
                   const long long[::1] idx, double cval, floating[:, :, ::1] out,
                   int nthreads):
    cdef Py_ssize_t outer = x.shape[0], n = x.shape[1], inner = x.shape[2]
    cdef Py_ssize_t k = w.shape[0], L = n + k - 1
    cdef floating* wk
    cdef floating fc = <floating>cval
    cdef int sym = _symmetry(w)
    if outer == 0 or n == 0 or inner == 0:
        return
    if k < 1 or idx.shape[0] != L or out.shape[0] != outer or out.shape[1] != n \
            or out.shape[2] != inner:
        raise ValueError("nd_correlate1d: inconsistent shapes")
    _check_idx(idx, n, "nd_correlate1d")
    wk = _weights(w, <floating*>NULL)
    try:
        _correlate1d_run(x, wk, idx, fc, out, max(1, nthreads), sym)
    finally:
        free(wk)


cdef int _correlate1d_run(const floating[:, :, ::1] x, const floating* wk,
                          const long long[::1] idx, floating fc, floating[:, :, ::1] out,
                          Py_ssize_t nt, int sym) except -1:
    """nd_correlate1d's passes, the arguments checked and the weights in the element
    type."""
    cdef Py_ssize_t outer = x.shape[0], n = x.shape[1], inner = x.shape[2]
    cdef Py_ssize_t k = idx.shape[0] - n + 1, L = idx.shape[0]
    cdef Py_ssize_t o, i, p, g, c0, m, item, nb, B, nr, rc, i0, i1, nrun, Bp, K
    cdef Py_ssize_t nthreads = nt
    cdef floating* ring
    cdef Py_ssize_t* run_p
    cdef floating* ext
    cdef const floating** rows
    cdef char* pool = NULL
    cdef char* pool2 = NULL
    if inner == 1:
        # the extended line in runs of consecutive source indices (the interior is one):
        # each line copies them with memcpy, the cval runs (-1) filled
        run_p = <Py_ssize_t*>malloc(3 * L * sizeof(Py_ssize_t))
        if run_p == NULL:
            raise MemoryError()
        nrun = _runs(idx, run_p)
        try:
            pool = scratch(nt, L * sizeof(floating), "nd_correlate1d")
            with nogil, parallel(num_threads=nt):
                ext = <floating*>(pool + threadid() * L * sizeof(floating))
                for o in prange(outer, schedule="dynamic", chunksize=8):
                    _extend(ext, &x[o, 0, 0], run_p, L, nrun, fc)
                    _line(&out[o, 0, 0], ext, wk, k, n, sym)
        finally:
            free(run_p)
            free(pool)
        return 0
    # columns per block: as wide as the k rows a block reads fit in 256 KiB (L2), in equal
    # blocks of a multiple of 16: each row is copied from memory in long runs. (Blocks sized
    # for L1, 480 float32 columns for 17 taps, copied short runs of rows a whole row apart,
    # and the copies waited on memory: a 2048^2 float32 pass with 17 taps took 10.3 ms on
    # one thread of an AMD EPYC (Zen 2), 8.8 ms with whole rows.) Rows in chunks of RC, or
    # fewer when that leaves under four items per thread, 32 rows at least.
    B = (262144 // <Py_ssize_t>sizeof(floating)) // (k + NR - 1)
    B = (B // 16) * 16
    if B < 16:
        B = 16
    nb = (inner + B - 1) // B
    B = (((inner + nb - 1) // nb + 15) // 16) * 16
    if B > inner:
        B = inner
    nb = (inner + B - 1) // B
    rc = RC
    if outer * nb * ((n + rc - 1) // rc) < 4 * nthreads:
        rc = (n * outer * nb + 4 * nthreads - 1) // (4 * nthreads)
        if rc < 32:
            rc = 32
    nr = (n + rc - 1) // rc
    # the k + NR - 1 rows a step of NR output rows reads are copied into a ring of as many
    # rows spaced Bp elements apart: the input's rows may be a power of two apart, which
    # would put all of them in the same L1 sets
    Bp = B + 16
    K = k + NR - 1
    pool = scratch(nt, K * sizeof(floating*), "nd_correlate1d")
    try:
        pool2 = scratch(nt, K * Bp * sizeof(floating), "nd_correlate1d")
        with nogil, parallel(num_threads=nt):
            rows = <const floating**>(pool + threadid() * K * sizeof(floating*))
            ring = <floating*>(pool2 + threadid() * K * Bp * sizeof(floating))
            for item in prange(outer * nb * nr, schedule="dynamic"):
                o = item // (nb * nr)
                c0 = ((item // nr) % nb) * B
                i0 = (item % nr) * rc
                i1 = i0 + rc
                if i1 > n:
                    i1 = n
                m = inner - c0
                if m > B:
                    m = B
                for p in range(i0, i0 + k - 1):
                    _fill(ring + (p % K) * Bp, x, o, idx[p], c0, m, fc)
                i = i0
                while i < i1:
                    g = i1 - i
                    if g > NR:
                        g = NR
                    for p in range(i + k - 1, i + k - 1 + g):
                        _fill(ring + (p % K) * Bp, x, o, idx[p], c0, m, fc)
                    _ring_rows(rows, ring, i, K, k + g - 1, Bp)
                    _rows(&out[o, i, c0], inner, rows, wk, k, m, g, sym)
                    i = i + g
    finally:
        free(pool)
        free(pool2)
    return 0




def nd_sepcorr(const floating[:, :, ::1] x, const double[::1] w0, const long long[::1] idx0,
               const double[::1] w1, const long long[::1] idx1, double cval,
               floating[:, :, ::1] out, int nthreads):
    """The last two passes of a separable correlation as one: along axis 1 of ``x``
    (``(outer, nx, inner)``) with ``w0`` and ``idx0``, then along axis 2 with ``w1`` and
    ``idx1``, into ``out`` (``(outer, n, inner)``; ``idx0`` has ``n + k0 - 1`` indices into
    ``nx``, ``idx1`` ``inner + k1 - 1``). Each row of the first pass is rounded to the
    element type, as the array between two ``nd_correlate1d`` calls is, and runs through the
    second at once, from a thread's own buffers: the results are those two calls' to the bit,
    and the intermediate array never goes to memory (two of the four passes over memory).

    Items are strips of rows of one ``o``, as a pass along a non-last axis; each keeps the
    ``k0 + NR - 1`` input rows a step of ``NR`` output rows reads in a ring of rows."""
    cdef Py_ssize_t outer = x.shape[0], nx = x.shape[1], inner = x.shape[2]
    cdef Py_ssize_t n = out.shape[1]
    cdef Py_ssize_t k0 = w0.shape[0], k1 = w1.shape[0], L0 = n + k0 - 1, L1 = inner + k1 - 1
    cdef Py_ssize_t o, i, p, q, g, item, nr, rc, i0, i1, nrun, Bp, K = k0 + NR - 1
    cdef Py_ssize_t nt = max(1, nthreads)
    cdef Py_ssize_t* run_p
    cdef floating* ring
    cdef floating* ext
    cdef floating* mid
    cdef floating* wk0 = NULL
    cdef floating* wk1 = NULL
    cdef const floating** rows
    cdef char* pool = NULL
    cdef char* pool2 = NULL
    cdef char* pool3 = NULL
    cdef char* pool4 = NULL
    cdef floating fc = <floating>cval
    cdef int sym0 = _symmetry(w0), sym1 = _symmetry(w1)
    if outer == 0 or n == 0 or inner == 0:
        return
    if k0 == 0 or k1 == 0 or idx0.shape[0] != L0 or idx1.shape[0] != L1 \
            or out.shape[0] != outer or out.shape[2] != inner:
        raise ValueError("nd_sepcorr: inconsistent shapes")
    _check_idx(idx0, nx, "nd_sepcorr")
    _check_idx(idx1, inner, "nd_sepcorr")
    # strips of RC rows, or fewer when that leaves under four items per thread (32 rows at
    # least): a strip first reads the k0 - 1 rows above it again
    rc = RC
    if outer * ((n + rc - 1) // rc) < 4 * nthreads:
        rc = (n * outer + 4 * nthreads - 1) // (4 * nthreads)
        if rc < 32:
            rc = 32
    nr = (n + rc - 1) // rc
    Bp = inner + 16  # ring rows apart by a non-power of two (see nd_correlate1d)
    run_p = <Py_ssize_t*>malloc(3 * L1 * sizeof(Py_ssize_t))
    if run_p == NULL:
        raise MemoryError()
    nrun = _runs(idx1, run_p)
    try:
        wk0 = _weights(w0, <floating*>NULL)
        wk1 = _weights(w1, <floating*>NULL)
        pool = scratch(nt, K * sizeof(floating*), "nd_sepcorr")
        pool2 = scratch(nt, K * Bp * sizeof(floating), "nd_sepcorr")
        pool3 = scratch(nt, L1 * sizeof(floating), "nd_sepcorr")
        pool4 = scratch(nt, NR * inner * sizeof(floating), "nd_sepcorr")
        with nogil, parallel(num_threads=nt):
            rows = <const floating**>(pool + threadid() * K * sizeof(floating*))
            ring = <floating*>(pool2 + threadid() * K * Bp * sizeof(floating))
            ext = <floating*>(pool3 + threadid() * L1 * sizeof(floating))
            mid = <floating*>(pool4 + threadid() * NR * inner * sizeof(floating))
            for item in prange(outer * nr, schedule="dynamic"):
                o = item // nr
                i0 = (item % nr) * rc
                i1 = i0 + rc
                if i1 > n:
                    i1 = n
                for p in range(i0, i0 + k0 - 1):
                    _fill(ring + (p % K) * Bp, x, o, idx0[p], 0, inner, fc)
                i = i0
                while i < i1:
                    g = i1 - i
                    if g > NR:
                        g = NR
                    for p in range(i + k0 - 1, i + k0 - 1 + g):
                        _fill(ring + (p % K) * Bp, x, o, idx0[p], 0, inner, fc)
                    _ring_rows(rows, ring, i, K, k0 + g - 1, Bp)
                    _rows(mid, inner, rows, wk0, k0, inner, g, sym0)
                    for q in range(g):
                        _extend(ext, mid + q * inner, run_p, L1, nrun, fc)
                        _line(&out[o, i + q, 0], ext, wk1, k1, inner, sym1)
                    i = i + g
    finally:
        free(run_p)
        free(wk0)
        free(wk1)
        free(pool)
        free(pool2)
        free(pool3)
        free(pool4)


def nd_uniform1d(const floating[:, :, ::1] x, Py_ssize_t size, const long long[::1] idx,
                 double cval, floating[:, :, ::1] out, int nthreads):
    """scipy's running-sum uniform filter (see fc_ndbox) along axis 1 of ``(outer, n,
    inner)``; ``idx`` as :func:`nd_correlate1d`'s with ``k = size``. A pass along the last
    axis (``inner == 1``) runs four lines at a time on their extended copies (fc_ndboxline4);
    along another axis, blocks of columns at once (fc_ndbox)."""
    cdef Py_ssize_t outer = x.shape[0], n = x.shape[1], inner = x.shape[2]
    cdef Py_ssize_t L = n + size - 1
    cdef Py_ssize_t o, i, p, q, c0, m, item, nb, B, nrun
    cdef Py_ssize_t nt = max(1, nthreads)
    cdef Py_ssize_t* run_p
    cdef floating* ext
    cdef floating* crow = NULL
    cdef double* tmp
    cdef const floating** rows
    cdef char* pool = NULL
    cdef char* pool2 = NULL
    cdef floating fc = <floating>cval
    if outer == 0 or n == 0 or inner == 0:
        return
    if size < 1 or idx.shape[0] != L or out.shape[0] != outer or out.shape[1] != n \
            or out.shape[2] != inner:
        raise ValueError("nd_uniform1d: inconsistent shapes")
    _check_idx(idx, n, "nd_uniform1d")
    if inner == 1:
        run_p = <Py_ssize_t*>malloc(3 * L * sizeof(Py_ssize_t))
        if run_p == NULL:
            raise MemoryError()
        nrun = _runs(idx, run_p)
        # lines four at a time (fc_ndboxline4), the last outer % 4 one at a time
        try:
            pool = scratch(nt, 4 * L * sizeof(floating), "nd_uniform1d")
            pool2 = scratch(nt, 4 * L * sizeof(double), "nd_uniform1d")
            with nogil, parallel(num_threads=nt):
                ext = <floating*>(pool + threadid() * 4 * L * sizeof(floating))
                tmp = <double*>(pool2 + threadid() * 4 * L * sizeof(double))
                for item in prange((outer + 3) // 4, schedule="dynamic", chunksize=2):
                    o = 4 * item
                    if o + 4 <= outer:
                        for q in range(4):
                            _extend(ext + q * L, &x[o + q, 0, 0], run_p, L, nrun, fc)
                        _boxline4(&out[o, 0, 0], n, ext, L, size, n, tmp)
                    else:
                        for o in range(o, outer):
                            _extend(ext, &x[o, 0, 0], run_p, L, nrun, fc)
                            _boxline(&out[o, 0, 0], ext, size, n)
        finally:
            free(run_p)
            free(pool)
            free(pool2)
        return
    B = 512 if inner > 512 else inner
    nb = (inner + B - 1) // B
    try:
        pool = scratch(nt, L * sizeof(floating*), "nd_uniform1d")
        pool2 = scratch(nt, B * sizeof(double), "nd_uniform1d")
        crow = _cval_row(B, fc, "nd_uniform1d")
        with nogil, parallel(num_threads=nt):
            rows = <const floating**>(pool + threadid() * L * sizeof(floating*))
            tmp = <double*>(pool2 + threadid() * B * sizeof(double))
            for item in prange(outer * nb, schedule="dynamic"):
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
    finally:
        free(pool)
        free(pool2)
        free(crow)


cdef inline void _band_rows(floating* out, const floating* band, Py_ssize_t cnt,
                            Py_ssize_t g, Py_ssize_t inner, const Py_ssize_t* run_p,
                            Py_ssize_t L, Py_ssize_t nrun, Py_ssize_t size, floating fc,
                            floating* ext, double* tmp) noexcept nogil:
    """The last-axis box pass of rows 4g .. 4g + 3 of a band of ``cnt`` rows (``band``,
    rows ``inner`` apart) into ``out`` (the band's first output row): four at a time
    (fc_ndboxline4), the last ``cnt % 4`` one at a time."""
    cdef Py_ssize_t r = 4 * g, q
    if r + 4 <= cnt:
        for q in range(4):
            _extend(ext + q * L, band + (r + q) * inner, run_p, L, nrun, fc)
        _boxline4(out + r * inner, inner, ext, L, size, inner, tmp)
    else:
        for r in range(r, cnt):
            _extend(ext, band + r * inner, run_p, L, nrun, fc)
            _boxline(out + r * inner, ext, size, inner)


def nd_sepbox(const floating[:, :, ::1] x, Py_ssize_t size0, const long long[::1] idx0,
              Py_ssize_t size1, const long long[::1] idx1, double cval,
              floating[:, :, ::1] out, int nthreads):
    """The last two passes of a separable uniform filter as one: scipy's running-sum box
    mean of size ``size0`` along axis 1 of ``x`` (``idx0``: its ``n + size0 - 1`` indices),
    then of size ``size1`` along axis 2 (``idx1``), into ``out`` (``x``'s shape). The
    first pass runs down bands of rows (its sums carried from band to band, so the same
    operations in the same order as one pass: fc_ndboxrun), each band's rows rounded to the
    element type into a buffer that the second pass reads at once (fc_ndboxline4): the
    results are two ``nd_uniform1d`` calls' to the bit, and the array between them never
    goes to memory.

    With at least two planes (``o``) per thread, each thread runs whole planes, with its
    own sums and band; else the threads share one plane's sums and band, the first pass's
    blocks of columns and then the band's rows split among them, with a barrier after each
    (a plane's first pass runs down its rows in order)."""
    cdef Py_ssize_t outer = x.shape[0], n = x.shape[1], inner = x.shape[2]
    cdef Py_ssize_t L0 = n + size0 - 1, L1 = inner + size1 - 1
    cdef Py_ssize_t o = 0, p, g, c0, m, cb, ncb, B, R, nband, band_i = 0, i0, i1, nrun
    cdef Py_ssize_t nt = max(1, nthreads)
    cdef Py_ssize_t* run_p
    cdef floating* crow = NULL
    cdef floating* band
    cdef floating* ext
    cdef double* colsum
    cdef double* tmp
    cdef char* pool = NULL
    cdef char* pool2 = NULL
    cdef char* pool3 = NULL
    cdef char* pool4 = NULL
    cdef floating fc = <floating>cval
    cdef bint planes = outer >= 2 * nt
    if outer == 0 or n == 0 or inner == 0:
        return
    if size0 < 1 or size1 < 1 or idx0.shape[0] != L0 or idx1.shape[0] != L1 \
            or out.shape[0] != outer or out.shape[1] != n or out.shape[2] != inner:
        raise ValueError("nd_sepbox: inconsistent shapes")
    _check_idx(idx0, n, "nd_sepbox")
    _check_idx(idx1, inner, "nd_sepbox")
    # bands of R rows, R a multiple of 4 (4 at least), the band in about 256 KiB (each band
    # of a shared plane costs four barriers: the two below, and the one gcc puts before each
    # prange, whose lastprivate variables the block shares); blocks of columns for the
    # first pass: at most 512, at least one per thread
    R = (262144 // (inner * <Py_ssize_t>sizeof(floating))) // 4 * 4
    R = 4 if R < 4 else min(R, (n + 3) // 4 * 4)
    nband = (n + R - 1) // R
    B = (inner + nt - 1) // nt
    B = ((B + 15) // 16) * 16
    B = 512 if B > 512 else B
    ncb = (inner + B - 1) // B
    run_p = <Py_ssize_t*>malloc(3 * L1 * sizeof(Py_ssize_t))
    if run_p == NULL:
        raise MemoryError()
    nrun = _runs(idx1, run_p)
    try:
        crow = _cval_row(inner, fc, "nd_sepbox")  # a whole row: planes read all of it
        pool = scratch(nt, 4 * L1 * sizeof(floating), "nd_sepbox")
        pool2 = scratch(nt, 4 * L1 * sizeof(double), "nd_sepbox")
        # the sums and the band: each thread's (planes), else one, shared
        pool3 = scratch(nt if planes else 1, inner * sizeof(double), "nd_sepbox")
        pool4 = scratch(nt if planes else 1, R * inner * sizeof(floating), "nd_sepbox")
        if planes:
            with nogil, parallel(num_threads=nt):
                ext = <floating*>(pool + threadid() * 4 * L1 * sizeof(floating))
                tmp = <double*>(pool2 + threadid() * 4 * L1 * sizeof(double))
                colsum = <double*>(pool3 + threadid() * inner * sizeof(double))
                band = <floating*>(pool4 + threadid() * R * inner * sizeof(floating))
                for o in prange(outer, schedule="dynamic"):
                    for band_i in range(nband):
                        i0 = band_i * R
                        i1 = min(i0 + R, n)
                        _boxrun(band, inner, &x[o, 0, 0], inner, &idx0[0], crow, size0, i0,
                                i1, inner, colsum)
                        for g in range((i1 - i0 + 3) // 4):
                            _band_rows(&out[o, i0, 0], band, i1 - i0, g, inner, run_p, L1,
                                       nrun, size1, fc, ext, tmp)
        else:
            colsum = <double*>pool3
            band = <floating*>pool4
            with nogil, parallel(num_threads=nt):
                ext = <floating*>(pool + threadid() * 4 * L1 * sizeof(floating))
                tmp = <double*>(pool2 + threadid() * 4 * L1 * sizeof(double))
                for o in range(outer):
                    for band_i in range(nband):
                        i0 = band_i * R
                        i1 = min(i0 + R, n)
                        for cb in prange(ncb, schedule="dynamic"):
                            c0 = cb * B
                            m = min(B, inner - c0)
                            _boxrun(band + c0, inner, &x[o, 0, c0], inner, &idx0[0], crow,
                                    size0, i0, i1, m, colsum + c0)
                        fc_nd_barrier()  # the band is written
                        for g in prange((i1 - i0 + 3) // 4, schedule="dynamic"):
                            _band_rows(&out[o, i0, 0], band, i1 - i0, g, inner, run_p, L1,
                                       nrun, size1, fc, ext, tmp)
                        fc_nd_barrier()  # the band is read: the next one may overwrite it
    finally:
        free(run_p)
        free(crow)
        free(pool)
        free(pool2)
        free(pool3)
        free(pool4)


def nd_correlate(const floating[::1] xp, const long long[::1] base, const long long[::1] offs,
                 const double[::1] w, floating[:, ::1] out, int nthreads):
    """The n-D correlation on the padded input, flattened: output row ``r`` (``out`` is
    ``(R, W)``, its rows the output's lines along the last axis) is ``sum_j w[j] *
    xp[base[r] + offs[j] : ... + W]``: each tap a shifted row of the padded input, summed
    in double by :c:func:`fc_ndrow` in tap order; rows in parallel."""
    cdef Py_ssize_t R = out.shape[0], W = out.shape[1], K = w.shape[0], r, j
    cdef Py_ssize_t nt = max(1, nthreads)
    cdef const floating** rows
    cdef char* pool
    cdef long long lo, hi
    if R == 0 or W == 0:
        return
    if base.shape[0] != R or offs.shape[0] != K or K == 0:
        raise ValueError("nd_correlate: inconsistent shapes")
    lo = hi = 0
    for j in range(K):
        lo = min(lo, offs[j])
        hi = max(hi, offs[j])
    for r in range(R):
        if base[r] + lo < 0 or base[r] + hi + W > xp.shape[0]:
            raise ValueError("nd_correlate: offset out of range")
    pool = scratch(nt, K * sizeof(floating*), "nd_correlate")
    try:
        with nogil, parallel(num_threads=nt):
            rows = <const floating**>(pool + threadid() * K * sizeof(floating*))
            for r in prange(R, schedule="dynamic", chunksize=8):
                for j in range(K):
                    rows[j] = &xp[base[r] + offs[j]]
                _row(&out[r, 0], rows, &w[0], K, W, 2)
    finally:
        free(pool)
