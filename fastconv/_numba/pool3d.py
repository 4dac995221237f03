"""Numba 3-D pooling kernels (contract: the pool3d section of :mod:`fastconv.reference`).

As :mod:`fastconv._numba.pool`: the parallel loop runs over work items and calls a serial
function (a loop nest in its own function is optimized as a plain loop). The forward
kernels' items are output slices (n, c, od), the backward kernel's input volumes (n, c).
Each output's taps inside the input, along each axis, come from small per-axis tables built
in the wrapper (one entry per output position of that axis), so no division runs per
window. Taps are visited in the reference order (depth, row, column), with PyTorch's NaN and
tie rules; results do not depend on the thread count.
"""

import numba
import numpy as np
from numba import prange

from ._common import CACHE, flush_denormal, ftz_enter, ftz_exit, jit, use_threads

__all__ = ["max_pool3d", "avg_pool3d", "avg_pool3d_backward"]

serial = numba.njit(cache=CACHE, nogil=True)


@serial
def _max_slice(xc, o, ic, want_idx, od, sd, sh, sw, pd, ph, pw, dd, dh, dw, bd, bh, bw,
               neg_inf):
    """One output slice ``o[od]`` (and ``ic[od]``) of the volume ``xc`` (D, H, W)."""
    H, W = xc.shape[1], xc.shape[2]
    Ho, Wo = o.shape[1], o.shape[2]
    a0, a1, fd = bd[0][od], bd[1][od], bd[2][od]
    ds = od * sd - pd
    for oh in range(Ho):
        i0, i1, fh = bh[0][oh], bh[1][oh], bh[2][oh]
        hs = oh * sh - ph
        for ow in range(Wo):
            j0, j1, fw = bw[0][ow], bw[1][ow], bw[2][ow]
            ws = ow * sw - pw
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
                # a window that sees no input: its first tap at or after the start, per axis
                ic[od, oh, ow] = bi if bi >= 0 else (fd * H + fh) * W + fw


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


