"""Cython + OpenMP 3-D pooling kernels (contract: the pool3d section of fastconv.reference).

``max_pool3d(x, out, idx, kernel, stride, pad, dilation, nthreads)``,
``avg_pool3d(x, out, kernel, stride, pad, count_include_pad, divisor, nthreads)`` and
``avg_pool3d_backward(gy, gx, kernel, stride, pad, count_include_pad, divisor, nthreads)``.
Arrays are (N, C, D, H, W) C-contiguous, one source for float32 and float64; inputs may be
read-only; the kernels trust their input.

The forward kernels' work items are output slices (n, c, od): each output row is built as
in fastconv._cy_pool's 2-D kernels, tap by tap (kernel depth a, row i, column j, in that
order), each tap a pass along the row over the output columns whose input column is inside
the input. Every output element so sees its window's taps in the reference order:

* max: a later tap replaces the running maximum only if it is strictly greater, or NaN; the
  first tap inside the input is always taken when indices are asked for. Hence the first
  maximum wins, a NaN beats any number, the last NaN wins, and a window of -inf keeps its
  first position inside the input. A window that sees no input gives -inf and the position
  of its first tap at or after the input's start on each axis (torch's). Indices are flat
  ``(d * H + h) * W + w``. Compiled without fast-math, so NaN compares are kept.
* avg: the sum of the window's taps inside the input, divided by ``divisor`` when it is
  nonzero, else by the clipped window size.

The backward kernel's work items are input volumes (n, c): each zeroed, then every output's
``gy / divisor`` added over its window, in output order. Results do not depend on the
thread count.
"""

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from libc.string cimport memset

import numpy as np

from _common cimport valid_cols
from _common cimport fc_ftz_enter, fc_ftz_exit, fc_ftz_set


# --------------------------------------------------------------------------------------------
# max_pool3d
# --------------------------------------------------------------------------------------------
cdef inline Py_ssize_t _first_inside(Py_ssize_t start, Py_ssize_t k, Py_ssize_t d) noexcept nogil:
    """The first tap ``start + t * d`` (t < k) that is >= 0; ``start`` if there is none."""
    cdef Py_ssize_t t
    if start >= 0:
        return start
    t = (-start + d - 1) // d
    return start + t * d if t < k else start


cdef void _max_slice(const floating[:, :, :, :, ::1] x, floating[:, :, :, :, ::1] out,
                     int64_t[:, :, :, :, ::1] idx, bint with_idx, Py_ssize_t n, Py_ssize_t c,
                     Py_ssize_t od, Py_ssize_t kd, Py_ssize_t kh, Py_ssize_t kw,
                     Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pd,
                     Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dd, Py_ssize_t dh,
                     Py_ssize_t dw) noexcept nogil:
    cdef Py_ssize_t D = x.shape[2], H = x.shape[3], W = x.shape[4]
    cdef Py_ssize_t Ho = out.shape[3], Wo = out.shape[4]
    cdef Py_ssize_t oh, a, i, j, id_, ih, off, ow, ow0, ow1, d0, h0
    cdef int64_t base, t
    cdef floating v, o
    cdef bint take
    cdef floating* orow
    cdef int64_t* irow = NULL
    cdef const floating* xrow
    for oh in range(Ho):
        orow = &out[n, c, od, oh, 0]
        for ow in range(Wo):
            orow[ow] = -INFINITY
        if with_idx:
            irow = &idx[n, c, od, oh, 0]
            for ow in range(Wo):
                irow[ow] = -1  # no tap inside the input yet
        for a in range(kd):
            id_ = od * sd - pd + a * dd
            if id_ < 0 or id_ >= D:
                continue
            for i in range(kh):
                ih = oh * sh - ph + i * dh
                if ih < 0 or ih >= H:
                    continue
                xrow = &x[n, c, id_, ih, 0]
                base = (id_ * H + ih) * W
                for j in range(kw):
                    off = j * dw - pw
                    valid_cols(off, sw, W, Wo, &ow0, &ow1)
                    if with_idx:
                        for ow in range(ow0, ow1):
                            v = xrow[ow * sw + off]
                            o = orow[ow]
                            t = irow[ow]
                            take = (v > o) | (v != v) | (t < 0)
                            orow[ow] = v if take else o
                            irow[ow] = base + ow * sw + off if take else t
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
            # windows that saw no input: their first tap at or after the start, per axis
            d0 = _first_inside(od * sd - pd, kd, dd)
            h0 = _first_inside(oh * sh - ph, kh, dh)
            for ow in range(Wo):
                if irow[ow] < 0:
                    irow[ow] = (d0 * H + h0) * W + _first_inside(ow * sw - pw, kw, dw)


