"""Numba gradient kernels (contract: the gradient section of :mod:`fastconv.reference`).

Each parallel task owns its outputs and sums in a fixed order, so the results are bitwise
the same whatever the thread count:

* ``conv2d_input``: one task per input plane (n, c), a transposed-convolution scatter;
* ``conv2d_weight``: one task per (filter, input channel), accumulating into a private
  (kh, kw, Wo) buffer (a vectorizable elementwise update), reduced at the end;
* the pools: one task per plane (n, c).
"""

import numpy as np
from numba import prange

from ._common import jit, use_threads


@jit
def _conv2d_input(gy, w, gx, sh, sw, pt, pl, dh, dw, groups):
    N, K, Ho, Wo = gy.shape
    Cg, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    C, H, W = gx.shape[1], gx.shape[2], gx.shape[3]
    Kg = K // groups
    for p in prange(N * C):
        n = p // C
        c = p % C
        g = c // Cg
        cc = c % Cg
        gxc = gx[n, c]
        for ih in range(H):
            for iw in range(W):
                gxc[ih, iw] = 0
        for kk in range(Kg):
            k = g * Kg + kk
            gyk = gy[n, k]
            for i in range(kh):
                for oh in range(Ho):
                    ih = oh * sh - pt + i * dh
                    if ih < 0 or ih >= H:
                        continue
                    grow = gxc[ih]
                    yrow = gyk[oh]
                    for j in range(kw):
                        wv = w[k, cc, i, j]
                        off = j * dw - pl
                        # output columns whose input column ow*sw + off lies in [0, W)
                        ow0 = 0 if off >= 0 else (-off + sw - 1) // sw
                        ow1 = min(Wo, (W - 1 - off) // sw + 1) if W - 1 - off >= 0 else 0
                        if ow1 <= ow0:
                            continue
                        # slices, not ``grow[ow + off]``: an index that may be negative costs
                        # a wraparound check that stops vectorization (3x slower)
                        ys = yrow[ow0:ow1]
                        if sw == 1:
                            gs = grow[ow0 + off : ow1 + off]
                        else:
                            gs = grow[ow0 * sw + off : (ow1 - 1) * sw + off + 1 : sw]
                        for t in range(ow1 - ow0):
                            gs[t] += wv * ys[t]
    return gx


@jit
def _conv2d_weight(x, gy, gw, sh, sw, pt, pl, dh, dw, groups):
    N, C, H, W = x.shape
    K, Cg, kh, kw = gw.shape
    Ho, Wo = gy.shape[2], gy.shape[3]
    Kg = K // groups
    for p in prange(K * Cg):
        k = p // Cg
        cc = p % Cg
        c = (k // Kg) * Cg + cc
        acc = np.zeros((kh, kw, Wo), gw.dtype)  # this task's own: order fixed by the shape
        for n in range(N):
            xc = x[n, c]
            gyk = gy[n, k]
            for i in range(kh):
                for oh in range(Ho):
                    ih = oh * sh - pt + i * dh
                    if ih < 0 or ih >= H:
                        continue
                    xrow = xc[ih]
                    yrow = gyk[oh]
                    for j in range(kw):
                        off = j * dw - pl
                        # output columns whose input column ow*sw + off lies in [0, W)
                        ow0 = 0 if off >= 0 else (-off + sw - 1) // sw
                        ow1 = min(Wo, (W - 1 - off) // sw + 1) if W - 1 - off >= 0 else 0
                        if ow1 <= ow0:
                            continue
                        a = acc[i, j, ow0:ow1]
                        ys = yrow[ow0:ow1]
                        if sw == 1:
                            xs = xrow[ow0 + off : ow1 + off]
                        else:
                            xs = xrow[ow0 * sw + off : (ow1 - 1) * sw + off + 1 : sw]
                        for t in range(ow1 - ow0):
                            a[t] += ys[t] * xs[t]
        for i in range(kh):
            for j in range(kw):
                s = acc[i, j, 0]
                for ow in range(1, Wo):
                    s += acc[i, j, ow]
                gw[k, cc, i, j] = s
    return gw


@jit
def _max_pool2d_backward(gy, idx, gx):
    """``gy``, ``idx`` (N, C, Ho*Wo) and ``gx`` (N, C, H*W): planes flattened."""
    N, C, L = gy.shape
    P = gx.shape[2]
    for p in prange(N * C):
        n = p // C
        c = p % C
        g = gx[n, c]
        for q in range(P):
            g[q] = 0
        y = gy[n, c]
        ix = idx[n, c]
        for o in range(L):
            g[ix[o]] += y[o]
    return gx


@jit
def _avg_pool2d_backward(gy, gx, kh, kw, sh, sw, ph, pw, count_include_pad):
    N, C, H, W = gx.shape
    Ho, Wo = gy.shape[2], gy.shape[3]
    for p in prange(N * C):
        n = p // C
        c = p % C
        gxc = gx[n, c]
        for ih in range(H):
            for iw in range(W):
                gxc[ih, iw] = 0
        q = np.empty(Wo, gx.dtype)  # gy / divisor, rounded to the working dtype
        for oh in range(Ho):
            hs = oh * sh - ph
            he = min(hs + kh, H + ph)
            hs2 = max(hs, 0)
            he2 = min(he, H)
            for ow in range(Wo):
                ws = ow * sw - pw
                we = min(ws + kw, W + pw)
                if count_include_pad:
                    div = (he - hs) * (we - ws)
                else:
                    div = (he2 - hs2) * (min(we, W) - max(ws, 0))
                q[ow] = gy[n, c, oh, ow] / div
            for ih in range(hs2, he2):
                grow = gxc[ih]
                for ow in range(Wo):
                    ws = ow * sw - pw
                    ws2 = max(ws, 0)
                    gs = grow[ws2 : max(ws2, min(ws + kw, W))]
                    v = q[ow]
                    for t in range(gs.shape[0]):
                        gs[t] += v
    return gx


def conv2d_input(gy, w, gx, stride, pad, dilation, groups, nthreads):
    """Gradient of conv2d wrt its input (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    _conv2d_input(gy, w, gx, *stride, *pad, *dilation, groups)
    return gx


def conv2d_weight(x, gy, gw, stride, pad, dilation, groups, nthreads):
    """Gradient of conv2d wrt its weight (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    _conv2d_weight(x, gy, gw, *stride, *pad, *dilation, groups)
    return gw


def max_pool2d_backward(gy, idx, gx, nthreads):
    """Gradient of max_pool2d (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    N, C = gx.shape[:2]
    _max_pool2d_backward(gy.reshape(N, C, -1), idx.reshape(N, C, -1), gx.reshape(N, C, -1))
    return gx


def avg_pool2d_backward(gy, gx, kernel, stride, pad, count_include_pad, nthreads):
    """Gradient of avg_pool2d (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    _avg_pool2d_backward(gy, gx, *kernel, *stride, *pad, bool(count_include_pad))
    return gx
