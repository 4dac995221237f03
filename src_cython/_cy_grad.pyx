"""Cython + OpenMP + BLAS gradient kernels (contract: the gradient section of
fastconv.reference).

One source for float32 and float64 (``cython.floating``). The kernels trust their input
(fastconv._spec validated it): no bounds checks, inputs may be read-only (const memoryviews).

``conv2d_input(gy, w, gx, stride, pad, dilation, groups, algo, nthreads)`` and
``conv2d_weight(x, gy, gw, stride, pad, dilation, groups, algo, nthreads)`` run the
algorithm ``algo``. The choice, its rules and its constants live in :mod:`fastconv._plan`
(``_plan.conv2d_input("cython", ...)``, ``_plan.conv2d_weight``), and so do the tile, slot
and block sizes below; this module reads them from there. The algorithms:

* ``"forward"`` (conv2d_input, stride 1 and ``pad <= dilation * (kernel - 1)`` only): a
  forward convolution of grad_output with the flipped, transposed weights, run on
  ``_cy_conv`` (:func:`conv2d_input_forward`) by the algorithm the plan gives that layer.
* ``"gemm"``: tiled im2col + single-threaded GEMM (``gemm_rm``, as in ``_cy_conv``). A
  *tile* is a block of output rows of one image, or, when a whole image fits, a group of
  whole images, sized so that its (R, P) column matrix holds at most ``_plan.TILE_BYTES``
  (P = the tile's output positions; ``_plan.grad_tiles``). The whole batch's im2col is never
  built.

  - conv2d_weight: ``gw_g (Kg, R) += gy_tile (Kg, P) @ cols^T (P, R)``. The tiles are cut
    into ``S`` consecutive *slots*, each summed (GEMM with beta = 1, tile after tile) into a
    partial (K, R) of its own (slot 0 into ``gw`` itself); after the parallel loop ``gw``
    adds the other partials in slot order. When partials would be large, the filters of a
    group are also cut into ``F`` blocks (each work item (slot, group, filter block)
    rebuilds its tiles' im2col, cheap next to a GEMM with many filters). Work items:
    ``S * groups * F`` (``_plan.weight_slots``).
  - conv2d_input: ``cols (R, P) = W_g^T (R, Kg) @ gy_tile (Kg, P)``, then col2im:
    ``cols`` is added into the windows of ``gx``. Row tiles of one image overlap in input
    rows, so a work item owns whole images (a group of ``imgs`` images, or one image whose
    row tiles it runs in order) and a block of input channels of one group (the channel
    blocks are rows of ``W_g^T``: no work is repeated; ``_plan.input_channel_blocks``).
    Work items: ``ceil(N / imgs) * groups * channel blocks``.

  Tiles, slots and blocks depend on the shapes only, aiming at ``_plan.GRAD_MIN_ITEMS``
  work items, and each output element is summed in a fixed order: results are bitwise the
  same for any thread count.
* ``"direct"``: loop nests. conv2d_input:
  one task per input plane (n, c), a transposed-convolution scatter whose innermost loop
  runs along an input row (contiguous for stride 1). conv2d_weight: one task per (filter,
  input channel), accumulating into a per-thread (kh, kw, Wo) buffer (zeroed for every task)
  with an elementwise, vectorizable update, reduced at the end of the task; long rows in
  blocks of columns (``_plan.weight_columns``). The Numba kernels use the same loop orders,
  so the two backends agree bitwise on this path.

max_pool2d_backward and avg_pool2d_backward: one task per plane (n, c).
"""

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.stdlib cimport free, malloc
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset

import numpy as np

from fastconv import _cy_conv, _plan

from _blas cimport gemm_rm
from _common cimport im2col, valid_cols
from _common cimport fc_ftz_enter, fc_ftz_exit, fc_ftz_set

# The plan's constants (fastconv._plan, their one home), read once at import.
TILE_BYTES = _plan.TILE_BYTES
MIN_ITEMS = _plan.GRAD_MIN_ITEMS
PARTIAL_BYTES = _plan.PARTIAL_BYTES

cdef enum:
    DIRECT = 0
    GEMM = 1
# the plan's names of the algorithms (the ``algo`` argument); "forward" is conv2d_input's
_CODES = {_plan.DIRECT: DIRECT, _plan.GEMM: GEMM}


