"""Cython + OpenMP kernels of unfold/fold and max_unpool (issue 17; contract: the
``fold (issue 17)`` section of fastconv.reference).

``unfold(x, out, kernel, dilation, pad, stride, blocks, nthreads)`` (im2col),
``fold(cols, out, kernel, dilation, pad, stride, blocks, nthreads)`` (col2im, its adjoint),
``max_unpool(x, idx, out, nthreads)`` (scatter into zeros) and
``max_unpool_backward(gy, idx, gx, nthreads)`` (gather). One source for float32 and float64;
inputs may be read-only; the kernels trust their input (the spec checks every index).

Work items: unfold, one (plane, tap) each (an output row of length L, written once); fold,
one plane (n, c) each, cut into blocks of input rows when there are fewer than 16 planes,
so every output element is written by one thread only and receives its terms in the order
(tap row, tap column, block row): race-free, and the same sums for any thread count;
max_unpool and its gradient, one plane each (the scatter runs in the order of the input, so
a repeated index keeps the last value).
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset

from _common cimport row_blocks, valid_cols
from _common cimport fc_ftz_enter, fc_ftz_exit, fc_ftz_set

cdef Py_ssize_t _MIN_ITEMS = 16


cdef void _unfold_tap(const floating[:, :, :, ::1] x, floating* d, Py_ssize_t n,
                      Py_ssize_t c, Py_ssize_t i, Py_ssize_t j, Py_ssize_t Ho, Py_ssize_t Wo,
                      Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                      Py_ssize_t dh, Py_ssize_t dw) noexcept nogil:
    """d[oh * Wo + ow] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw], zero outside."""
    cdef Py_ssize_t H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t oh, ih, ow, ow0, ow1
    cdef Py_ssize_t off = j * dw - pw
    cdef const floating* xrow
    cdef floating* r
    valid_cols(off, sw, W, Wo, &ow0, &ow1)
    for oh in range(Ho):
        r = d + oh * Wo
        ih = oh * sh - ph + i * dh
        if ih < 0 or ih >= H:
            memset(r, 0, Wo * sizeof(floating))
            continue
        xrow = &x[n, c, ih, 0]
        for ow in range(ow0):
            r[ow] = 0
        if sw == 1:
            if ow1 > ow0:
                memcpy(r + ow0, xrow + ow0 + off, (ow1 - ow0) * sizeof(floating))
        else:
            for ow in range(ow0, ow1):
                r[ow] = xrow[ow * sw + off]
        for ow in range(ow1, Wo):
            r[ow] = 0


def unfold(const floating[:, :, :, ::1] x, floating[:, :, ::1] out, kernel, dilation, pad,
           stride, blocks, int nthreads):
    """im2col; fills and returns ``out`` (N, C * kh * kw, Ho * Wo)."""
    cdef Py_ssize_t kh = kernel[0], kw = kernel[1], dh = dilation[0], dw = dilation[1]
    cdef Py_ssize_t ph = pad[0], pw = pad[1], sh = stride[0], sw = stride[1]
    cdef Py_ssize_t Ho = blocks[0], Wo = blocks[1]
    cdef Py_ssize_t C = x.shape[1], T = kh * kw
    cdef Py_ssize_t items = x.shape[0] * C * T
    cdef Py_ssize_t item, p, t, L = Ho * Wo
    if items == 0 or L == 0:
        return out
    for item in prange(items, nogil=True, schedule="static", num_threads=max(1, nthreads)):
        fc_ftz_enter()
        p = item // T
        t = item % T
        _unfold_tap(x, &out[p // C, (p % C) * T + t, 0], p // C, p % C, t // kw, t % kw,
                    Ho, Wo, sh, sw, ph, pw, dh, dw)
        fc_ftz_exit()
    return out


cdef void _fold_rows(const floating[:, :, ::1] cols, floating[:, :, :, ::1] out,
                     Py_ssize_t n, Py_ssize_t c, Py_ssize_t r0, Py_ssize_t r1,
                     Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t Ho, Py_ssize_t Wo,
                     Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                     Py_ssize_t dh, Py_ssize_t dw) noexcept nogil:
    """Input rows [r0, r1) of plane (n, c): zeroed, then every tap's columns added."""
    cdef Py_ssize_t W = out.shape[3]
    cdef Py_ssize_t i, j, oh, oh0, oh1, ih, ow, ow0, ow1, off, base
    cdef floating* orow
    cdef const floating* src
    memset(&out[n, c, r0, 0], 0, (r1 - r0) * W * sizeof(floating))
    for i in range(kh):
        # the output rows oh whose input row oh*sh - ph + i*dh lies in [r0, r1)
        base = i * dh - ph
        oh0 = 0
        if r0 - base > 0:
            oh0 = (r0 - base + sh - 1) // sh
        if r1 - 1 - base < 0:
            continue
        oh1 = (r1 - 1 - base) // sh + 1
        if oh1 > Ho:
            oh1 = Ho
        for j in range(kw):
            off = j * dw - pw
            valid_cols(off, sw, W, Wo, &ow0, &ow1)
            if ow1 <= ow0:
                continue
            for oh in range(oh0, oh1):
                ih = oh * sh + base
                orow = &out[n, c, ih, 0]
                src = &cols[n, (c * kh + i) * kw + j, oh * Wo]
                if sw == 1:
                    for ow in range(ow0, ow1):
                        orow[ow + off] += src[ow]
                else:
                    for ow in range(ow0, ow1):
                        orow[ow * sw + off] += src[ow]