cdef inline floating _mx(floating m, floating v) noexcept nogil:
    """The running maximum's update: ``v`` if strictly greater or NaN (the reference's rule)."""
    return v if (v > m) | (v != v) else m


cdef void _max_2x2x2(const floating[:, :, :, :, ::1] x, floating[:, :, :, :, ::1] out,
                     int64_t[:, :, :, :, ::1] idx, bint with_idx, Py_ssize_t n, Py_ssize_t c,
                     Py_ssize_t od) noexcept nogil:
    """Fast path: 2x2x2 windows, stride 2, no padding, no dilation (every window inside the
    input): one pass per output row over four input rows, the taps in the reference order
    (depth, row, column) with the same update rule."""
    cdef Py_ssize_t H = x.shape[3], W = x.shape[4], Ho = out.shape[3], Wo = out.shape[4]
    cdef Py_ssize_t oh, ow, q
    cdef int64_t t, b00, b01, b10, b11
    cdef floating m, v
    cdef bint take
    cdef floating* orow
    cdef int64_t* irow
    cdef const floating* r00
    cdef const floating* r01
    cdef const floating* r10
    cdef const floating* r11
    for oh in range(Ho):
        orow = &out[n, c, od, oh, 0]
        r00 = &x[n, c, 2 * od, 2 * oh, 0]
        r01 = &x[n, c, 2 * od, 2 * oh + 1, 0]
        r10 = &x[n, c, 2 * od + 1, 2 * oh, 0]
        r11 = &x[n, c, 2 * od + 1, 2 * oh + 1, 0]
        if with_idx:
            irow = &idx[n, c, od, oh, 0]
            b00 = (2 * od * H + 2 * oh) * W
            b01 = b00 + W
            b10 = b00 + H * W
            b11 = b10 + W
            for ow in range(Wo):
                q = 2 * ow
                m = r00[q]
                t = b00 + q
                v = r00[q + 1]
                take = (v > m) | (v != v)
                m = v if take else m
                t = b00 + q + 1 if take else t
                v = r01[q]
                take = (v > m) | (v != v)
                m = v if take else m
                t = b01 + q if take else t
                v = r01[q + 1]
                take = (v > m) | (v != v)
                m = v if take else m
                t = b01 + q + 1 if take else t
                v = r10[q]
                take = (v > m) | (v != v)
                m = v if take else m
                t = b10 + q if take else t
                v = r10[q + 1]
                take = (v > m) | (v != v)
                m = v if take else m
                t = b10 + q + 1 if take else t
                v = r11[q]
                take = (v > m) | (v != v)
                m = v if take else m
                t = b11 + q if take else t
                v = r11[q + 1]
                take = (v > m) | (v != v)
                m = v if take else m
                t = b11 + q + 1 if take else t
                orow[ow] = m
                irow[ow] = t
        else:
            for ow in range(Wo):
                q = 2 * ow
                m = r00[q]
                m = _mx(m, r00[q + 1])
                m = _mx(m, r01[q])
                m = _mx(m, r01[q + 1])
                m = _mx(m, r10[q])
                m = _mx(m, r10[q + 1])
                m = _mx(m, r11[q])
                m = _mx(m, r11[q + 1])
                orow[ow] = m