# --------------------------------------------------------------------------------------------
# tiles (the plan's sizes, shapes only)
# --------------------------------------------------------------------------------------------
cdef inline void _tile(Py_ssize_t t, Py_ssize_t N, Py_ssize_t Ho, Py_ssize_t rows,
                       Py_ssize_t imgs, Py_ssize_t* n0, Py_ssize_t* n1, Py_ssize_t* oh0,
                       Py_ssize_t* oh1) noexcept nogil:
    """Tile ``t``: images [n0, n1), output rows [oh0, oh1) (whole images when imgs > 1)."""
    cdef Py_ssize_t nrt = (Ho + rows - 1) // rows
    n0[0] = (t // nrt) * imgs
    n1[0] = min(N, n0[0] + imgs)
    oh0[0] = (t % nrt) * rows
    oh1[0] = min(Ho, oh0[0] + rows)


cdef void _col2im(floating[:, :, :, ::1] gx, Py_ssize_t n, Py_ssize_t c0, Py_ssize_t ncc,
                  Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t oh0, Py_ssize_t oh1, Py_ssize_t Wo,
                  Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh,
                  Py_ssize_t dw, const floating* col, Py_ssize_t ld) noexcept nogil:
    """The adjoint of ``im2col`` (_common.pxd): gx[n, c0 + cc] += the columns, window by window, in
    the order (cc, i, output row, j)."""
    cdef Py_ssize_t H = gx.shape[2], W = gx.shape[3]
    cdef Py_ssize_t cc, i, j, oh, ih, off, ow, ow0, ow1
    cdef floating* grow
    cdef const floating* d
    for cc in range(ncc):
        for i in range(kh):
            for oh in range(oh0, oh1):
                ih = oh * sh - pt + i * dh
                if ih < 0 or ih >= H:
                    continue
                grow = &gx[n, c0 + cc, ih, 0]
                for j in range(kw):
                    off = j * dw - pl
                    valid_cols(off, sw, W, Wo, &ow0, &ow1)
                    d = col + ((cc * kh + i) * kw + j) * ld + (oh - oh0) * Wo
                    if sw == 1:
                        for ow in range(ow0, ow1):
                            grow[ow + off] += d[ow]
                    else:
                        for ow in range(ow0, ow1):
                            grow[ow * sw + off] += d[ow]


cdef void _pack_gy(const floating[:, :, :, ::1] gy, Py_ssize_t n0, Py_ssize_t n1,
                   Py_ssize_t k0, Py_ssize_t nk, floating* pack) noexcept nogil:
    """pack (nk, (n1 - n0) * Ho * Wo): the planes gy[n0:n1, k0:k0 + nk] side by side."""
    cdef Py_ssize_t HW = gy.shape[2] * gy.shape[3], P = (n1 - n0) * HW, kk, m
    for kk in range(nk):
        for m in range(n1 - n0):
            memcpy(pack + kk * P + m * HW, &gy[n0 + m, k0 + kk, 0, 0], HW * sizeof(floating))


cdef struct Phases:
    # The transposed convolution's sub-pixel phases (fastconv._transpose): the weight
    # gradient of its stacked stride-1 layer reads grad_output's phases in their places of
    # that layer's output (conv2d_weight_phased). ``sh`` x ``sw`` phases, ``Kg`` filters per
    # group of grad_output; per phase along an axis ``(offset, count)``: phase a's outputs
    # o = s * m + a (m < count) are the stacked layer's outputs offset + m.
    Py_ssize_t sh
    Py_ssize_t sw
    Py_ssize_t Kg
    Py_ssize_t hp[64]
    Py_ssize_t wp[64]


cdef void _pack_ys(const floating[:, :, :, ::1] gy, const Phases* ph, Py_ssize_t n0,
                   Py_ssize_t n1, Py_ssize_t g, Py_ssize_t k0, Py_ssize_t nk, Py_ssize_t oh0,
                   Py_ssize_t oh1, Py_ssize_t Wo, floating* pack) noexcept nogil:
    """pack (nk, (n1 - n0) * (oh1 - oh0) * Wo): the stacked layer's output gradient, rows
    [k0, k0 + nk) (stacked rows (group, phase, filter)), output rows [oh0, oh1), built from
    ``gy`` (N, K, Ho', Wo'), the transposed convolution's: row (g, (a, b), k) at (y, z) is
    ``gy[n, g * Kg + k, sh * (y - off_a) + a, sw * (z - off_b) + b]`` inside phase (a, b)'s
    outputs, else zero."""
    cdef Py_ssize_t seg = (oh1 - oh0) * Wo, P = (n1 - n0) * seg
    cdef Py_ssize_t kk, loc, q, a, b, ch, oa, ca, ob, cb, m, y, z, sw = ph.sw
    cdef floating* d
    cdef const floating* src
    for kk in range(nk):
        loc = k0 + kk - g * ph.sh * ph.sw * ph.Kg
        q = loc // ph.Kg
        ch = g * ph.Kg + loc % ph.Kg
        a = q // sw
        b = q % sw
        oa = ph.hp[2 * a]
        ca = ph.hp[2 * a + 1]
        ob = ph.wp[2 * b]
        cb = ph.wp[2 * b + 1]
        for m in range(n1 - n0):
            for y in range(oh0, oh1):
                d = pack + kk * P + m * seg + (y - oh0) * Wo
                if y < oa or y >= oa + ca or cb == 0:
                    memset(d, 0, Wo * sizeof(floating))
                    continue
                src = &gy[n0 + m, ch, ph.sh * (y - oa) + a, b]
                for z in range(ob):
                    d[z] = 0
                for z in range(cb):
                    d[ob + z] = src[sw * z]
                for z in range(ob + cb, Wo):
                    d[z] = 0


# --------------------------------------------------------------------------------------------
# conv2d_input
# --------------------------------------------------------------------------------------------
cdef void _input_plane(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] w,
                       floating[:, :, :, ::1] gx, Py_ssize_t p, Py_ssize_t sh, Py_ssize_t sw,
                       Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
                       Py_ssize_t groups) noexcept nogil:
    cdef Py_ssize_t K = gy.shape[1], Ho = gy.shape[2], Wo = gy.shape[3]
    cdef Py_ssize_t Cg = w.shape[1], kh = w.shape[2], kw = w.shape[3]
    cdef Py_ssize_t C = gx.shape[1], H = gx.shape[2], W = gx.shape[3]
    cdef Py_ssize_t Kg = K // groups
    cdef Py_ssize_t n = p // C, c = p % C
    cdef Py_ssize_t g = c // Cg, cc = c % Cg
    cdef Py_ssize_t kk, k, i, j, oh, ow, ih, off, ow0, ow1
    cdef floating wv
    cdef floating* grow
    cdef const floating* yrow
    memset(&gx[n, c, 0, 0], 0, H * W * sizeof(floating))
    for kk in range(Kg):
        k = g * Kg + kk
        for i in range(kh):
            for oh in range(Ho):
                ih = oh * sh - pt + i * dh
                if ih < 0 or ih >= H:
                    continue
                grow = &gx[n, c, ih, 0]
                yrow = &gy[n, k, oh, 0]
                for j in range(kw):
                    wv = w[k, cc, i, j]
                    off = j * dw - pl
                    valid_cols(off, sw, W, Wo, &ow0, &ow1)
                    if sw == 1:
                        for ow in range(ow0, ow1):
                            grow[ow + off] += wv * yrow[ow]
                    else:
                        for ow in range(ow0, ow1):
                            grow[ow * sw + off] += wv * yrow[ow]