def fold(const floating[:, :, ::1] cols, floating[:, :, :, ::1] out, kernel, dilation, pad,
         stride, blocks, int nthreads):
    """col2im, the adjoint of unfold; fills and returns ``out`` (N, C, H, W)."""
    cdef Py_ssize_t kh = kernel[0], kw = kernel[1], dh = dilation[0], dw = dilation[1]
    cdef Py_ssize_t ph = pad[0], pw = pad[1], sh = stride[0], sw = stride[1]
    cdef Py_ssize_t Ho = blocks[0], Wo = blocks[1]
    cdef Py_ssize_t C = out.shape[1], H = out.shape[2], P = out.shape[0] * out.shape[1]
    cdef Py_ssize_t nb, rows, item, p, r0, r1
    if P == 0 or H == 0 or out.shape[3] == 0:
        return out
    nb = row_blocks(P, H, _MIN_ITEMS)
    rows = (H + nb - 1) // nb
    for item in prange(P * nb, nogil=True, schedule="static", num_threads=max(1, nthreads)):
        fc_ftz_enter()
        p = item // nb
        r0 = (item % nb) * rows
        r1 = min(H, r0 + rows)
        if r1 > r0:
            _fold_rows(cols, out, p // C, p % C, r0, r1, kh, kw, Ho, Wo, sh, sw, ph, pw,
                       dh, dw)
        fc_ftz_exit()
    return out


def max_unpool(const floating[:, :, ::1] x, const int64_t[:, :, ::1] idx,
               floating[:, :, ::1] out, int nthreads):
    """Scatter ``x`` at ``idx`` into zeros (the last of repeated indices wins)."""
    cdef Py_ssize_t C = out.shape[1], Q = out.shape[2], P = x.shape[2]
    cdef Py_ssize_t planes = out.shape[0] * C
    cdef Py_ssize_t item, n, c, k
    cdef floating* o
    if planes == 0 or Q == 0:
        return out
    for item in prange(planes, nogil=True, schedule="static", num_threads=max(1, nthreads)):
        fc_ftz_enter()
        n = item // C
        c = item % C
        o = &out[n, c, 0]
        memset(o, 0, Q * sizeof(floating))
        for k in range(P):
            o[idx[n, c, k]] = x[n, c, k]
        fc_ftz_exit()
    return out


def max_unpool_backward(const floating[:, :, ::1] gy, const int64_t[:, :, ::1] idx,
                        floating[:, :, ::1] gx, int nthreads):
    """Gather: ``gx[n, c, p] = gy[n, c, idx[n, c, p]]``."""
    cdef Py_ssize_t C = gx.shape[1], P = gx.shape[2]
    cdef Py_ssize_t planes = gx.shape[0] * C
    cdef Py_ssize_t item, n, c, k
    if planes == 0 or P == 0:
        return gx
    for item in prange(planes, nogil=True, schedule="static", num_threads=max(1, nthreads)):
        fc_ftz_enter()
        n = item // C
        c = item % C
        for k in range(P):
            gx[n, c, k] = gy[n, c, idx[n, c, k]]
        fc_ftz_exit()
    return gx


def _set_flush_denormal(bint on):
    """Set this module's flush-to-zero flag (fastconv._threads owns the setting)."""
    fc_ftz_set(on)


from fastconv import _threads  # noqa: E402

_threads.register_flush_hook(_set_flush_denormal)
