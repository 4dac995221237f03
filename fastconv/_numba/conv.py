"""Numba convolution: a direct loop nest, and tiled im2col + GEMM for many channels."""

import numpy as np
from numba import prange

from ._common import jit, use_threads

# im2col tiles hold at most this many bytes, so the workspace is bounded whatever the batch.
_TILE_BYTES = 1 << 21


@jit
def _conv2d_direct(x, w, b, out, sh, sw, pt, pl, dh, dw, groups):
    N, C, H, W = x.shape
    K, Cg, kh, kw = w.shape
    Ho, Wo = out.shape[2], out.shape[3]
    Kg = K // groups
    for p in prange(N * K):
        n = p // K
        k = p % K
        g = k // Kg
        o = out[n, k]
        bk = b[k]
        for oh in range(Ho):
            for ow in range(Wo):
                o[oh, ow] = bk
        for c in range(Cg):
            xc = x[n, g * Cg + c]
            for i in range(kh):
                for oh in range(Ho):
                    ih = oh * sh - pt + i * dh
                    if ih < 0 or ih >= H:
                        continue
                    orow = o[oh]
                    xrow = xc[ih]
                    for j in range(kw):
                        wv = w[k, c, i, j]
                        off = j * dw - pl
                        # output columns whose input column ow*sw + off lies in [0, W)
                        ow0 = 0 if off >= 0 else (-off + sw - 1) // sw
                        ow1 = min(Wo, (W - 1 - off) // sw + 1) if W - 1 - off >= 0 else 0
                        if sw == 1:
                            for ow in range(ow0, ow1):
                                orow[ow] += wv * xrow[ow + off]
                        else:
                            for ow in range(ow0, ow1):
                                orow[ow] += wv * xrow[ow * sw + off]
    return out


@jit
def _conv2d_gemm(x, w2, b, out, sh, sw, pt, pl, dh, dw, groups, kh, kw, rows):
    """w2 is the weight as (K, Cg*kh*kw); ``rows`` output rows per tile (fixed per call)."""
    N, C, H, W = x.shape
    K = w2.shape[0]
    Ho, Wo = out.shape[2], out.shape[3]
    Kg = K // groups
    Cg = C // groups
    ckk = Cg * kh * kw
    ntiles = (Ho + rows - 1) // rows
    for t in prange(N * ntiles):
        n = t // ntiles
        oh0 = (t % ntiles) * rows
        oh1 = min(Ho, oh0 + rows)
        P = (oh1 - oh0) * Wo
        cols = np.empty((ckk, P), x.dtype)
        for g in range(groups):
            r = 0
            for c in range(Cg):
                xc = x[n, g * Cg + c]
                for i in range(kh):
                    for j in range(kw):
                        q = 0
                        for oh in range(oh0, oh1):
                            ih = oh * sh - pt + i * dh
                            for ow in range(Wo):
                                iw = ow * sw - pl + j * dw
                                if ih >= 0 and ih < H and iw >= 0 and iw < W:
                                    cols[r, q] = xc[ih, iw]
                                else:
                                    cols[r, q] = 0
                                q += 1
                        r += 1
            res = np.dot(w2[g * Kg : (g + 1) * Kg], cols)
            for kk in range(Kg):
                k = g * Kg + kk
                q = 0
                for oh in range(oh0, oh1):
                    for ow in range(Wo):
                        out[n, k, oh, ow] = res[kk, q] + b[k]
                        q += 1
    return out


def use_gemm(Cg, Kg, kh, kw):
    """Many input values per output (Cg*kh*kw) and many filters per group: GEMM pays off."""
    return Cg * kh * kw >= 32 and Kg >= 8


def conv2d(x, w, b, out, stride, pad, dilation, groups, nthreads):
    """Grouped 2-D cross-correlation (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    K, Cg, kh, kw = w.shape
    sh, sw = stride
    pt, pl = pad
    dh, dw = dilation
    if use_gemm(Cg, K // groups, kh, kw):
        Wo = out.shape[3]
        rows = max(1, min(out.shape[2], _TILE_BYTES // (Cg * kh * kw * Wo * x.itemsize)))
        w2 = w.reshape(K, Cg * kh * kw)
        _conv2d_gemm(x, w2, b, out, sh, sw, pt, pl, dh, dw, groups, kh, kw, rows)
    else:
        _conv2d_direct(x, w, b, out, sh, sw, pt, pl, dh, dw, groups)
    return out