cdef int _input_direct(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] w,
                       floating[:, :, :, ::1] gx, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt,
                       Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups,
                       int nthreads) except -1:
    cdef Py_ssize_t p, P = gx.shape[0] * gx.shape[1]
    for p in prange(P, nogil=True, schedule="dynamic", num_threads=max(1, nthreads)):
        fc_ftz_enter()
        _input_plane(gy, w, gx, p, sh, sw, pt, pl, dh, dw, groups)
        fc_ftz_exit()
    return 0


cdef void _input_item(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] w,
                      floating[:, :, :, ::1] gx, Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t g,
                      Py_ssize_t cb, Py_ssize_t cs, Py_ssize_t rows, Py_ssize_t sh,
                      Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh,
                      Py_ssize_t dw, Py_ssize_t groups, floating* col,
                      floating* pack) noexcept nogil:
    """gx[n0:n1, channels cb*cs.. of group g]: row tile after row tile (or all the images
    at once), cols = W_blk^T @ gy_tile, then col2im."""
    cdef Py_ssize_t K = gy.shape[1], Ho = gy.shape[2], Wo = gy.shape[3]
    cdef Py_ssize_t Cg = w.shape[1], kh = w.shape[2], kw = w.shape[3]
    cdef Py_ssize_t H = gx.shape[2], W = gx.shape[3]
    cdef Py_ssize_t Kg = K // groups, R = Cg * kh * kw
    cdef Py_ssize_t ncc = min(cs, Cg - cb * cs), c0 = g * Cg + cb * cs
    cdef Py_ssize_t Rb = ncc * kh * kw, HW = Ho * Wo
    cdef Py_ssize_t n, m, oh0, oh1, P, seg, ldb
    cdef const floating* B
    for n in range(n0, n1):
        memset(&gx[n, c0, 0, 0], 0, ncc * H * W * sizeof(floating))
    oh0 = 0
    while oh0 < Ho:
        oh1 = min(Ho, oh0 + rows)
        seg = (oh1 - oh0) * Wo
        P = (n1 - n0) * seg
        if n1 - n0 == 1:
            B = &gy[n0, g * Kg, oh0, 0]
            ldb = HW
        else:  # whole images: oh0 == 0, oh1 == Ho
            _pack_gy(gy, n0, n1, g * Kg, Kg, pack)
            B = pack
            ldb = P
        # cols (Rb, P) = W_g[:, channel block]^T (Rb, Kg) @ gy_tile (Kg, P)
        gemm_rm(True, False, <int> Rb, <int> P, <int> Kg, <floating> 1,
                &w[g * Kg, cb * cs, 0, 0], <int> R, B, <int> ldb, <floating> 0, col, <int> P)
        for m in range(n1 - n0):
            _col2im(gx, n0 + m, c0, ncc, kh, kw, oh0, oh1, Wo, sh, sw, pt, pl, dh, dw,
                    col + m * seg, P)
        oh0 = oh1


