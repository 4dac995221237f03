"""Numba convolution: direct loop nests (stride 1 and strided), and tiled im2col + GEMM for
many channels.

``conv2d(x, w, b, out, stride, pad, dilation, groups, algo, nthreads)`` runs the algorithm
``algo``, "direct" or "gemm": the plan's choice (``fastconv._plan.conv2d("numba", ...)``,
where the rule and its constants live), or one forced by a test or benchmark. "direct" is
the stride-1 kernel on a padded copy (:func:`_conv2d_flat`), the row kernel on 1-D layers
with few planes (:func:`_conv2d_row`: blocks of one long row over the threads) or the
strided loop nest (:func:`_conv2d_direct`); "gemm" copies whole row segments into im2col
tiles (zeros around them for the padding); at stride 1 with no padding, one contiguous run
of the flattened plane per tap (:func:`_conv2d_gemm`). A call whose work memory (one
output row of im2col columns; the padded copy of the input and the accumulator lines) would
pass ``fastconv._tiling.LIMIT`` runs tile by tile, every tile with ``algo``
(:func:`conv2d`).
The timings behind the design are in docs/guide/performance-notes.md.
"""

import functools

import numpy as np
from numba import prange

from .. import _plan, _tiling
from ._common import flush_denormal, ftz_enter, ftz_exit, jit, serial, use_threads

# output rows per work item of the stride-1 direct kernel (fixed: results never depend on it)
_FLAT_ROWS = _plan.NUMBA_FLAT_ROWS