def max_pool3d(const floating[:, :, :, :, ::1] x, out, idx, kernel, stride, pad, dilation,
               int nthreads):
    """3-D max pooling; fills and returns ``out`` (and ``idx`` int64, unless None).

    The kernel contract of fastconv.reference.max_pool3d; ``nthreads`` OpenMP threads.
    """
    cdef floating[:, :, :, :, ::1] o = out
    cdef int64_t[:, :, :, :, ::1] ix = idx  # None stays None and is never indexed
    cdef bint with_idx = idx is not None
    cdef Py_ssize_t kd = kernel[0], kh = kernel[1], kw = kernel[2]
    cdef Py_ssize_t sd = stride[0], sh = stride[1], sw = stride[2]
    cdef Py_ssize_t pd = pad[0], ph = pad[1], pw = pad[2]
    cdef Py_ssize_t dd = dilation[0], dh = dilation[1], dw = dilation[2]
    cdef Py_ssize_t C = o.shape[1], Do = o.shape[2], P = o.shape[0] * o.shape[1]
    cdef Py_ssize_t item, p
    cdef bint fast = (kd == 2 and kh == 2 and kw == 2 and sd == 2 and sh == 2 and sw == 2
                      and pd == 0 and ph == 0 and pw == 0 and dd == 1 and dh == 1 and dw == 1
                      and 2 * o.shape[2] <= x.shape[2] and 2 * o.shape[3] <= x.shape[3]
                      and 2 * o.shape[4] <= x.shape[4])
    for item in prange(P * Do, nogil=True, schedule="dynamic", num_threads=max(1, nthreads)):
        fc_ftz_enter()
        p = item // Do
        if fast:
            _max_2x2x2(x, o, ix, with_idx, p // C, p % C, item % Do)
        else:
            _max_slice(x, o, ix, with_idx, p // C, p % C, item % Do, kd, kh, kw, sd, sh, sw,
                       pd, ph, pw, dd, dh, dw)
        fc_ftz_exit()
    return out


# --------------------------------------------------------------------------------------------
# avg_pool3d
# --------------------------------------------------------------------------------------------
cdef inline Py_ssize_t _count(Py_ssize_t s, Py_ssize_t k, Py_ssize_t size, Py_ssize_t p,
                              bint count_include_pad) noexcept nogil:
    """The size along one axis of a window starting at ``s``: clipped to the padded input,
    or (without count_include_pad) to the input."""
    if count_include_pad:
        return min(s + k, size + p) - s
    return min(s + k, size) - max(s, 0)


cdef inline void _divide(floating* row, Py_ssize_t lo, Py_ssize_t hi,
                         floating d) noexcept nogil:
    """``row[lo:hi] /= d`` (a true division, as torch's: no reciprocal)."""
    cdef Py_ssize_t k
    for k in range(lo, hi):
        row[k] = row[k] / d


cdef inline void _add_blocks(floating* orow, const floating* xrow, Py_ssize_t k,
                             Py_ssize_t W, Py_ssize_t Wo) noexcept nogil:
    """``orow[ow] += xrow[ow * k + j]`` for j = 0 .. k - 1 in turn, for every output whose
    window ``[ow * k, ow * k + k)`` starts inside the row (no padding, stride k)."""
    cdef Py_ssize_t ow, j, full = min(Wo, W // k)
    cdef floating acc
    cdef const floating* xs
    if k == 4:
        for ow in range(full):
            xs = xrow + 4 * ow
            orow[ow] = (((orow[ow] + xs[0]) + xs[1]) + xs[2]) + xs[3]
    elif k == 2:
        for ow in range(full):
            xs = xrow + 2 * ow
            orow[ow] = (orow[ow] + xs[0]) + xs[1]
    else:
        for ow in range(full):
            xs = xrow + k * ow
            acc = orow[ow]
            for j in range(k):
                acc = acc + xs[j]
            orow[ow] = acc
    for ow in range(full, Wo):  # a last window cut by the row's end (ceil_mode)
        xs = xrow + k * ow
        acc = orow[ow]
        for j in range(min(k, W - k * ow)):
            acc = acc + xs[j]
        orow[ow] = acc


cdef void _avg_slice(const floating[:, :, :, :, ::1] x, floating[:, :, :, :, ::1] out,
                     Py_ssize_t n, Py_ssize_t c, Py_ssize_t od, Py_ssize_t kd, Py_ssize_t kh,
                     Py_ssize_t kw, Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t sw,
                     Py_ssize_t pd, Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad,
                     Py_ssize_t divisor) noexcept nogil:
    cdef Py_ssize_t D = x.shape[2], H = x.shape[3], W = x.shape[4]
    cdef Py_ssize_t Ho = out.shape[3], Wo = out.shape[4]
    cdef Py_ssize_t oh, a, i, j, id_, ih, off, ow, ow0, ow1, ds, hs, dhc, lo, hi
    cdef floating* orow
    cdef const floating* xrow
    ds = od * sd - pd
    for oh in range(Ho):
        orow = &out[n, c, od, oh, 0]
        for ow in range(Wo):
            orow[ow] = 0
        hs = oh * sh - ph
        for a in range(kd):
            id_ = ds + a
            if id_ < 0 or id_ >= D:
                continue
            for i in range(kh):
                ih = hs + i
                if ih < 0 or ih >= H:
                    continue
                xrow = &x[n, c, id_, ih, 0]
                if sw == kw and pw == 0 and kw <= 8:
                    # windows side by side (avg_pool1d's usual case): each output's taps
                    # are contiguous, added in the same order as below
                    _add_blocks(orow, xrow, kw, W, Wo)
                    continue
                for j in range(kw):
                    off = j - pw
                    valid_cols(off, sw, W, Wo, &ow0, &ow1)
                    if sw == 1:
                        for ow in range(ow0, ow1):
                            orow[ow] += xrow[ow + off]
                    else:
                        for ow in range(ow0, ow1):
                            orow[ow] += xrow[ow * sw + off]
        if divisor != 0:
            _divide(orow, 0, Wo, <floating> divisor)
        else:
            dhc = (_count(ds, kd, D, pd, count_include_pad)
                   * _count(hs, kh, H, ph, count_include_pad))
            # the columns whose window lies inside the input share the divisor dhc * kw: one
            # division loop that vectorizes; the edges one by one
            lo = min(Wo, (pw + sw - 1) // sw)
            hi = lo
            if W - kw + pw >= 0:  # (C division truncates: no negative numerator)
                hi = max(lo, min(Wo, (W - kw + pw) // sw + 1))
            for ow in range(lo):
                orow[ow] = orow[ow] / <floating> (
                    dhc * _count(ow * sw - pw, kw, W, pw, count_include_pad))
            _divide(orow, lo, hi, <floating> (dhc * kw))
            for ow in range(hi, Wo):
                orow[ow] = orow[ow] / <floating> (
                    dhc * _count(ow * sw - pw, kw, W, pw, count_include_pad))


def avg_pool3d(const floating[:, :, :, :, ::1] x, out, kernel, stride, pad,
               bint count_include_pad, Py_ssize_t divisor, int nthreads):
    """3-D average pooling; fills and returns ``out``.

    The kernel contract of fastconv.reference.avg_pool3d; ``nthreads`` OpenMP threads.
    """
    cdef floating[:, :, :, :, ::1] o = out
    cdef Py_ssize_t kd = kernel[0], kh = kernel[1], kw = kernel[2]
    cdef Py_ssize_t sd = stride[0], sh = stride[1], sw = stride[2]
    cdef Py_ssize_t pd = pad[0], ph = pad[1], pw = pad[2]
    cdef Py_ssize_t C = o.shape[1], Do = o.shape[2], P = o.shape[0] * o.shape[1]
    cdef Py_ssize_t item, p
    for item in prange(P * Do, nogil=True, schedule="dynamic", num_threads=max(1, nthreads)):
        fc_ftz_enter()
        p = item // Do
        _avg_slice(x, o, p // C, p % C, item % Do, kd, kh, kw, sd, sh, sw, pd, ph, pw,
                   count_include_pad, divisor)
        fc_ftz_exit()
    return out


# --------------------------------------------------------------------------------------------
# avg_pool3d_backward
# --------------------------------------------------------------------------------------------
cdef void _avg_back_volume(const floating[:, :, :, :, ::1] gy, floating[:, :, :, :, ::1] gx,
                           Py_ssize_t n, Py_ssize_t c, floating* q, Py_ssize_t kd,
                           Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sd, Py_ssize_t sh,
                           Py_ssize_t sw, Py_ssize_t pd, Py_ssize_t ph, Py_ssize_t pw,
                           bint count_include_pad, Py_ssize_t divisor) noexcept nogil:
    cdef Py_ssize_t D = gx.shape[2], H = gx.shape[3], W = gx.shape[4]
    cdef Py_ssize_t Do = gy.shape[2], Ho = gy.shape[3], Wo = gy.shape[4]
    cdef Py_ssize_t od, oh, ow, id_, ih, iw, ds, hs, ws, w0, w1, dhc
    cdef floating v
    cdef floating* grow
    cdef const floating* yrow
    memset(&gx[n, c, 0, 0, 0], 0, D * H * W * sizeof(floating))
    for od in range(Do):
        ds = od * sd - pd
        for oh in range(Ho):
            hs = oh * sh - ph
            yrow = &gy[n, c, od, oh, 0]
            # gy / divisor of the row, rounded to the working dtype (as torch's)
            if divisor != 0:
                for ow in range(Wo):
                    q[ow] = yrow[ow] / <floating> divisor
            else:
                dhc = (_count(ds, kd, D, pd, count_include_pad)
                       * _count(hs, kh, H, ph, count_include_pad))
                for ow in range(Wo):
                    q[ow] = yrow[ow] / <floating> (
                        dhc * _count(ow * sw - pw, kw, W, pw, count_include_pad))
            for id_ in range(max(ds, 0), min(ds + kd, D)):
                for ih in range(max(hs, 0), min(hs + kh, H)):
                    grow = &gx[n, c, id_, ih, 0]
                    for ow in range(Wo):
                        ws = ow * sw - pw
                        w0 = max(ws, 0)
                        w1 = min(ws + kw, W)
                        v = q[ow]
                        for iw in range(w0, w1):
                            grow[iw] += v


def avg_pool3d_backward(const floating[:, :, :, :, ::1] gy, floating[:, :, :, :, ::1] gx,
                        kernel, stride, pad, bint count_include_pad, Py_ssize_t divisor,
                        int nthreads):
    """Gradient of avg_pool3d: each ``gy / divisor`` spread over its window. Parallel over
    volumes (n, c); fills and returns ``gx``."""
    cdef Py_ssize_t kd = kernel[0], kh = kernel[1], kw = kernel[2]
    cdef Py_ssize_t sd = stride[0], sh = stride[1], sw = stride[2]
    cdef Py_ssize_t pd = pad[0], ph = pad[1], pw = pad[2]
    cdef Py_ssize_t C = gx.shape[1], P = gx.shape[0] * gx.shape[1], Wo = gy.shape[4]
    cdef int nt = max(1, nthreads)
    cdef Py_ssize_t p
    # one row of gy / divisor per thread
    cdef floating[:, ::1] rows = np.empty((nt, Wo + 1), np.asarray(gx).dtype)
    for p in prange(P, nogil=True, schedule="static", num_threads=nt):
        fc_ftz_enter()
        _avg_back_volume(gy, gx, p // C, p % C, &rows[threadid(), 0], kd, kh, kw, sd, sh, sw,
                         pd, ph, pw, count_include_pad, divisor)
        fc_ftz_exit()
    return gx.base


# --------------------------------------------------------------------------------------------
# flush-to-zero (fc_fpenv.h): this module's flag, kept equal to fastconv's setting
# --------------------------------------------------------------------------------------------
def _set_flush_denormal(bint on):
    """Set this module's flush-to-zero flag (fastconv._threads owns the setting)."""
    fc_ftz_set(on)


from fastconv import _threads  # noqa: E402

_threads.register_flush_hook(_set_flush_denormal)
