"""Numba 3-D pooling kernels (contract: the pool3d section of :mod:`fastconv.reference`).

As :mod:`fastconv._numba.pool`: the parallel loop runs over work items and calls a serial
function (a loop nest in its own function is optimized as a plain loop). The forward
kernels' items are output slices (n, c, od), the backward kernel's input volumes (n, c).
Each output's taps inside the input, along each axis, come from the per-axis tables of
:mod:`fastconv._numba.pool` (entries for the windows at the edges only, so their size does
not grow with the row: issue 15), so no division runs per window. Taps are visited in the
reference order (depth, row, column), with PyTorch's NaN and tie rules; results do not
depend on the thread count.
"""

import numba
import numpy as np
from numba import prange

from ._common import CACHE, flush_denormal, ftz_enter, ftz_exit, jit, use_threads
from .pool import _avg_bounds, _avg_edge, _edge, _tap_bounds

__all__ = ["max_pool3d", "avg_pool3d", "avg_pool3d_backward"]

serial = numba.njit(cache=CACHE, nogil=True)


@serial
def _fallback(start, d):
    """The first tap ``start + t * d`` at or after 0 (torch's index for a window that sees
    no input)."""
    return start if start >= 0 else start + ((-start + d - 1) // d) * d


@serial
def _max_slice(xc, o, ic, want_idx, od, sd, sh, sw, pd, ph, pw, dd, dh, dw, bd, bh, bw,
               neg_inf):
    """One output slice ``o[od]`` (and ``ic[od]``) of the volume ``xc`` (D, H, W)."""
    H, W = xc.shape[1], xc.shape[2]
    Ho, Wo = o.shape[1], o.shape[2]
    ds = od * sd - pd
    a0, a1 = _edge(od, bd[0], bd[1], bd[2], bd[3], bd[4])
    for oh in range(Ho):
        hs = oh * sh - ph
        i0, i1 = _edge(oh, bh[0], bh[1], bh[2], bh[3], bh[4])
        for ow in range(Wo):
            ws = ow * sw - pw
            j0, j1 = _edge(ow, bw[0], bw[1], bw[2], bw[3], bw[4])
            best = neg_inf
            bi = -1
            for a in range(a0, a1):
                id_ = ds + a * dd
                for i in range(i0, i1):
                    ih = hs + i * dh
                    xrow = xc[id_, ih]
                    for j in range(j0, j1):
                        iw = ws + j * dw
                        v = xrow[iw]
                        # '>' keeps the first maximum; a NaN always takes over (the last wins)
                        if v > best or v != v or bi < 0:
                            best = v
                            bi = (id_ * H + ih) * W + iw
            o[od, oh, ow] = best
            if want_idx:
                if bi < 0:  # a window that sees no input
                    bi = ((_fallback(ds, dd) * H + _fallback(hs, dh)) * W
                          + _fallback(ws, dw))
                ic[od, oh, ow] = bi


@jit
def _max_pool3d(x, out, idx, want_idx, sd, sh, sw, pd, ph, pw, dd, dh, dw, bd, bh, bw,
                neg_inf, ftz):
    N, C, Do = out.shape[0], out.shape[1], out.shape[2]
    for item in prange(N * C * Do):
        _old_csr = ftz_enter(ftz)
        p = item // Do
        n = p // C
        c = p % C
        _max_slice(x[n, c], out[n, c], idx[n, c] if want_idx else idx[0, 0], want_idx,
                   item % Do, sd, sh, sw, pd, ph, pw, dd, dh, dw, bd, bh, bw, neg_inf)
        ftz_exit(_old_csr)
    return out


_NO_INDICES = np.zeros((1, 1, 1, 1, 1), np.int64)


def max_pool3d(x, out, idx, kernel, stride, pad, dilation, nthreads):
    """3-D max pooling (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    b = [_tap_bounds(o, n, k, s, p, d) for o, n, k, s, p, d in
         zip(out.shape[2:], x.shape[2:], kernel, stride, pad, dilation)]
    want = idx is not None
    _max_pool3d(x, out, idx if want else _NO_INDICES, want, *stride, *pad, *dilation, *b,
                x.dtype.type(-np.inf), flush_denormal())
    return out


@serial
def _avg_slice(xc, o, od, sd, sh, sw, pd, ph, pw, kd, kh, kw, bd, bh, bw, divisor, zero):
    """One output slice ``o[od]`` of the volume ``xc``: sums, divided by ``divisor`` when
    nonzero, else by the clipped windows' sizes."""
    Ho, Wo = o.shape[1], o.shape[2]
    d0, d1, cd = _avg_edge(od, sd, pd, kd, bd)
    for oh in range(Ho):
        h0, h1, ch = _avg_edge(oh, sh, ph, kh, bh)
        orow = o[od, oh]
        if d1 - d0 == 1 and h1 - h0 == 1:  # one input row (avg_pool1d): one loop less
            xrow = xc[d0, h0]
            for ow in range(Wo):
                w0, w1, cw = _avg_edge(ow, sw, pw, kw, bw)
                acc = zero
                for iw in range(w0, w1):
                    acc += xrow[iw]
                orow[ow] = acc / (divisor if divisor != 0 else cd * ch * cw)
            continue
        for ow in range(Wo):
            w0, w1, cw = _avg_edge(ow, sw, pw, kw, bw)
            acc = zero  # accumulate in the input's own dtype
            for id_ in range(d0, d1):
                for ih in range(h0, h1):
                    xrow = xc[id_, ih]
                    for iw in range(w0, w1):
                        acc += xrow[iw]
            orow[ow] = acc / (divisor if divisor != 0 else cd * ch * cw)


@jit
def _avg_pool3d(x, out, sd, sh, sw, pd, ph, pw, kd, kh, kw, bd, bh, bw, divisor, zero, ftz):
    N, C, Do = out.shape[0], out.shape[1], out.shape[2]
    for item in prange(N * C * Do):
        _old_csr = ftz_enter(ftz)
        p = item // Do
        _avg_slice(x[p // C, p % C], out[p // C, p % C], item % Do, sd, sh, sw, pd, ph, pw,
                   kd, kh, kw, bd, bh, bw, divisor, zero)
        ftz_exit(_old_csr)
    return out


def _avg_axes(out_sp, sizes, kernel, stride, pad, count_include_pad):
    """Per axis, :func:`fastconv._numba.pool._avg_bounds`."""
    return [_avg_bounds(o, n, k, s, p, count_include_pad)
            for o, n, k, s, p in zip(out_sp, sizes, kernel, stride, pad)]


def avg_pool3d(x, out, kernel, stride, pad, count_include_pad, divisor, nthreads):
    """3-D average pooling (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    b = _avg_axes(out.shape[2:], x.shape[2:], kernel, stride, pad, count_include_pad)
    _avg_pool3d(x, out, *stride, *pad, *(np.int64(k) for k in kernel), *b, np.int64(divisor),
                x.dtype.type(0), flush_denormal())
    return out


@serial
def _avg_back_volume(gyc, gxc, sd, sh, sw, pd, ph, pw, kd, kh, kw, bd, bh, bw, divisor, q):
    """The volume ``gxc`` (D, H, W): zeroed, then each ``gy / divisor`` added over its
    window, in output order."""
    D, H, W = gxc.shape
    Do, Ho, Wo = gyc.shape
    for id_ in range(D):
        for ih in range(H):
            for iw in range(W):
                gxc[id_, ih, iw] = 0
    for od in range(Do):
        d0, d1, cd = _avg_edge(od, sd, pd, kd, bd)
        for oh in range(Ho):
            h0, h1, ch = _avg_edge(oh, sh, ph, kh, bh)
            for ow in range(Wo):  # gy / divisor, rounded to the working dtype
                cw = _avg_edge(ow, sw, pw, kw, bw)[2]
                q[ow] = gyc[od, oh, ow] / (divisor if divisor != 0 else cd * ch * cw)
            for id_ in range(d0, d1):
                for ih in range(h0, h1):
                    grow = gxc[id_, ih]
                    for ow in range(Wo):
                        w0, w1, _ = _avg_edge(ow, sw, pw, kw, bw)
                        v = q[ow]
                        for iw in range(w0, w1):
                            grow[iw] += v


@jit
def _avg_pool3d_backward(gy, gx, sd, sh, sw, pd, ph, pw, kd, kh, kw, bd, bh, bw, divisor,
                         ftz):
    N, C = gx.shape[0], gx.shape[1]
    for p in prange(N * C):
        _old_csr = ftz_enter(ftz)
        q = np.empty(gy.shape[4], gx.dtype)
        _avg_back_volume(gy[p // C, p % C], gx[p // C, p % C], sd, sh, sw, pd, ph, pw, kd, kh,
                         kw, bd, bh, bw, divisor, q)
        ftz_exit(_old_csr)
    return gx


def avg_pool3d_backward(gy, gx, kernel, stride, pad, count_include_pad, divisor, nthreads):
    """Gradient of avg_pool3d (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    b = _avg_axes(gy.shape[2:], gx.shape[2:], kernel, stride, pad, count_include_pad)
    _avg_pool3d_backward(gy, gx, *stride, *pad, *(np.int64(k) for k in kernel), *b,
                         np.int64(divisor), flush_denormal())
    return gx
