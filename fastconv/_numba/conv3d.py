"""Numba conv3d kernels (issue 17; contract: the conv3d section of :mod:`fastconv.reference`).

``conv3d(x, w, b, out, stride, pad, dilation, groups, algo, nthreads)``,
``conv3d_input(gy, w, gx, ...)`` and ``conv3d_weight(x, gy, gw, ...)``, with ``algo`` the
plan's choice (:func:`fastconv._plan.conv3d`):

* conv3d ``"gemm"``: one task per (image, group, output depth plane, block of output rows
  of at most ``_plan.NUMBA_TILE_BYTES`` of columns): vol2col into a private tile, then
  ``np.dot`` (BLAS, held at one thread by :func:`fastconv._dispatch.run`).
* conv3d ``"direct"``: one task per output plane (image, filter, depth), a row loop over
  the taps on the input framed by its zero padding.
* conv3d_input ``"direct"``: one task per input channel plane (image, channel), a
  transposed-convolution scatter into a private frame.
* conv3d_weight ``"direct"``: one task per (filter, channel) pair, every tap summed over
  the batch and the output in a fixed order.

Every task writes only its own outputs, in an order fixed by the shapes: results do not
depend on the thread count. The padding is always explicit (a zero frame), so inf * 0
gives NaN where torch does.
"""

import numpy as np
from numba import prange

from .. import _plan
from ..reference import _frame3 as _frame  # plain NumPy: the zero frame of the windows
from ._common import flush_denormal, ftz_enter, ftz_exit, jit, use_threads

__all__ = ["conv3d", "conv3d_input", "conv3d_weight"]


