"""Numba pooling kernels: one pass over each window, with PyTorch's NaN and tie rules.

The parallel loop runs over (image, channel) planes and calls a serial per-plane function:
Numba compiles a ``prange`` body into a gufunc that LLVM optimizes poorly, and a loop nest
in its own function is optimized as a plain loop (docs/guide/performance-notes.md). Window
bounds clipped to the input are computed once per call (vectorized, in the wrapper), so no
division runs per window: tables for the windows at the edges only (the interior ones take
every tap), so their size does not grow with the row or the plane (issue 15).
"""

import numba
import numpy as np
from numba import prange

from ._common import CACHE, flush_denormal, ftz_enter, ftz_exit, jit, use_threads

plane = numba.njit(cache=CACHE, nogil=True)


@plane
def _edge(q, lo, hi, k, t0s, t1s):
    """Taps [t0, t1) of output position q: every tap inside [lo, hi), else from the edge
    tables (see _tap_bounds)."""
    if q < lo:
        return t0s[q], t1s[q]
    if q < hi:
        return 0, k
    return t0s[q - hi + lo], t1s[q - hi + lo]


@plane
def _max_plane(xc, o, sh, sw, ph, pw, dh, dw, rows, cols, neg_inf):
    """Values only: no position bookkeeping in the loop."""
    Ho, Wo = o.shape
    hlo, hhi, kh, i0s, i1s = rows
    wlo, whi, kw, j0s, j1s = cols
    for oh in range(Ho):
        hs = oh * sh - ph
        i0, i1 = _edge(oh, hlo, hhi, kh, i0s, i1s)
        for ow in range(Wo):
            ws = ow * sw - pw
            j0, j1 = _edge(ow, wlo, whi, kw, j0s, j1s)
            best = neg_inf
            for i in range(i0, i1):
                xrow = xc[hs + i * dh]
                for j in range(j0, j1):
                    v = xrow[ws + j * dw]
                    if v > best or v != v:
                        best = v
            o[oh, ow] = best


@plane
def _max_plane_idx(xc, o, ic, sh, sw, ph, pw, dh, dw, rows, cols, neg_inf):
    Ho, Wo = o.shape
    W = xc.shape[1]
    hlo, hhi, kh, i0s, i1s = rows
    wlo, whi, kw, j0s, j1s = cols
    for oh in range(Ho):
        hs = oh * sh - ph
        i0, i1 = _edge(oh, hlo, hhi, kh, i0s, i1s)
        for ow in range(Wo):
            ws = ow * sw - pw
            j0, j1 = _edge(ow, wlo, whi, kw, j0s, j1s)
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
def _max_pool2d(x, out, idx, want_idx, sh, sw, ph, pw, dh, dw, rows, cols, neg_inf, ftz):
    N, C = x.shape[0], x.shape[1]
    for p in prange(N * C):
        _old_csr = ftz_enter(ftz)
        n = p // C
        c = p % C
        if want_idx:
            _max_plane_idx(x[n, c], out[n, c], idx[n, c], sh, sw, ph, pw, dh, dw, rows, cols,
                           neg_inf)
        else:
            _max_plane(x[n, c], out[n, c], sh, sw, ph, pw, dh, dw, rows, cols, neg_inf)
        ftz_exit(_old_csr)
    return out


@plane
def _avg_edge(q, s, p, k, bounds):
    """Input range [lo, hi) and divisor of output position q: the whole window inside
    [q0, q1) of the bounds, else from their edge tables (see _avg_bounds)."""
    q0, q1, lo, hi, div = bounds
    if q < q0:
        return lo[q], hi[q], div[q]
    if q < q1:
        return q * s - p, q * s - p + k, k
    return lo[q - q1 + q0], hi[q - q1 + q0], div[q - q1 + q0]


