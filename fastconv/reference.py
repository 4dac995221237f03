"""The readable NumPy kernels: fastconv's executable specification.

Every compiled kernel (Cython, Numba) is tested against these. They are vectorized with
``sliding_window_view`` and ``einsum``: no Python loop runs over pixels. They share the kernel
contract of every backend, spelled out once here:

``conv2d(x, w, b, out, stride, pad, dilation, groups, nthreads)``
    ``x`` (N, C, H, W), ``w`` (K, C // groups, kh, kw), ``b`` (K,), ``out`` (N, K, Ho, Wo):
    C-contiguous arrays of one float dtype, validated by :mod:`fastconv._spec`. Computes the
    cross-correlation with implicit zero padding ``pad = (top, left)``; the output size is
    ``out.shape`` (so asymmetric padding needs no extra argument). Fills ``out``.

``max_pool2d(x, out, idx, kernel, stride, pad, dilation, nthreads)``
    ``idx`` is an int64 array shaped like ``out``, or None. Padding is implicit -inf. Each
    window keeps the first maximum; a NaN wins over any number, and the last NaN wins over
    earlier ones (as PyTorch's CPU kernel does); a window with only -inf keeps its first
    position inside the input. Indices are flat positions ``h * W + w`` within the plane.

``avg_pool2d(x, out, kernel, stride, pad, count_include_pad, nthreads)``
    Windows are clipped to the padded input ``[-pad, size + pad)``; the divisor counts that
    clipped window (``count_include_pad=True``) or only its part inside the input.

The ``nthreads`` argument is ignored here (NumPy decides its own threading).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["conv2d", "max_pool2d", "avg_pool2d", "locally_connected2d"]


def _padded(x, pad, span, stride, out_hw, fill):
    """``x`` framed by ``fill`` so that every window of the output lies inside it."""
    N, C, H, W = x.shape
    pt, pl = pad
    Hp = max(H + pt, (out_hw[0] - 1) * stride[0] + span[0])
    Wp = max(W + pl, (out_hw[1] - 1) * stride[1] + span[1])
    xp = np.full((N, C, Hp, Wp), fill, dtype=x.dtype)
    xp[:, :, pt : pt + H, pl : pl + W] = x
    return xp


def _windows(xp, kernel, stride, dilation, out_hw):
    """(N, C, Ho, Wo, kh, kw) strided view of the windows of a padded input."""
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    win = sliding_window_view(xp, span, axis=(2, 3))
    win = win[:, :, :: stride[0], :: stride[1], :: dilation[0], :: dilation[1]]
    return win[:, :, : out_hw[0], : out_hw[1]]


def conv2d(x, w, b, out, stride, pad, dilation, groups, nthreads=None):
    """Grouped 2-D cross-correlation (the kernel contract above)."""
    N, C, H, W = x.shape
    K, Cg, kh, kw = w.shape
    Ho, Wo = out.shape[2:]
    span = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    xp = _padded(x, pad, span, stride, (Ho, Wo), 0)
    win = _windows(xp, (kh, kw), stride, dilation, (Ho, Wo))
    G, Kg = groups, K // groups
    win = win.reshape(N, G, Cg, Ho, Wo, kh, kw)
    wg = w.reshape(G, Kg, Cg, kh, kw)
    res = np.einsum("ngchwij,gkcij->ngkhw", win, wg, optimize=True)
    out[...] = res.reshape(N, K, Ho, Wo) + b[:, None, None]
    return out


def _window_positions(H, W, kernel, stride, pad, dilation, out_hw):
    """Flat input position and validity of each window element: two (Ho, Wo, kh*kw) arrays."""
    ih = (np.arange(out_hw[0]) * stride[0] - pad[0])[:, None] + np.arange(kernel[0]) * dilation[0]
    iw = (np.arange(out_hw[1]) * stride[1] - pad[1])[:, None] + np.arange(kernel[1]) * dilation[1]
    vh = (ih >= 0) & (ih < H)
    vw = (iw >= 0) & (iw < W)
    pos = ih[:, None, :, None] * W + iw[None, :, None, :]
    valid = vh[:, None, :, None] & vw[None, :, None, :]
    kk = kernel[0] * kernel[1]
    return pos.reshape(out_hw + (kk,)), valid.reshape(out_hw + (kk,))


def max_pool2d(x, out, idx, kernel, stride, pad, dilation, nthreads=None):
    """Max pooling with optional int64 indices (the kernel contract above)."""
    N, C, H, W = x.shape
    Ho, Wo = out.shape[2:]
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    xp = _padded(x, pad, span, stride, (Ho, Wo), -np.inf)
    win = _windows(xp, kernel, stride, dilation, (Ho, Wo)).reshape(N, C, Ho, Wo, -1)
    out[...] = win.max(axis=-1)  # NaN propagates through np.max
    if idx is None:
        return out
    pos, valid = _window_positions(H, W, kernel, stride, pad, dilation, (Ho, Wo))
    isnan = np.isnan(win)
    kk = win.shape[-1]
    last_nan = kk - 1 - np.argmax(isnan[..., ::-1], axis=-1)
    with np.errstate(invalid="ignore"):
        is_max = (win == out[..., None]) & valid
    first_max = np.argmax(is_max, axis=-1)
    local = np.where(isnan.any(axis=-1), last_nan, first_max)
    pos_b = np.broadcast_to(pos, (N, C) + pos.shape)
    idx[...] = np.take_along_axis(pos_b, local[..., None], axis=-1)[..., 0]
    return out


def avg_pool2d(x, out, kernel, stride, pad, count_include_pad, nthreads=None):
    """Average pooling (the kernel contract above)."""
    N, C, H, W = x.shape
    Ho, Wo = out.shape[2:]
    xp = _padded(x, pad, kernel, stride, (Ho, Wo), 0)
    win = _windows(xp, kernel, stride, (1, 1), (Ho, Wo))
    sums = win.sum(axis=(-2, -1))
    hs = np.arange(Ho) * stride[0] - pad[0]
    ws = np.arange(Wo) * stride[1] - pad[1]
    if count_include_pad:
        hcount = np.minimum(hs + kernel[0], H + pad[0]) - hs
        wcount = np.minimum(ws + kernel[1], W + pad[1]) - ws
    else:
        hcount = np.minimum(hs + kernel[0], H) - np.maximum(hs, 0)
        wcount = np.minimum(ws + kernel[1], W) - np.maximum(ws, 0)
    divisor = (hcount[:, None] * wcount[None, :]).astype(x.dtype)
    out[...] = sums / divisor
    return out


def locally_connected2d(x, w, b, out, stride, pad, nthreads=None):
    """Convolution without weight sharing: one filter per output position.

    ``w`` is (Ho, Wo, K, C, kh, kw); ``b`` is (K, Ho, Wo); padding is implicit zeros.
    """
    N, C, H, W = x.shape
    Ho, Wo, K, _, kh, kw = w.shape
    xp = _padded(x, pad, (kh, kw), stride, (Ho, Wo), 0)
    win = _windows(xp, (kh, kw), stride, (1, 1), (Ho, Wo))
    out[...] = np.einsum("nchwij,hwkcij->nkhw", win, w, optimize=True) + b
    return out