@jit
def _direct(xp, w, b, out, sd, sh, sw, dd, dh, dw, groups, ftz):
    N, K, Do, Ho, Wo = out.shape
    Cg, kd, kh, kw = w.shape[1], w.shape[2], w.shape[3], w.shape[4]
    Kg = K // groups
    for p in prange(N * K * Do):
        old = ftz_enter(ftz)
        n = p // (K * Do)
        k = (p // Do) % K
        od = p % Do
        c0 = (k // Kg) * Cg
        o = out[n, k, od]
        for oh in range(Ho):
            for ow in range(Wo):
                o[oh, ow] = b[k]
        for c in range(Cg):
            for i in range(kd):
                for j in range(kh):
                    for l in range(kw):
                        wv = w[k, c, i, j, l]
                        for oh in range(Ho):
                            xrow = xp[n, c0 + c, od * sd + i * dd, oh * sh + j * dh]
                            for ow in range(Wo):
                                o[oh, ow] += wv * xrow[ow * sw + l * dw]
        ftz_exit(old)


@jit
def _gemm(xp, w2, b, out, sd, sh, sw, dd, dh, dw, groups, kd, kh, kw, rows, ftz):
    N, K, Do, Ho, Wo = out.shape
    R = w2.shape[1]
    Cg = R // (kd * kh * kw)
    Kg = K // groups
    nb = (Ho + rows - 1) // rows
    for p in prange(N * groups * Do * nb):
        old = ftz_enter(ftz)
        n = p // (groups * Do * nb)
        g = (p // (Do * nb)) % groups
        od = (p // nb) % Do
        oh0 = (p % nb) * rows
        oh1 = min(Ho, oh0 + rows)
        P = (oh1 - oh0) * Wo
        col = np.empty((R, P), xp.dtype)
        r = 0
        for c in range(Cg):
            for i in range(kd):
                for j in range(kh):
                    for l in range(kw):
                        for oh in range(oh0, oh1):
                            xrow = xp[n, g * Cg + c, od * sd + i * dd, oh * sh + j * dh]
                            q = (oh - oh0) * Wo
                            for ow in range(Wo):
                                col[r, q + ow] = xrow[ow * sw + l * dw]
                        r += 1
        res = np.dot(w2[g * Kg:(g + 1) * Kg], col)
        for f in range(Kg):
            k = g * Kg + f
            for oh in range(oh0, oh1):
                q = (oh - oh0) * Wo
                for ow in range(Wo):
                    out[n, k, od, oh, ow] = res[f, q + ow] + b[k]
        ftz_exit(old)


def conv3d(x, w, b, out, stride, pad, dilation, groups, algo, nthreads):
    """Grouped 3-D cross-correlation (contract: :mod:`fastconv.reference`) by ``algo``,
    "direct" or "gemm" (see the module docstring)."""
    _plan.check("conv3d", "numba", algo)
    use_threads(nthreads)
    if out.shape[0] == 0:
        return out
    xp = _frame(x, pad, w.shape, stride, dilation, out.shape[2:])
    sd, sh, sw = stride
    dd, dh, dw = dilation
    if algo == _plan.GEMM:
        K, Cg, kd, kh, kw = w.shape
        R = Cg * kd * kh * kw
        rows = _plan.numba_gemm_rows(out.shape[3], R, out.shape[4], x.itemsize)
        _gemm(xp, w.reshape(K, R), b, out, sd, sh, sw, dd, dh, dw, groups, kd, kh, kw, rows,
              flush_denormal())
    else:
        _direct(xp, w, b, out, sd, sh, sw, dd, dh, dw, groups, flush_denormal())
    return out


@jit
def _input(gy, w, gxp, sd, sh, sw, dd, dh, dw, groups, ftz):
    N, K, Do, Ho, Wo = gy.shape
    Cg, kd, kh, kw = w.shape[1], w.shape[2], w.shape[3], w.shape[4]
    C = gxp.shape[1]
    Kg = K // groups
    for p in prange(N * C):
        old = ftz_enter(ftz)
        n = p // C
        c = p % C
        g = c // Cg
        cc = c % Cg
        f = gxp[n, c]
        f[...] = 0
        for kk in range(Kg):
            k = g * Kg + kk
            for i in range(kd):
                for j in range(kh):
                    for l in range(kw):
                        wv = w[k, cc, i, j, l]
                        for od in range(Do):
                            for oh in range(Ho):
                                frow = f[od * sd + i * dd, oh * sh + j * dh]
                                yrow = gy[n, k, od, oh]
                                for ow in range(Wo):
                                    frow[ow * sw + l * dw] += wv * yrow[ow]
        ftz_exit(old)


def conv3d_input(gy, w, gx, stride, pad, dilation, groups, algo, nthreads):
    """Gradient of conv3d wrt its input ("direct", see the module docstring)."""
    _plan.check("conv3d_input", "numba", algo)
    use_threads(nthreads)
    if gy.shape[0] == 0:
        gx[...] = 0
        return gx
    N, C = gx.shape[:2]
    shape = (N, C) + tuple(
        max(s + p, (o - 1) * st + d * (k - 1) + 1) for s, p, o, st, d, k in
        zip(gx.shape[2:], pad, gy.shape[2:], stride, dilation, w.shape[2:]))
    gxp = np.empty(shape, gx.dtype)
    _input(gy, w, gxp, *stride, *dilation, groups, flush_denormal())
    D, H, W = gx.shape[2:]
    gx[...] = gxp[:, :, pad[0]:pad[0] + D, pad[1]:pad[1] + H, pad[2]:pad[2] + W]
    return gx


@jit
def _weight(xp, gy, gw, sd, sh, sw, dd, dh, dw, groups, ftz):
    N, K, Do, Ho, Wo = gy.shape
    Cg, kd, kh, kw = gw.shape[1], gw.shape[2], gw.shape[3], gw.shape[4]
    Kg = K // groups
    for p in prange(K * Cg):
        old = ftz_enter(ftz)
        k = p // Cg
        c = p % Cg
        ca = (k // Kg) * Cg + c
        for i in range(kd):
            for j in range(kh):
                for l in range(kw):
                    s = 0.0
                    for n in range(N):
                        for od in range(Do):
                            for oh in range(Ho):
                                xrow = xp[n, ca, od * sd + i * dd, oh * sh + j * dh]
                                yrow = gy[n, k, od, oh]
                                for ow in range(Wo):
                                    s += yrow[ow] * xrow[ow * sw + l * dw]
                    gw[k, c, i, j, l] = s
        ftz_exit(old)


def conv3d_weight(x, gy, gw, stride, pad, dilation, groups, algo, nthreads):
    """Gradient of conv3d wrt its weight ("direct", see the module docstring)."""
    _plan.check("conv3d_weight", "numba", algo)
    use_threads(nthreads)
    if gy.shape[0] == 0:
        gw[...] = 0
        return gw
    xp = _frame(x, pad, gw.shape, stride, dilation, gy.shape[2:])
    _weight(xp, gy, gw, *stride, *dilation, groups, flush_denormal())
    return gw
