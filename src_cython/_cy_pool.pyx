"""Cython + OpenMP pooling kernels (contract: the module docstring of fastconv.reference).

``max_pool2d(x, out, idx, kernel, stride, pad, dilation, nthreads)`` and
``avg_pool2d(x, out, kernel, stride, pad, count_include_pad, nthreads)`` fill ``out``
(N, C, Ho, Wo) (and ``idx``, int64 flat positions ``h * W + w``, unless it is None). One
source for float32 and float64; inputs may be read-only; the kernels trust their input.

Work items are planes (n, c), cut into blocks of output rows when there are fewer than 16
planes; each output row is built tap by tap (kernel row i, kernel column j, in that order),
each tap a pass along the row over the output columns whose input column is inside the
input (bounds computed once per tap, not per element). Every output element sees its
window's taps in the reference order, so:

* max: a later tap replaces the running maximum only if it is strictly greater, or NaN;
  the first tap inside the input is always taken when indices are asked for. Hence the first
  maximum wins, a NaN beats any number, the last NaN wins, and a window of -inf keeps its
  first position inside the input. A window that sees no input gives -inf and the position
  of its first tap row and column at or after the input's start. Compiled without
  fast-math, so NaN compares are kept.
* avg: the sum of the window's taps inside the input, divided by the clipped window size.

Results do not depend on the thread count.
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.stdint cimport int64_t

from _common cimport row_blocks, valid_cols
from _common cimport fc_ftz_enter, fc_ftz_exit, fc_ftz_set

cdef Py_ssize_t _MIN_ITEMS = 16

cdef extern from "fc_pool.h" nogil:
    void fc_maxtap_idx_f(float* o, int64_t* t, const float* x, Py_ssize_t n, Py_ssize_t s,
                         int64_t pos)
    void fc_maxtap_idx_d(double* o, int64_t* t, const double* x, Py_ssize_t n, Py_ssize_t s,
                         int64_t pos)


# --------------------------------------------------------------------------------------------
# max_pool2d
# --------------------------------------------------------------------------------------------
cdef inline Py_ssize_t _first_inside(Py_ssize_t start, Py_ssize_t k, Py_ssize_t d) noexcept nogil:
    """The first tap ``start + t * d`` (t < k) that is >= 0; ``start`` if there is none (as
    the reference's argmax of an all-false row)."""
    cdef Py_ssize_t t
    if start >= 0:
        return start
    t = (-start + d - 1) // d
    return start + t * d if t < k else start


cdef void _max_rows(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                    int64_t[:, :, :, ::1] idx, bint with_idx, Py_ssize_t n, Py_ssize_t c,
                    Py_ssize_t oh0, Py_ssize_t oh1, Py_ssize_t kh, Py_ssize_t kw,
                    Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                    Py_ssize_t dh, Py_ssize_t dw) noexcept nogil:
    cdef Py_ssize_t H = x.shape[2], W = x.shape[3], Wo = out.shape[3]
    cdef Py_ssize_t oh, i, j, ih, off, ow, ow0, ow1, h0
    cdef int64_t base
    cdef floating v, o
    cdef floating* orow
    cdef int64_t* irow = NULL
    cdef const floating* xrow
    for oh in range(oh0, oh1):
        orow = &out[n, c, oh, 0]
        for ow in range(Wo):
            orow[ow] = -INFINITY
        if with_idx:
            irow = &idx[n, c, oh, 0]
            for ow in range(Wo):
                irow[ow] = -1  # no tap inside the input yet
        for i in range(kh):
            ih = oh * sh - ph + i * dh
            if ih < 0 or ih >= H:
                continue
            xrow = &x[n, c, ih, 0]
            base = ih * W
            for j in range(kw):
                off = j * dw - pw
                valid_cols(off, sw, W, Wo, &ow0, &ow1)
                if ow1 <= ow0:
                    continue
                if with_idx:
                    # the tap along the row in C (fc_pool.h): branch-free and vectorized
                    if floating is float:
                        fc_maxtap_idx_f(orow + ow0, irow + ow0, xrow + ow0 * sw + off,
                                        ow1 - ow0, sw, base + ow0 * sw + off)
                    else:
                        fc_maxtap_idx_d(orow + ow0, irow + ow0, xrow + ow0 * sw + off,
                                        ow1 - ow0, sw, base + ow0 * sw + off)
                elif sw == 1:
                    for ow in range(ow0, ow1):
                        v = xrow[ow + off]
                        o = orow[ow]
                        orow[ow] = v if (v > o) | (v != v) else o
                else:
                    for ow in range(ow0, ow1):
                        v = xrow[ow * sw + off]
                        o = orow[ow]
                        orow[ow] = v if (v > o) | (v != v) else o
        if with_idx:
            # windows that saw no input: first tap row and column at or after the start
            h0 = _first_inside(oh * sh - ph, kh, dh)
            for ow in range(Wo):
                if irow[ow] < 0:
                    irow[ow] = h0 * W + _first_inside(ow * sw - pw, kw, dw)


cdef void _max_2x2s2(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                     int64_t[:, :, :, ::1] idx, bint with_idx, Py_ssize_t n, Py_ssize_t c,
                     Py_ssize_t oh0, Py_ssize_t oh1) noexcept nogil:
    """Fast path: 2x2 windows, stride 2, no padding, no dilation (every window is inside
    the input): one pass per output row. Same tap order and update rule as
    :func:`_max_rows` (the first tap is taken, then strictly greater or NaN)."""
    cdef Py_ssize_t W = x.shape[3], Wo = out.shape[3], oh, ow
    cdef int64_t t, i0, i1
    cdef floating m, v
    cdef bint take
    cdef floating* orow
    cdef int64_t* irow
    cdef const floating* r0
    cdef const floating* r1
    for oh in range(oh0, oh1):
        orow = &out[n, c, oh, 0]
        r0 = &x[n, c, 2 * oh, 0]
        r1 = &x[n, c, 2 * oh + 1, 0]
        if with_idx:
            irow = &idx[n, c, oh, 0]
            i0 = 2 * oh * W
            i1 = i0 + W
            for ow in range(Wo):
                m = r0[2 * ow]
                t = i0 + 2 * ow
                v = r0[2 * ow + 1]
                take = (v > m) | (v != v)
                m = v if take else m
                t = i0 + 2 * ow + 1 if take else t
                v = r1[2 * ow]
                take = (v > m) | (v != v)
                m = v if take else m
                t = i1 + 2 * ow if take else t
                v = r1[2 * ow + 1]
                take = (v > m) | (v != v)
                m = v if take else m
                t = i1 + 2 * ow + 1 if take else t
                orow[ow] = m
                irow[ow] = t
        else:
            for ow in range(Wo):
                m = r0[2 * ow]
                v = r0[2 * ow + 1]
                m = v if (v > m) | (v != v) else m
                v = r1[2 * ow]
                m = v if (v > m) | (v != v) else m
                v = r1[2 * ow + 1]
                m = v if (v > m) | (v != v) else m
                orow[ow] = m


def max_pool2d(const floating[:, :, :, ::1] x, out, idx, kernel, stride, pad, dilation,
               int nthreads):
    """Max pooling; fills and returns ``out`` (and ``idx`` int64, unless None).

    The kernel contract of fastconv.reference.max_pool2d; ``nthreads`` OpenMP threads.
    """
    cdef floating[:, :, :, ::1] o = out
    cdef int64_t[:, :, :, ::1] ix = idx  # None stays None and is never indexed
    cdef bint with_idx = idx is not None
    cdef Py_ssize_t kh = kernel[0], kw = kernel[1], sh = stride[0], sw = stride[1]
    cdef Py_ssize_t ph = pad[0], pw = pad[1], dh = dilation[0], dw = dilation[1]
    cdef Py_ssize_t C = o.shape[1], Ho = o.shape[2], P = o.shape[0] * o.shape[1]
    cdef Py_ssize_t nb = row_blocks(P, Ho, _MIN_ITEMS)
    cdef Py_ssize_t rows = (Ho + nb - 1) // nb
    cdef Py_ssize_t item, p, oh0, oh1
    cdef bint fast = (kh == 2 and kw == 2 and sh == 2 and sw == 2
                      and ph == 0 and pw == 0 and dh == 1 and dw == 1
                      and 2 * o.shape[2] <= x.shape[2] and 2 * o.shape[3] <= x.shape[3])
    for item in prange(P * nb, nogil=True, schedule="dynamic", num_threads=max(1, nthreads)):
        fc_ftz_enter()
        p = item // nb
        oh0 = (item % nb) * rows
        oh1 = min(Ho, oh0 + rows)
        if fast:
            _max_2x2s2(x, o, ix, with_idx, p // C, p % C, oh0, oh1)
        else:
            _max_rows(x, o, ix, with_idx, p // C, p % C, oh0, oh1, kh, kw, sh, sw, ph, pw,
                      dh, dw)
        fc_ftz_exit()
    return out


# --------------------------------------------------------------------------------------------
# avg_pool2d
# --------------------------------------------------------------------------------------------
cdef void _avg_rows(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out, Py_ssize_t n,
                    Py_ssize_t c, Py_ssize_t oh0, Py_ssize_t oh1, Py_ssize_t kh,
                    Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
                    Py_ssize_t pw, bint count_include_pad) noexcept nogil:
    cdef Py_ssize_t H = x.shape[2], W = x.shape[3], Wo = out.shape[3]
    cdef Py_ssize_t oh, i, j, ih, off, ow, ow0, ow1, hs, hc, ws, wc
    cdef floating* orow
    cdef const floating* xrow
    for oh in range(oh0, oh1):
        orow = &out[n, c, oh, 0]
        for ow in range(Wo):
            orow[ow] = 0
        hs = oh * sh - ph
        for i in range(kh):
            ih = hs + i
            if ih < 0 or ih >= H:
                continue
            xrow = &x[n, c, ih, 0]
            for j in range(kw):
                off = j - pw
                valid_cols(off, sw, W, Wo, &ow0, &ow1)
                if sw == 1:
                    for ow in range(ow0, ow1):
                        orow[ow] += xrow[ow + off]
                else:
                    for ow in range(ow0, ow1):
                        orow[ow] += xrow[ow * sw + off]
        # the divisor: the window clipped to the padded input, or to the input
        if count_include_pad:
            hc = min(hs + kh, H + ph) - hs
        else:
            hc = min(hs + kh, H) - max(hs, 0)
        for ow in range(Wo):
            ws = ow * sw - pw
            if count_include_pad:
                wc = min(ws + kw, W + pw) - ws
            else:
                wc = min(ws + kw, W) - max(ws, 0)
            orow[ow] = orow[ow] / <floating> (hc * wc)


def avg_pool2d(const floating[:, :, :, ::1] x, out, kernel, stride, pad,
               bint count_include_pad, int nthreads):
    """Average pooling; fills and returns ``out``.

    The kernel contract of fastconv.reference.avg_pool2d; ``nthreads`` OpenMP threads.
    """
    cdef floating[:, :, :, ::1] o = out
    cdef Py_ssize_t kh = kernel[0], kw = kernel[1], sh = stride[0], sw = stride[1]
    cdef Py_ssize_t ph = pad[0], pw = pad[1]
    cdef Py_ssize_t C = o.shape[1], Ho = o.shape[2], P = o.shape[0] * o.shape[1]
    cdef Py_ssize_t nb = row_blocks(P, Ho, _MIN_ITEMS)
    cdef Py_ssize_t rows = (Ho + nb - 1) // nb
    cdef Py_ssize_t item, p, oh0
    for item in prange(P * nb, nogil=True, schedule="dynamic", num_threads=max(1, nthreads)):
        fc_ftz_enter()
        p = item // nb
        oh0 = (item % nb) * rows
        _avg_rows(x, o, p // C, p % C, oh0, min(Ho, oh0 + rows), kh, kw, sh, sw, ph, pw,
                  count_include_pad)
        fc_ftz_exit()
    return out


# --------------------------------------------------------------------------------------------
# flush-to-zero (fc_fpenv.h): this module's flag, kept equal to fastconv's setting
# --------------------------------------------------------------------------------------------
def _set_flush_denormal(bint on):
    """Set this module's flush-to-zero flag (fastconv._threads owns the setting)."""
    fc_ftz_set(on)


from fastconv import _threads  # noqa: E402

_threads.register_flush_hook(_set_flush_denormal)
