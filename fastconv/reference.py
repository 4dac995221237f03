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
    earlier ones (as PyTorch's CPU kernel does). A window with only -inf keeps its first
    position inside the input; a window that sees no input at all (possible with dilation
    on a small input) gives -inf at its first tap row and column at or after the input's
    start, as PyTorch does. Indices are flat positions ``h * W + w`` within the plane.

``avg_pool2d(x, out, kernel, stride, pad, count_include_pad, nthreads)``
    Windows are clipped to the padded input ``[-pad, size + pad)``; the divisor counts that
    clipped window (``count_include_pad=True``) or only its part inside the input.

The ``nthreads`` argument is ignored here (NumPy decides its own threading).

Non-finite input is legal for every kernel: ``inf * 0`` and ``inf - inf`` inside a sum give
NaN, and a float32 sum may overflow to inf, as in every backend. So each kernel computes
under ``np.errstate(invalid="ignore", over="ignore")`` (:func:`_nonfinite_legal`), and NumPy
raises no RuntimeWarning for what is the specified result.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import _tiling

__all__ = ["conv2d", "max_pool2d", "avg_pool2d", "locally_connected2d"]


def _nonfinite_legal(kernel):
    """``kernel`` run under ``np.errstate(invalid="ignore", over="ignore")``: NaN and inf
    in its sums are results, not errors (see the module docstring)."""
    @functools.wraps(kernel)
    def run(*args, **kwargs):
        with np.errstate(invalid="ignore", over="ignore"):
            return kernel(*args, **kwargs)
    return run


def _padded(x, pad, span, stride, out_hw, fill):
    """``x`` framed by ``fill`` so that every window of the output lies inside it (``x``
    itself when every window already does)."""
    N, C, H, W = x.shape
    pt, pl = pad
    Hp = max(H + pt, (out_hw[0] - 1) * stride[0] + span[0])
    Wp = max(W + pl, (out_hw[1] - 1) * stride[1] + span[1])
    if (pt, pl, Hp, Wp) == (0, 0, H, W):  # nothing to frame: no copy
        return x
    xp = np.full((N, C, Hp, Wp), fill, dtype=x.dtype)
    xp[:, :, pt : pt + H, pl : pl + W] = x
    return xp


def _windows(xp, kernel, stride, dilation, out_hw):
    """(N, C, Ho, Wo, kh, kw) strided view of the windows of a padded input."""
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    win = sliding_window_view(xp, span, axis=(2, 3))
    win = win[:, :, :: stride[0], :: stride[1], :: dilation[0], :: dilation[1]]
    return win[:, :, : out_hw[0], : out_hw[1]]


@_nonfinite_legal
def conv2d(x, w, b, out, stride, pad, dilation, groups, nthreads=None):
    """Grouped 2-D cross-correlation (the kernel contract above).

    Its work memory (the padded input, the windows einsum gathers, its result) is bounded:
    past ``_tiling.LIMIT`` bytes it runs on tiles of images or of output columns."""
    N, C, H, W = x.shape
    K, Cg, kh, kw = w.shape
    Ho, Wo = out.shape[2:]
    col = C * (H * stride[1] + Ho * kh * kw) + 2 * K * Ho  # elements per output column
    if col * Wo * N * x.itemsize > _tiling.LIMIT and _tiling.conv2d_tiled(
            _conv2d, x, w, b, out, stride, pad, dilation, groups, nthreads,
            (col + C * H * stride[1]) * x.itemsize):
        return out
    return _conv2d(x, w, b, out, stride, pad, dilation, groups)


def _conv2d(x, w, b, out, stride, pad, dilation, groups, nthreads=None):
    """:func:`conv2d` on the whole input at once."""
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


def _window_positions(H, W, kernel, stride, pad, dilation, out_hw, ow0=0):
    """Flat input position and validity of each window element, two (Ho, Wo, kh*kw) arrays,
    and the fallback position of each window (first tap row and column that are >= 0), for
    the output columns ``ow0 + [0, Wo)``."""
    ih = (np.arange(out_hw[0]) * stride[0] - pad[0])[:, None] + np.arange(kernel[0]) * dilation[0]
    iw = ((np.arange(out_hw[1]) + ow0) * stride[1] - pad[1])[:, None] \
        + np.arange(kernel[1]) * dilation[1]
    vh = (ih >= 0) & (ih < H)
    vw = (iw >= 0) & (iw < W)
    pos = ih[:, None, :, None] * W + iw[None, :, None, :]
    valid = vh[:, None, :, None] & vw[None, :, None, :]
    kk = kernel[0] * kernel[1]
    h0 = np.take_along_axis(ih, np.argmax(ih >= 0, axis=1)[:, None], axis=1)[:, 0]
    w0 = np.take_along_axis(iw, np.argmax(iw >= 0, axis=1)[:, None], axis=1)[:, 0]
    first = h0[:, None] * W + w0[None, :]
    return pos.reshape(out_hw + (kk,)), valid.reshape(out_hw + (kk,)), first


@_nonfinite_legal
def max_pool2d(x, out, idx, kernel, stride, pad, dilation, nthreads=None):
    """Max pooling with optional int64 indices (the kernel contract above)."""
    N, C, H, W = x.shape
    Ho, Wo = out.shape[2:]
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    xp = _padded(x, pad, span, stride, (Ho, Wo), -np.inf)
    win = _windows(xp, kernel, stride, dilation, (Ho, Wo))
    # reduced over the window view: no copy of the windows (issue 15); NaN propagates
    np.max(win, axis=(-2, -1), out=out)
    if idx is None:
        return out
    # the indices: their window copies and per-tap temporaries, tile by tile past
    # _tiling.LIMIT bytes (issue 15)
    kk = kernel[0] * kernel[1]
    col = C * Ho * (kk * (x.itemsize + 10) + 40)  # bytes per output column of one image
    todo = _tiling.tiles(N, Wo, col) if col * Wo * N > _tiling.LIMIT else [(0, N, 0, Wo)]
    for n0, n1, ow0, ow1 in todo:
        _max_indices(win[n0:n1, :, :, ow0:ow1], out[n0:n1, :, :, ow0:ow1],
                     idx[n0:n1, :, :, ow0:ow1], H, W, kernel, stride, pad, dilation, ow0)
    return out


def _max_indices(win, out, idx, H, W, kernel, stride, pad, dilation, ow0):
    """``idx`` of the windows ``win`` (N, C, Ho, Wo, kh, kw) of output columns
    ``ow0 + [0, Wo)``, whose maxima ``out`` holds."""
    N, C, Ho, Wo = out.shape
    win = win.reshape(N, C, Ho, Wo, -1)
    pos, valid, first = _window_positions(H, W, kernel, stride, pad, dilation, (Ho, Wo), ow0)
    isnan = np.isnan(win)
    kk = win.shape[-1]
    last_nan = kk - 1 - np.argmax(isnan[..., ::-1], axis=-1)
    with np.errstate(invalid="ignore"):
        is_max = (win == out[..., None]) & valid
    first_max = np.argmax(is_max, axis=-1)
    local = np.where(isnan.any(axis=-1), last_nan, first_max)
    pos_b = np.broadcast_to(pos, (N, C) + pos.shape)
    found = np.take_along_axis(pos_b, local[..., None], axis=-1)[..., 0]
    # a window that sees no input keeps its fallback position
    idx[...] = np.where(valid.any(axis=-1), found, first)
    return idx


@_nonfinite_legal
def avg_pool2d(x, out, kernel, stride, pad, count_include_pad, nthreads=None):
    """Average pooling (the kernel contract above)."""
    N, C, H, W = x.shape
    Ho, Wo = out.shape[2:]
    xp = _padded(x, pad, kernel, stride, (Ho, Wo), 0)
    win = _windows(xp, kernel, stride, (1, 1), (Ho, Wo))
    win.sum(axis=(-2, -1), out=out)  # the sums, then divided in place
    # the divisors, in blocks of at most _COUNT_BLOCK output positions (issue 15: no int64
    # arrays the length of a long row)
    bw = max(1, min(Wo, _COUNT_BLOCK))
    bh = max(1, _COUNT_BLOCK // bw)
    for h0 in range(0, Ho, bh):
        hcount = _counts(h0, min(Ho, h0 + bh), H, kernel[0], stride[0], pad[0],
                         count_include_pad)
        for w0 in range(0, Wo, bw):
            wcount = _counts(w0, min(Wo, w0 + bw), W, kernel[1], stride[1], pad[1],
                             count_include_pad)
            # exact: small ints
            out[:, :, h0:h0 + bh, w0:w0 + bw] /= np.multiply(hcount[:, None], wcount[None, :],
                                                             dtype=x.dtype)
    return out


_COUNT_BLOCK = 1 << 16


def _counts(o0, o1, size, k, stride, pad, count_include_pad):
    """The window sizes along one axis of outputs [o0, o1): with the padding (clipped at
    its far end) or, without, the input positions only."""
    s = np.arange(o0, o1) * stride - pad
    if count_include_pad:
        return np.minimum(s + k, size + pad) - s
    return np.minimum(s + k, size) - np.maximum(s, 0)


@_nonfinite_legal
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


# --------------------------------------------------------------------------------------------
# gradients (fastconv.grad). The kernel contract, shared by every backend:
#
# ``conv2d_input(gy, w, gx, stride, pad, dilation, groups, nthreads)``
#     ``gy`` (N, K, Ho, Wo), ``w`` (K, C // groups, kh, kw), ``gx`` (N, C, H, W): fills ``gx``
#     with the gradient of conv2d (implicit zero padding ``pad = (top, left)``) wrt its
#     input, i.e. the transposed convolution of ``gy``.
# ``conv2d_weight(x, gy, gw, stride, pad, dilation, groups, nthreads)``
#     ``x`` (N, C, H, W), ``gy`` (N, K, Ho, Wo), ``gw`` (K, C // groups, kh, kw): fills ``gw``
#     with the gradient of conv2d wrt its weight.
# ``max_pool2d_backward(gy, idx, gx, nthreads)``
#     ``idx`` int64 shaped like ``gy`` (N, C, Ho, Wo): flat positions in the (H, W) planes of
#     ``gx``, all in range. Fills ``gx`` with zeros plus ``gy`` added at ``idx`` (repeated
#     positions accumulate).
# ``avg_pool2d_backward(gy, gx, kernel, stride, pad, count_include_pad, nthreads)``
#     The adjoint of avg_pool2d: each ``gy / divisor`` is spread over its window's positions
#     inside the input. Fills ``gx``.
# --------------------------------------------------------------------------------------------
__all__ += ["conv2d_input", "conv2d_weight", "max_pool2d_backward", "avg_pool2d_backward"]


def _frame(shape, kernel, stride, dilation, pad, out_hw, dtype):
    """Zeros (N, C, Hp, Wp) framing the input at (pad) so that every window fits inside."""
    N, C, H, W = shape
    Hp = max(H + pad[0], (out_hw[0] - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1)
    Wp = max(W + pad[1], (out_hw[1] - 1) * stride[1] + dilation[1] * (kernel[1] - 1) + 1)
    return np.zeros((N, C, Hp, Wp), dtype)


def _scatter_windows(frame, cols, stride, dilation):
    """Add ``cols`` (N, C, kh, kw, Ho, Wo) into the windows of ``frame`` (col2im).

    The loop runs over the kh*kw kernel offsets only; each step adds a whole strided slice.
    """
    _, _, kh, kw, Ho, Wo = cols.shape
    for i in range(kh):
        h0 = i * dilation[0]
        for j in range(kw):
            w0 = j * dilation[1]
            frame[:, :, h0 : h0 + (Ho - 1) * stride[0] + 1 : stride[0],
                  w0 : w0 + (Wo - 1) * stride[1] + 1 : stride[1]] += cols[:, :, i, j]
    return frame


@_nonfinite_legal
def conv2d_input(gy, w, gx, stride, pad, dilation, groups, nthreads=None):
    """Gradient of conv2d wrt its input (the contract above): einsum, then col2im (tile by
    tile past ``_tiling.LIMIT`` bytes of columns)."""
    N, K, Ho, Wo = gy.shape
    _, Cg, kh, kw = w.shape
    H, W = gx.shape[2:]
    G, Kg = groups, K // groups
    gyg, wg = gy.reshape(N, G, Kg, Ho, Wo), w.reshape(G, Kg, Cg, kh, kw)
    frame = _frame(gx.shape, (kh, kw), stride, dilation, pad, (Ho, Wo), gx.dtype)
    # the columns (im2col's size): built and scattered tile by tile past _tiling.LIMIT bytes
    col = (G * Cg * kh * kw + K) * Ho * gx.itemsize  # bytes per output column of one image
    todo = _tiling.tiles(N, Wo, col) if col * Wo * N > _tiling.LIMIT else [(0, N, 0, Wo)]
    for n0, n1, ow0, ow1 in todo:
        cols = np.einsum("ngkhw,gkcij->ngcijhw", gyg[n0:n1, ..., ow0:ow1], wg, optimize=True)
        cols = cols.reshape(n1 - n0, G * Cg, kh, kw, Ho, ow1 - ow0)
        _scatter_windows(frame[n0:n1, :, :, ow0 * stride[1]:], cols, stride, dilation)
    gx[...] = frame[:, :, pad[0] : pad[0] + H, pad[1] : pad[1] + W]
    return gx


@_nonfinite_legal
def conv2d_weight(x, gy, gw, stride, pad, dilation, groups, nthreads=None):
    """Gradient of conv2d wrt its weight (the contract above): windows x grad_output, summed
    tile by tile past ``_tiling.LIMIT`` bytes of gathered windows."""
    N, C, H, W = x.shape
    K, Cg, kh, kw = gw.shape
    Ho, Wo = gy.shape[2:]
    G, Kg = groups, K // groups
    span = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    xp = _padded(x, pad, span, stride, (Ho, Wo), 0)
    win = _windows(xp, (kh, kw), stride, dilation, (Ho, Wo)).reshape(N, G, Cg, Ho, Wo, kh, kw)
    gyg = gy.reshape(N, G, Kg, Ho, Wo)
    # einsum gathers the windows it reads: summed over tiles of images or output columns
    # when they would pass _tiling.LIMIT bytes
    col = (C * Ho * kh * kw + K * Ho) * x.itemsize  # bytes per output column of one image
    todo = _tiling.tiles(N, Wo, col) if col * Wo * N > _tiling.LIMIT else [(0, N, 0, Wo)]
    res = 0
    for n0, n1, ow0, ow1 in todo:
        res = res + np.einsum("ngchwij,ngkhw->gkcij", win[n0:n1, :, :, :, ow0:ow1],
                              gyg[n0:n1, ..., ow0:ow1], optimize=True)
    gw[...] = res.reshape(K, Cg, kh, kw)
    return gw


@_nonfinite_legal
def max_pool2d_backward(gy, idx, gx, nthreads=None):
    """Gradient of max_pool2d: ``gy`` scattered (added) at ``idx`` (the contract above)."""
    N, C, H, W = gx.shape
    planes = np.arange(N * C, dtype=np.int64)[:, None] * (H * W)
    flat = np.zeros(N * C * H * W, gx.dtype)
    np.add.at(flat, (idx.reshape(N * C, -1) + planes).ravel(), gy.ravel())
    gx[...] = flat.reshape(gx.shape)
    return gx


@_nonfinite_legal
def avg_pool2d_backward(gy, gx, kernel, stride, pad, count_include_pad, nthreads=None):
    """Gradient of avg_pool2d (the contract above): ``gy / divisor`` spread over each window."""
    N, C, H, W = gx.shape
    Ho, Wo = gy.shape[2:]
    hs = np.arange(Ho) * stride[0] - pad[0]
    ws = np.arange(Wo) * stride[1] - pad[1]
    if count_include_pad:  # the window clipped to the padded input [-pad, size + pad)
        hcount = np.minimum(hs + kernel[0], H + pad[0]) - hs
        wcount = np.minimum(ws + kernel[1], W + pad[1]) - ws
    else:  # only its part inside the input
        hcount = np.minimum(hs + kernel[0], H) - np.maximum(hs, 0)
        wcount = np.minimum(ws + kernel[1], W) - np.maximum(ws, 0)
    q = gy / (hcount[:, None] * wcount[None, :]).astype(gx.dtype)
    cols = np.broadcast_to(q[:, :, None, None], (N, C) + tuple(kernel) + (Ho, Wo))
    frame = _frame(gx.shape, kernel, stride, (1, 1), pad, (Ho, Wo), gx.dtype)
    _scatter_windows(frame, cols, stride, (1, 1))
    gx[...] = frame[:, :, pad[0] : pad[0] + H, pad[1] : pad[1] + W]
    return gx


# ---- pool3d (issue 17) ----
# ``max_pool3d(x, out, idx, kernel, stride, pad, dilation, nthreads)``
#     ``x`` (N, C, D, H, W), ``out`` and ``idx`` (int64 or None) (N, C, Do, Ho, Wo): the rules
#     of max_pool2d along three axes; indices are flat positions ``(d * H + h) * W + w``
#     within each input volume, and a window that sees no input gets the position of its
#     first tap at or after the input's start on every axis (torch's).
# ``avg_pool3d(x, out, kernel, stride, pad, count_include_pad, divisor, nthreads)``
#     avg_pool2d's rules along three axes; ``divisor`` nonzero replaces the window count
#     (torch's ``divisor_override``), 0 keeps it.
# ``avg_pool3d_backward(gy, gx, kernel, stride, pad, count_include_pad, divisor, nthreads)``
#     its gradient: each ``gy / divisor`` spread over its window.
# Their work memory is bounded: they run on blocks of whole volumes (planes (n, c)) of at
# most about _POOL3D_BLOCK bytes of windows.
_POOL3D_BLOCK = 32 << 20
__all__ += ["max_pool3d", "avg_pool3d", "avg_pool3d_backward"]


def _volume_blocks(P, per_volume):
    """[(p0, p1)]: runs of the P volumes of about ``_POOL3D_BLOCK`` bytes each."""
    step = max(1, _POOL3D_BLOCK // max(1, per_volume))
    return [(p0, min(P, p0 + step)) for p0 in range(0, P, step)]


def _windows3d(xp, kernel, stride, dilation, out_sp):
    """(P, Do, Ho, Wo, kd, kh, kw) strided view of the windows of padded volumes xp (P, ...)."""
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    win = sliding_window_view(xp, span, axis=(1, 2, 3))
    win = win[:, :: stride[0], :: stride[1], :: stride[2],
              :: dilation[0], :: dilation[1], :: dilation[2]]
    return win[:, : out_sp[0], : out_sp[1], : out_sp[2]]


def _padded3d(x, pad, kernel, stride, dilation, out_sp, fill):
    """Volumes x (P, D, H, W) framed by ``fill`` so that every window lies inside."""
    sp = x.shape[1:]
    full = tuple(max(n + p, (o - 1) * s + d * (k - 1) + 1)
                 for n, p, o, s, d, k in zip(sp, pad, out_sp, stride, dilation, kernel))
    if full == sp and not any(pad):
        return x
    xp = np.full((x.shape[0],) + full, fill, dtype=x.dtype)
    xp[:, pad[0]:pad[0] + sp[0], pad[1]:pad[1] + sp[1], pad[2]:pad[2] + sp[2]] = x
    return xp


def _taps(n_out, size, k, s, p, d):
    """Input positions (n_out, k) of each output's taps along one axis, whether they lie in
    [0, size), and each output's first tap at or after 0 (torch's fallback position)."""
    pos = (np.arange(n_out) * s - p)[:, None] + np.arange(k) * d
    first = np.take_along_axis(pos, np.argmax(pos >= 0, axis=1)[:, None], axis=1)[:, 0]
    return pos, (pos >= 0) & (pos < size), first


@_nonfinite_legal
def max_pool3d(x, out, idx, kernel, stride, pad, dilation, nthreads=None):
    """3-D max pooling with optional int64 indices (the contract above)."""
    N, C, D, H, W = x.shape
    out_sp = out.shape[2:]
    P = N * C
    xv, ov = x.reshape((P, D, H, W)), out.reshape((P,) + out_sp)
    iv = None if idx is None else idx.reshape((P,) + out_sp)
    kk = kernel[0] * kernel[1] * kernel[2]
    if iv is not None:
        td, vd, fd = _taps(out_sp[0], D, kernel[0], stride[0], pad[0], dilation[0])
        th, vh, fh = _taps(out_sp[1], H, kernel[1], stride[1], pad[1], dilation[1])
        tw, vw, fw = _taps(out_sp[2], W, kernel[2], stride[2], pad[2], dilation[2])
        # (Do, Ho, Wo, kd * kh * kw): flat position and validity of every tap
        pos = ((td[:, None, None, :, None, None] * H + th[None, :, None, None, :, None]) * W
               + tw[None, None, :, None, None, :]).reshape(out_sp + (kk,))
        valid = (vd[:, None, None, :, None, None] & vh[None, :, None, None, :, None]
                 & vw[None, None, :, None, None, :]).reshape(out_sp + (kk,))
        first = (fd[:, None, None] * H + fh[None, :, None]) * W + fw[None, None, :]
        seen = valid.any(axis=-1)
    per = D * H * W * x.itemsize + int(np.prod(out_sp)) * kk * (x.itemsize + 10)
    for p0, p1 in _volume_blocks(P, per):
        xp = _padded3d(xv[p0:p1], pad, kernel, stride, dilation, out_sp, -np.inf)
        win = _windows3d(xp, kernel, stride, dilation, out_sp)
        np.max(win, axis=(-3, -2, -1), out=ov[p0:p1])  # NaN propagates
        if iv is None:
            continue
        w = win.reshape(win.shape[:4] + (kk,))
        isnan = np.isnan(w)
        last_nan = kk - 1 - np.argmax(isnan[..., ::-1], axis=-1)  # the last NaN wins
        is_max = (w == ov[p0:p1, ..., None]) & valid
        local = np.where(isnan.any(axis=-1), last_nan, np.argmax(is_max, axis=-1))
        found = np.take_along_axis(np.broadcast_to(pos, w.shape), local[..., None],
                                   axis=-1)[..., 0]
        iv[p0:p1] = np.where(seen, found, first)  # a window that sees no input: its fallback
    return out


def _counts3d(out_sp, sizes, kernel, stride, pad, count_include_pad, divisor, dtype):
    """(Do, Ho, Wo) divisors: ``divisor`` when nonzero, else the product of the windows'
    sizes along each axis (:func:`_counts`)."""
    if divisor:
        return np.full(out_sp, divisor, dtype)
    c = [_counts(0, o, n, k, s, p, count_include_pad)
         for o, n, k, s, p in zip(out_sp, sizes, kernel, stride, pad)]
    return (c[0][:, None, None] * c[1][None, :, None] * c[2][None, None, :]).astype(dtype)


@_nonfinite_legal
def avg_pool3d(x, out, kernel, stride, pad, count_include_pad, divisor, nthreads=None):
    """3-D average pooling (the contract above)."""
    N, C, D, H, W = x.shape
    out_sp = out.shape[2:]
    P = N * C
    xv, ov = x.reshape((P, D, H, W)), out.reshape((P,) + out_sp)
    div = _counts3d(out_sp, (D, H, W), kernel, stride, pad, count_include_pad, divisor,
                    x.dtype)
    for p0, p1 in _volume_blocks(P, 2 * D * H * W * x.itemsize):
        xp = _padded3d(xv[p0:p1], pad, kernel, stride, (1, 1, 1), out_sp, 0)
        win = _windows3d(xp, kernel, stride, (1, 1, 1), out_sp)
        o = ov[p0:p1]
        win.sum(axis=(-3, -2, -1), out=o)
        o /= div
    return out


@_nonfinite_legal
def avg_pool3d_backward(gy, gx, kernel, stride, pad, count_include_pad, divisor,
                        nthreads=None):
    """Gradient of avg_pool3d (the contract above): ``gy / divisor`` spread over each
    window, tap by tap of the kernel (a loop over its kd * kh * kw taps, not over pixels)."""
    N, C, D, H, W = gx.shape
    out_sp = gy.shape[2:]
    P = N * C
    div = _counts3d(out_sp, (D, H, W), kernel, stride, pad, count_include_pad, divisor,
                    gx.dtype)
    full = tuple(max(n + p, (o - 1) * s + k)
                 for n, p, o, s, k in zip((D, H, W), pad, out_sp, stride, kernel))
    gyv, gxv = gy.reshape((P,) + out_sp), gx.reshape((P, D, H, W))
    for p0, p1 in _volume_blocks(P, 2 * int(np.prod(full)) * gx.itemsize):
        q = gyv[p0:p1] / div
        frame = np.zeros((p1 - p0,) + full, gx.dtype)
        for a in range(kernel[0]):
            for b in range(kernel[1]):
                for c in range(kernel[2]):
                    frame[:, a:a + (out_sp[0] - 1) * stride[0] + 1:stride[0],
                          b:b + (out_sp[1] - 1) * stride[1] + 1:stride[1],
                          c:c + (out_sp[2] - 1) * stride[2] + 1:stride[2]] += q
        gxv[p0:p1] = frame[:, pad[0]:pad[0] + D, pad[1]:pad[1] + H, pad[2]:pad[2] + W]
    return gx


# ---- fold (issue 17) ----
# ``unfold(x, out, kernel, dilation, pad, stride, blocks, nthreads)``
#     ``x`` (N, C, H, W) -> ``out`` (N, C * kh * kw, Ho * Wo), ``blocks = (Ho, Wo)``: row
#     ``(c * kh + i) * kw + j``, column ``oh * Wo + ow`` holds
#     ``x[n, c, oh * sh - ph + i * dh, ow * sw - pw + j * dw]``, zero outside the input.
# ``fold(cols, out, kernel, dilation, pad, stride, blocks, nthreads)``
#     Its adjoint: ``out`` (N, C, H, W) is zeroed, then every element of ``cols`` is added
#     at the position ``unfold`` read it from (positions in the padding are dropped).
# ``max_unpool(x, idx, out, nthreads)``
#     ``x``, ``idx`` (N, C, P) (int64 flat positions in [0, Q), checked by the spec),
#     ``out`` (N, C, Q): zeroed, then ``out[n, c, idx[n, c, p]] = x[n, c, p]`` in the order
#     of p (a repeated index keeps the last value, as torch's CPU kernel).
# ``max_unpool_backward(gy, idx, gx, nthreads)``
#     The gather: ``gx[n, c, p] = gy[n, c, idx[n, c, p]]``.
def _fold_taps(size, kernel, dilation, pad, stride, blocks):
    """[(i, j, blocks_rows, blocks_cols, rows, cols)] for every tap (i, j): the block rows
    and columns whose tap falls inside the ``size`` (H, W) plane, and the plane rows and
    columns they read there (each increasing: no position twice)."""
    taps = []
    for i in range(kernel[0]):
        ih = np.arange(blocks[0]) * stride[0] - pad[0] + i * dilation[0]
        br = np.flatnonzero((ih >= 0) & (ih < size[0]))
        for j in range(kernel[1]):
            iw = np.arange(blocks[1]) * stride[1] - pad[1] + j * dilation[1]
            bc = np.flatnonzero((iw >= 0) & (iw < size[1]))
            taps.append((i, j, br[:, None], bc[None, :], ih[br][:, None], iw[bc][None, :]))
    return taps


@_nonfinite_legal
def unfold(x, out, kernel, dilation, pad, stride, blocks, nthreads=None):
    """im2col (see the section's contract); fills and returns ``out``."""
    N, C, H, W = x.shape
    o = out.reshape(N, C, kernel[0], kernel[1], blocks[0], blocks[1])
    o[...] = 0
    for i, j, br, bc, rows, cols in _fold_taps((H, W), kernel, dilation, pad, stride, blocks):
        o[:, :, i, j, br, bc] = x[:, :, rows, cols]
    return out


@_nonfinite_legal
def fold(cols, out, kernel, dilation, pad, stride, blocks, nthreads=None):
    """col2im, the adjoint of :func:`unfold`; fills and returns ``out``."""
    N, C, H, W = out.shape
    c = cols.reshape(N, C, kernel[0], kernel[1], blocks[0], blocks[1])
    out[...] = 0
    for i, j, br, bc, rows, cs in _fold_taps((H, W), kernel, dilation, pad, stride, blocks):
        out[:, :, rows, cs] += c[:, :, i, j, br, bc]  # one tap reads no position twice
    return out


def max_unpool(x, idx, out, nthreads=None):
    """Scatter into zeros, the last of repeated indices winning; fills and returns ``out``."""
    N, C, P = x.shape
    Q = out.shape[2]
    flat = (np.arange(N * C, dtype=np.int64)[:, None] * Q + idx.reshape(N * C, P)).ravel()
    # the last occurrence of each position: the first one in the reversed order
    pos, first = np.unique(flat[::-1], return_index=True)
    out[...] = 0
    out.reshape(-1)[pos] = x.reshape(-1)[::-1][first]
    return out


def max_unpool_backward(gy, idx, gx, nthreads=None):
    """Gather ``gy`` at ``idx``; fills and returns ``gx``."""
    gx[...] = np.take_along_axis(gy, idx, axis=2)
    return gx
# ---- adaptive pools (issue 17) ----
# ``adaptive_avg_pool3d(x, out, nthreads)``, ``adaptive_max_pool3d(x, out, idx, nthreads)``
# and ``adaptive_avg_pool3d_backward(gy, gx, nthreads)``: ``x`` (N, C, D, H, W) and ``out``
# (N, C, Do, Ho, Wo) (1-D and 2-D calls have size-1 leading spatial axes); window ``i``
# along an axis of input size ``n`` and output size ``m`` is torch's
# ``[floor(i * n / m), ceil((i + 1) * n / m))`` (fastconv._spec.adaptive_windows). The
# average divides a window's sum by its size; the maximum follows max_pool2d's rules (the
# first maximum, the last NaN, a window of -inf keeps its first position) and its indices
# are flat within the volume, ``d * H * W + h * W + w``. The max-pool's gradient is
# max_pool2d_backward's on planes of one row (N, C, 1, D * H * W).
from ._spec import adaptive_windows as _adaptive_windows  # noqa: E402


def _adaptive_taps(size, out_size):
    """(start, taps, valid) along one axis: the windows' starts (m,), their tap positions
    (m, k) for k the longest window (clipped into the axis), and which taps are inside their
    window."""
    start, end = _adaptive_windows(size, out_size)
    k = int((end - start).max()) if out_size else 1
    taps = start[:, None] + np.arange(k)
    return start, np.minimum(taps, size - 1), taps < end[:, None]


def _adaptive_gather(x, out_shape, fill):
    """The windows of every output, ``fill`` where a window is shorter than the longest:
    (N, C, Do, Ho, Wo, kd * kh * kw), and each axis' (start, taps, valid)."""
    axes = [_adaptive_taps(n, m) for n, m in zip(x.shape[2:], out_shape[2:])]
    win = x
    for ax, (_, taps, _) in enumerate(axes):
        a = 2 + 2 * ax  # the axis being gathered, after the (out, tap) pairs before it
        win = np.take(win, taps.ravel(), axis=a).reshape(
            win.shape[:a] + taps.shape + win.shape[a + 1:])
    win = win.transpose(0, 1, 2, 4, 6, 3, 5, 7)  # (N, C, Do, Ho, Wo, kd, kh, kw)
    (_, _, vd), (_, _, vh), (_, _, vw) = axes
    valid = (vd[:, None, None, :, None, None] & vh[None, :, None, None, :, None]
             & vw[None, None, :, None, None, :])
    win = np.where(valid, win, fill)
    return win.reshape(win.shape[:5] + (int(np.prod(win.shape[5:])),)), axes


@_nonfinite_legal
def adaptive_avg_pool3d(x, out, nthreads=None):
    """Adaptive average pooling: each window's sum divided by its size."""
    win, axes = _adaptive_gather(x, out.shape, x.dtype.type(0))
    (_, _, vd), (_, _, vh), (_, _, vw) = axes
    size = (vd.sum(1)[:, None, None] * vh.sum(1)[None, :, None] * vw.sum(1)[None, None, :])
    out[...] = win.sum(axis=-1) / size.astype(x.dtype)
    return out


def adaptive_max_pool3d(x, out, idx, nthreads=None):
    """Adaptive max pooling, with (``idx`` not None) flat positions within the volume."""
    win, axes = _adaptive_gather(x, out.shape, x.dtype.type(-np.inf))
    nan = np.isnan(win)
    k = win.shape[-1]
    # the first maximum, unless there is a NaN: then the last NaN
    t = np.where(nan.any(axis=-1), k - 1 - np.argmax(nan[..., ::-1], axis=-1),
                 np.argmax(np.where(nan, -np.inf, win), axis=-1))
    out[...] = np.take_along_axis(win, t[..., None], axis=-1)[..., 0]
    if idx is not None:
        (sd, td, _), (sh, th, _), (sw, tw, _) = axes
        D, H, W = x.shape[2:]
        i, j, l = np.unravel_index(t, (td.shape[1], th.shape[1], tw.shape[1]))
        idx[...] = ((sd[:, None, None] + i) * H + sh[None, :, None] + j) * W \
            + sw[None, None, :] + l
    return out


def _adaptive_spread(g, axis, size):
    """The adjoint of summing each window along ``axis``: (…, m, …) -> (…, size, …), each
    window's value added onto every input position of the window (in a fixed order)."""
    m = g.shape[axis]
    start, end = _adaptive_windows(size, m)
    g = np.moveaxis(g, axis, 0)
    res = np.zeros((size,) + g.shape[1:], g.dtype)
    k = int((end - start).max()) if m else 0
    if k <= m:  # loop over the taps of the windows (no more than there are windows)
        for t in range(k):
            inside = start + t < end
            np.add.at(res, start[inside] + t, g[inside])
    else:  # loop over the windows (fewer than the taps of the longest one)
        for i in range(m):
            res[start[i]:end[i]] += g[i]
    return np.moveaxis(res, 0, axis)


@_nonfinite_legal
def adaptive_avg_pool3d_backward(gy, gx, nthreads=None):
    """Gradient of adaptive_avg_pool3d: each output's gradient divided by its window's size
    and spread over the window."""
    sizes = [np.diff(np.stack(_adaptive_windows(n, m)), axis=0)[0]
             for n, m in zip(gx.shape[2:], gy.shape[2:])]
    g = gy / (sizes[0][:, None, None] * sizes[1][None, :, None]
              * sizes[2][None, None, :]).astype(gy.dtype)
    for ax in range(3):
        g = _adaptive_spread(g, 2 + ax, gx.shape[2 + ax])
    gx[...] = g
    return gx


__all__ += ["adaptive_avg_pool3d", "adaptive_max_pool3d", "adaptive_avg_pool3d_backward"]


# ---- conv3d (issue 17) ----
# ``conv3d(x, w, b, out, stride, pad, dilation, groups, nthreads)``
#     The 3-D conv2d: ``x`` (N, C, D, H, W), ``w`` (K, C // groups, kd, kh, kw), ``b`` (K,),
#     ``out`` (N, K, Do, Ho, Wo); ``stride``, ``pad`` (front, top, left: implicit zeros) and
#     ``dilation`` 3-tuples. ``conv3d_input(gy, w, gx, ...)`` and
#     ``conv3d_weight(x, gy, gw, ...)`` are its gradients, with conv2d_input's and
#     conv2d_weight's contracts in 3-D.
__all__ += ["conv3d", "conv3d_input", "conv3d_weight"]

# bytes of gathered windows per einsum: the kernels below work in blocks of output depth
# planes past this
_BLOCK3_BYTES = 16 << 20


def _frame3(x, pad, w_shape, stride, dilation, out_sp):
    """``x`` (N, C, D, H, W) in a zero frame that holds every window of the output."""
    N, C = x.shape[:2]
    shape = (N, C) + tuple(
        max(s + p, (o - 1) * st + d * (k - 1) + 1) for s, p, o, st, d, k in
        zip(x.shape[2:], pad, out_sp, stride, dilation, w_shape[2:]))
    if shape == x.shape and not any(pad):
        return x
    xp = np.zeros(shape, x.dtype)
    xp[(slice(None), slice(None)) + tuple(slice(p, p + s) for p, s in
                                          zip(pad, x.shape[2:]))] = x
    return xp


def _windows3(xp, w_shape, stride, dilation, out_sp):
    """(N, C, Do, Ho, Wo, kd, kh, kw): every window of the framed input (a view)."""
    span = tuple(d * (k - 1) + 1 for d, k in zip(dilation, w_shape[2:]))
    win = sliding_window_view(xp, span, axis=(2, 3, 4))
    win = win[:, :, ::stride[0], ::stride[1], ::stride[2], ::dilation[0], ::dilation[1],
              ::dilation[2]]
    return win[:, :, :out_sp[0], :out_sp[1], :out_sp[2]]


def _depth_blocks(Do, per_plane_bytes):
    """[(od0, od1)]: output depth planes in blocks of at most ``_BLOCK3_BYTES`` (one plane
    at least)."""
    step = max(1, _BLOCK3_BYTES // max(1, per_plane_bytes))
    return [(a, min(Do, a + step)) for a in range(0, Do, step)]


@_nonfinite_legal
def conv3d(x, w, b, out, stride, pad, dilation, groups, nthreads=None):
    """3-D grouped cross-correlation (the contract above): einsum over the windows, in
    blocks of output depth planes."""
    N = x.shape[0]
    K, Cg = w.shape[:2]
    Do, Ho, Wo = out.shape[2:]
    G, Kg = groups, K // groups
    xp = _frame3(x, pad, w.shape, stride, dilation, out.shape[2:])
    win = _windows3(xp, w.shape, stride, dilation, out.shape[2:])
    plane = N * Cg * Ho * Wo * (w.size // K // Cg) * x.itemsize
    for g in range(G):
        wg = w[g * Kg:(g + 1) * Kg]
        for od0, od1 in _depth_blocks(Do, plane):
            out[:, g * Kg:(g + 1) * Kg, od0:od1] = np.einsum(
                "ncdhwijk,ocijk->nodhw", win[:, g * Cg:(g + 1) * Cg, od0:od1], wg,
                optimize=True)
    out += b.reshape(1, K, 1, 1, 1)
    return out


@_nonfinite_legal
def conv3d_input(gy, w, gx, stride, pad, dilation, groups, nthreads=None):
    """Gradient of conv3d wrt its input (the contract above): einsum, then each kernel
    tap's columns added into a zero frame (col2vol), in blocks of output depth planes."""
    N, K, Do, Ho, Wo = gy.shape
    _, Cg, kd, kh, kw = w.shape
    G, Kg = groups, K // groups
    sd, sh, sw = stride
    dd, dh, dw = dilation
    frame = np.zeros((N, gx.shape[1]) + tuple(
        max(s + p, (o - 1) * st + d * (k - 1) + 1) for s, p, o, st, d, k in
        zip(gx.shape[2:], pad, (Do, Ho, Wo), stride, dilation, w.shape[2:])), gx.dtype)
    plane = N * Cg * Ho * Wo * kd * kh * kw * gx.itemsize
    for g in range(G):
        wg = w[g * Kg:(g + 1) * Kg]
        fg = frame[:, g * Cg:(g + 1) * Cg]
        for od0, od1 in _depth_blocks(Do, plane):
            cols = np.einsum("nodhw,ocijk->ncijkdhw", gy[:, g * Kg:(g + 1) * Kg, od0:od1], wg,
                             optimize=True)
            n = od1 - od0
            for i in range(kd):
                d0 = od0 * sd + i * dd
                for j in range(kh):
                    for k in range(kw):
                        fg[:, :, d0:d0 + (n - 1) * sd + 1:sd,
                           j * dh:j * dh + (Ho - 1) * sh + 1:sh,
                           k * dw:k * dw + (Wo - 1) * sw + 1:sw] += cols[:, :, i, j, k]
    D, H, W = gx.shape[2:]
    gx[...] = frame[:, :, pad[0]:pad[0] + D, pad[1]:pad[1] + H, pad[2]:pad[2] + W]
    return gx


@_nonfinite_legal
def conv3d_weight(x, gy, gw, stride, pad, dilation, groups, nthreads=None):
    """Gradient of conv3d wrt its weight (the contract above): windows x grad_output,
    summed over blocks of output depth planes."""
    N = x.shape[0]
    K, Cg = gw.shape[:2]
    Do, Ho, Wo = gy.shape[2:]
    G, Kg = groups, K // groups
    xp = _frame3(x, pad, gw.shape, stride, dilation, (Do, Ho, Wo))
    win = _windows3(xp, gw.shape, stride, dilation, (Do, Ho, Wo))
    plane = N * Cg * Ho * Wo * (gw.size // K // Cg) * x.itemsize
    for g in range(G):
        res = 0
        for od0, od1 in _depth_blocks(Do, plane):
            res = res + np.einsum("ncdhwijk,nodhw->ocijk", win[:, g * Cg:(g + 1) * Cg, od0:od1],
                                  gy[:, g * Kg:(g + 1) * Kg, od0:od1], optimize=True)
        gw[g * Kg:(g + 1) * Kg] = res
    return gw


# ---- ndimage (issue 18) ----
def nd_symmetry(w):
    """scipy's NI_Correlate1D test of the weights: 1 when symmetric (odd length, ``w[j] ==
    w[k-1-j]`` to within DBL_EPSILON), -1 when antisymmetric, else 0."""
    k = len(w)
    if k % 2 == 0 or k == 1:
        return 0
    h, eps = k // 2, np.finfo(np.float64).eps
    # "not > eps", as scipy's C test: a NaN pair does not break the symmetry
    if all(not abs(w[j] - w[k - 1 - j]) > eps for j in range(h)):
        return 1
    if all(not abs(w[j] + w[k - 1 - j]) > eps for j in range(h)):
        return -1
    return 0


@_nonfinite_legal
def nd_correlate1d(x, w, idx, cval, out, nthreads=None):
    """fastconv.ndimage's 1-D correlation pass (the kernel contract of every backend).

    ``x`` and ``out``: C-contiguous ``(outer, n, inner)`` arrays of one float type; ``w``:
    the ``k`` float64 weights; ``idx``: the ``n + k - 1`` int64 source indices of the
    extended line (the boundary mode applied by :func:`fastconv._ndspec.pad`; -1 reads
    ``cval``). Fills ``out[o, i, c] = sum_j w[j] * x[o, idx[i + j], c]`` and returns it.
    The sums run in ``x``'s type: in float64 for float64 data, as scipy's; in float32 for
    float32 data, with the weights and cval rounded to float32 (scipy sums in float64 and
    rounds once: barring underflow and overflow, a float32 result is within ``(k + 2) *
    2**-24 * sum_j |w[j] e[j]|`` of the exact sum). The sum's order is scipy's: with symmetric (or antisymmetric) weights
    (:func:`nd_symmetry`, decided on the float64 weights) the centre tap, then ``(e[j] +-
    e[k-1-j]) * w[j]`` for ``j < k // 2``; otherwise the last tap, then the others in order.
    """
    n, k = out.shape[1], w.shape[0]
    if out.size == 0:
        return out
    fill = np.full(x.shape[:1] + (1,) + x.shape[2:], cval, dtype=x.dtype)
    ext = np.concatenate([x, fill], axis=1)[:, idx, :]  # index -1: the cval row
    ft = np.float32 if x.dtype == np.float32 else np.float64
    ext = ext.astype(ft, copy=False)
    sym = nd_symmetry(w)
    w = np.asarray(w).astype(ft)
    if sym:
        h = k // 2
        acc = ext[:, h:h + n, :] * w[h]
        for j in range(h):
            b = ext[:, k - 1 - j:k - 1 - j + n, :]
            acc += (ext[:, j:j + n, :] + b if sym > 0 else ext[:, j:j + n, :] - b) * w[j]
    else:
        acc = ext[:, k - 1:k - 1 + n, :] * w[k - 1]
        for j in range(k - 1):
            acc += ext[:, j:j + n, :] * w[j]
    out[...] = acc
    return out


@_nonfinite_legal
def nd_sepcorr(x, w0, idx0, w1, idx1, cval, out, nthreads=None):
    """Two passes of a separable correlation (the kernel contract of every backend): the
    :func:`nd_correlate1d` pass along axis 1 of ``x`` (``(outer, nx, inner)``) with ``w0``
    and ``idx0`` (``n + k0 - 1`` indices into ``nx``), its result stored in ``x``'s dtype,
    then the pass along axis 2 with ``w1`` and ``idx1`` (``inner + k1 - 1`` indices), into
    ``out`` (``(outer, n, inner)``). Fills and returns ``out``."""
    return _two_passes(nd_correlate1d, x, w0, idx0, w1, idx1, cval, out)


def _two_passes(kernel, x, w0, idx0, w1, idx1, cval, out):
    """``kernel`` along axis 1 of ``x``, its result stored in ``x``'s dtype, then along
    axis 2 of that, into ``out``."""
    if out.size == 0:
        return out
    outer, n, inner = out.shape
    mid = np.empty(out.shape, x.dtype)
    kernel(x, w0, idx0, cval, mid)
    kernel(mid.reshape(outer * n, inner, 1), w1, idx1, cval, out.reshape(outer * n, inner, 1))
    return out


@_nonfinite_legal
def nd_sepbox(x, size0, idx0, size1, idx1, cval, out, nthreads=None):
    """Two passes of a separable uniform filter (the kernel contract of every backend): the
    :func:`nd_uniform1d` pass of size ``size0`` along axis 1 of ``x`` (``(outer, n,
    inner)``; ``idx0`` its ``n + size0 - 1`` indices), its result stored in ``x``'s dtype,
    then the pass of size ``size1`` along axis 2 (``idx1``), into ``out`` (``x``'s shape).
    Fills and returns ``out``."""
    return _two_passes(nd_uniform1d, x, size0, idx0, size1, idx1, cval, out)


@_nonfinite_legal
def nd_uniform1d(x, size, idx, cval, out, nthreads=None):
    """fastconv.ndimage's uniform (box mean) pass, scipy's running sum: for each line of
    the extended input ``e`` (as :func:`nd_correlate1d`'s, ``k = size``), in float64,
    ``t = e[0] + ... + e[size - 1]``, then ``t += e[i + size - 1] - e[i - 1]`` for each
    next output ``i``; output ``i`` is ``t / size``: scipy's operations in scipy's order,
    so integer outputs truncate as scipy's do. Fills and returns ``out``."""
    n = x.shape[1]
    if out.size == 0:
        return out
    fill = np.full(x.shape[:1] + (1,) + x.shape[2:], cval, dtype=x.dtype)
    ext = np.concatenate([x, fill], axis=1)[:, idx, :].astype(np.float64)
    t = np.zeros((x.shape[0], x.shape[2]))
    for j in range(size):
        t += ext[:, j, :]
    out[:, 0, :] = t / size
    for i in range(1, n):
        t += ext[:, i + size - 1, :] - ext[:, i - 1, :]
        out[:, i, :] = t / size
    return out


@_nonfinite_legal
def nd_correlate(xp, base, offs, w, out, nthreads=None):
    """fastconv.ndimage's n-D correlation, on the padded input ``xp`` (flat, contiguous):
    ``out[r, c] = sum_j w[j] * xp[base[r] + offs[j] + c]`` (``out`` is ``(R, W)``: the
    output's lines along its last axis; ``base[r]`` the flat index of line ``r``'s first
    element in ``xp``, ``offs[j]`` tap ``j``'s flat offset; ``w`` float64, the sums in
    float64). Fills and returns ``out``."""
    if out.size == 0:
        return out
    cols = np.arange(out.shape[1])
    acc = np.zeros(out.shape)
    for j in range(len(w)):
        acc += w[j] * xp[base[:, None] + offs[j] + cols].astype(np.float64)
    out[...] = acc
    return out
# ---- rank filters (issue 18) ----
def rank_filter_nd(xp, footprint, rank):
    """The ``rank``-th smallest value (``-1``: the largest) over each window of the padded
    array ``xp``: window ``i`` covers ``xp[i : i + footprint.shape]`` (the footprint's
    leading axes), restricted to ``footprint``'s True entries. The contract of
    fastconv._ndrank's kernels (min: rank 0, max: rank -1, median: rank count // 2)."""
    import numpy as _np
    from numpy.lib.stride_tricks import sliding_window_view

    footprint = _np.asarray(footprint, dtype=bool)
    win = sliding_window_view(xp, footprint.shape)          # (out..., fp...)
    vals = win[(Ellipsis,) + _np.nonzero(footprint)]        # (out..., count)
    return _np.sort(vals, axis=-1, kind="stable")[..., rank]
