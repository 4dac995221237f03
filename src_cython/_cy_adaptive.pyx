"""Cython + OpenMP adaptive pooling kernels (contract: fastconv.reference, its section
"adaptive pools (issue 17)").

``adaptive_avg_pool3d(x, out, nthreads)``, ``adaptive_max_pool3d(x, out, idx, nthreads)``
and ``adaptive_avg_pool3d_backward(gy, gx, nthreads)`` on (N, C, D, H, W) inputs and (N,
C, Do, Ho, Wo) outputs (a 1-D or 2-D call has size-1 leading spatial axes). Window ``i``
along an axis of input size ``n`` and output size ``m``: ``[i * n // m, ceil((i + 1) * n /
m))``. One source for float32 and float64; inputs may be read-only; the kernels trust their
input.

Work items are planes (n, c), cut into blocks of output depth-rows (od, oh) when there are
fewer than 16 planes; the cut depends on the shapes only, and every output is computed by
one item in a fixed order, so results do not depend on the thread count.

* avg: for each (od, oh), the window's rows are first added column by column into a
  per-thread row of W sums (a pass along contiguous rows, which vectorizes), then each
  output adds its window's columns of that row and divides by the window's size. When one
  window spans whole rows (Wo == 1), each depth slice of it is one contiguous run, summed
  with eight running sums; a global average (a 1x1x1 output) is fc_adaptive.h's
  ``fc_means``, compiled per x86-64 level (sixteen running sums, the same bits on every
  CPU).
* max: a pass over each window in (d, h, w) order, keeping the first maximum; a NaN always
  takes over (the last NaN wins); a window of -inf keeps its first position. Compiled
  without fast-math, so NaN compares are kept.
* avg backward: each plane of ``gx`` zeroed, then every output's gradient divided by its
  window's size and added over the window, outputs in order.
"""

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc

from _common cimport row_blocks

cdef extern from "fc_adaptive.h" nogil:
    void fc_means_f(const float* x, Py_ssize_t P, Py_ssize_t L, float* out)
    void fc_means_d(const double* x, Py_ssize_t P, Py_ssize_t L, double* out)


cdef inline void _means(const floating* x, Py_ssize_t P, Py_ssize_t L,
                        floating* out) noexcept nogil:
    if floating is float:
        fc_means_f(x, P, L, out)
    else:
        fc_means_d(x, P, L, out)
from _common cimport fc_ftz_enter, fc_ftz_exit, fc_ftz_set

cdef Py_ssize_t _MIN_ITEMS = 16
# Planes are handed out in blocks of at least this many input + output elements (a global
# pooling of small planes would otherwise spend its time handing out items).
cdef Py_ssize_t _GRAIN = 8192


cdef Py_ssize_t* _tables(Py_ssize_t D, Py_ssize_t H, Py_ssize_t W, Py_ssize_t Do,
                         Py_ssize_t Ho, Py_ssize_t Wo) noexcept nogil:
    """One malloc'd array: the windows' starts then ends along d (Do), h (Ho) and w (Wo),
    ``[start = i * n // m, end = ceil((i + 1) * n / m))``; NULL if out of memory."""
    cdef Py_ssize_t* t = <Py_ssize_t*> malloc((2 * (Do + Ho + Wo) + 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t i
    if t == NULL:
        return NULL
    for i in range(Do):
        t[i] = (i * D) // Do
        t[Do + i] = ((i + 1) * D + Do - 1) // Do
    for i in range(Ho):
        t[2 * Do + i] = (i * H) // Ho
        t[2 * Do + Ho + i] = ((i + 1) * H + Ho - 1) // Ho
    for i in range(Wo):
        t[2 * (Do + Ho) + i] = (i * W) // Wo
        t[2 * (Do + Ho) + Wo + i] = ((i + 1) * W + Wo - 1) // Wo
    return t


cdef inline floating _sum_run(const floating* p, Py_ssize_t L) noexcept nogil:
    """The sum of ``p[0:L]`` with eight running sums (a fixed order for a given L)."""
    cdef floating acc[8]
    cdef Py_ssize_t i = 0, k
    for k in range(8):
        acc[k] = 0
    while i + 8 <= L:
        for k in range(8):
            acc[k] += p[i + k]
        i += 8
    while i < L:
        acc[0] += p[i]
        i += 1
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))


