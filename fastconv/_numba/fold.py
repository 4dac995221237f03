"""Numba kernels of unfold/fold and max_unpool (issue 17; contract: the ``fold (issue 17)``
section of :mod:`fastconv.reference`).

As in :mod:`fastconv._numba.pool`, the parallel loop runs over work items and calls a
serial function: unfold, one (plane, tap) output row each; fold, one plane (n, c) each, so
each output element is written by one thread only, its terms added in the order (tap row,
tap column, output row) for any thread count; max_unpool and its gradient, one plane each
(the scatter in the order of the input: a repeated index keeps the last value).
"""

import numba
from numba import prange

from ._common import CACHE, flush_denormal, ftz_enter, ftz_exit, jit, use_threads

serial = numba.njit(cache=CACHE, nogil=True)


@serial
def _valid(off, s, W, Wo):
    """Output columns [lo, hi) whose input column ``ow * s + off`` lies in [0, W)."""
    lo = 0
    if off < 0:
        lo = (-off + s - 1) // s
    hi = 0
    if W - 1 - off >= 0:
        hi = (W - 1 - off) // s + 1
    lo = min(lo, Wo)
    hi = max(lo, min(hi, Wo))
    return lo, hi


@serial
def _unfold_tap(xc, d, i, j, Ho, Wo, sh, sw, ph, pw, dh, dw):
    H, W = xc.shape
    off = j * dw - pw
    ow0, ow1 = _valid(off, sw, W, Wo)
    for oh in range(Ho):
        r = oh * Wo
        ih = oh * sh - ph + i * dh
        if ih < 0 or ih >= H:
            d[r:r + Wo] = 0
            continue
        d[r:r + ow0] = 0
        if ow1 > ow0:  # a strided slice copy: no per-element index arithmetic
            d[r + ow0:r + ow1] = xc[ih, ow0 * sw + off:(ow1 - 1) * sw + off + 1:sw]
        d[r + max(ow0, ow1):r + Wo] = 0


@jit
def _unfold(x, out, kh, kw, dh, dw, ph, pw, sh, sw, Ho, Wo, ftz):
    C = x.shape[1]
    T = kh * kw
    for item in prange(x.shape[0] * C * T):
        old = ftz_enter(ftz)
        p = item // T
        t = item % T
        n = p // C
        c = p % C
        _unfold_tap(x[n, c], out[n, c * T + t], t // kw, t % kw, Ho, Wo, sh, sw, ph, pw,
                    dh, dw)
        ftz_exit(old)


def unfold(x, out, kernel, dilation, pad, stride, blocks, nthreads):
    """im2col (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    if out.size:
        _unfold(x, out, *kernel, *dilation, *pad, *stride, *blocks, flush_denormal())
    return out


@serial
def _fold_plane(cc, o, kh, kw, Ho, Wo, sh, sw, ph, pw, dh, dw):
    H, W = o.shape
    for ih in range(H):
        for iw in range(W):
            o[ih, iw] = 0
    for i in range(kh):
        for j in range(kw):
            off = j * dw - pw
            ow0, ow1 = _valid(off, sw, W, Wo)
            src = cc[i * kw + j]
            for oh in range(Ho):
                ih = oh * sh - ph + i * dh
                if ih < 0 or ih >= H:
                    continue
                r = oh * Wo
                orow = o[ih, ow0 * sw + off:]
                srow = src[r + ow0:r + ow1]
                for q in range(ow1 - ow0):  # non-negative indices: no wraparound checks
                    orow[q * sw] += srow[q]


@jit
def _fold(cols, out, kh, kw, dh, dw, ph, pw, sh, sw, Ho, Wo, ftz):
    C = out.shape[1]
    T = kh * kw
    for item in prange(out.shape[0] * C):
        old = ftz_enter(ftz)
        n = item // C
        c = item % C
        _fold_plane(cols[n, c * T:(c + 1) * T], out[n, c], kh, kw, Ho, Wo, sh, sw, ph, pw,
                    dh, dw)
        ftz_exit(old)


def fold(cols, out, kernel, dilation, pad, stride, blocks, nthreads):
    """col2im, the adjoint of :func:`unfold` (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    if out.size:
        _fold(cols, out, *kernel, *dilation, *pad, *stride, *blocks, flush_denormal())
    return out


@jit
def _unpool(x, idx, out, ftz):
    C = out.shape[1]
    for item in prange(out.shape[0] * C):
        old = ftz_enter(ftz)
        n = item // C
        c = item % C
        o = out[n, c]
        for q in range(o.shape[0]):
            o[q] = 0
        xs = x[n, c]
        ix = idx[n, c]
        for k in range(xs.shape[0]):
            o[ix[k]] = xs[k]
        ftz_exit(old)


def max_unpool(x, idx, out, nthreads):
    """Scatter into zeros (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    if out.size:
        _unpool(x, idx, out, flush_denormal())
    return out


@jit
def _unpool_backward(gy, idx, gx, ftz):
    C = gx.shape[1]
    for item in prange(gx.shape[0] * C):
        old = ftz_enter(ftz)
        n = item // C
        c = item % C
        g = gy[n, c]
        ix = idx[n, c]
        d = gx[n, c]
        for k in range(d.shape[0]):
            d[k] = g[ix[k]]
        ftz_exit(old)


def max_unpool_backward(gy, idx, gx, nthreads):
    """The gather (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    if gx.size:
        _unpool_backward(gy, idx, gx, flush_denormal())
    return gx


__all__ = ["unfold", "fold", "max_unpool", "max_unpool_backward"]
