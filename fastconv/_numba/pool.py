"""Numba pooling kernels: one pass over each window, with PyTorch's NaN and tie rules."""

import numpy as np
from numba import prange

from ._common import jit, use_threads


@jit
def _max_pool2d(x, out, idx, want_idx, kh, kw, sh, sw, ph, pw, dh, dw, neg_inf):
    N, C, H, W = x.shape
    Ho, Wo = out.shape[2], out.shape[3]
    for p in prange(N * C):
        n = p // C
        c = p % C
        xc = x[n, c]
        for oh in range(Ho):
            hs = oh * sh - ph
            i0 = 0 if hs >= 0 else (-hs + dh - 1) // dh
            i1 = min(kh, (H - 1 - hs) // dh + 1)
            for ow in range(Wo):
                ws = ow * sw - pw
                j0 = 0 if ws >= 0 else (-ws + dw - 1) // dw
                j1 = min(kw, (W - 1 - ws) // dw + 1)
                best = neg_inf
                bidx = (hs + i0 * dh) * W + ws + j0 * dw
                for i in range(i0, i1):
                    ih = hs + i * dh
                    for j in range(j0, j1):
                        iw = ws + j * dw
                        v = xc[ih, iw]
                        # '>' keeps the first maximum; a NaN always takes over (the last wins)
                        if v > best or np.isnan(v):
                            best = v
                            bidx = ih * W + iw
                out[n, c, oh, ow] = best
                if want_idx:
                    idx[n, c, oh, ow] = bidx
    return out


@jit
def _avg_pool2d(x, out, kh, kw, sh, sw, ph, pw, count_include_pad, zero):
    N, C, H, W = x.shape
    Ho, Wo = out.shape[2], out.shape[3]
    for p in prange(N * C):
        n = p // C
        c = p % C
        xc = x[n, c]
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
                acc = zero  # accumulate in the input's own dtype
                for ih in range(hs2, he2):
                    for iw in range(ws2, we2):
                        acc += xc[ih, iw]
                if count_include_pad:
                    div = (he - hs) * (we - ws)
                else:
                    div = (he2 - hs2) * (we2 - ws2)
                out[n, c, oh, ow] = acc / div
    return out


_NO_INDICES = np.zeros((1, 1, 1, 1), np.int64)


def max_pool2d(x, out, idx, kernel, stride, pad, dilation, nthreads):
    """Max pooling (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    want = idx is not None
    _max_pool2d(
        x, out, idx if want else _NO_INDICES, want, *kernel, *stride, *pad, *dilation,
        x.dtype.type(-np.inf),
    )
    return out


def avg_pool2d(x, out, kernel, stride, pad, count_include_pad, nthreads):
    """Average pooling (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    _avg_pool2d(x, out, *kernel, *stride, *pad, bool(count_include_pad), x.dtype.type(0))
    return out
