"""Numba adaptive pooling kernels (contract: :mod:`fastconv.reference`, its section
"adaptive pools (issue 17)"), with max_pool2d's NaN and tie rules.

As in :mod:`fastconv._numba.pool`, the parallel loop runs over (image, channel) planes and
calls a serial per-plane function. The windows along each axis (start and end arrays, as
:func:`fastconv._spec.adaptive_windows` gives them) are computed once per call in the
wrapper, so no division runs per window. The average first adds each window's rows column
by column into a row of W sums, then adds the columns of each output's window from it;
every output is computed by one plane's loop in a fixed order, so results do not depend on
the thread count.
"""

import numba
import numpy as np
from numba import prange

from .._spec import adaptive_windows
from ._common import CACHE, flush_denormal, ftz_enter, ftz_exit, jit, use_threads

plane = numba.njit(cache=CACHE, nogil=True)


@plane
def _avg_plane(xc, o, acc, ds, de, hs, he, ws, we, zero):
    Do, Ho, Wo = o.shape
    W = xc.shape[2]
    for od in range(Do):
        d0, d1 = ds[od], de[od]
        for oh in range(Ho):
            h0, h1 = hs[oh], he[oh]
            for w in range(W):
                acc[w] = zero
            for d in range(d0, d1):
                for h in range(h0, h1):
                    row = xc[d, h]
                    for w in range(W):
                        acc[w] += row[w]
            for ow in range(Wo):
                w0, w1 = ws[ow], we[ow]
                s = zero  # accumulate in the input's own dtype
                for w in range(w0, w1):
                    s += acc[w]
                o[od, oh, ow] = s / ((d1 - d0) * (h1 - h0) * (w1 - w0))


@jit
def _adaptive_avg(x, out, ds, de, hs, he, ws, we, zero, ftz):
    N, C = x.shape[0], x.shape[1]
    W = x.shape[4]
    for p in prange(N * C):
        _old_csr = ftz_enter(ftz)
        acc = np.empty(W, x.dtype)
        _avg_plane(x[p // C, p % C], out[p // C, p % C], acc, ds, de, hs, he, ws, we, zero)
        ftz_exit(_old_csr)
    return out


@plane
def _max_plane(xc, o, ic, want_idx, ds, de, hs, he, ws, we, neg_inf):
    Do, Ho, Wo = o.shape
    H, W = xc.shape[1], xc.shape[2]
    for od in range(Do):
        d0, d1 = ds[od], de[od]
        for oh in range(Ho):
            h0, h1 = hs[oh], he[oh]
            for ow in range(Wo):
                w0, w1 = ws[ow], we[ow]
                best = neg_inf
                bi = (d0 * H + h0) * W + w0
                for d in range(d0, d1):
                    for h in range(h0, h1):
                        row = xc[d, h]
                        base = (d * H + h) * W
                        for w in range(w0, w1):
                            v = row[w]
                            # '>' keeps the first maximum; a NaN always takes over
                            if v > best or v != v:
                                best = v
                                bi = base + w
                o[od, oh, ow] = best
                if want_idx:
                    ic[od, oh, ow] = bi


@jit
def _adaptive_max(x, out, idx, want_idx, ds, de, hs, he, ws, we, neg_inf, ftz):
    N, C = x.shape[0], x.shape[1]
    for p in prange(N * C):
        _old_csr = ftz_enter(ftz)
        n = p // C
        c = p % C
        _max_plane(x[n, c], out[n, c], idx[n, c] if want_idx else idx[0, 0], want_idx,
                   ds, de, hs, he, ws, we, neg_inf)
        ftz_exit(_old_csr)
    return out


@plane
def _avg_back_plane(gc, xc, ds, de, hs, he, ws, we, zero):
    Do, Ho, Wo = gc.shape
    D, H, W = xc.shape
    for d in range(D):
        for h in range(H):
            for w in range(W):
                xc[d, h, w] = zero
    for od in range(Do):
        d0, d1 = ds[od], de[od]
        for oh in range(Ho):
            h0, h1 = hs[oh], he[oh]
            for ow in range(Wo):
                w0, w1 = ws[ow], we[ow]
                g = gc[od, oh, ow] / ((d1 - d0) * (h1 - h0) * (w1 - w0))
                for d in range(d0, d1):
                    for h in range(h0, h1):
                        row = xc[d, h]
                        for w in range(w0, w1):
                            row[w] += g


@jit
def _adaptive_avg_backward(gy, gx, ds, de, hs, he, ws, we, zero, ftz):
    N, C = gx.shape[0], gx.shape[1]
    for p in prange(N * C):
        _old_csr = ftz_enter(ftz)
        _avg_back_plane(gy[p // C, p % C], gx[p // C, p % C], ds, de, hs, he, ws, we, zero)
        ftz_exit(_old_csr)
    return gx


def _windows(x_shape, out_shape):
    """(ds, de, hs, he, ws, we): each axis' window starts and ends."""
    res = []
    for n, m in zip(x_shape[2:], out_shape[2:]):
        res.extend(adaptive_windows(n, m))
    return res


_NO_INDICES = np.zeros((1, 1, 1, 1, 1), np.int64)


def adaptive_avg_pool3d(x, out, nthreads):
    """Adaptive average pooling (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    _adaptive_avg(x, out, *_windows(x.shape, out.shape), x.dtype.type(0), flush_denormal())
    return out


def adaptive_max_pool3d(x, out, idx, nthreads):
    """Adaptive max pooling (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    want = idx is not None
    _adaptive_max(x, out, idx if want else _NO_INDICES, want, *_windows(x.shape, out.shape),
                  x.dtype.type(-np.inf), flush_denormal())
    return out


def adaptive_avg_pool3d_backward(gy, gx, nthreads):
    """Gradient of adaptive_avg_pool3d (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    _adaptive_avg_backward(gy, gx, *_windows(gx.shape, gy.shape), gx.dtype.type(0),
                           flush_denormal())
    return gx