cdef int _input_gemm(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] w,
                     floating[:, :, :, ::1] gx, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt,
                     Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups,
                     int nthreads) except -1:
    cdef Py_ssize_t N = gy.shape[0], K = gy.shape[1], Ho = gy.shape[2], Wo = gy.shape[3]
    cdef Py_ssize_t Cg = w.shape[1], kh = w.shape[2], kw = w.shape[3]
    cdef Py_ssize_t R = Cg * kh * kw, Kg = K // groups
    cdef Py_ssize_t rows, imgs, nimg, ncb, cs, items, item, per, col_elems, pack_elems, t
    cdef Py_ssize_t n0, rest
    cdef floating* ws = NULL
    rows, imgs = _plan.grad_tiles(N, Ho, Wo, R, sizeof(floating))
    nimg = (N + imgs - 1) // imgs
    # channel blocks: more work items without repeating any work
    cs, ncb = _plan.input_channel_blocks(nimg, groups, Cg)
    items = nimg * groups * ncb
    col_elems = cs * kh * kw * imgs * rows * Wo
    pack_elems = Kg * imgs * Ho * Wo if imgs > 1 else 0
    per = col_elems + pack_elems
    nthreads = max(1, nthreads)
    ws = <floating*> malloc(nthreads * per * sizeof(floating))
    if ws == NULL:
        raise MemoryError(f"conv2d_input: could not allocate {nthreads} work buffers of "
                          f"{per * sizeof(floating)} bytes")
    try:
        with nogil:
            for item in prange(items, schedule="dynamic", num_threads=nthreads):
                fc_ftz_enter()
                t = item // (groups * ncb)
                rest = item % (groups * ncb)
                n0 = t * imgs
                _input_item(gy, w, gx, n0, min(N, n0 + imgs), rest // ncb, rest % ncb, cs,
                            rows, sh, sw, pt, pl, dh, dw, groups, ws + threadid() * per,
                            ws + threadid() * per + col_elems)
                fc_ftz_exit()
    finally:
        free(ws)
    return 0


