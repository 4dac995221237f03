"""Cython + OpenMP gradient kernels (contract: the gradient section of fastconv.reference).

One source for float32 and float64 (``cython.floating``). Each parallel task owns its outputs
and sums in an order fixed by the shapes, so the results are bitwise the same whatever the
thread count (and the same as the Numba kernels, which use the same loop orders):

* conv2d_input: one task per input plane (n, c), a transposed-convolution scatter whose
  innermost loop runs along an input row (contiguous for stride 1);
* conv2d_weight: one task per (filter, input channel), accumulating into a per-thread
  (kh, kw, Wo) buffer (zeroed for every task) with an elementwise, vectorizable update,
  reduced at the end of the task;
* max_pool2d_backward, avg_pool2d_backward: one task per plane (n, c).

The kernels trust their input (fastconv._spec validated it): no bounds checks, inputs may be
read-only (const memoryviews).
"""

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.stdlib cimport free, malloc
from libc.stdint cimport int64_t
from libc.string cimport memset


# --------------------------------------------------------------------------------------------
# conv2d_input
# --------------------------------------------------------------------------------------------
cdef inline void _cols(Py_ssize_t off, Py_ssize_t sw, Py_ssize_t W, Py_ssize_t Wo,
                       Py_ssize_t* ow0, Py_ssize_t* ow1) noexcept nogil:
    """Output columns ``ow`` in [ow0, ow1) whose input column ``ow * sw + off`` is in [0, W)."""
    ow0[0] = 0 if off >= 0 else (-off + sw - 1) // sw
    if W - 1 - off >= 0:
        ow1[0] = min(Wo, (W - 1 - off) // sw + 1)
    else:
        ow1[0] = 0


cdef void _input_plane(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] w,
                       floating[:, :, :, ::1] gx, Py_ssize_t p, Py_ssize_t sh, Py_ssize_t sw,
                       Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
                       Py_ssize_t groups) noexcept nogil:
    cdef Py_ssize_t K = gy.shape[1], Ho = gy.shape[2], Wo = gy.shape[3]
    cdef Py_ssize_t Cg = w.shape[1], kh = w.shape[2], kw = w.shape[3]
    cdef Py_ssize_t C = gx.shape[1], H = gx.shape[2], W = gx.shape[3]
    cdef Py_ssize_t Kg = K // groups
    cdef Py_ssize_t n = p // C, c = p % C
    cdef Py_ssize_t g = c // Cg, cc = c % Cg
    cdef Py_ssize_t kk, k, i, j, oh, ow, ih, off, ow0, ow1
    cdef floating wv
    cdef floating* grow
    cdef const floating* yrow
    memset(&gx[n, c, 0, 0], 0, H * W * sizeof(floating))
    for kk in range(Kg):
        k = g * Kg + kk
        for i in range(kh):
            for oh in range(Ho):
                ih = oh * sh - pt + i * dh
                if ih < 0 or ih >= H:
                    continue
                grow = &gx[n, c, ih, 0]
                yrow = &gy[n, k, oh, 0]
                for j in range(kw):
                    wv = w[k, cc, i, j]
                    off = j * dw - pl
                    _cols(off, sw, W, Wo, &ow0, &ow1)
                    if sw == 1:
                        for ow in range(ow0, ow1):
                            grow[ow + off] += wv * yrow[ow]
                    else:
                        for ow in range(ow0, ow1):
                            grow[ow * sw + off] += wv * yrow[ow]


def conv2d_input(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] w,
                 floating[:, :, :, ::1] gx, stride, pad, dilation, Py_ssize_t groups,
                 int nthreads):
    """Gradient of conv2d wrt its input; fills ``gx`` (N, C, H, W). Parallel over (n, c)."""
    cdef Py_ssize_t sh = stride[0], sw = stride[1], pt = pad[0], pl = pad[1]
    cdef Py_ssize_t dh = dilation[0], dw = dilation[1]
    cdef Py_ssize_t p, P = gx.shape[0] * gx.shape[1]
    for p in prange(P, nogil=True, schedule="dynamic", num_threads=nthreads):
        _input_plane(gy, w, gx, p, sh, sw, pt, pl, dh, dw, groups)
    return gx.base