@plane
def _avg_plane(xc, o, sh, sw, ph, pw, kh, kw, rows, cols, zero):
    Ho, Wo = o.shape
    for oh in range(Ho):
        hs0, he0, hdiv = _avg_edge(oh, sh, ph, kh, rows)
        for ow in range(Wo):
            ws0, we0, wdiv = _avg_edge(ow, sw, pw, kw, cols)
            acc = zero  # accumulate in the input's own dtype
            for ih in range(hs0, he0):
                xrow = xc[ih]
                for iw in range(ws0, we0):
                    acc += xrow[iw]
            o[oh, ow] = acc / (hdiv * wdiv)


@jit
def _avg_pool2d(x, out, sh, sw, ph, pw, kh, kw, rows, cols, zero, ftz):
    N, C = x.shape[0], x.shape[1]
    for p in prange(N * C):
        _old_csr = ftz_enter(ftz)
        n = p // C
        c = p % C
        _avg_plane(x[n, c], out[n, c], sh, sw, ph, pw, kh, kw, rows, cols, zero)
        ftz_exit(_old_csr)
    return out


def _inside(n_out, size, span, s, p):
    """The output positions [lo, hi) whose window (``span`` inputs from ``q * s - p``) lies
    inside [0, size), and the others (the lo before, the n_out - hi after) as an array."""
    lo = min(n_out, -(-p // s))
    hi = max(lo, min(n_out, (size - span + p) // s + 1))
    return lo, hi, np.concatenate([np.arange(lo), np.arange(hi, n_out)]).astype(np.int64)


def _tap_bounds(n_out, size, k, s, p, d):
    """``(lo, hi, k, t0, t1)``: output positions [lo, hi) take every tap; for the others (the
    edges, in the order of :func:`_inside`), the first and last+1 kernel tap whose input
    lies in [0, size)."""
    lo, hi, edge = _inside(n_out, size, d * (k - 1) + 1, s, p)
    start = edge * s - p
    t0 = np.where(start >= 0, 0, (-start + d - 1) // d)
    t1 = np.minimum(k, (size - 1 - start) // d + 1)
    return lo, hi, np.int64(k), t0, t1


_NO_INDICES = np.zeros((1, 1, 1, 1), np.int64)


def max_pool2d(x, out, idx, kernel, stride, pad, dilation, nthreads):
    """Max pooling (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    H, W = x.shape[2:]
    Ho, Wo = out.shape[2:]
    rows = _tap_bounds(Ho, H, kernel[0], stride[0], pad[0], dilation[0])
    cols = _tap_bounds(Wo, W, kernel[1], stride[1], pad[1], dilation[1])
    want = idx is not None
    _max_pool2d(x, out, idx if want else _NO_INDICES, want, *stride, *pad, *dilation,
                rows, cols, x.dtype.type(-np.inf), flush_denormal())
    return out


def _avg_bounds(n_out, size, k, s, p, count_include_pad):
    """``(q0, q1, lo, hi, div)``: output positions [q0, q1) have their whole window inside
    (divisor k); for the others (the edges, in the order of :func:`_inside`), the input
    range [lo, hi) and the divisor."""
    q0, q1, edge = _inside(n_out, size, k, s, p)
    start = edge * s - p
    end = np.minimum(start + k, size + p)  # windows are clipped to the padded input
    lo, hi = np.maximum(start, 0), np.minimum(end, size)
    return q0, q1, lo, hi, (end - start) if count_include_pad else (hi - lo)


def avg_pool2d(x, out, kernel, stride, pad, count_include_pad, nthreads):
    """Average pooling (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    H, W = x.shape[2:]
    Ho, Wo = out.shape[2:]
    rows = _avg_bounds(Ho, H, kernel[0], stride[0], pad[0], count_include_pad)
    cols = _avg_bounds(Wo, W, kernel[1], stride[1], pad[1], count_include_pad)
    _avg_pool2d(x, out, *stride, *pad, np.int64(kernel[0]), np.int64(kernel[1]), rows, cols,
                x.dtype.type(0), flush_denormal())
    return out