cdef inline void _items(Py_ssize_t P, Py_ssize_t R, Py_ssize_t plane,
                        Py_ssize_t* nb, Py_ssize_t* pp) noexcept nogil:
    """The work split, from the shapes only: ``nb`` blocks of depth-rows per plane when
    there are fewer than _MIN_ITEMS planes (then ``pp`` = 1), else ``pp`` planes per item
    (at least _GRAIN elements, keeping about _MIN_ITEMS items or more)."""
    nb[0] = row_blocks(P, R, _MIN_ITEMS)
    pp[0] = 1
    if nb[0] == 1 and plane < _GRAIN:
        pp[0] = _GRAIN // plane
        if pp[0] > P // _MIN_ITEMS:
            pp[0] = P // _MIN_ITEMS
        if pp[0] < 1:
            pp[0] = 1


# --------------------------------------------------------------------------------------------
# adaptive_avg_pool3d
# --------------------------------------------------------------------------------------------
cdef void _avg_rows(const floating* xp, floating* op, floating* acc, const Py_ssize_t* t,
                    Py_ssize_t H, Py_ssize_t W, Py_ssize_t Do, Py_ssize_t Ho, Py_ssize_t Wo,
                    Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    """Outputs of depth-rows [r0, r1) (r = od * Ho + oh) of one plane: ``xp`` its input
    (D, H, W), ``op`` its output (Do, Ho, Wo), ``acc`` W scratch sums, ``t`` the windows
    (:func:`_tables`)."""
    cdef const Py_ssize_t* hs = t + 2 * Do
    cdef const Py_ssize_t* ws = t + 2 * (Do + Ho)
    cdef Py_ssize_t r, od, oh, ow, d0, d1, h0, h1, w0, w1, d, h, w
    cdef floating s
    cdef const floating* row
    cdef floating* orow
    for r in range(r0, r1):
        od = r // Ho
        oh = r - od * Ho
        d0 = t[od]
        d1 = t[Do + od]
        h0 = hs[oh]
        h1 = hs[Ho + oh]
        orow = op + r * Wo
        if Wo == 1:  # the window spans whole rows: one contiguous run per depth slice
            s = 0
            for d in range(d0, d1):
                s = s + _sum_run(xp + (d * H + h0) * W, (h1 - h0) * W)
            orow[0] = s / <floating> ((d1 - d0) * (h1 - h0) * W)
            continue
        for w in range(W):
            acc[w] = 0
        for d in range(d0, d1):
            for h in range(h0, h1):
                row = xp + (d * H + h) * W
                for w in range(W):
                    acc[w] += row[w]
        for ow in range(Wo):
            w0 = ws[ow]
            w1 = ws[Wo + ow]
            s = 0
            for w in range(w0, w1):
                s = s + acc[w]
            orow[ow] = s / <floating> ((d1 - d0) * (h1 - h0) * (w1 - w0))


def adaptive_avg_pool3d(const floating[:, :, :, :, ::1] x, floating[:, :, :, :, ::1] out,
                        int nthreads):
    """Adaptive average pooling; fills and returns ``out``."""
    cdef Py_ssize_t D = x.shape[2], H = x.shape[3], W = x.shape[4]
    cdef Py_ssize_t Do = out.shape[2], Ho = out.shape[3], Wo = out.shape[4]
    cdef Py_ssize_t P = out.shape[0] * out.shape[1], R = Do * Ho
    cdef Py_ssize_t L = D * H * W, M = R * Wo
    cdef Py_ssize_t nb, pp, n_items, item, p, p1, r0, rows
    cdef const floating* xp
    cdef floating* op
    cdef floating* acc
    cdef floating* acc_all
    cdef Py_ssize_t* t
    cdef Py_ssize_t ws
    cdef int nt
    if P == 0 or M == 0:
        return out
    _items(P, R, L + M, &nb, &pp)
    rows = (R + nb - 1) // nb
    n_items = P * nb if nb > 1 else (P + pp - 1) // pp
    xp = &x[0, 0, 0, 0, 0]
    op = &out[0, 0, 0, 0, 0]
    t = _tables(D, H, W, Do, Ho, Wo)
    if t == NULL:
        raise MemoryError()
    nt = max(1, nthreads)
    ws = (W + 31) // 16 * 16  # W sums per thread, a cache line apart (no false sharing)
    acc_all = <floating*> malloc(nt * ws * sizeof(floating))
    if acc_all == NULL:
        free(t)
        raise MemoryError()
    for item in prange(n_items, nogil=True, schedule="dynamic", num_threads=nt):
        fc_ftz_enter()
        acc = acc_all + threadid() * ws
        if nb > 1:
            p = item // nb
            r0 = (item % nb) * rows
            _avg_rows(xp + p * L, op + p * M, acc, t, H, W, Do, Ho, Wo, r0, min(R, r0 + rows))
        elif M == 1:  # global pooling: one contiguous run per plane
            p = item * pp
            _means(xp + p * L, min(P, p + pp) - p, L, op + p)
        else:
            for p in range(item * pp, min(P, item * pp + pp)):
                _avg_rows(xp + p * L, op + p * M, acc, t, H, W, Do, Ho, Wo, 0, R)
        fc_ftz_exit()
    free(acc_all)
    free(t)
    return out


# --------------------------------------------------------------------------------------------
# adaptive_max_pool3d
# --------------------------------------------------------------------------------------------
cdef void _max_rows(const floating* xp, floating* op, int64_t* ip, const Py_ssize_t* t,
                    Py_ssize_t H, Py_ssize_t W, Py_ssize_t Do, Py_ssize_t Ho, Py_ssize_t Wo,
                    Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    """Outputs of depth-rows [r0, r1) of one plane (``ip`` NULL: no indices)."""
    cdef const Py_ssize_t* hs = t + 2 * Do
    cdef const Py_ssize_t* ws = t + 2 * (Do + Ho)
    cdef Py_ssize_t r, od, oh, ow, d0, d1, h0, h1, w0, w1, d, h, w
    cdef int64_t best_i, base
    cdef floating best, v
    cdef const floating* row
    for r in range(r0, r1):
        od = r // Ho
        oh = r - od * Ho
        d0 = t[od]
        d1 = t[Do + od]
        h0 = hs[oh]
        h1 = hs[Ho + oh]
        for ow in range(Wo):
            w0 = ws[ow]
            w1 = ws[Wo + ow]
            best = -INFINITY
            best_i = (d0 * H + h0) * W + w0
            for d in range(d0, d1):
                for h in range(h0, h1):
                    base = (d * H + h) * W
                    row = xp + base
                    for w in range(w0, w1):
                        v = row[w]
                        if (v > best) or (v != v):
                            best = v
                            best_i = base + w
            op[r * Wo + ow] = best
            if ip != NULL:
                ip[r * Wo + ow] = best_i


def adaptive_max_pool3d(const floating[:, :, :, :, ::1] x, floating[:, :, :, :, ::1] out,
                        idx, int nthreads):
    """Adaptive max pooling; fills and returns ``out`` (and ``idx`` int64, unless None)."""
    cdef int64_t[:, :, :, :, ::1] ix = idx  # None stays None and is never indexed
    cdef Py_ssize_t D = x.shape[2], H = x.shape[3], W = x.shape[4]
    cdef Py_ssize_t Do = out.shape[2], Ho = out.shape[3], Wo = out.shape[4]
    cdef Py_ssize_t P = out.shape[0] * out.shape[1], R = Do * Ho
    cdef Py_ssize_t L = D * H * W, M = R * Wo
    cdef Py_ssize_t nb, pp, n_items, item, p, r0, rows
    cdef const floating* xp
    cdef floating* op
    cdef int64_t* ibase = NULL
    cdef Py_ssize_t* t
    if P == 0 or M == 0:
        return out
    if idx is not None:
        ibase = &ix[0, 0, 0, 0, 0]
    _items(P, R, L + M, &nb, &pp)
    rows = (R + nb - 1) // nb
    n_items = P * nb if nb > 1 else (P + pp - 1) // pp
    xp = &x[0, 0, 0, 0, 0]
    op = &out[0, 0, 0, 0, 0]
    t = _tables(D, H, W, Do, Ho, Wo)
    if t == NULL:
        raise MemoryError()
    for item in prange(n_items, nogil=True, schedule="dynamic", num_threads=max(1, nthreads)):
        fc_ftz_enter()
        if nb > 1:
            p = item // nb
            r0 = (item % nb) * rows
            _max_rows(xp + p * L, op + p * M, ibase + p * M if ibase != NULL else NULL, t,
                      H, W, Do, Ho, Wo, r0, min(R, r0 + rows))
        else:
            for p in range(item * pp, min(P, item * pp + pp)):
                _max_rows(xp + p * L, op + p * M, ibase + p * M if ibase != NULL else NULL,
                          t, H, W, Do, Ho, Wo, 0, R)
        fc_ftz_exit()
    free(t)
    return out


# --------------------------------------------------------------------------------------------
# adaptive_avg_pool3d_backward
# --------------------------------------------------------------------------------------------
cdef void _avg_back_plane(const floating* gp, floating* xp, const Py_ssize_t* t,
                          Py_ssize_t D, Py_ssize_t H, Py_ssize_t W, Py_ssize_t Do,
                          Py_ssize_t Ho, Py_ssize_t Wo) noexcept nogil:
    cdef const Py_ssize_t* hs = t + 2 * Do
    cdef const Py_ssize_t* ws = t + 2 * (Do + Ho)
    cdef Py_ssize_t od, oh, ow, d0, d1, h0, h1, w0, w1, d, h, w, q
    cdef floating g
    cdef floating* row
    for q in range(D * H * W):
        xp[q] = 0
    for od in range(Do):
        d0 = t[od]
        d1 = t[Do + od]
        for oh in range(Ho):
            h0 = hs[oh]
            h1 = hs[Ho + oh]
            for ow in range(Wo):
                w0 = ws[ow]
                w1 = ws[Wo + ow]
                g = gp[(od * Ho + oh) * Wo + ow] / <floating> ((d1 - d0) * (h1 - h0)
                                                                 * (w1 - w0))
                for d in range(d0, d1):
                    for h in range(h0, h1):
                        row = xp + (d * H + h) * W
                        for w in range(w0, w1):
                            row[w] += g


def adaptive_avg_pool3d_backward(const floating[:, :, :, :, ::1] gy,
                                 floating[:, :, :, :, ::1] gx, int nthreads):
    """Gradient of adaptive_avg_pool3d; fills and returns ``gx``."""
    cdef Py_ssize_t D = gx.shape[2], H = gx.shape[3], W = gx.shape[4]
    cdef Py_ssize_t Do = gy.shape[2], Ho = gy.shape[3], Wo = gy.shape[4]
    cdef Py_ssize_t P = gx.shape[0] * gx.shape[1], L = D * H * W, M = Do * Ho * Wo
    cdef Py_ssize_t nb, pp, n_items, item, p
    cdef const floating* gp
    cdef floating* xp
    cdef Py_ssize_t* t
    if P == 0 or M == 0:  # (the caller zeroes an empty call's gradient)
        return gx
    _items(P, 1, L + M, &nb, &pp)  # whole planes: an input row may take two windows
    n_items = (P + pp - 1) // pp
    gp = &gy[0, 0, 0, 0, 0]
    xp = &gx[0, 0, 0, 0, 0]
    t = _tables(D, H, W, Do, Ho, Wo)
    if t == NULL:
        raise MemoryError()
    for item in prange(n_items, nogil=True, schedule="dynamic", num_threads=max(1, nthreads)):
        fc_ftz_enter()
        for p in range(item * pp, min(P, item * pp + pp)):
            _avg_back_plane(gp + p * M, xp + p * L, t, D, H, W, Do, Ho, Wo)
        fc_ftz_exit()
    free(t)
    return gx


# --------------------------------------------------------------------------------------------
# flush-to-zero (fc_fpenv.h): this module's flag, kept equal to fastconv's setting
# --------------------------------------------------------------------------------------------
def _set_flush_denormal(bint on):
    """Set this module's flush-to-zero flag (fastconv._threads owns the setting)."""
    fc_ftz_set(on)


from fastconv import _threads  # noqa: E402

_threads.register_flush_hook(_set_flush_denormal)
