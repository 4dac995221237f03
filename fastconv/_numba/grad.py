"""Numba gradient kernels (contract: the gradient section of :mod:`fastconv.reference`).

``conv2d_input(gy, w, gx, stride, pad, dilation, groups, algo, nthreads)`` and
``conv2d_weight(x, gy, gw, stride, pad, dilation, groups, algo, nthreads)`` run the
algorithm ``algo``, "direct" or "gemm": the plan's choice (``fastconv._plan``, where the
rule, its constants and the tile, slot and block sizes live, shared with the Cython
kernels of ``src_cython/_cy_grad.pyx``), or one forced by a test or benchmark.

* ``"gemm"``: tiled im2col + ``np.dot`` inside ``prange`` (BLAS is held at one thread by
  :func:`fastconv._dispatch.run`). Tiles are blocks of output rows of one image, or groups
  of whole images, of at most ``_plan.TILE_BYTES`` of columns; ``conv2d_weight`` sums the
  tiles of each of ``S`` slots into a partial of its own (slot 0 into ``gw``), the filters
  of a group cut into ``F`` blocks when partials would be large, and adds the partials in
  slot order at the end; ``conv2d_input`` gives each work item whole images and a block of
  input channels of one group, computes ``cols = W_blk^T @ gy_tile`` and adds it into
  ``gx`` (col2im). Tiles, slots and blocks depend on the shapes only, so results are
  bitwise the same for any thread count. (The sums are the Cython kernels', but BLAS
  accumulates in its own order: the two backends agree to rounding only on this path.)
* ``"direct"``: the loop orders of the Cython direct kernels (bitwise the same results):
  ``conv2d_input``, one task per input plane (n, c), a transposed-convolution scatter;
  ``conv2d_weight``, one task per (filter, input channel), accumulating into a private
  (kh, kw, Wo) buffer (a vectorizable elementwise update), reduced at the end.

The pools: one task per plane (n, c).
"""

import numba
import numpy as np
from numba import prange

from .. import _plan
from ._common import CACHE, flush_denormal, ftz_enter, ftz_exit, jit, use_threads

# serial helpers called from inside the parallel loops
_njit = numba.njit(cache=CACHE, nogil=True)