@jit
def _conv2d_direct(x, w, b, out, sh, sw, pt, pl, dh, dw, groups, ftz):
    """Any stride: per output row, each kernel tap adds a (strided) input row segment."""
    N, C, H, W = x.shape
    K, Cg, kh, kw = w.shape
    Ho, Wo = out.shape[2], out.shape[3]
    Kg = K // groups
    for p in prange(N * K):
        _old_csr = ftz_enter(ftz)
        n = p // K
        k = p % K
        g = k // Kg
        for oh in range(Ho):
            orow = out[n, k, oh]
            for t in range(Wo):
                orow[t] = b[k]
            for c in range(Cg):
                ci = g * Cg + c
                for i in range(kh):
                    ih = oh * sh - pt + i * dh
                    if ih < 0 or ih >= H:
                        continue
                    xrow = x[n, ci, ih]
                    for j in range(kw):
                        wv = w[k, c, i, j]
                        off = j * dw - pl
                        # output columns whose input column ow*sw + off lies in [0, W)
                        ow0 = 0
                        if off < 0:
                            ow0 = (-off + sw - 1) // sw
                        ow1 = 0
                        if W - 1 - off >= 0:
                            ow1 = min(Wo, (W - 1 - off) // sw + 1)
                        # 1-D views indexed from 0 let LLVM drop the negative-index checks
                        o = orow[ow0:ow1]
                        s0 = ow0 * sw + off
                        for t in range(ow1 - ow0):
                            o[t] += wv * xrow[s0 + t * sw]
        ftz_exit(_old_csr)
    return out


@jit
def _conv2d_flat(xp, w, b, out, dh, dw, groups, rows, ftz):
    """Stride 1 on an explicitly padded input (N, C, Ho + dh*(kh-1), Wo + dw*(kw-1)).

    Each work item is one block of ``rows`` output rows of one (image, filter). Over the
    block, output row ``oh`` starts at flat offset ``oh * Wp`` of a scratch line, so every
    kernel tap is ONE long contiguous multiply-add over the flattened input plane (the
    ``Wp - Wo`` columns between rows are computed and dropped). Taps go three at a time to
    save loads and stores of the scratch line (:func:`_taps`).
    """
    N, C, Hp, Wp = xp.shape
    K, Cg, kh, _ = w.shape
    Ho, Wo = out.shape[2], out.shape[3]
    Kg = K // groups
    nrb = (Ho + rows - 1) // rows
    for p in prange(N * K * nrb):
        _old_csr = ftz_enter(ftz)
        rb = p % nrb
        k = (p // nrb) % K
        n = p // (nrb * K)
        g = k // Kg
        oh0 = rb * rows
        oh1 = min(Ho, oh0 + rows)
        L = (oh1 - oh0 - 1) * Wp + Wo
        acc = np.empty(L, xp.dtype)
        bk = b[k]
        for q in range(L):
            acc[q] = bk
        for c in range(Cg):
            xf = xp[n, g * Cg + c].ravel()
            for i in range(kh):
                _taps(acc, xf, (oh0 + i * dh) * Wp, w[k, c, i], dw)
        for oh in range(oh0, oh1):
            o = out[n, k, oh]
            a = acc[(oh - oh0) * Wp : (oh - oh0) * Wp + Wo]
            for t in range(Wo):
                o[t] = a[t]
        ftz_exit(_old_csr)
    return out


@serial
def _taps(acc, xr, s0, wr, dw):
    """``acc[q] += sum_j wr[j] * xr[s0 + j*dw + q]`` over one kernel row ``wr``, taps three
    at a time (saving loads and stores of ``acc``)."""
    L = acc.shape[0]
    kw = wr.shape[0]
    j = 0
    while j + 3 <= kw:
        w0 = wr[j]
        w1 = wr[j + 1]
        w2 = wr[j + 2]
        s = s0 + j * dw
        x0 = xr[s : s + L]
        x1 = xr[s + dw : s + dw + L]
        x2 = xr[s + 2 * dw : s + 2 * dw + L]
        for q in range(L):
            acc[q] += w0 * x0[q] + w1 * x1[q] + w2 * x2[q]
        j += 3
    while j < kw:
        w0 = wr[j]
        s = s0 + j * dw
        x0 = xr[s : s + L]
        for q in range(L):
            acc[q] += w0 * x0[q]
        j += 1


@jit
def _conv2d_row(x, w, b, out, pl, dw, groups, blk, ftz):
    """1-D layers (``_plan.conv_row``: one input row, a one-row kernel, one output row,
    stride 1). Each work item is a block of ``blk`` outputs of one (image, filter): its
    accumulator stays in L1 while every channel's taps add into it, so one long row spreads
    over the threads block by block, read in place. A block whose windows reach past the
    row's ends reads a zero-framed copy of its span instead (``inf * 0`` padding gives NaN,
    as in the reference). Each output's sum is the same whatever the thread count."""
    N, C, _, W = x.shape
    K, Cg, _, kw = w.shape
    Wo = out.shape[3]
    Kg = K // groups
    reach = (kw - 1) * dw
    nb = (Wo + blk - 1) // blk
    for p in prange(N * K * nb):
        _old_csr = ftz_enter(ftz)
        ob = p % nb
        k = (p // nb) % K
        n = p // (nb * K)
        g = k // Kg
        o0 = ob * blk
        L = min(Wo, o0 + blk) - o0
        i0 = o0 - pl  # the block's first input position (negative: in the padding)
        inside = i0 >= 0 and i0 + L + reach <= W
        acc = np.empty(L, x.dtype)
        bk = b[k]
        for q in range(L):
            acc[q] = bk
        span = np.empty(0 if inside else L + reach, x.dtype)
        for c in range(Cg):
            xr = x[n, g * Cg + c, 0]
            if inside:
                _taps(acc, xr, i0, w[k, c, 0], dw)
                continue
            a = max(0, i0)
            e = min(W, i0 + L + reach)
            for q in range(L + reach):
                span[q] = 0
            for q in range(a, e):
                span[q - i0] = xr[q]
            _taps(acc, span, 0, w[k, c, 0], dw)
        o = out[n, k, 0]
        for q in range(L):
            o[o0 + q] = acc[q]
        ftz_exit(_old_csr)
    return out


@jit
def _conv2d_gemm(x, w2, b, out, sh, sw, pt, pl, dh, dw, groups, kh, kw, rows, flat, ftz):
    """Tiled im2col + GEMM; ``w2`` is the weight as (K, Cg*kh*kw), ``rows`` output rows per
    tile (fixed per call). Output row ``oh`` of a tile is column ``(oh - oh0) * ld`` of the
    column tile.

    ``flat`` (stride 1, every window inside the input: no padding): ``ld`` is the input
    width and each tap's row of the tile is ONE contiguous run of the flattened input plane
    (``L = (rows - 1) * W + Wo`` values from the tap's offset), as in :func:`_conv2d_flat`;
    the GEMM also computes the ``W - Wo`` columns between rows, which are dropped. Otherwise
    ``ld = Wo`` and each output row copies the valid (strided) segment of its input row,
    zeros around it.
    """
    N, C, H, W = x.shape
    K = w2.shape[0]
    Ho, Wo = out.shape[2], out.shape[3]
    Kg = K // groups
    Cg = C // groups
    ckk = Cg * kh * kw
    ntiles = (Ho + rows - 1) // rows
    ld = W if flat else Wo
    for t in prange(N * ntiles):
        _old_csr = ftz_enter(ftz)
        n = t // ntiles
        oh0 = (t % ntiles) * rows
        oh1 = min(Ho, oh0 + rows)
        L = (oh1 - oh0 - 1) * ld + Wo
        cols = np.empty((ckk, L), x.dtype)
        for g in range(groups):
            r = 0
            for c in range(Cg):
                xc = x[n, g * Cg + c]
                xf = xc.ravel()  # a view: the kernels get C-contiguous arrays
                for i in range(kh):
                    for j in range(kw):
                        crow = cols[r]
                        r += 1
                        if flat:
                            s = (oh0 + i * dh) * W + j * dw
                            src = xf[s : s + L]
                            for u in range(L):
                                crow[u] = src[u]
                            continue
                        # output columns whose input column ow*sw + off lies in [0, W)
                        off = j * dw - pl
                        ow0 = 0
                        if off < 0:
                            ow0 = min(Wo, (-off + sw - 1) // sw)
                        ow1 = 0
                        if W - 1 - off >= 0:
                            ow1 = max(ow0, min(Wo, (W - 1 - off) // sw + 1))
                        for oh in range(oh0, oh1):
                            # 1-D views indexed from 0 let LLVM drop the negative-index checks
                            o = crow[(oh - oh0) * Wo : (oh - oh0 + 1) * Wo]
                            ih = oh * sh - pt + i * dh
                            if ih < 0 or ih >= H:
                                for u in range(Wo):
                                    o[u] = 0
                                continue
                            xrow = xc[ih]
                            for u in range(ow0):
                                o[u] = 0
                            s0 = ow0 * sw + off
                            seg = o[ow0:ow1]
                            if sw == 1:
                                src = xrow[s0 : s0 + ow1 - ow0]
                                for u in range(ow1 - ow0):
                                    seg[u] = src[u]
                            else:
                                for u in range(ow1 - ow0):
                                    seg[u] = xrow[s0 + u * sw]
                            for u in range(ow1, Wo):
                                o[u] = 0
            res = np.dot(w2[g * Kg : (g + 1) * Kg], cols)
            for kk in range(Kg):
                k = g * Kg + kk
                bk = b[k]
                rv = res[kk]
                for oh in range(oh0, oh1):
                    o = out[n, k, oh]
                    a = rv[(oh - oh0) * ld : (oh - oh0) * ld + Wo]
                    for ow in range(Wo):
                        o[ow] = a[ow] + bk
        ftz_exit(_old_csr)
    return out


def conv2d(x, w, b, out, stride, pad, dilation, groups, algo, nthreads):
    """Grouped 2-D cross-correlation (contract: :mod:`fastconv.reference`) by the algorithm
    ``algo``, "direct" or "gemm" (see the module docstring).

    Tiled (:mod:`fastconv._tiling`) when its work memory would pass ``_tiling.LIMIT``:
    one output row of im2col columns (per thread), or the padded copy of the input plus
    the stride-1 kernel's accumulator lines (per thread)."""
    _plan.check("conv2d", "numba", algo)
    use_threads(nthreads)
    N, C, H, W = x.shape
    K, Cg, kh, kw = w.shape
    Ho, Wo = out.shape[2:]
    size = x.itemsize
    if algo == _plan.GEMM:
        work = Cg * kh * kw * (W if _flat_gemm(x, w, out, stride, pad, dilation) else Wo) * size
        col = Cg * kh * kw * size
    elif algo == _plan.DIRECT and _plan.conv_row(x.shape, w.shape, out.shape, stride, pad,
                                                 groups):
        work = col = 0  # _conv2d_row reads the row in place, a block at a time
    elif tuple(stride) == (1, 1):
        Hp, Wp = Ho + dilation[0] * (kh - 1), Wo + dilation[1] * (kw - 1)
        copy = 0 if (tuple(pad) == (0, 0) and (Hp, Wp) == (H, W)) else N * C * Hp * Wp
        work = (copy + min(Ho, _FLAT_ROWS) * Wp) * size
        col = (C * Hp + min(Ho, _FLAT_ROWS)) * size
    else:
        work = col = 0
    if work > _tiling.LIMIT and _tiling.conv2d_tiled(
            functools.partial(_conv2d, algo), x, w, b, out, stride, pad, dilation, groups,
            nthreads, col + (C * H * stride[1] + K * Ho) * size):
        return out
    return _conv2d(algo, x, w, b, out, stride, pad, dilation, groups, nthreads)


def _flat_gemm(x, w, out, stride, pad, dilation):
    """Whether the GEMM path reads flat tiles in place: stride 1, every window inside."""
    kh, kw = w.shape[2:]
    Hp = out.shape[2] + dilation[0] * (kh - 1)
    Wp = out.shape[3] + dilation[1] * (kw - 1)
    return tuple(stride) == (1, 1) and tuple(pad) == (0, 0) and (Hp, Wp) == x.shape[2:]


def _conv2d(algo, x, w, b, out, stride, pad, dilation, groups, nthreads):
    """:func:`conv2d` by ``algo`` on the whole input at once."""
    K, Cg, kh, kw = w.shape
    sh, sw = stride
    pt, pl = pad
    dh, dw = dilation
    Ho, Wo = out.shape[2:]
    Hp, Wp = Ho + dh * (kh - 1), Wo + dw * (kw - 1)
    # the input extent every window of a strided layer lies in
    Hs, Ws = (Ho - 1) * sh + dh * (kh - 1) + 1, (Wo - 1) * sw + dw * (kw - 1) + 1
    if algo == _plan.GEMM:
        # stride 1 with every window inside the input: flat tiles, read in place (a padded
        # copy for them would cost more than the row-by-row im2col saves)
        flat = _flat_gemm(x, w, out, stride, pad, dilation)
        ld = x.shape[3] if flat else Wo
        rows = _plan.numba_gemm_rows(Ho, Cg * kh * kw, ld, x.itemsize)
        _conv2d_gemm(x, w.reshape(K, Cg * kh * kw), b, out, sh, sw, pt, pl, dh, dw, groups,
                     kh, kw, rows, flat, flush_denormal())
    elif _plan.conv_row(x.shape, w.shape, out.shape, stride, pad, groups):
        _conv2d_row(x, w, b, out, pl, dw, groups, _plan.NUMBA_ROW_BLOCK // x.itemsize,
                    flush_denormal())
    elif sh == 1 and sw == 1:
        _conv2d_flat(_pad_exact(x, pt, pl, Hp, Wp), w, b, out, dh, dw, groups, _FLAT_ROWS,
                     flush_denormal())
    elif (pt == 0 and pl == 0 and Hs <= x.shape[2] and Ws <= x.shape[3]) \
            or np.isfinite(w).all():
        _conv2d_direct(x, w, b, out, sh, sw, pt, pl, dh, dw, groups, flush_denormal())
    else:
        # _conv2d_direct skips the taps that fall in the padding; with an inf or NaN weight,
        # where inf * 0 must give NaN, it runs on the input with its zeros made explicit
        _conv2d_direct(_pad_exact(x, pt, pl, Hs, Ws), w, b, out, sh, sw, 0, 0, dh, dw,
                       groups, flush_denormal())
    return out


def _pad_exact(x, pt, pl, Hp, Wp):
    """``x`` framed by zeros: ``pt`` rows above, ``pl`` columns left, Hp x Wp in all."""
    N, C, H, W = x.shape
    if pt == 0 and pl == 0 and (H, W) == (Hp, Wp):
        return x
    xp = np.zeros((N, C, Hp, Wp), x.dtype)
    h = min(H, Hp - pt)
    w = min(W, Wp - pl)
    xp[:, :, pt : pt + h, pl : pl + w] = x[:, :, :h, :w]
    return xp