def _axis_taps(n_out, size, k, s, p, d):
    """(t0, t1, first) int64 arrays over one axis's output positions: the taps [t0, t1)
    whose input lies in [0, size), and the first tap at or after 0 (torch's fallback)."""
    start = np.arange(n_out, dtype=np.int64) * s - p
    t0 = np.where(start >= 0, 0, (-start + d - 1) // d)
    t1 = np.minimum(k, np.maximum(0, (size - 1 - start) // d + 1))
    t1 = np.maximum(t0, t1)
    first = start + np.where(start >= 0, 0, (-start + d - 1) // d) * d
    return t0, t1, first


_NO_INDICES = np.zeros((1, 1, 1, 1, 1), np.int64)


def max_pool3d(x, out, idx, kernel, stride, pad, dilation, nthreads):
    """3-D max pooling (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    b = [_axis_taps(o, n, k, s, p, d) for o, n, k, s, p, d in
         zip(out.shape[2:], x.shape[2:], kernel, stride, pad, dilation)]
    want = idx is not None
    _max_pool3d(x, out, idx if want else _NO_INDICES, want, *stride, *pad, *dilation, *b,
                x.dtype.type(-np.inf), flush_denormal())
    return out


@serial
def _avg_slice(xc, o, od, sd, sh, sw, pd, ph, pw, bd, bh, bw, zero):
    """One output slice ``o[od]`` of the volume ``xc``: sums, divided by ``div``."""
    Ho, Wo = o.shape[1], o.shape[2]
    a0, a1, cd = bd[0][od], bd[1][od], bd[2][od]
    ds = od * sd - pd
    for oh in range(Ho):
        i0, i1, ch = bh[0][oh], bh[1][oh], bh[2][oh]
        hs = oh * sh - ph
        for ow in range(Wo):
            j0, j1, cw = bw[0][ow], bw[1][ow], bw[2][ow]
            ws = ow * sw - pw
            acc = zero  # accumulate in the input's own dtype
            for a in range(a0, a1):
                for i in range(i0, i1):
                    xrow = xc[ds + a, hs + i]
                    for j in range(j0, j1):
                        acc += xrow[ws + j]
            o[od, oh, ow] = acc / (cd * ch * cw)


@jit
def _avg_pool3d(x, out, sd, sh, sw, pd, ph, pw, bd, bh, bw, zero, ftz):
    N, C, Do = out.shape[0], out.shape[1], out.shape[2]
    for item in prange(N * C * Do):
        _old_csr = ftz_enter(ftz)
        p = item // Do
        _avg_slice(x[p // C, p % C], out[p // C, p % C], item % Do, sd, sh, sw, pd, ph, pw,
                   bd, bh, bw, zero)
        ftz_exit(_old_csr)
    return out


def _avg_axes(out_sp, sizes, kernel, stride, pad, count_include_pad, divisor):
    """Per axis (t0, t1, count) int64 arrays: the taps inside the input and the window's
    size along it; with a ``divisor``, the counts are 1, 1 and ``divisor``."""
    axes = []
    for ax, (o, n, k, s, p) in enumerate(zip(out_sp, sizes, kernel, stride, pad)):
        t0, t1, _ = _axis_taps(o, n, k, s, p, 1)
        start = np.arange(o, dtype=np.int64) * s - p
        if divisor:
            cnt = np.full(o, divisor if ax == 2 else 1, np.int64)
        elif count_include_pad:
            cnt = np.minimum(start + k, n + p) - start
        else:
            cnt = t1 - t0
        axes.append((t0, t1, cnt))
    return axes


def avg_pool3d(x, out, kernel, stride, pad, count_include_pad, divisor, nthreads):
    """3-D average pooling (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    b = _avg_axes(out.shape[2:], x.shape[2:], kernel, stride, pad, count_include_pad,
                  divisor)
    _avg_pool3d(x, out, *stride, *pad, *b, x.dtype.type(0), flush_denormal())
    return out


@serial
def _avg_back_volume(gyc, gxc, sd, sh, sw, pd, ph, pw, bd, bh, bw, q):
    """The volume ``gxc`` (D, H, W): zeroed, then each ``gy / divisor`` added over its
    window, in output order."""
    D, H, W = gxc.shape
    Do, Ho, Wo = gyc.shape
    for id_ in range(D):
        for ih in range(H):
            for iw in range(W):
                gxc[id_, ih, iw] = 0
    for od in range(Do):
        a0, a1, cd = bd[0][od], bd[1][od], bd[2][od]
        ds = od * sd - pd
        for oh in range(Ho):
            i0, i1, ch = bh[0][oh], bh[1][oh], bh[2][oh]
            hs = oh * sh - ph
            for ow in range(Wo):
                q[ow] = gyc[od, oh, ow] / (cd * ch * bw[2][ow])  # rounded to the dtype
            for a in range(a0, a1):
                for i in range(i0, i1):
                    grow = gxc[ds + a, hs + i]
                    for ow in range(Wo):
                        ws = ow * sw - pw
                        v = q[ow]
                        for j in range(bw[0][ow], bw[1][ow]):
                            grow[ws + j] += v


@jit
def _avg_pool3d_backward(gy, gx, sd, sh, sw, pd, ph, pw, bd, bh, bw, ftz):
    N, C = gx.shape[0], gx.shape[1]
    for p in prange(N * C):
        _old_csr = ftz_enter(ftz)
        q = np.empty(gy.shape[4], gx.dtype)
        _avg_back_volume(gy[p // C, p % C], gx[p // C, p % C], sd, sh, sw, pd, ph, pw, bd, bh,
                         bw, q)
        ftz_exit(_old_csr)
    return gx


def avg_pool3d_backward(gy, gx, kernel, stride, pad, count_include_pad, divisor, nthreads):
    """Gradient of avg_pool3d (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    b = _avg_axes(gy.shape[2:], gx.shape[2:], kernel, stride, pad, count_include_pad,
                  divisor)
    _avg_pool3d_backward(gy, gx, *stride, *pad, *b, flush_denormal())
    return gx