# --------------------------------------------------------------------------------------------
# conv2d_weight
# --------------------------------------------------------------------------------------------
cdef void _weight_task(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] gy,
                       floating[:, :, :, ::1] gw, Py_ssize_t p, Py_ssize_t sh, Py_ssize_t sw,
                       Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
                       Py_ssize_t groups, Py_ssize_t cw, floating* acc) noexcept nogil:
    """Task p = (filter k, channel cc): the (kh, kw, cw) accumulators ``acc`` sum, per
    output column, the products over images and rows; then each tap sums its columns in
    order. Blocks of ``cw`` output columns (the whole row when it fits: see
    _weight_direct) run one after the other, the tap sums carried in ``gw`` from block to
    block, so every sum runs in the same order whatever ``cw``."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t K = gw.shape[0], Cg = gw.shape[1], kh = gw.shape[2], kw = gw.shape[3]
    cdef Py_ssize_t Ho = gy.shape[2], Wo = gy.shape[3]
    cdef Py_ssize_t Kg = K // groups
    cdef Py_ssize_t k = p // Cg, cc = p % Cg
    cdef Py_ssize_t c = (k // Kg) * Cg + cc
    cdef Py_ssize_t n, i, j, oh, ow, ih, off, ow0, ow1, c0, c1
    cdef floating s
    cdef floating* a
    cdef const floating* xrow
    cdef const floating* yrow
    c0 = 0
    while c0 < Wo:
        c1 = min(Wo, c0 + cw)
        memset(acc, 0, kh * kw * cw * sizeof(floating))
        for n in range(N):
            for i in range(kh):
                for oh in range(Ho):
                    ih = oh * sh - pt + i * dh
                    if ih < 0 or ih >= H:
                        continue
                    xrow = &x[n, c, ih, 0]
                    yrow = &gy[n, k, oh, 0]
                    for j in range(kw):
                        off = j * dw - pl
                        valid_cols(off, sw, W, Wo, &ow0, &ow1)
                        ow0 = max(ow0, c0)
                        ow1 = min(ow1, c1)
                        a = acc + (i * kw + j) * cw  # a[ow - c0]: column ow of the block
                        if sw == 1:
                            for ow in range(ow0, ow1):
                                a[ow - c0] += yrow[ow] * xrow[ow + off]
                        else:
                            for ow in range(ow0, ow1):
                                a[ow - c0] += yrow[ow] * xrow[ow * sw + off]
        for i in range(kh):
            for j in range(kw):
                a = acc + (i * kw + j) * cw
                if c0 == 0:
                    s = a[0]
                    ow0 = 1
                else:
                    s = gw[k, cc, i, j]
                    ow0 = c0
                for ow in range(ow0, c1):
                    s += a[ow - c0]
                gw[k, cc, i, j] = s
        c0 = c1


cdef int _weight_direct(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] gy,
                        floating[:, :, :, ::1] gw, Py_ssize_t sh, Py_ssize_t sw,
                        Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
                        Py_ssize_t groups, int nthreads) except -1:
    cdef Py_ssize_t p, P = gw.shape[0] * gw.shape[1], kk = gw.shape[2] * gw.shape[3]
    # output columns per block: the whole row unless its accumulators would pass
    # _plan.WEIGHT_ACC_ELEMS (long rows, issue 15); shapes only
    cdef Py_ssize_t cw = _plan.weight_columns(gy.shape[3], gw.shape[2], gw.shape[3])
    cdef Py_ssize_t bufsize = kk * cw
    cdef Py_ssize_t nbuf = max(1, nthreads)
    # one accumulation buffer per thread, zeroed by every task that uses it
    cdef floating* acc = <floating*> malloc(nbuf * bufsize * sizeof(floating))
    if acc == NULL:
        raise MemoryError("conv2d_weight: could not allocate the accumulation buffers")
    try:
        for p in prange(P, nogil=True, schedule="dynamic", num_threads=nbuf):
            fc_ftz_enter()
            _weight_task(x, gy, gw, p, sh, sw, pt, pl, dh, dw, groups, cw,
                         acc + threadid() * bufsize)
            fc_ftz_exit()
    finally:
        free(acc)
    return 0


cdef void _weight_item(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] gy,
                       floating* part, Py_ssize_t t0, Py_ssize_t t1, Py_ssize_t g,
                       Py_ssize_t k0, Py_ssize_t nk, Py_ssize_t rows, Py_ssize_t imgs,
                       Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
                       Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Cg, Py_ssize_t kh,
                       Py_ssize_t kw, floating* col, floating* pack, Py_ssize_t Ho,
                       Py_ssize_t Wo, const Phases* ph) noexcept nogil:
    """part[k0:k0 + nk] (nk, R) = sum over tiles [t0, t1), in order, of
    gy_tile[k0:k0 + nk] (nk, P) @ cols_g^T (P, R); the output gradient (Ho, Wo) is ``gy``,
    or with ``ph`` the stacked phases of ``gy`` (_pack_ys)."""
    cdef Py_ssize_t N = x.shape[0], HW = Ho * Wo
    cdef Py_ssize_t R = Cg * kh * kw
    cdef Py_ssize_t t, m, n0, n1, oh0, oh1, seg, P, lda
    cdef const floating* A
    for t in range(t0, t1):
        _tile(t, N, Ho, rows, imgs, &n0, &n1, &oh0, &oh1)
        seg = (oh1 - oh0) * Wo
        P = (n1 - n0) * seg
        for m in range(n1 - n0):
            im2col(x, n0 + m, g * Cg, Cg, kh, kw, oh0, oh1, Wo, sh, sw, pt, pl, dh, dw,
                    col + m * seg, P)
        if ph != NULL:
            _pack_ys(gy, ph, n0, n1, g, k0, nk, oh0, oh1, Wo, pack)
            A = pack
            lda = P
        elif n1 - n0 == 1:
            A = &gy[n0, k0, oh0, 0]
            lda = HW
        else:
            _pack_gy(gy, n0, n1, k0, nk, pack)
            A = pack
            lda = P
        gemm_rm(False, True, <int> nk, <int> R, <int> P, <floating> 1, A, <int> lda, col,
                <int> P, <floating> (0 if t == t0 else 1), part + k0 * R, <int> R)


cdef int _weight_gemm(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] gy,
                      floating[:, :, :, ::1] gw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt,
                      Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups,
                      int nthreads, Py_ssize_t Ho, Py_ssize_t Wo,
                      const Phases* ph) except -1:
    """The GEMM weight gradient (module docstring) of an output gradient (Ho, Wo): ``gy``,
    or with ``ph`` the stacked phases of ``gy`` (conv2d_weight_phased)."""
    cdef Py_ssize_t N = x.shape[0]
    cdef Py_ssize_t K = gw.shape[0], Cg = gw.shape[1], kh = gw.shape[2], kw = gw.shape[3]
    cdef Py_ssize_t R = Cg * kh * kw, Kg = K // groups, KR = K * R
    cdef Py_ssize_t rows, imgs, T, S, F, kb, items, item, s, f, rest, g, per, col_elems
    cdef Py_ssize_t k, q, e
    cdef floating* ws = NULL
    cdef floating* parts = NULL
    cdef floating* part
    cdef floating* gwp = &gw[0, 0, 0, 0]
    rows, imgs = _plan.grad_tiles(N, Ho, Wo, R, sizeof(floating))
    T = ((N + imgs - 1) // imgs) * ((Ho + rows - 1) // rows)
    # slots: as many as the work items wanted, within the tiles and the partials' budget,
    # a power of two; filter blocks make up the rest
    S, F, kb = _plan.weight_slots(T, K, R, Kg, groups, sizeof(floating))
    items = S * groups * F
    col_elems = R * imgs * rows * Wo
    per = col_elems + (kb * imgs * rows * Wo if imgs > 1 or ph != NULL else 0)
    nthreads = max(1, nthreads)
    ws = <floating*> malloc(nthreads * per * sizeof(floating))
    if S > 1:
        parts = <floating*> malloc((S - 1) * KR * sizeof(floating))
    if ws == NULL or (S > 1 and parts == NULL):
        free(ws)
        free(parts)
        raise MemoryError(f"conv2d_weight: could not allocate {nthreads} work buffers of "
                          f"{per * sizeof(floating)} bytes and {S - 1} partials of "
                          f"{KR * sizeof(floating)} bytes")
    try:
        with nogil:
            for item in prange(items, schedule="dynamic", num_threads=nthreads):
                fc_ftz_enter()
                s = item // (groups * F)
                rest = item % (groups * F)
                g = rest // F
                f = rest % F
                _weight_item(x, gy, gwp if s == 0 else parts + (s - 1) * KR,
                             s * T // S, (s + 1) * T // S, g, g * Kg + f * kb,
                             min(kb, Kg - f * kb), rows, imgs, sh, sw, pt, pl, dh, dw, Cg,
                             kh, kw, ws + threadid() * per,
                             ws + threadid() * per + col_elems, Ho, Wo, ph)
                fc_ftz_exit()
            if S > 1:
                # gw += partials, in slot order, each filter's row by one thread
                for k in prange(K, schedule="static", num_threads=nthreads):
                    fc_ftz_enter()
                    for s in range(1, S):
                        part = parts + (s - 1) * KR + k * R
                        for q in range(R):
                            gwp[k * R + q] += part[q]
                    fc_ftz_exit()
    finally:
        free(ws)
        free(parts)
    return 0


# --------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------
cdef int _grad_input(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] w,
                     floating[:, :, :, ::1] gx, stride, pad, dilation, Py_ssize_t groups,
                     int nthreads, int algo) except -1:
    cdef Py_ssize_t sh = stride[0], sw = stride[1], pt = pad[0], pl = pad[1]
    cdef Py_ssize_t dh = dilation[0], dw = dilation[1]
    if gx.shape[0] == 0:
        return 0
    if algo == GEMM and gy.shape[2] * gy.shape[3] > 0:
        _input_gemm(gy, w, gx, sh, sw, pt, pl, dh, dw, groups, nthreads)
    else:
        _input_direct(gy, w, gx, sh, sw, pt, pl, dh, dw, groups, nthreads)
    return 0


cdef int _grad_weight(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] gy,
                      floating[:, :, :, ::1] gw, stride, pad, dilation, Py_ssize_t groups,
                      int nthreads, int algo) except -1:
    cdef Py_ssize_t sh = stride[0], sw = stride[1], pt = pad[0], pl = pad[1]
    cdef Py_ssize_t dh = dilation[0], dw = dilation[1]
    if gw.shape[0] == 0:
        return 0
    if algo == GEMM and x.shape[0] > 0 and gy.shape[2] * gy.shape[3] > 0:
        _weight_gemm(x, gy, gw, sh, sw, pt, pl, dh, dw, groups, nthreads, gy.shape[2],
                     gy.shape[3], NULL)
    else:
        _weight_direct(x, gy, gw, sh, sw, pt, pl, dh, dw, groups, nthreads)
    return 0


cdef int _code(op, algo) except -1:
    """The kernel's code for the plan's ``algo`` (direct or gemm); ValueError otherwise."""
    code = _CODES.get(algo) if isinstance(algo, str) else None
    if code is None:
        _plan.check(op, "cython", algo)
    return code


def conv2d_input_forward(gy, w, gx, stride, pad, dilation, Py_ssize_t groups,
                         int nthreads):
    """:func:`conv2d_input` for stride 1, as the forward kernel computes it.

    With stride 1 the input gradient is a full correlation of ``gy`` with the weights
    flipped in space and transposed per group (filters become channels): the forward
    convolution ``conv2d(gy, w', pad = dilation * (kernel - 1) - pad)`` with
    ``w'[g*Cg + c, kk] = w[g*Kg + kk, c, ::-1, ::-1]``, and ``_cy_conv`` runs it with the
    algorithm the plan gives that layer (``fastconv._plan.conv2d``). Needs
    ``fastconv._plan.transposes_to_forward``.
    """
    K, Cg, kh, kw = w.shape
    Kg = K // groups
    wt = np.ascontiguousarray(
        np.asarray(w).reshape(groups, Kg, Cg, kh, kw)[:, :, :, ::-1, ::-1]
        .transpose(0, 2, 1, 3, 4).reshape(groups * Cg, Kg, kh, kw))
    bias = np.zeros(groups * Cg, wt.dtype)
    _, padt = _plan.forward_layer(w.shape, pad, dilation, groups)
    algo = _plan.input_as_forward(gx.shape, w.shape, gy.shape, pad, dilation, groups,
                                  wt.itemsize)
    _cy_conv.conv2d(gy, wt, bias, gx, (1, 1), padt, dilation, groups, algo, nthreads)
    return gx


def conv2d_input(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] w,
                 floating[:, :, :, ::1] gx, stride, pad, dilation, Py_ssize_t groups, algo,
                 int nthreads):
    """Gradient of conv2d wrt its input; fills and returns ``gx`` (N, C, H, W), by the
    algorithm ``algo``: "forward" (stride 1 with ``pad <= dilation * (kernel - 1)`` only,
    :func:`conv2d_input_forward`), "direct" or "gemm" (any shape whose sizes fit BLAS's
    32-bit ints): the plan's choice (``fastconv._plan.conv2d_input``), or one forced by a
    test or benchmark."""
    if algo == _plan.FORWARD and not np.isfinite(w.base).all():
        # the forward conv would multiply a NaN or inf weight by gy's zero frame, giving NaN
        # where the gradient has none: the direct kernel, which never forms those products
        algo = "direct"
    if algo == _plan.FORWARD:
        if not _plan.transposes_to_forward(stride, pad, dilation, w.base.shape):
            raise ValueError("conv2d_input: algo 'forward' needs stride 1 and "
                             "pad <= dilation * (kernel - 1)")
        if gx.shape[0] == 0:
            return gx.base
        return conv2d_input_forward(gy.base, w.base, gx.base, stride, pad, dilation, groups,
                                    nthreads)
    _grad_input(gy, w, gx, stride, pad, dilation, groups, nthreads,
                _code("conv2d_input", algo))
    return gx.base


def conv2d_weight(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] gy,
                  floating[:, :, :, ::1] gw, stride, pad, dilation, Py_ssize_t groups, algo,
                  int nthreads):
    """Gradient of conv2d wrt its weight; fills and returns ``gw`` (K, C // groups, kh, kw),
    by the algorithm ``algo``, "direct" or "gemm": the plan's choice
    (``fastconv._plan.conv2d_weight``), or one forced by a test or benchmark."""
    _grad_weight(x, gy, gw, stride, pad, dilation, groups, nthreads,
                 _code("conv2d_weight", algo))
    return gw.base


cdef int _read_phases(phases, Py_ssize_t* tab, Py_ssize_t Ly, Py_ssize_t Lo,
                      str axis) except -1:
    """tab[2 a], tab[2 a + 1] = phases[a] (offset, count) along one axis, each checked:
    a count of at least 0, and a phase with outputs inside the stacked layer's ``Ly``
    outputs and, at stride ``len(phases)``, inside grad_output's ``Lo``."""
    cdef Py_ssize_t a, s = len(phases)
    for a in range(s):
        tab[2 * a], tab[2 * a + 1] = phases[a]
        if tab[2 * a + 1] < 0 or (tab[2 * a + 1] and (
                tab[2 * a] < 0 or tab[2 * a] + tab[2 * a + 1] > Ly
                or s * (tab[2 * a + 1] - 1) + a >= Lo)):
            raise ValueError(f"conv2d_weight_phased: a {axis} phase outside the planes")
    return 0


def conv2d_weight_phased(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] gy,
                         floating[:, :, :, ::1] gw, pad, phases_h, phases_w,
                         Py_ssize_t groups, int nthreads):
    """The weight gradient ``gw`` (groups * phases * Kg, Cg, kuh, kuw) of the transposed
    convolution's stacked stride-1 layer (fastconv._transpose.run_weight), by the GEMM
    algorithm, from ``x`` (N, C, H, W) and the transposed convolution's output gradient
    ``gy`` (N, groups * Kg, Ho, Wo) itself: each tile builds its block of the stacked
    layer's output gradient (grad_output's phases in their places, zero elsewhere) next to
    its im2col, so no stacked copy of ``gy`` is made. ``phases_h`` / ``phases_w``: per
    phase ``(offset, count)`` (fastconv._transpose._axis), ``pad`` the stacked layer's
    padding. Tiles and slots as conv2d_weight's for the stacked layer: the same sums, and
    results bitwise independent of ``nthreads``."""
    cdef Phases ph
    cdef Py_ssize_t N = x.shape[0], K = gw.shape[0], Cg = gw.shape[1]
    cdef Py_ssize_t kuh = gw.shape[2], kuw = gw.shape[3], pt = pad[0], pl = pad[1], Hy, Wy
    ph.sh = len(phases_h)
    ph.sw = len(phases_w)
    if not (0 < ph.sh <= 32 and 0 < ph.sw <= 32):
        raise ValueError("conv2d_weight_phased: 1 to 32 phases per axis")
    Hy = x.shape[2] + 2 * pt - kuh + 1
    Wy = x.shape[3] + 2 * pl - kuw + 1
    if (groups < 1 or K % (groups * ph.sh * ph.sw) or x.shape[1] != groups * Cg
            or gy.shape[0] != N or Hy < 1 or Wy < 1):
        raise ValueError("conv2d_weight_phased: x, gy and gw do not fit the phases")
    ph.Kg = K // (groups * ph.sh * ph.sw)
    if gy.shape[1] != groups * ph.Kg:
        raise ValueError("conv2d_weight_phased: gy's channels do not fit gw")
    _read_phases(phases_h, ph.hp, Hy, gy.shape[2], "row")
    _read_phases(phases_w, ph.wp, Wy, gy.shape[3], "column")
    if K == 0 or Cg == 0:
        return gw.base
    if N == 0:
        gw[...] = 0
        return gw.base
    _weight_gemm(x, gy, gw, 1, 1, pt, pl, 1, 1, groups, nthreads, Hy, Wy, &ph)
    return gw.base


# --------------------------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------------------------
cdef void _max_plane(const floating[:, :, ::1] gy, const int64_t[:, :, ::1] idx,
                     floating[:, :, ::1] gx, Py_ssize_t p) noexcept nogil:
    cdef Py_ssize_t C = gx.shape[1], P = gx.shape[2], L = gy.shape[2]
    cdef Py_ssize_t n = p // C, c = p % C, o
    cdef floating* g = &gx[n, c, 0]
    cdef const floating* y = &gy[n, c, 0]
    cdef const int64_t* ix = &idx[n, c, 0]
    memset(g, 0, P * sizeof(floating))
    for o in range(L):
        g[ix[o]] += y[o]


def max_pool2d_backward(gy, idx, gx, int nthreads):
    """Gradient of max_pool2d: ``gy`` added into ``gx`` at ``idx``. Parallel over planes."""
    N, C = gx.shape[0], gx.shape[1]
    _max_pool_planes(gy.reshape(N, C, -1), idx.reshape(N, C, -1), gx.reshape(N, C, -1),
                     nthreads)
    return gx


def _max_pool_planes(const floating[:, :, ::1] gy, const int64_t[:, :, ::1] idx,
                     floating[:, :, ::1] gx, int nthreads):
    cdef Py_ssize_t p, P = gx.shape[0] * gx.shape[1]
    for p in prange(P, nogil=True, schedule="static", num_threads=nthreads):
        fc_ftz_enter()
        _max_plane(gy, idx, gx, p)
        fc_ftz_exit()


cdef void _avg_plane(const floating[:, :, :, ::1] gy, floating[:, :, :, ::1] gx, Py_ssize_t p,
                     Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                     Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad) noexcept nogil:
    cdef Py_ssize_t C = gx.shape[1], H = gx.shape[2], W = gx.shape[3]
    cdef Py_ssize_t Ho = gy.shape[2], Wo = gy.shape[3]
    cdef Py_ssize_t n = p // C, c = p % C
    cdef Py_ssize_t oh, ow, ih, iw, hs, he, hs2, he2, ws, we, ws2, we2, div
    cdef floating v
    cdef floating* grow
    memset(&gx[n, c, 0, 0], 0, H * W * sizeof(floating))
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
            if count_include_pad:
                div = (he - hs) * (we - ws)
            else:
                div = (he2 - hs2) * (we2 - ws2)
            v = gy[n, c, oh, ow] / <floating> div
            for ih in range(hs2, he2):
                grow = &gx[n, c, ih, 0]
                for iw in range(ws2, we2):
                    grow[iw] += v


def avg_pool2d_backward(const floating[:, :, :, ::1] gy, floating[:, :, :, ::1] gx, kernel,
                        stride, pad, bint count_include_pad, int nthreads):
    """Gradient of avg_pool2d: each ``gy / divisor`` spread over its window. Parallel over
    planes."""
    cdef Py_ssize_t kh = kernel[0], kw = kernel[1], sh = stride[0], sw = stride[1]
    cdef Py_ssize_t ph = pad[0], pw = pad[1]
    cdef Py_ssize_t p, P = gx.shape[0] * gx.shape[1]
    for p in prange(P, nogil=True, schedule="static", num_threads=nthreads):
        fc_ftz_enter()
        _avg_plane(gy, gx, p, kh, kw, sh, sw, ph, pw, count_include_pad)
        fc_ftz_exit()
    return gx.base


# --------------------------------------------------------------------------------------------
# flush-to-zero (fc_fpenv.h): this module's flag, kept equal to fastconv's setting
# --------------------------------------------------------------------------------------------
def _set_flush_denormal(bint on):
    """Set this module's flush-to-zero flag (fastconv._threads owns the setting)."""
    fc_ftz_set(on)


from fastconv import _threads  # noqa: E402

_threads.register_flush_hook(_set_flush_denormal)
