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
  with eight running sums (global pooling).
* max: a pass over each window in (d, h, w) order, keeping the first maximum; a NaN always
  takes over (the last NaN wins); a window of -inf keeps its first position. Compiled
  without fast-math, so NaN compares are kept.
* avg backward: each plane of ``gx`` zeroed, then every output's gradient divided by its
  window's size and added over the window, outputs in order.
"""

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc

from _common cimport row_blocks
from _common cimport fc_ftz_enter, fc_ftz_exit, fc_ftz_set

cdef Py_ssize_t _MIN_ITEMS = 16


cdef inline Py_ssize_t _start(Py_ssize_t i, Py_ssize_t n, Py_ssize_t m) noexcept nogil:
    return (i * n) // m


cdef inline Py_ssize_t _end(Py_ssize_t i, Py_ssize_t n, Py_ssize_t m) noexcept nogil:
    return ((i + 1) * n + m - 1) // m


cdef inline floating _sum_run(const floating* p, Py_ssize_t L) noexcept nogil:
    """The sum of ``p[0:L]`` with eight running sums (a fixed order for a given L)."""
    cdef floating a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0
    cdef Py_ssize_t i = 0
    while i + 8 <= L:
        a0 += p[i]
        a1 += p[i + 1]
        a2 += p[i + 2]
        a3 += p[i + 3]
        a4 += p[i + 4]
        a5 += p[i + 5]
        a6 += p[i + 6]
        a7 += p[i + 7]
        i += 8
    while i < L:
        a0 += p[i]
        i += 1
    return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))


# --------------------------------------------------------------------------------------------
# adaptive_avg_pool3d
# --------------------------------------------------------------------------------------------
cdef void _avg_rows(const floating* xp, floating* op, floating* acc, Py_ssize_t D,
                    Py_ssize_t H, Py_ssize_t W, Py_ssize_t Do, Py_ssize_t Ho, Py_ssize_t Wo,
                    Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    """Outputs of depth-rows [r0, r1) (r = od * Ho + oh) of one plane: ``xp`` its input
    (D, H, W), ``op`` its output (Do, Ho, Wo), ``acc`` W scratch sums."""
    cdef Py_ssize_t r, od, oh, ow, d0, d1, h0, h1, w0, w1, d, h, w
    cdef floating s
    cdef const floating* row
    cdef floating* orow
    for r in range(r0, r1):
        od = r // Ho
        oh = r % Ho
        d0 = _start(od, D, Do)
        d1 = _end(od, D, Do)
        h0 = _start(oh, H, Ho)
        h1 = _end(oh, H, Ho)
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
            w0 = _start(ow, W, Wo)
            w1 = _end(ow, W, Wo)
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
    cdef Py_ssize_t nb = row_blocks(P, R, _MIN_ITEMS)
    cdef Py_ssize_t rows = (R + nb - 1) // nb if nb else 0
    cdef Py_ssize_t item, p, r0
    cdef floating* acc
    if P == 0 or R == 0 or Wo == 0:
        return out
    with nogil, parallel(num_threads=max(1, nthreads)):
        acc = <floating*> malloc(W * sizeof(floating))
        if acc != NULL:
            for item in prange(P * nb, schedule="dynamic"):
                fc_ftz_enter()
                p = item // nb
                r0 = (item % nb) * rows
                _avg_rows(&x[0, 0, 0, 0, 0] + p * D * H * W, &out[0, 0, 0, 0, 0] + p * R * Wo,
                          acc, D, H, W, Do, Ho, Wo, r0, min(R, r0 + rows))
                fc_ftz_exit()
            free(acc)
    return out


# --------------------------------------------------------------------------------------------
# adaptive_max_pool3d
# --------------------------------------------------------------------------------------------
cdef void _max_rows(const floating* xp, floating* op, int64_t* ip, bint with_idx,
                    Py_ssize_t D, Py_ssize_t H, Py_ssize_t W, Py_ssize_t Do, Py_ssize_t Ho,
                    Py_ssize_t Wo, Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    cdef Py_ssize_t r, od, oh, ow, d0, d1, h0, h1, w0, w1, d, h, w
    cdef int64_t best_i, base
    cdef floating best, v
    cdef const floating* row
    for r in range(r0, r1):
        od = r // Ho
        oh = r % Ho
        d0 = _start(od, D, Do)
        d1 = _end(od, D, Do)
        h0 = _start(oh, H, Ho)
        h1 = _end(oh, H, Ho)
        for ow in range(Wo):
            w0 = _start(ow, W, Wo)
            w1 = _end(ow, W, Wo)
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
            if with_idx:
                ip[r * Wo + ow] = best_i


def adaptive_max_pool3d(const floating[:, :, :, :, ::1] x, floating[:, :, :, :, ::1] out,
                        idx, int nthreads):
    """Adaptive max pooling; fills and returns ``out`` (and ``idx`` int64, unless None)."""
    cdef int64_t[:, :, :, :, ::1] ix = idx  # None stays None and is never indexed
    cdef bint with_idx = idx is not None
    cdef Py_ssize_t D = x.shape[2], H = x.shape[3], W = x.shape[4]
    cdef Py_ssize_t Do = out.shape[2], Ho = out.shape[3], Wo = out.shape[4]
    cdef Py_ssize_t P = out.shape[0] * out.shape[1], R = Do * Ho
    cdef Py_ssize_t nb = row_blocks(P, R, _MIN_ITEMS)
    cdef Py_ssize_t rows = (R + nb - 1) // nb if nb else 0
    cdef Py_ssize_t item, p, r0
    cdef int64_t* ibase = NULL
    if P == 0 or R == 0 or Wo == 0:
        return out
    if with_idx:
        ibase = &ix[0, 0, 0, 0, 0]
    for item in prange(P * nb, nogil=True, schedule="dynamic", num_threads=max(1, nthreads)):
        fc_ftz_enter()
        p = item // nb
        r0 = (item % nb) * rows
        _max_rows(&x[0, 0, 0, 0, 0] + p * D * H * W, &out[0, 0, 0, 0, 0] + p * R * Wo,
                  ibase + p * R * Wo if with_idx else NULL, with_idx, D, H, W, Do, Ho, Wo,
                  r0, min(R, r0 + rows))
        fc_ftz_exit()
    return out


# --------------------------------------------------------------------------------------------
# adaptive_avg_pool3d_backward
# --------------------------------------------------------------------------------------------
cdef void _avg_back_plane(const floating* gp, floating* xp, Py_ssize_t D, Py_ssize_t H,
                          Py_ssize_t W, Py_ssize_t Do, Py_ssize_t Ho,
                          Py_ssize_t Wo) noexcept nogil:
    cdef Py_ssize_t od, oh, ow, d0, d1, h0, h1, w0, w1, d, h, w, q
    cdef floating g
    cdef floating* row
    for q in range(D * H * W):
        xp[q] = 0
    for od in range(Do):
        d0 = _start(od, D, Do)
        d1 = _end(od, D, Do)
        for oh in range(Ho):
            h0 = _start(oh, H, Ho)
            h1 = _end(oh, H, Ho)
            for ow in range(Wo):
                w0 = _start(ow, W, Wo)
                w1 = _end(ow, W, Wo)
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
    cdef Py_ssize_t P = gx.shape[0] * gx.shape[1], p
    if P == 0:
        return gx
    for p in prange(P, nogil=True, schedule="dynamic", num_threads=max(1, nthreads)):
        fc_ftz_enter()
        _avg_back_plane(&gy[0, 0, 0, 0, 0] + p * Do * Ho * Wo if Do * Ho * Wo else NULL,
                        &gx[0, 0, 0, 0, 0] + p * D * H * W, D, H, W, Do, Ho, Wo)
        fc_ftz_exit()
    return gx


# --------------------------------------------------------------------------------------------
# flush-to-zero (fc_fpenv.h): this module's flag, kept equal to fastconv's setting
# --------------------------------------------------------------------------------------------
def _set_flush_denormal(bint on):
    """Set this module's flush-to-zero flag (fastconv._threads owns the setting)."""
    fc_ftz_set(on)


from fastconv import _threads  # noqa: E402

_threads.register_flush_hook(_set_flush_denormal)