@_njit
def _valid_cols(off, sw, W, Wo):
    """[ow0, ow1): the output columns ``ow`` whose input column ``ow * sw + off`` lies in
    ``[0, W)`` (empty when ``ow1 <= ow0``); Cython's ``valid_cols`` twin."""
    ow0 = 0 if off >= 0 else (-off + sw - 1) // sw
    ow1 = min(Wo, (W - 1 - off) // sw + 1) if W - 1 - off >= 0 else 0
    return ow0, ow1


@jit
def _conv2d_input(gy, w, gx, sh, sw, pt, pl, dh, dw, groups, ftz):
    N, K, Ho, Wo = gy.shape
    Cg, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    C, H, W = gx.shape[1], gx.shape[2], gx.shape[3]
    Kg = K // groups
    for p in prange(N * C):
        _old_csr = ftz_enter(ftz)
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
                        ow0, ow1 = _valid_cols(off, sw, W, Wo)
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
        ftz_exit(_old_csr)
    return gx


@jit
def _conv2d_weight(x, gy, gw, sh, sw, pt, pl, dh, dw, groups, cw, ftz):
    """One task per (filter, input channel): (kh, kw, cw) accumulators per output column,
    then each tap sums its columns in order. Blocks of ``cw`` output columns (the whole
    row when it fits) run one after the other, the tap sums carried in ``gw``: the same
    order of every sum whatever ``cw`` (Cython's _weight_task)."""
    N, C, H, W = x.shape
    K, Cg, kh, kw = gw.shape
    Ho, Wo = gy.shape[2], gy.shape[3]
    Kg = K // groups
    for p in prange(K * Cg):
        _old_csr = ftz_enter(ftz)
        k = p // Cg
        cc = p % Cg
        c = (k // Kg) * Cg + cc
        acc = np.empty((kh, kw, cw), gw.dtype)  # this task's own: order fixed by the shape
        for c0 in range(0, Wo, cw):
            c1 = min(Wo, c0 + cw)
            acc[:] = 0
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
                            # output columns whose input column ow*sw + off lies in [0, W),
                            # within the block
                            ow0, ow1 = _valid_cols(off, sw, W, Wo)
                            ow0 = max(ow0, c0)
                            ow1 = min(ow1, c1)
                            if ow1 <= ow0:
                                continue
                            a = acc[i, j, ow0 - c0 : ow1 - c0]
                            ys = yrow[ow0:ow1]
                            if sw == 1:
                                xs = xrow[ow0 + off : ow1 + off]
                            else:
                                xs = xrow[ow0 * sw + off : (ow1 - 1) * sw + off + 1 : sw]
                            for t in range(ow1 - ow0):
                                a[t] += ys[t] * xs[t]
            for i in range(kh):
                for j in range(kw):
                    if c0 == 0:
                        s = acc[i, j, 0]
                        q0 = 1
                    else:
                        s = gw[k, cc, i, j]
                        q0 = 0
                    for q in range(q0, c1 - c0):
                        s += acc[i, j, q]
                    gw[k, cc, i, j] = s
        ftz_exit(_old_csr)
    return gw


# --------------------------------------------------------------------------------------------
# im2col + GEMM (many channels)
# --------------------------------------------------------------------------------------------
@_njit
def _im2col_rows(x, n, c0, Cg, kh, kw, oh0, oh1, Wo, sh, sw, pt, pl, dh, dw, cols, q0):
    """cols[(cc, i, j), q0 + (oh - oh0) * Wo + ow] = x[n, c0 + cc, oh*sh - pt + i*dh,
    ow*sw - pl + j*dw], zero outside the input.

    Flat views indexed with unsigned ints (all the indices are >= 0): no wraparound checks,
    so the row copies vectorize."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    xf = x.ravel()
    cf = cols.ravel()
    P = cols.shape[1]
    r = 0
    for cc in range(Cg):
        xbase = ((n * C) + c0 + cc) * H * W
        for i in range(kh):
            for j in range(kw):
                off = j * dw - pl
                ow0, ow1 = _valid_cols(off, sw, W, Wo)
                ow0 = min(ow0, Wo)
                ow1 = max(ow1, ow0)
                for oh in range(oh0, oh1):
                    d = np.uint64(r * P + q0 + (oh - oh0) * Wo)
                    ih = oh * sh - pt + i * dh
                    if ih < 0 or ih >= H:
                        for t in range(Wo):
                            cf[d + np.uint64(t)] = 0
                        continue
                    for t in range(ow0):
                        cf[d + np.uint64(t)] = 0
                    src = np.uint64(xbase + ih * W + ow0 * sw + off)
                    d0 = d + np.uint64(ow0)
                    if sw == 1:
                        for t in range(ow1 - ow0):
                            cf[d0 + np.uint64(t)] = xf[src + np.uint64(t)]
                    else:
                        for t in range(ow1 - ow0):
                            cf[d0 + np.uint64(t)] = xf[src + np.uint64(t * sw)]
                    for t in range(ow1, Wo):
                        cf[d + np.uint64(t)] = 0
                r += 1


@_njit
def _col2im_rows(gx, n, c0, ncc, kh, kw, oh0, oh1, Wo, sh, sw, pt, pl, dh, dw, cols, q0):
    """The adjoint of :func:`_im2col_rows`: gx[n, c0 + cc] += the columns, window by window,
    in the order (cc, i, output row, j) (the Cython kernel's). Unsigned flat indices, as
    there."""
    C, H, W = gx.shape[1], gx.shape[2], gx.shape[3]
    gf = gx.ravel()
    cf = cols.ravel()
    P = cols.shape[1]
    for cc in range(ncc):
        gbase = ((n * C) + c0 + cc) * H * W
        for i in range(kh):
            for oh in range(oh0, oh1):
                ih = oh * sh - pt + i * dh
                if ih < 0 or ih >= H:
                    continue
                q = q0 + (oh - oh0) * Wo
                for j in range(kw):
                    off = j * dw - pl
                    ow0, ow1 = _valid_cols(off, sw, W, Wo)
                    if ow1 <= ow0:
                        continue
                    d = np.uint64(((cc * kh + i) * kw + j) * P + q + ow0)
                    g = np.uint64(gbase + ih * W + ow0 * sw + off)
                    if sw == 1:
                        for t in range(ow1 - ow0):
                            gf[g + np.uint64(t)] += cf[d + np.uint64(t)]
                    else:
                        for t in range(ow1 - ow0):
                            gf[g + np.uint64(t * sw)] += cf[d + np.uint64(t)]


@_njit
def _pack_gy(gy, n0, n1, k0, nk, oh0, oh1):
    """(nk, P): the rows [oh0, oh1) of the planes gy[n0:n1, k0:k0 + nk], side by side."""
    K, Ho, Wo = gy.shape[1], gy.shape[2], gy.shape[3]
    L = (oh1 - oh0) * Wo
    P = (n1 - n0) * L
    pack = np.empty((nk, P), gy.dtype)
    pf = pack.ravel()
    gf = gy.ravel()
    for kk in range(nk):
        for m in range(n1 - n0):
            src = np.uint64((((n0 + m) * K + k0 + kk) * Ho + oh0) * Wo)
            d = np.uint64(kk * P + m * L)
            for t in range(L):
                pf[d + np.uint64(t)] = gf[src + np.uint64(t)]
    return pack


@jit
def _conv2d_input_gemm(gy, wt, gx, sh, sw, pt, pl, dh, dw, groups, kh, kw, rows, imgs, cs,
                       ncb, ftz):
    """``wt`` (groups, R, Kg): each group's weight, transposed. Work items (image group,
    group, channel block)."""
    N, K, Ho, Wo = gy.shape
    C, H, W = gx.shape[1], gx.shape[2], gx.shape[3]
    Kg = K // groups
    Cg = C // groups
    kk2 = kh * kw
    nimg = (N + imgs - 1) // imgs
    for item in prange(nimg * groups * ncb):
        _old_csr = ftz_enter(ftz)
        t = item // (groups * ncb)
        rest = item % (groups * ncb)
        g = rest // ncb
        cb = rest % ncb
        n0 = t * imgs
        n1 = min(N, n0 + imgs)
        ncc = min(cs, Cg - cb * cs)
        c0 = g * Cg + cb * cs
        a = np.ascontiguousarray(wt[g, cb * cs * kk2 : (cb * cs + ncc) * kk2])
        for n in range(n0, n1):
            for c in range(c0, c0 + ncc):
                gxc = gx[n, c]
                for ih in range(H):
                    for iw in range(W):
                        gxc[ih, iw] = 0
        oh0 = 0
        while oh0 < Ho:
            oh1 = min(Ho, oh0 + rows)
            seg = (oh1 - oh0) * Wo
            cols = np.dot(a, _pack_gy(gy, n0, n1, g * Kg, Kg, oh0, oh1))
            for m in range(n1 - n0):
                _col2im_rows(gx, n0 + m, c0, ncc, kh, kw, oh0, oh1, Wo, sh, sw, pt, pl, dh,
                             dw, cols, m * seg)
            oh0 = oh1
        ftz_exit(_old_csr)
    return gx


@jit
def _conv2d_weight_gemm(x, gy, gw2, parts, sh, sw, pt, pl, dh, dw, groups, kh, kw, rows,
                        imgs, S, F, kb, ftz):
    """``gw2`` (K, R) is gw, ``parts`` (S - 1, K, R) the other slots' partials. Work items
    (slot, group, filter block)."""
    N, C = x.shape[0], x.shape[1]
    Ho, Wo = gy.shape[2], gy.shape[3]
    K, R = gw2.shape
    Kg = K // groups
    Cg = C // groups
    nrt = (Ho + rows - 1) // rows
    T = ((N + imgs - 1) // imgs) * nrt
    for item in prange(S * groups * F):
        _old_csr = ftz_enter(ftz)
        s = item // (groups * F)
        rest = item % (groups * F)
        g = rest // F
        f = rest % F
        k0 = g * Kg + f * kb
        nk = min(kb, Kg - f * kb)
        part = gw2 if s == 0 else parts[s - 1]
        acc = part[k0 : k0 + nk]
        for t in range(s * T // S, (s + 1) * T // S):
            n0 = (t // nrt) * imgs
            n1 = min(N, n0 + imgs)
            oh0 = (t % nrt) * rows
            oh1 = min(Ho, oh0 + rows)
            seg = (oh1 - oh0) * Wo
            cols = np.empty((R, (n1 - n0) * seg), x.dtype)
            for m in range(n1 - n0):
                _im2col_rows(x, n0 + m, g * Cg, Cg, kh, kw, oh0, oh1, Wo, sh, sw, pt, pl, dh,
                             dw, cols, m * seg)
            res = np.dot(_pack_gy(gy, n0, n1, k0, nk, oh0, oh1), cols.T)
            if t == s * T // S:
                for kk in range(nk):
                    for q in range(R):
                        acc[kk, q] = res[kk, q]
            else:
                for kk in range(nk):
                    for q in range(R):
                        acc[kk, q] += res[kk, q]
        ftz_exit(_old_csr)
    # gw += partials, in slot order
    for k in prange(K):
        _old_csr = ftz_enter(ftz)
        row = gw2[k]
        for s in range(1, S):
            prow = parts[s - 1, k]
            for q in range(R):
                row[q] += prow[q]
        ftz_exit(_old_csr)
    return gw2


@jit
def _max_pool2d_backward(gy, idx, gx, ftz):
    """``gy``, ``idx`` (N, C, Ho*Wo) and ``gx`` (N, C, H*W): planes flattened."""
    N, C, L = gy.shape
    P = gx.shape[2]
    for p in prange(N * C):
        _old_csr = ftz_enter(ftz)
        n = p // C
        c = p % C
        g = gx[n, c]
        for q in range(P):
            g[q] = 0
        y = gy[n, c]
        ix = idx[n, c]
        for o in range(L):
            g[ix[o]] += y[o]
        ftz_exit(_old_csr)
    return gx


@jit
def _avg_pool2d_backward(gy, gx, kh, kw, sh, sw, ph, pw, count_include_pad, ftz):
    N, C, H, W = gx.shape
    Ho, Wo = gy.shape[2], gy.shape[3]
    for p in prange(N * C):
        _old_csr = ftz_enter(ftz)
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
        ftz_exit(_old_csr)
    return gx


def conv2d_input(gy, w, gx, stride, pad, dilation, groups, algo, nthreads):
    """Gradient of conv2d wrt its input (contract: :mod:`fastconv.reference`) by the
    algorithm ``algo``, "direct" or "gemm"."""
    _plan.check("conv2d_input", "numba", algo)
    use_threads(nthreads)
    if gx.shape[0] == 0:
        return gx
    if algo == _plan.GEMM and gy.shape[2] * gy.shape[3] > 0:
        N, K, Ho, Wo = gy.shape
        _, Cg, kh, kw = w.shape
        R, Kg = Cg * kh * kw, K // groups
        rows, imgs = _plan.grad_tiles(N, Ho, Wo, R, gy.itemsize)
        cs, ncb = _plan.input_channel_blocks(-(-N // imgs), groups, Cg)
        wt = np.ascontiguousarray(w.reshape(groups, Kg, R).transpose(0, 2, 1))
        _conv2d_input_gemm(gy, wt, gx, *stride, *pad, *dilation, groups, kh, kw, rows, imgs,
                           cs, ncb, flush_denormal())
    else:
        _conv2d_input(gy, w, gx, *stride, *pad, *dilation, groups, flush_denormal())
    return gx


def conv2d_weight(x, gy, gw, stride, pad, dilation, groups, algo, nthreads):
    """Gradient of conv2d wrt its weight (contract: :mod:`fastconv.reference`) by the
    algorithm ``algo``, "direct" or "gemm"."""
    _plan.check("conv2d_weight", "numba", algo)
    use_threads(nthreads)
    if gw.shape[0] == 0:
        return gw
    if algo == _plan.GEMM and x.shape[0] > 0 and gy.shape[2] * gy.shape[3] > 0:
        N = x.shape[0]
        K, Cg, kh, kw = gw.shape
        Ho, Wo = gy.shape[2:]
        R, Kg = Cg * kh * kw, K // groups
        rows, imgs = _plan.grad_tiles(N, Ho, Wo, R, x.itemsize)
        T = -(-N // imgs) * -(-Ho // rows)
        # slots, then filter blocks, up to about _plan.GRAD_MIN_ITEMS work items
        S, F, kb = _plan.weight_slots(T, K, R, Kg, groups, x.itemsize)
        parts = np.empty((S - 1, K, R), gw.dtype)
        _conv2d_weight_gemm(x, gy, gw.reshape(K, R), parts, *stride, *pad, *dilation, groups,
                            kh, kw, rows, imgs, S, F, kb, flush_denormal())
    else:
        # output columns per block: the whole row unless its accumulators would pass
        # _plan.WEIGHT_ACC_ELEMS (long rows, issue 15); shapes only
        cw = _plan.weight_columns(gy.shape[3], gw.shape[2], gw.shape[3])
        _conv2d_weight(x, gy, gw, *stride, *pad, *dilation, groups, cw,
                       flush_denormal())
    return gw


def max_pool2d_backward(gy, idx, gx, nthreads):
    """Gradient of max_pool2d (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    N, C = gx.shape[:2]
    _max_pool2d_backward(gy.reshape(N, C, -1), idx.reshape(N, C, -1), gx.reshape(N, C, -1),
                         flush_denormal())
    return gx


def avg_pool2d_backward(gy, gx, kernel, stride, pad, count_include_pad, nthreads):
    """Gradient of avg_pool2d (contract: :mod:`fastconv.reference`)."""
    use_threads(nthreads)
    _avg_pool2d_backward(gy, gx, *kernel, *stride, *pad, bool(count_include_pad),
                         flush_denormal())
    return gx