# --------------------------------------------------------------------------------------------
# conv2d_weight
# --------------------------------------------------------------------------------------------
cdef void _weight_task(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] gy,
                       floating[:, :, :, ::1] gw, Py_ssize_t p, Py_ssize_t sh, Py_ssize_t sw,
                       Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
                       Py_ssize_t groups, floating* acc) noexcept nogil:
    cdef Py_ssize_t N = x.shape[0], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t K = gw.shape[0], Cg = gw.shape[1], kh = gw.shape[2], kw = gw.shape[3]
    cdef Py_ssize_t Ho = gy.shape[2], Wo = gy.shape[3]
    cdef Py_ssize_t Kg = K // groups
    cdef Py_ssize_t k = p // Cg, cc = p % Cg
    cdef Py_ssize_t c = (k // Kg) * Cg + cc
    cdef Py_ssize_t n, i, j, oh, ow, ih, off, ow0, ow1
    cdef floating s
    cdef floating* a
    cdef const floating* xrow
    cdef const floating* yrow
    memset(acc, 0, kh * kw * Wo * sizeof(floating))
    for n in range(N):
        for i in range(kh):
            for oh in range(Ho):
                ih = oh * sh - pt + i * dh
                if ih < 0 or ih >= H:
                    continue
                xrow = &x[n, c, ih, 0]
                yrow = &gy[n, k, oh, 0]
                for j in range(kw):
                    off = j * dw - pl
                    _cols(off, sw, W, Wo, &ow0, &ow1)
                    a = acc + (i * kw + j) * Wo
                    if sw == 1:
                        for ow in range(ow0, ow1):
                            a[ow] += yrow[ow] * xrow[ow + off]
                    else:
                        for ow in range(ow0, ow1):
                            a[ow] += yrow[ow] * xrow[ow * sw + off]
    for i in range(kh):
        for j in range(kw):
            a = acc + (i * kw + j) * Wo
            s = a[0]
            for ow in range(1, Wo):
                s += a[ow]
            gw[k, cc, i, j] = s


def conv2d_weight(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] gy,
                  floating[:, :, :, ::1] gw, stride, pad, dilation, Py_ssize_t groups,
                  int nthreads):
    """Gradient of conv2d wrt its weight; fills ``gw`` (K, C // groups, kh, kw).

    Parallel over (filter, input channel); each thread has one accumulation buffer.
    """
    cdef Py_ssize_t sh = stride[0], sw = stride[1], pt = pad[0], pl = pad[1]
    cdef Py_ssize_t dh = dilation[0], dw = dilation[1]
    cdef Py_ssize_t p, P = gw.shape[0] * gw.shape[1]
    cdef Py_ssize_t bufsize = gw.shape[2] * gw.shape[3] * gy.shape[3]
    cdef Py_ssize_t nbuf = max(1, nthreads)
    # one accumulation buffer per thread, zeroed by every task that uses it
    cdef floating* acc = <floating*> malloc(nbuf * bufsize * sizeof(floating))
    if acc == NULL:
        raise MemoryError("conv2d_weight: could not allocate the accumulation buffers")
    try:
        for p in prange(P, nogil=True, schedule="dynamic", num_threads=nbuf):
            _weight_task(x, gy, gw, p, sh, sw, pt, pl, dh, dw, groups,
                         acc + threadid() * bufsize)
    finally:
        free(acc)
    return gw.base


# --------------------------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------------------------
cdef void _max_plane(const floating[:, :, ::1] gy, const int64_t[:, :, ::1] idx,
                     floating[:, :, ::1] gx, Py_ssize_t p) noexcept nogil:
    cdef Py_ssize_t C = gx.shape[1], P = gx.shape[2], L = gy.shape[2]
    cdef Py_ssize_t n = p // C, c = p % C, o
    cdef floating* g = &gx[n, c, 0]
    cdef const floating* y = &gy[n, c, 0]
    cdef const int64_t* ix = &idx[n, c, 0]
    memset(g, 0, P * sizeof(floating))
    for o in range(L):
        g[ix[o]] += y[o]


def max_pool2d_backward(gy, idx, gx, int nthreads):
    """Gradient of max_pool2d: ``gy`` added into ``gx`` at ``idx``. Parallel over planes."""
    N, C = gx.shape[0], gx.shape[1]
    _max_pool_planes(gy.reshape(N, C, -1), idx.reshape(N, C, -1), gx.reshape(N, C, -1),
                     nthreads)
    return gx


def _max_pool_planes(const floating[:, :, ::1] gy, const int64_t[:, :, ::1] idx,
                     floating[:, :, ::1] gx, int nthreads):
    cdef Py_ssize_t p, P = gx.shape[0] * gx.shape[1]
    for p in prange(P, nogil=True, schedule="static", num_threads=nthreads):
        _max_plane(gy, idx, gx, p)


cdef void _avg_plane(const floating[:, :, :, ::1] gy, floating[:, :, :, ::1] gx, Py_ssize_t p,
                     Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                     Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad) noexcept nogil:
    cdef Py_ssize_t C = gx.shape[1], H = gx.shape[2], W = gx.shape[3]
    cdef Py_ssize_t Ho = gy.shape[2], Wo = gy.shape[3]
    cdef Py_ssize_t n = p // C, c = p % C
    cdef Py_ssize_t oh, ow, ih, iw, hs, he, hs2, he2, ws, we, ws2, we2, div
    cdef floating v
    cdef floating* grow
    memset(&gx[n, c, 0, 0], 0, H * W * sizeof(floating))
    for oh in range(Ho):
        hs = oh * sh - ph
        he = min(hs + kh, H + ph)
        hs2 = max(hs, 0)
        he2 = min(he, H)
        for ow in range(Wo):
            ws = ow * sw - pw
            we = min(ws + kw, W + pw)
            ws2 = max(ws, 0)
            we2 = min(we, W)
            if count_include_pad:
                div = (he - hs) * (we - ws)
            else:
                div = (he2 - hs2) * (we2 - ws2)
            v = gy[n, c, oh, ow] / <floating> div
            for ih in range(hs2, he2):
                grow = &gx[n, c, ih, 0]
                for iw in range(ws2, we2):
                    grow[iw] += v


def avg_pool2d_backward(const floating[:, :, :, ::1] gy, floating[:, :, :, ::1] gx, kernel,
                        stride, pad, bint count_include_pad, int nthreads):
    """Gradient of avg_pool2d: each ``gy / divisor`` spread over its window. Parallel over
    planes."""
    cdef Py_ssize_t kh = kernel[0], kw = kernel[1], sh = stride[0], sw = stride[1]
    cdef Py_ssize_t ph = pad[0], pw = pad[1]
    cdef Py_ssize_t p, P = gx.shape[0] * gx.shape[1]
    for p in prange(P, nogil=True, schedule="static", num_threads=nthreads):
        _avg_plane(gy, gx, p, kh, kw, sh, sw, ph, pw, count_include_pad)
    return gx.base
