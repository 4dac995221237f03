"""Numba pooling kernels: one pass over each window, with PyTorch's NaN and tie rules.

The parallel loop runs over (image, channel) planes and calls a serial per-plane function:
Numba compiles a ``prange`` body into a gufunc that LLVM optimizes poorly, and moving the
loop nest into its own function made max-pool four times faster here. Window bounds
clipped to the input are computed once per call (vectorized, in the wrapper), so no
division runs per window.
"""

import numba
import numpy as np
from numba import prange

from ._common import CACHE, jit, use_threads

plane = numba.njit(cache=CACHE, nogil=True)


@plane
def _max_plane(xc, o, sh, sw, ph, pw, dh, dw, i0s, i1s, j0s, j1s, neg_inf):
    """Values only: no position bookkeeping in the loop."""
    Ho, Wo = o.shape
    for oh in range(Ho):
        hs = oh * sh - ph
        i0 = i0s[oh]
        i1 = i1s[oh]
        for ow in range(Wo):
            ws = ow * sw - pw
            j0 = j0s[ow]
            j1 = j1s[ow]
            best = neg_inf
            for i in range(i0, i1):
                xrow = xc[hs + i * dh]
                for j in range(j0, j1):
                    v = xrow[ws + j * dw]
                    if v > best or v != v:
                        best = v
            o[oh, ow] = best


@plane
def _max_plane_idx(xc, o, ic, sh, sw, ph, pw, dh, dw, i0s, i1s, j0s, j1s, neg_inf):
    Ho, Wo = o.shape
    W = xc.shape[1]
    for oh in range(Ho):
        hs = oh * sh - ph
        i0 = i0s[oh]
        i1 = i1s[oh]
        for ow in range(Wo):
            ws = ow * sw - pw
            j0 = j0s[ow]
            j1 = j1s[ow]
            best = neg_inf
            bi = hs + i0 * dh
            bj = ws + j0 * dw
            for i in range(i0, i1):
                ih = hs + i * dh
                xrow = xc[ih]
                for j in range(j0, j1):
                    iw = ws + j * dw
                    v = xrow[iw]
                    # '>' keeps the first maximum; a NaN always takes over (the last one wins)
                    if v > best or v != v:
                        best = v
                        bi = ih
                        bj = iw
            o[oh, ow] = best
            ic[oh, ow] = bi * W + bj


@jit
def _max_pool2d(x, out, idx, want_idx, sh, sw, ph, pw, dh, dw, i0s, i1s, j0s, j1s, neg_inf):
    N, C = x.shape[0], x.shape[1]
    for p in prange(N * C):
        n = p // C
        c = p % C
        if want_idx:
            _max_plane_idx(x[n, c], out[n, c], idx[n, c], sh, sw, ph, pw, dh, dw,
                           i0s, i1s, j0s, j1s, neg_inf)
        else:
            _max_plane(x[n, c], out[n, c], sh, sw, ph, pw, dh, dw, i0s, i1s, j0s, j1s, neg_inf)
    return out


@plane
def _avg_plane(xc, o, hs0, he0, ws0, we0, hdiv, wdiv, zero):
    Ho, Wo = o.shape
    for oh in range(Ho):
        for ow in range(Wo):
            acc = zero  # accumulate in the input's own dtype
            for ih in range(hs0[oh], he0[oh]):
                xrow = xc[ih]
                for iw in range(ws0[ow], we0[ow]):
                    acc += xrow[iw]
            o[oh, ow] = acc / (hdiv[oh] * wdiv[ow])


@jit
def _avg_pool2d(x, out, hs0, he0, ws0, we0, hdiv, wdiv, zero):
    N, C = x.shape[0], x.shape[1]
    for p in prange(N * C):
        n = p // C
        c = p % C
        _avg_plane(x[n, c], out[n, c], hs0, he0, ws0, we0, hdiv, wdiv, zero)
    return out


def _tap_bounds(n_out, size, k, s, p, d):
    """Per output position, the first and last+1 kernel tap whose input lies in [0, size)."""
    start = np.arange(n_out, dtype=np.int64) * s - p
    t0 = np.where(start >= 0, 0, (-start + d - 1) // d)
    t1 = np.minimum(k, (size - 1 - start) // d + 1)
    return t0, t1


_NO_INDICES = np.zeros((1, 1, 1, 1), np.int64)


def max_pool2d(x, out, idx, kernel, stride, pad, dilation, nthreads):
    """Max pooling (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    H, W = x.shape[2:]
    Ho, Wo = out.shape[2:]
    i0s, i1s = _tap_bounds(Ho, H, kernel[0], stride[0], pad[0], dilation[0])
    j0s, j1s = _tap_bounds(Wo, W, kernel[1], stride[1], pad[1], dilation[1])
    want = idx is not None
    _max_pool2d(x, out, idx if want else _NO_INDICES, want, *stride, *pad, *dilation,
                i0s, i1s, j0s, j1s, x.dtype.type(-np.inf))
    return out


def _avg_bounds(n_out, size, k, s, p, count_include_pad):
    start = np.arange(n_out, dtype=np.int64) * s - p
    end = np.minimum(start + k, size + p)  # windows are clipped to the padded input
    lo, hi = np.maximum(start, 0), np.minimum(end, size)
    return lo, hi, (end - start) if count_include_pad else (hi - lo)


def avg_pool2d(x, out, kernel, stride, pad, count_include_pad, nthreads):
    """Average pooling (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    H, W = x.shape[2:]
    Ho, Wo = out.shape[2:]
    hs0, he0, hdiv = _avg_bounds(Ho, H, kernel[0], stride[0], pad[0], count_include_pad)
    ws0, we0, wdiv = _avg_bounds(Wo, W, kernel[1], stride[1], pad[1], count_include_pad)
    _avg_pool2d(x, out, hs0, he0, ws0, we0, hdiv, wdiv, x.dtype.type(0))
    return out
