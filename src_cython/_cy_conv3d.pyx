"""conv3d and its gradients: Cython + OpenMP kernels (issue 17).

The kernel contract is :mod:`fastconv.reference`'s conv3d section:
``conv3d(x, w, b, out, stride, pad, dilation, groups, algo, nthreads)``,
``conv3d_input(gy, w, gx, stride, pad, dilation, groups, algo, nthreads)`` and
``conv3d_weight(x, gy, gw, stride, pad, dilation, groups, algo, nthreads)``, with ``algo``
the plan's choice (:mod:`fastconv._plan`, its conv3d section):

* conv3d ``"gemm"``: vol2col + GEMM. Work items are (image, group, tile of output rows):
  a tile is ``_plan.conv3d_tile_rows`` consecutive output rows (depth x height), whose
  column matrix (implicit zero padding written as zeros) stays within
  ``_plan.TILE_BYTES`` per thread. At stride 1 along W the tile is flat (rows
  ``Wo + dw * (kw - 1)`` apart) and holds R3 = C/groups * kd * kh rows only: tap l of the
  kw taps reads it from column ``l * dw`` on, one GEMM per tap (vol2col writes kw times
  less); otherwise (R, rows * Wo) columns and one GEMM, straight into ``out``.
* conv3d ``"direct"``: the input is framed by its zero padding once (a copy about the
  input's size), then each work item (image, group, output depth plane, block of output
  rows) runs ``fc_taps_out`` (fc_kernels.h), the register-blocked direct kernel conv2d
  runs, on the flat frame (at stride 1 a tap (c, i, j, l) is one fixed offset), storing
  the sums from the registers straight into ``out``: eight filters x three vectors a
  register tile on AVX-512, four x three on AVX2. Strided layers run a plain row loop on
  the frame instead. The plan takes it at stride 1 up to R = 4608 (half of
  GEMM's time on the bench shape) and for few channels.
* conv3d_input ``"forward"``: at stride 1 with ``pad <= dilation * (kernel - 1)`` the
  input gradient is the forward conv3d of ``grad_output`` with the flipped, transposed
  weights (padding ``dilation * (kernel - 1) - pad``), run with the algorithm the plan
  gives that layer. ``"gemm"``: items (image, group, block of input channels); per tile of
  output rows, ``cols = W_blk^T @ gy_tile`` (BLAS; flat at stride 1 along W, the kw taps'
  products added at their shifts), added into the item's own channels of ``gx``
  (col2vol).
* conv3d_weight ``"direct"`` (float32, stride 1): work items (image, output depth plane,
  block of output rows); each copies its input window (Cg * kd planes of rows + dh*(kh-1)
  rows, ``Wo + dw*(kw-1)`` columns, zero padding written) and grad_output's rows onto
  one flat grid, and fc3_wgrad (fc_conv3d.h) adds, for each filter and tap, the products
  into 16 lanes of partial sums (register tiles of 4 filters x 6 taps). Slots as for
  "gemm" below (``_plan.conv3d_weight_direct_split``); gw sums each weight's slots, then
  lanes, in order. If x holds an inf or NaN both stride-1 paths (whose flat grids
  multiply some input columns by the zeros of unused positions) run the plain vol2col
  GEMM instead, so inf * 0 appears only where torch has it.
* conv3d_weight ``"gemm"``: ``S`` slots (``_plan.conv3d_weight_slots``) per group, slot s
  summing the tiles s, s + S, ... (``gy_tile @ cols^T``) into its own partial; the
  partials are added in slot order. At stride 1 along W one GEMM per tile gives all kw
  taps: its left operand stacks grad_output's tile shifted by ``l * dw`` for each tap.

Every split (tiles, items, slots) depends on the shapes only, and each output element is
summed in a fixed order, so results are bitwise the same for any thread count. BLAS runs
single-threaded inside the parallel regions (fastconv._dispatch holds it there).
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from _blas cimport gemm_rm
from _common cimport (fc_absmax_d, fc_absmax_f, fc_ogeo, fc_pack_d, fc_pack_f, fc_taps_out_d,
                     fc_taps_out_f, valid_cols)
from libc.math cimport INFINITY
from _common cimport fc_ftz_enter, fc_ftz_exit, fc_ftz_set

cdef extern from "fc_conv3d.h" nogil:
    void fc3_wgrad_f(const float* gy, Py_ssize_t Lp, Py_ssize_t nk, const float* src,
                     const Py_ssize_t* off, Py_ssize_t R, float* part)

from fastconv import _plan

cdef enum:
    DIRECT = 0
    GEMM = 1
    FORWARD = 2
_CODES = {_plan.DIRECT: DIRECT, _plan.GEMM: GEMM, _plan.FORWARD: FORWARD}
cdef Py_ssize_t _INT_MAX = 2147483647


cdef int _code(op, algo) except -1:
    code = _CODES.get(algo) if isinstance(algo, str) else None
    if code is None or algo not in _plan.ALGORITHMS["cython", op]:
        _plan.check(op, "cython", algo)
    return code


def _fits_blas(*sizes):
    for s in sizes:
        if s > _INT_MAX:
            raise ValueError("conv3d: a size passes BLAS's 32-bit ints (the plan runs such "
                             "layers on the direct kernel)")


# --------------------------------------------------------------------------------------------
# vol2col / col2vol
# --------------------------------------------------------------------------------------------
cdef void _vol2col(const floating[:, :, :, :, ::1] x, Py_ssize_t n, Py_ssize_t c0,
                   Py_ssize_t Cg, Py_ssize_t kd, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t r0,
                   Py_ssize_t r1, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t sd, Py_ssize_t sh,
                   Py_ssize_t sw, Py_ssize_t pf, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dd,
                   Py_ssize_t dh, Py_ssize_t dw, floating* col, Py_ssize_t ld) noexcept nogil:
    """col[(c, i, j, l) * ld + (r - r0) * Wo + ow] = x[n, c0 + c, od*sd - pf + i*dd,
    oh*sh - pt + j*dh, ow*sw - pl + l*dw] for output rows r = od * Ho + oh in [r0, r1);
    zero outside the input."""
    cdef Py_ssize_t D = x.shape[2], H = x.shape[3], W = x.shape[4]
    cdef Py_ssize_t c, i, j, l, r, od, oh, idd, ih, off, ow, ow0, ow1
    cdef floating* d
    cdef const floating* xrow
    for c in range(Cg):
        for i in range(kd):
            for j in range(kh):
                for l in range(kw):
                    off = l * dw - pl
                    valid_cols(off, sw, W, Wo, &ow0, &ow1)
                    for r in range(r0, r1):
                        d = col + (((c * kd + i) * kh + j) * kw + l) * ld + (r - r0) * Wo
                        od = r // Ho
                        oh = r - od * Ho
                        idd = od * sd - pf + i * dd
                        ih = oh * sh - pt + j * dh
                        if idd < 0 or idd >= D or ih < 0 or ih >= H:
                            memset(d, 0, Wo * sizeof(floating))
                            continue
                        xrow = &x[n, c0 + c, idd, ih, 0]
                        for ow in range(ow0):
                            d[ow] = 0
                        if sw == 1:
                            if ow1 > ow0:
                                memcpy(d + ow0, xrow + ow0 + off,
                                       (ow1 - ow0) * sizeof(floating))
                        else:
                            for ow in range(ow0, ow1):
                                d[ow] = xrow[ow * sw + off]
                        for ow in range(ow1, Wo):
                            d[ow] = 0


cdef void _col2vol(floating[:, :, :, :, ::1] gx, Py_ssize_t n, Py_ssize_t c0, Py_ssize_t cs,
                   Py_ssize_t kd, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t r0, Py_ssize_t r1,
                   Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t sw,
                   Py_ssize_t pf, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dd, Py_ssize_t dh,
                   Py_ssize_t dw, const floating* col, Py_ssize_t ld) noexcept nogil:
    """_vol2col's adjoint: each column added into gx[n, c0 + c] (taps in the padding
    dropped), for channels c < cs."""
    cdef Py_ssize_t D = gx.shape[2], H = gx.shape[3], W = gx.shape[4]
    cdef Py_ssize_t c, i, j, l, r, od, oh, idd, ih, off, ow, ow0, ow1
    cdef const floating* s
    cdef floating* grow
    for c in range(cs):
        for i in range(kd):
            for j in range(kh):
                for l in range(kw):
                    off = l * dw - pl
                    valid_cols(off, sw, W, Wo, &ow0, &ow1)
                    if ow1 <= ow0:
                        continue
                    for r in range(r0, r1):
                        od = r // Ho
                        oh = r - od * Ho
                        idd = od * sd - pf + i * dd
                        ih = oh * sh - pt + j * dh
                        if idd < 0 or idd >= D or ih < 0 or ih >= H:
                            continue
                        s = col + (((c * kd + i) * kh + j) * kw + l) * ld + (r - r0) * Wo
                        grow = &gx[n, c0 + c, idd, ih, 0]
                        for ow in range(ow0, ow1):
                            grow[ow * sw + off] += s[ow]


# --------------------------------------------------------------------------------------------
# stride 1 along W: flat columns, the kw taps folded into kw GEMMs on shifted columns
# --------------------------------------------------------------------------------------------
# A tile of output rows r0 .. r1 - 1 (r = od * Ho + oh) is laid out flat, Wp = Wo + dw*(kw-1)
# columns per row: column u of a row holds input column u - pl (zero outside the input).
# Tap l of that row's output column ow reads flat position ow + l * dw of the same row, so
# one column matrix of R3 = Cg * kd * kh rows (of length rows * Wp + dw * (kw - 1), the
# tail zero) serves all kw taps: GEMM l reads it from column l * dw on. The padded columns
# u >= Wo of the result are dropped. vol2col then writes kw times less than _vol2col.
cdef void _vol2col_flat(const floating[:, :, :, :, ::1] x, Py_ssize_t n, Py_ssize_t c0,
                        Py_ssize_t Cg, Py_ssize_t kd, Py_ssize_t kh, Py_ssize_t r0,
                        Py_ssize_t r1, Py_ssize_t Ho, Py_ssize_t Wp, Py_ssize_t sd,
                        Py_ssize_t sh, Py_ssize_t pf, Py_ssize_t pt, Py_ssize_t pl,
                        Py_ssize_t dd, Py_ssize_t dh, floating* col,
                        Py_ssize_t ld) noexcept nogil:
    cdef Py_ssize_t D = x.shape[2], H = x.shape[3], W = x.shape[4]
    cdef Py_ssize_t c, i, j, r, od, oh, idd, ih, a, e
    cdef floating* d
    cdef floating* row
    a = min(pl, Wp)
    e = min(pl + W, Wp)
    for c in range(Cg):
        for i in range(kd):
            for j in range(kh):
                row = col + ((c * kd + i) * kh + j) * ld
                for r in range(r0, r1):
                    d = row + (r - r0) * Wp
                    od = r // Ho
                    oh = r - od * Ho
                    idd = od * sd - pf + i * dd
                    ih = oh * sh - pt + j * dh
                    if idd < 0 or idd >= D or ih < 0 or ih >= H:
                        memset(d, 0, Wp * sizeof(floating))
                        continue
                    if a > 0:
                        memset(d, 0, a * sizeof(floating))
                    if e > a:
                        memcpy(d + a, &x[n, c0 + c, idd, ih, 0], (e - a) * sizeof(floating))
                    if Wp > e:
                        memset(d + e, 0, (Wp - e) * sizeof(floating))
                d = row + (r1 - r0) * Wp
                memset(d, 0, (ld - (r1 - r0) * Wp) * sizeof(floating))


cdef void _col2vol_flat(floating[:, :, :, :, ::1] gx, Py_ssize_t n, Py_ssize_t c0,
                        Py_ssize_t cs, Py_ssize_t kd, Py_ssize_t kh, Py_ssize_t r0,
                        Py_ssize_t r1, Py_ssize_t Ho, Py_ssize_t Wp, Py_ssize_t sd,
                        Py_ssize_t sh, Py_ssize_t pf, Py_ssize_t pt, Py_ssize_t pl,
                        Py_ssize_t dd, Py_ssize_t dh, const floating* col,
                        Py_ssize_t ld) noexcept nogil:
    """_vol2col_flat's adjoint (the tail dropped), added into gx[n, c0 + c], c < cs."""
    cdef Py_ssize_t D = gx.shape[2], H = gx.shape[3], W = gx.shape[4]
    cdef Py_ssize_t c, i, j, r, od, oh, idd, ih, a, e, u
    cdef const floating* s
    cdef floating* g
    a = min(pl, Wp)
    e = min(pl + W, Wp)
    for c in range(cs):
        for i in range(kd):
            for j in range(kh):
                for r in range(r0, r1):
                    od = r // Ho
                    oh = r - od * Ho
                    idd = od * sd - pf + i * dd
                    ih = oh * sh - pt + j * dh
                    if idd < 0 or idd >= D or ih < 0 or ih >= H:
                        continue
                    s = col + ((c * kd + i) * kh + j) * ld + (r - r0) * Wp
                    g = &gx[n, c0 + c, idd, ih, 0] - pl
                    for u in range(a, e):
                        g[u] += s[u]


def _taps_last(w):
    """(kw, K, R3): the weights with the W taps first, ``[l, k, (c, i, j)]``."""
    K, kw = w.shape[0], w.shape[4]  # (no negative indices: the module has wraparound off)
    return np.ascontiguousarray(np.moveaxis(w, 4, 0).reshape(kw, K, w.size // (K * kw)))


cdef int _gemm_flat(const floating[:, :, :, :, ::1] x, const floating[:, :, ::1] wl,
                    const floating[::1] b, floating[:, :, :, :, ::1] out, Py_ssize_t kd,
                    Py_ssize_t kh, Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t pf, Py_ssize_t pt,
                    Py_ssize_t pl, Py_ssize_t dd, Py_ssize_t dh, Py_ssize_t dw,
                    Py_ssize_t groups, int nthreads) except -1:
    cdef Py_ssize_t N = out.shape[0], K = out.shape[1]
    cdef Py_ssize_t Do = out.shape[2], Ho = out.shape[3], Wo = out.shape[4]
    cdef Py_ssize_t kw = wl.shape[0], R3 = wl.shape[2], Kg = K // groups
    cdef Py_ssize_t Cg = R3 // (kd * kh), Wp = Wo + dw * (kw - 1), P = Do * Ho * Wo
    cdef Py_ssize_t rows, ntiles, items, item, n, g, t, r0, r1, f, q, l, ld, Pf, ws_elems
    cdef floating* ws = NULL
    cdef floating* col
    cdef floating* acc
    cdef floating* o
    cdef floating bv
    _fits_blas(R3, P, Kg, (Do * Ho) * Wp + Wp)
    rows = _plan.conv3d_tile_rows(Do * Ho, Wp, R3, sizeof(floating))
    ntiles = (Do * Ho + rows - 1) // rows
    items = N * groups * ntiles
    ws_elems = R3 * (rows * Wp + dw * (kw - 1)) + Kg * rows * Wp
    nthreads = <int> max(1, min(nthreads, items))
    ws = <floating*> malloc(nthreads * ws_elems * sizeof(floating))
    if ws == NULL:
        raise MemoryError("conv3d: could not allocate the vol2col tiles")
    try:
        with nogil:
            for item in prange(items, schedule="dynamic", num_threads=nthreads):
                fc_ftz_enter()
                t = item % ntiles
                g = (item // ntiles) % groups
                n = item // (ntiles * groups)
                r0 = t * rows
                r1 = min(Do * Ho, r0 + rows)
                Pf = (r1 - r0) * Wp
                ld = Pf + dw * (kw - 1)
                col = ws + threadid() * ws_elems
                acc = col + R3 * ld
                _vol2col_flat(x, n, g * Cg, Cg, kd, kh, r0, r1, Ho, Wp, sd, sh, pf, pt, pl,
                              dd, dh, col, ld)
                for l in range(kw):
                    gemm_rm(False, False, <int> Kg, <int> Pf, <int> R3, <floating> 1,
                            &wl[l, g * Kg, 0], <int> R3, col + l * dw, <int> ld,
                            <floating> (0 if l == 0 else 1), acc, <int> Pf)
                for f in range(Kg):
                    bv = b[g * Kg + f]
                    o = &out[n, g * Kg + f, 0, 0, 0] + r0 * Wo
                    for t in range(r1 - r0):
                        for q in range(Wo):
                            o[t * Wo + q] = acc[f * Pf + t * Wp + q] + bv
                fc_ftz_exit()
    finally:
        free(ws)
    return 0


cdef int _input_flat(const floating[:, :, :, :, ::1] gy, const floating[:, :, ::1] wl,
                     floating[:, :, :, :, ::1] gx, Py_ssize_t kd, Py_ssize_t kh,
                     Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t pf, Py_ssize_t pt,
                     Py_ssize_t pl, Py_ssize_t dd, Py_ssize_t dh, Py_ssize_t dw,
                     Py_ssize_t groups, int nthreads) except -1:
    cdef Py_ssize_t N = gy.shape[0], K = gy.shape[1]
    cdef Py_ssize_t Do = gy.shape[2], Ho = gy.shape[3], Wo = gy.shape[4]
    cdef Py_ssize_t kw = wl.shape[0], R3 = wl.shape[2], Kg = K // groups, T2 = kd * kh
    cdef Py_ssize_t Cg = R3 // T2, Wp = Wo + dw * (kw - 1), P = Do * Ho * Wo
    cdef Py_ssize_t plane = gx.shape[2] * gx.shape[3] * gx.shape[4]
    cdef Py_ssize_t rows, ntiles, cs, ncb, items, item, n, g, cb, c0, c1, t, r0, r1
    cdef Py_ssize_t f, q, l, ld, Pf, ws_elems
    cdef floating* ws = NULL
    cdef floating* col
    cdef floating* gyf
    cdef const floating* src
    _fits_blas(R3, P, Kg, (Do * Ho) * Wp + Wp)
    rows = _plan.conv3d_tile_rows(Do * Ho, Wp, R3, sizeof(floating))
    ntiles = (Do * Ho + rows - 1) // rows
    cs, ncb = _plan.conv3d_input_blocks(N, groups, Cg)
    items = N * groups * ncb
    ws_elems = cs * T2 * (rows * Wp + dw * (kw - 1)) + Kg * rows * Wp
    nthreads = <int> max(1, min(nthreads, items))
    ws = <floating*> malloc(nthreads * ws_elems * sizeof(floating))
    if ws == NULL:
        raise MemoryError("conv3d_input: could not allocate the column tiles")
    try:
        with nogil:
            for item in prange(items, schedule="dynamic", num_threads=nthreads):
                fc_ftz_enter()
                cb = item % ncb
                g = (item // ncb) % groups
                n = item // (ncb * groups)
                c0 = cb * cs
                c1 = min(Cg, c0 + cs)
                col = ws + threadid() * ws_elems
                memset(&gx[n, g * Cg + c0, 0, 0, 0], 0, (c1 - c0) * plane * sizeof(floating))
                for t in range(ntiles):
                    r0 = t * rows
                    r1 = min(Do * Ho, r0 + rows)
                    Pf = (r1 - r0) * Wp
                    ld = Pf + dw * (kw - 1)
                    gyf = col + (c1 - c0) * T2 * ld
                    # grad_output's tile on the flat grid, zero past Wo
                    for f in range(Kg):
                        src = &gy[n, g * Kg + f, 0, 0, 0] + r0 * Wo
                        for q in range(r1 - r0):
                            memcpy(gyf + f * Pf + q * Wp, src + q * Wo, Wo * sizeof(floating))
                            memset(gyf + f * Pf + q * Wp + Wo, 0, (Wp - Wo) * sizeof(floating))
                    for q in range((c1 - c0) * T2):
                        memset(col + q * ld + Pf, 0, dw * (kw - 1) * sizeof(floating))
                    # cols[:, l*dw:] += W_l^T @ gy_flat (tap l's columns, shifted by l * dw)
                    for l in range(kw):
                        gemm_rm(True, False, <int> ((c1 - c0) * T2), <int> Pf, <int> Kg,
                                <floating> 1, &wl[l, g * Kg, c0 * T2], <int> R3, gyf,
                                <int> Pf, <floating> (0 if l == 0 else 1), col + l * dw,
                                <int> ld)
                    _col2vol_flat(gx, n, g * Cg + c0, c1 - c0, kd, kh, r0, r1, Ho, Wp, sd,
                                  sh, pf, pt, pl, dd, dh, col, ld)
                fc_ftz_exit()
    finally:
        free(ws)
    return 0


cdef int _weight_flat(const floating[:, :, :, :, ::1] x, const floating[:, :, :, :, ::1] gy,
                      floating[:, :, ::1] parts, Py_ssize_t kd, Py_ssize_t kh, Py_ssize_t kw,
                      Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t pf, Py_ssize_t pt,
                      Py_ssize_t pl, Py_ssize_t dd, Py_ssize_t dh, Py_ssize_t dw,
                      Py_ssize_t groups, int nthreads) except -1:
    """parts[s, g, (l * Kg + k) * R3 + r3]: slot s's sum, over its tiles, of tap l's
    ``gy_flat @ cols[:, l*dw:]^T`` for group g. One GEMM per tile computes all kw taps:
    the rows of its left operand are grad_output's tile shifted right by l * dw (zeros
    before and after), so that column matrix is packed once."""
    cdef Py_ssize_t N = gy.shape[0], K = gy.shape[1]
    cdef Py_ssize_t Do = gy.shape[2], Ho = gy.shape[3], Wo = gy.shape[4]
    cdef Py_ssize_t S = parts.shape[0], Kg = K // groups
    cdef Py_ssize_t R3 = parts.shape[2] // (kw * Kg), Cg = R3 // (kd * kh)
    cdef Py_ssize_t Wp = Wo + dw * (kw - 1), P = Do * Ho * Wo
    cdef Py_ssize_t rows, ntiles, T, items, item, s, g, t, n, r0, r1, f, q, l, ld, Pf, r
    cdef Py_ssize_t ws_elems, first
    cdef floating* ws = NULL
    cdef floating* col
    cdef floating* gyf
    cdef floating* acc
    cdef const floating* src
    _fits_blas(R3, P, Kg, (Do * Ho) * Wp + Wp)
    rows = _plan.conv3d_tile_rows(Do * Ho, Wp, R3, sizeof(floating))
    ntiles = (Do * Ho + rows - 1) // rows
    T = N * ntiles
    items = S * groups
    ws_elems = (R3 + kw * Kg) * (rows * Wp + dw * (kw - 1))
    nthreads = <int> max(1, min(nthreads, items))
    ws = <floating*> malloc(nthreads * ws_elems * sizeof(floating))
    if ws == NULL:
        raise MemoryError("conv3d_weight: could not allocate the column tiles")
    try:
        with nogil:
            for item in prange(items, schedule="dynamic", num_threads=nthreads):
                fc_ftz_enter()
                s = item % S
                g = item // S
                col = ws + threadid() * ws_elems
                first = 1
                for q in range((T - s + S - 1) // S):
                    t = s + q * S
                    n = t // ntiles
                    r0 = (t % ntiles) * rows
                    r1 = min(Do * Ho, r0 + rows)
                    Pf = (r1 - r0) * Wp
                    ld = Pf + dw * (kw - 1)
                    gyf = col + R3 * ld
                    _vol2col_flat(x, n, g * Cg, Cg, kd, kh, r0, r1, Ho, Wp, sd, sh, pf, pt,
                                  pl, dd, dh, col, ld)
                    # row (l, f): grad_output's tile on the flat grid (zero past Wo),
                    # shifted right by l * dw
                    for l in range(kw):
                        for f in range(Kg):
                            src = &gy[n, g * Kg + f, 0, 0, 0] + r0 * Wo
                            acc = gyf + (l * Kg + f) * ld
                            memset(acc, 0, l * dw * sizeof(floating))
                            acc = acc + l * dw
                            for r in range(r1 - r0):
                                memcpy(acc + r * Wp, src + r * Wo, Wo * sizeof(floating))
                                memset(acc + r * Wp + Wo, 0, (Wp - Wo) * sizeof(floating))
                            memset(acc + Pf, 0, (ld - Pf - l * dw) * sizeof(floating))
                    gemm_rm(False, True, <int> (kw * Kg), <int> R3, <int> ld, <floating> 1,
                            gyf, <int> ld, col, <int> ld, <floating> (0 if first else 1),
                            &parts[s, g, 0], <int> R3)
                    first = 0
                fc_ftz_exit()
    finally:
        free(ws)
    return 0


# --------------------------------------------------------------------------------------------
# conv3d: GEMM
# --------------------------------------------------------------------------------------------
cdef int _gemm(const floating[:, :, :, :, ::1] x, const floating[:, :, :, :, ::1] w,
               const floating[::1] b, floating[:, :, :, :, ::1] out, Py_ssize_t sd,
               Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pf, Py_ssize_t pt, Py_ssize_t pl,
               Py_ssize_t dd, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups,
               int nthreads) except -1:
    cdef Py_ssize_t N = out.shape[0], K = out.shape[1]
    cdef Py_ssize_t Do = out.shape[2], Ho = out.shape[3], Wo = out.shape[4]
    cdef Py_ssize_t Cg = w.shape[1], kd = w.shape[2], kh = w.shape[3], kw = w.shape[4]
    cdef Py_ssize_t R = Cg * kd * kh * kw, Kg = K // groups, P = Do * Ho * Wo
    cdef Py_ssize_t rows, ntiles, items, item, n, g, t, r0, r1, f, q, ws_elems
    cdef floating* ws = NULL
    cdef floating* col
    cdef floating* o
    cdef floating bv
    _fits_blas(R, P, Kg)
    rows = _plan.conv3d_tile_rows(Do * Ho, Wo, R, sizeof(floating))
    ntiles = (Do * Ho + rows - 1) // rows
    items = N * groups * ntiles
    ws_elems = R * rows * Wo
    nthreads = <int> max(1, min(nthreads, items))
    ws = <floating*> malloc(nthreads * ws_elems * sizeof(floating))
    if ws == NULL:
        raise MemoryError("conv3d: could not allocate the vol2col tiles")
    try:
        with nogil:
            for item in prange(items, schedule="dynamic", num_threads=nthreads):
                fc_ftz_enter()
                t = item % ntiles
                g = (item // ntiles) % groups
                n = item // (ntiles * groups)
                r0 = t * rows
                r1 = min(Do * Ho, r0 + rows)
                col = ws + threadid() * ws_elems
                _vol2col(x, n, g * Cg, Cg, kd, kh, kw, r0, r1, Ho, Wo, sd, sh, sw, pf, pt, pl,
                         dd, dh, dw, col, (r1 - r0) * Wo)
                o = &out[n, g * Kg, 0, 0, 0] + r0 * Wo
                gemm_rm(False, False, <int> Kg, <int> ((r1 - r0) * Wo), <int> R, <floating> 1,
                        &w[g * Kg, 0, 0, 0, 0], <int> R, col, <int> ((r1 - r0) * Wo),
                        <floating> 0, o, <int> P)
                for f in range(Kg):
                    bv = b[g * Kg + f]
                    for q in range((r1 - r0) * Wo):
                        o[f * P + q] += bv
                fc_ftz_exit()
    finally:
        free(ws)
    return 0


# --------------------------------------------------------------------------------------------
# conv3d: direct (on the input framed by its padding)
# --------------------------------------------------------------------------------------------
cdef void _flat_item(const floating[:, :, :, :, ::1] xp, const floating[:, :, :, :, ::1] w,
                     const floating[::1] b, floating[:, :, :, :, ::1] out,
                     const Py_ssize_t* off, Py_ssize_t n, Py_ssize_t g, Py_ssize_t od,
                     Py_ssize_t oh0, Py_ssize_t oh1, const floating* wp) noexcept nogil:
    """Stride 1: output rows [oh0, oh1) of depth plane od, image n, group g, every filter
    of the group, by fc_taps_out (fc_kernels.h) on the flat frame (rows Wp apart), stored
    straight into ``out`` (the ``Wp - Wo`` columns between rows are computed and dropped);
    ``wp`` holds the weights packed by fc_pack for its eight-filter tiles."""
    cdef Py_ssize_t Cg = w.shape[1], kd = w.shape[2], kh = w.shape[3], kw = w.shape[4]
    cdef Py_ssize_t Wp = xp.shape[4], Wo = out.shape[4]
    cdef Py_ssize_t Kg = out.shape[1] * Cg // xp.shape[1], R = Cg * kd * kh * kw
    cdef Py_ssize_t L = (oh1 - oh0 - 1) * Wp + Wo
    cdef const floating* src = &xp[n, g * Cg, od, oh0, 0]
    cdef fc_ogeo geo
    geo.ldo = out.strides[1] // sizeof(floating)
    geo.ldr = Wo
    geo.ldc = 1
    geo.Wo = Wo
    geo.Wp = Wp
    if floating is float:
        fc_taps_out_f(src, off, R, &w[g * Kg, 0, 0, 0, 0], R, wp + g * Kg * R, &b[g * Kg],
                      Kg, &out[n, g * Kg, od, oh0, 0], &geo, L)
    else:
        fc_taps_out_d(src, off, R, &w[g * Kg, 0, 0, 0, 0], R, wp + g * Kg * R, &b[g * Kg],
                      Kg, &out[n, g * Kg, od, oh0, 0], &geo, L)


cdef void _strided_item(const floating[:, :, :, :, ::1] xp, const floating[:, :, :, :, ::1] w,
                        const floating[::1] b, floating[:, :, :, :, ::1] out, Py_ssize_t n,
                        Py_ssize_t k, Py_ssize_t od, Py_ssize_t sd, Py_ssize_t sh,
                        Py_ssize_t sw, Py_ssize_t dd, Py_ssize_t dh,
                        Py_ssize_t dw) noexcept nogil:
    """Any stride: output plane (n, k, od), a row loop over the taps in a fixed order."""
    cdef Py_ssize_t Cg = w.shape[1], kd = w.shape[2], kh = w.shape[3], kw = w.shape[4]
    cdef Py_ssize_t Ho = out.shape[3], Wo = out.shape[4]
    cdef Py_ssize_t Kg = out.shape[1] * Cg // xp.shape[1]
    cdef Py_ssize_t c0 = (k // Kg) * Cg, c, i, j, l, oh, ow
    cdef floating wv
    cdef floating* orow
    cdef const floating* xrow
    for oh in range(Ho):
        orow = &out[n, k, od, oh, 0]
        for ow in range(Wo):
            orow[ow] = b[k]
    for c in range(Cg):
        for i in range(kd):
            for j in range(kh):
                for l in range(kw):
                    wv = w[k, c, i, j, l]
                    for oh in range(Ho):
                        orow = &out[n, k, od, oh, 0]
                        xrow = &xp[n, c0 + c, od * sd + i * dd, oh * sh + j * dh, l * dw]
                        for ow in range(Wo):
                            orow[ow] += wv * xrow[ow * sw]


cdef void _frame_fill(const floating[:, :, :, :, ::1] x, floating[:, :, :, :, ::1] xp,
                      Py_ssize_t pf, Py_ssize_t pt, Py_ssize_t pl,
                      int nthreads) noexcept nogil:
    """xp = x framed by zeros (pf planes in front, pt rows above, pl columns left; the rest
    of xp zero), written once, plane by plane on ``nthreads`` threads."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], D = x.shape[2], H = x.shape[3]
    cdef Py_ssize_t W = x.shape[4], Dp = xp.shape[2], Hp = xp.shape[3], Wp = xp.shape[4]
    cdef Py_ssize_t p, n, c, dp, hp, idd, ih, w1
    cdef floating* row
    w1 = min(W, Wp - pl)
    for p in prange(N * C * Dp, schedule="static", num_threads=nthreads):
        n = p // (C * Dp)
        c = (p // Dp) % C
        dp = p % Dp
        idd = dp - pf
        for hp in range(Hp):
            row = &xp[n, c, dp, hp, 0]
            ih = hp - pt
            if idd < 0 or idd >= D or ih < 0 or ih >= H or w1 <= 0:
                memset(row, 0, Wp * sizeof(floating))
                continue
            memset(row, 0, pl * sizeof(floating))
            memcpy(row + pl, &x[n, c, idd, ih, 0], w1 * sizeof(floating))
            memset(row + pl + w1, 0, (Wp - pl - w1) * sizeof(floating))


def _frame(x, pad, w_shape, stride, dilation, out_sp, int nthreads=1):
    """``x`` in a zero frame holding every window of the output (``x`` when it does)."""
    N, C = x.shape[:2]
    shape = (N, C) + tuple(
        max(s + p, (o - 1) * st + d * (k - 1) + 1) for s, p, o, st, d, k in
        zip(x.shape[2:], pad, out_sp, stride, dilation, w_shape[2:]))
    if shape == x.shape and not any(pad):
        return x
    xp = np.empty(shape, x.dtype)
    _frame_typed(x, xp, pad[0], pad[1], pad[2], nthreads)
    return xp


def _frame_typed(const floating[:, :, :, :, ::1] x, floating[:, :, :, :, ::1] xp,
                 Py_ssize_t pf, Py_ssize_t pt, Py_ssize_t pl, int nthreads):
    with nogil:
        _frame_fill(x, xp, pf, pt, pl, nthreads)


cdef int _direct(const floating[:, :, :, :, ::1] xp, const floating[:, :, :, :, ::1] w,
                 const floating[::1] b, floating[:, :, :, :, ::1] out, Py_ssize_t sd,
                 Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dd, Py_ssize_t dh, Py_ssize_t dw,
                 Py_ssize_t groups, int nthreads) except -1:
    cdef Py_ssize_t N = out.shape[0], K = out.shape[1]
    cdef Py_ssize_t Do = out.shape[2], Ho = out.shape[3], Wo = out.shape[4]
    cdef Py_ssize_t Cg = w.shape[1], kd = w.shape[2], kh = w.shape[3], kw = w.shape[4]
    cdef Py_ssize_t Dp = xp.shape[2], Hp = xp.shape[3], Wp = xp.shape[4]
    cdef Py_ssize_t R = Cg * kd * kh * kw, Kg = K // groups
    cdef Py_ssize_t rows, nb, items, item, t, c, i, j, l, oh0, g
    cdef Py_ssize_t* off = NULL
    cdef floating* wp = NULL
    if sd != 1 or sh != 1 or sw != 1:
        with nogil:
            for item in prange(N * K * Do, schedule="dynamic", num_threads=nthreads):
                fc_ftz_enter()
                _strided_item(xp, w, b, out, item // (K * Do), (item // Do) % K, item % Do,
                              sd, sh, sw, dd, dh, dw)
                fc_ftz_exit()
        return 0
    rows = _plan.conv3d_direct_rows(Ho, Wp, Kg)
    nb = (Ho + rows - 1) // rows
    items = N * groups * Do * nb
    nthreads = <int> max(1, min(nthreads, items))
    off = <Py_ssize_t*> malloc(R * sizeof(Py_ssize_t))
    wp = <floating*> malloc(K * R * sizeof(floating))
    try:
        if off == NULL or wp == NULL:
            raise MemoryError("conv3d: could not allocate the direct kernel's packed weights")
        for g in range(groups):
            if floating is float:
                fc_pack_f(&w[g * Kg, 0, 0, 0, 0], R, R, Kg, wp + g * Kg * R)
            else:
                fc_pack_d(&w[g * Kg, 0, 0, 0, 0], R, R, Kg, wp + g * Kg * R)
        t = 0
        for c in range(Cg):
            for i in range(kd):
                for j in range(kh):
                    for l in range(kw):
                        off[t] = ((c * Dp + i * dd) * Hp + j * dh) * Wp + l * dw
                        t += 1
        with nogil:
            for item in prange(items, schedule="dynamic", num_threads=nthreads):
                fc_ftz_enter()
                oh0 = (item % nb) * rows
                _flat_item(xp, w, b, out, off, item // (groups * Do * nb),
                           (item // (Do * nb)) % groups, (item // nb) % Do, oh0,
                           min(Ho, oh0 + rows), wp)
                fc_ftz_exit()
    finally:
        free(off)
        free(wp)
    return 0


cdef int _conv3d(int code, const floating[:, :, :, :, ::1] x, const floating[:, :, :, :, ::1] w,
                 const floating[::1] b, floating[:, :, :, :, ::1] o, stride, pad, dilation,
                 Py_ssize_t groups, int nthreads) except -1:
    cdef const floating[:, :, :, :, ::1] xp
    cdef const floating[:, :, ::1] wl
    cdef Py_ssize_t sd = stride[0], sh = stride[1], sw = stride[2]
    cdef Py_ssize_t pf = pad[0], pt = pad[1], pl = pad[2]
    cdef Py_ssize_t dd = dilation[0], dh = dilation[1], dw = dilation[2]
    if o.shape[0] == 0:
        return 0
    if code == GEMM and sw == 1:
        wl = _taps_last(np.asarray(w))
        _gemm_flat(x, wl, b, o, w.shape[2], w.shape[3], sd, sh, pf, pt, pl, dd, dh, dw,
                   groups, nthreads)
    elif code == GEMM:
        _gemm(x, w, b, o, sd, sh, sw, pf, pt, pl, dd, dh, dw, groups, nthreads)
    else:
        xp = _frame(np.asarray(x), (pf, pt, pl), np.asarray(w).shape, (sd, sh, sw),
                    (dd, dh, dw), (o.shape[2], o.shape[3], o.shape[4]), nthreads)
        _direct(xp, w, b, o, sd, sh, sw, dd, dh, dw, groups, nthreads)
    return 0


def conv3d(x, w, b, out, stride, pad, dilation, Py_ssize_t groups, algo, int nthreads):
    """Grouped 3-D cross-correlation; fills and returns ``out`` (N, K, Do, Ho, Wo) by the
    algorithm ``algo`` ("direct" or "gemm", see the module docstring) on ``nthreads``
    OpenMP threads."""
    cdef int code = _code("conv3d", algo)
    _conv3d_typed(code, x, w, b, out, stride, pad, dilation, groups, nthreads)
    return out


def _conv3d_typed(int code, const floating[:, :, :, :, ::1] x,
                  const floating[:, :, :, :, ::1] w, const floating[::1] b,
                  floating[:, :, :, :, ::1] out, stride, pad, dilation, Py_ssize_t groups,
                  int nthreads):
    _conv3d(code, x, w, b, out, stride, pad, dilation, groups, nthreads)


# --------------------------------------------------------------------------------------------
# conv3d_input
# --------------------------------------------------------------------------------------------
cdef int _input_gemm(const floating[:, :, :, :, ::1] gy, const floating[:, :, :, :, ::1] w,
                     floating[:, :, :, :, ::1] gx, Py_ssize_t sd, Py_ssize_t sh,
                     Py_ssize_t sw, Py_ssize_t pf, Py_ssize_t pt, Py_ssize_t pl,
                     Py_ssize_t dd, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups,
                     int nthreads) except -1:
    cdef Py_ssize_t N = gy.shape[0], K = gy.shape[1]
    cdef Py_ssize_t Do = gy.shape[2], Ho = gy.shape[3], Wo = gy.shape[4]
    cdef Py_ssize_t Cg = w.shape[1], kd = w.shape[2], kh = w.shape[3], kw = w.shape[4]
    cdef Py_ssize_t T3 = kd * kh * kw, R = Cg * T3, Kg = K // groups, P = Do * Ho * Wo
    cdef Py_ssize_t plane = gx.shape[2] * gx.shape[3] * gx.shape[4]
    cdef Py_ssize_t rows, ntiles, cs, ncb, items, item, n, g, cb, c0, c1, t, r0, r1, ws_elems
    cdef floating* ws = NULL
    cdef floating* col
    _fits_blas(R, P, Kg)
    rows = _plan.conv3d_tile_rows(Do * Ho, Wo, R, sizeof(floating))
    ntiles = (Do * Ho + rows - 1) // rows
    cs, ncb = _plan.conv3d_input_blocks(N, groups, Cg)
    items = N * groups * ncb
    ws_elems = cs * T3 * rows * Wo
    nthreads = <int> max(1, min(nthreads, items))
    ws = <floating*> malloc(nthreads * ws_elems * sizeof(floating))
    if ws == NULL:
        raise MemoryError("conv3d_input: could not allocate the column tiles")
    try:
        with nogil:
            for item in prange(items, schedule="dynamic", num_threads=nthreads):
                fc_ftz_enter()
                cb = item % ncb
                g = (item // ncb) % groups
                n = item // (ncb * groups)
                c0 = cb * cs
                c1 = min(Cg, c0 + cs)
                col = ws + threadid() * ws_elems
                memset(&gx[n, g * Cg + c0, 0, 0, 0], 0, (c1 - c0) * plane * sizeof(floating))
                for t in range(ntiles):
                    r0 = t * rows
                    r1 = min(Do * Ho, r0 + rows)
                    # cols (rows c, taps of channels [c0, c1)) = W_blk^T @ gy_tile
                    gemm_rm(True, False, <int> ((c1 - c0) * T3), <int> ((r1 - r0) * Wo),
                            <int> Kg, <floating> 1, &w[g * Kg, c0, 0, 0, 0], <int> R,
                            &gy[n, g * Kg, 0, 0, 0] + r0 * Wo, <int> P, <floating> 0, col,
                            <int> ((r1 - r0) * Wo))
                    _col2vol(gx, n, g * Cg + c0, c1 - c0, kd, kh, kw, r0, r1, Ho, Wo, sd, sh,
                             sw, pf, pt, pl, dd, dh, dw, col, (r1 - r0) * Wo)
                fc_ftz_exit()
    finally:
        free(ws)
    return 0


def _input_typed(int code, const floating[:, :, :, :, ::1] gy,
                 const floating[:, :, :, :, ::1] w, floating[:, :, :, :, ::1] gx, stride, pad,
                 dilation, Py_ssize_t groups, int nthreads):
    cdef const floating[::1] zb
    cdef const floating[:, :, :, :, ::1] wtv
    cdef Py_ssize_t sd = stride[0], sh = stride[1], sw = stride[2]
    cdef Py_ssize_t pf = pad[0], pt = pad[1], pl = pad[2]
    cdef Py_ssize_t dd = dilation[0], dh = dilation[1], dw = dilation[2]
    cdef int fcode
    cdef const floating[:, :, ::1] wl
    finite = _all_finite(w)
    if code == FORWARD and finite:
        # (a NaN or inf weight would meet the forward conv's zero frame: the GEMM path)
        wa, gya, gxa = np.asarray(w), np.asarray(gy), np.asarray(gx)
        wt = _flipped(wa, groups)
        wtv = wt
        padt = tuple(d * (k - 1) - p for d, k, p in zip(dilation, wa.shape[2:], pad))
        zb = np.zeros(wt.shape[0], gya.dtype)
        fcode = _CODES[_plan.conv3d("cython", gya.shape, wt.shape, gxa.shape, (1, 1, 1),
                                    padt, dilation, groups)]
        _conv3d(fcode, gy, wtv, zb, gx, (1, 1, 1), padt, dilation, groups, nthreads)
    elif sw == 1 and finite:
        # the flat grid multiplies weights by grad_output's zeros past Wo: a NaN or inf
        # weight would leak into positions it does not reach, so those take the GEMM path
        wl = _taps_last(np.asarray(w))
        _input_flat(gy, wl, gx, w.shape[2], w.shape[3], sd, sh, pf, pt, pl, dd, dh, dw,
                    groups, nthreads)
    else:
        _input_gemm(gy, w, gx, sd, sh, sw, pf, pt, pl, dd, dh, dw, groups, nthreads)


def _flipped(w, groups):
    """The weights of the forward conv3d that computes a stride-1 input gradient: flipped
    along the three kernel axes and transposed per group (filters become channels)."""
    K, Cg = w.shape[:2]
    G, Kg = groups, K // groups
    wt = w.reshape((G, Kg, Cg) + w.shape[2:]).transpose(0, 2, 1, 3, 4, 5)[..., ::-1, ::-1, ::-1]
    return np.ascontiguousarray(wt.reshape((G * Cg, Kg) + w.shape[2:]))


def conv3d_input(gy, w, gx, stride, pad, dilation, Py_ssize_t groups, algo, int nthreads):
    """Gradient of conv3d wrt its input; fills and returns ``gx`` by ``algo`` ("forward"
    or "gemm", see the module docstring)."""
    cdef int code = _code("conv3d_input", algo)
    if code == FORWARD and not _plan.transposes_to_forward3(stride, pad, dilation, w.shape):
        raise ValueError("conv3d_input: algo 'forward' needs stride 1 and "
                         "pad <= dilation * (kernel - 1)")
    if gy.shape[0] == 0:
        gx[...] = 0
        return gx
    _input_typed(code, gy, w, gx, stride, pad, dilation, groups, nthreads)
    return gx


# --------------------------------------------------------------------------------------------
# conv3d_weight
# --------------------------------------------------------------------------------------------
cdef int _weight_direct(const float[:, :, :, :, ::1] x, const float[:, :, :, :, ::1] gy,
                        float[:, :, :, :, ::1] gw, Py_ssize_t pf, Py_ssize_t pt,
                        Py_ssize_t pl, Py_ssize_t dd, Py_ssize_t dh, Py_ssize_t dw,
                        Py_ssize_t groups, int nthreads) except -1:
    """Stride 1, float32: the direct weight gradient (fc3_wgrad_f). Work items (image,
    output depth plane, block of output rows), per group; slot s of ``S`` sums items
    s, s + S, ... in order into its own 16-lane partials; gw is the partials' sum, slots
    then lanes in order."""
    cdef Py_ssize_t N = gy.shape[0], K = gy.shape[1]
    cdef Py_ssize_t Do = gy.shape[2], Ho = gy.shape[3], Wo = gy.shape[4]
    cdef Py_ssize_t D = x.shape[2], H = x.shape[3], W = x.shape[4]
    cdef Py_ssize_t Cg = gw.shape[1], kd = gw.shape[2], kh = gw.shape[3], kw = gw.shape[4]
    cdef Py_ssize_t R = Cg * kd * kh * kw, Kg = K // groups, Wp = Wo + dw * (kw - 1)
    cdef Py_ssize_t rows, S, nb, T, Hs, Lmax, slab_elems, ws_elems, items, item, s, g, q
    cdef Py_ssize_t n, od, oh0, r, L, Lp, c, i, j, l, hs, idd, ih, f, t, v, a, e, qq
    cdef Py_ssize_t* off = NULL
    cdef float* ws = NULL
    cdef float* slab
    cdef float* gyb
    cdef float* d
    cdef float* part
    cdef float sm
    cdef float[:, :, ::1] parts
    rows, S = _plan.conv3d_weight_direct_split(N, Do, Ho, Wp, Cg * kd, Kg, dh * (kh - 1),
                                               K * R)
    nb = (Ho + rows - 1) // rows
    T = N * Do * nb
    Hs = rows + dh * (kh - 1)
    Lmax = ((rows - 1) * Wp + Wo + 15) // 16 * 16
    slab_elems = Cg * kd * Hs * Wp + 16
    ws_elems = slab_elems + Kg * Lmax
    items = S * groups
    parts = np.zeros((S, groups, Kg * R * 16), np.float32)
    nthreads = <int> max(1, min(nthreads, items))
    off = <Py_ssize_t*> malloc(R * sizeof(Py_ssize_t))
    ws = <float*> malloc(nthreads * ws_elems * sizeof(float))
    try:
        if off == NULL or ws == NULL:
            raise MemoryError("conv3d_weight: could not allocate the work tiles")
        t = 0
        for c in range(Cg):
            for i in range(kd):
                for j in range(kh):
                    for l in range(kw):
                        off[t] = ((c * kd + i) * Hs + j * dh) * Wp + l * dw
                        t += 1
        a = min(pl, Wp)
        e = min(pl + W, Wp)
        with nogil:
            for item in prange(items, schedule="dynamic", num_threads=nthreads):
                fc_ftz_enter()
                s = item % S
                g = item // S
                slab = ws + threadid() * ws_elems
                gyb = slab + slab_elems
                memset(slab + slab_elems - 16, 0, 16 * sizeof(float))
                part = &parts[s, g, 0]
                for qq in range((T - s + S - 1) // S):
                    q = s + qq * S
                    n = q // (Do * nb)
                    od = (q // nb) % Do
                    oh0 = (q % nb) * rows
                    r = min(Ho, oh0 + rows) - oh0
                    L = (r - 1) * Wp + Wo
                    Lp = (L + 15) // 16 * 16
                    # the input's window of this item: planes (c, i), Hs rows of Wp columns
                    for c in range(Cg):
                        for i in range(kd):
                            idd = od - pf + i * dd
                            for hs in range(Hs):
                                d = slab + ((c * kd + i) * Hs + hs) * Wp
                                ih = oh0 - pt + hs
                                if idd < 0 or idd >= D or ih < 0 or ih >= H or e <= a:
                                    memset(d, 0, Wp * sizeof(float))
                                    continue
                                memset(d, 0, a * sizeof(float))
                                memcpy(d + a, &x[n, g * Cg + c, idd, ih, 0] + a - pl,
                                       (e - a) * sizeof(float))
                                memset(d + e, 0, (Wp - e) * sizeof(float))
                    # grad_output's rows on the flat grid (zero past Wo and past L)
                    for f in range(Kg):
                        d = gyb + f * Lp
                        for hs in range(r):
                            memcpy(d + hs * Wp, &gy[n, g * Kg + f, od, oh0 + hs, 0],
                                   Wo * sizeof(float))
                            if hs < r - 1:
                                memset(d + hs * Wp + Wo, 0, (Wp - Wo) * sizeof(float))
                        memset(d + L, 0, (Lp - L) * sizeof(float))
                    fc3_wgrad_f(gyb, Lp, Kg, slab, off, R, part)
                fc_ftz_exit()
            d = &gw[0, 0, 0, 0, 0]
            for q in prange(K * R, schedule="static", num_threads=nthreads):
                g = q // (Kg * R)
                sm = 0
                for s in range(S):
                    for v in range(16):
                        sm = sm + parts[s, g, (q - g * Kg * R) * 16 + v]
                d[q] = sm
    finally:
        free(off)
        free(ws)
    return 0


def _weight_typed(const floating[:, :, :, :, ::1] x, const floating[:, :, :, :, ::1] gy,
                  floating[:, :, :, :, ::1] gw, stride, pad, dilation, Py_ssize_t groups,
                  int nthreads, bint plain=False):
    cdef Py_ssize_t N = gy.shape[0], K = gy.shape[1]
    cdef Py_ssize_t Do = gy.shape[2], Ho = gy.shape[3], Wo = gy.shape[4]
    cdef Py_ssize_t Cg = gw.shape[1], kd = gw.shape[2], kh = gw.shape[3], kw = gw.shape[4]
    cdef Py_ssize_t R = Cg * kd * kh * kw, Kg = K // groups, P = Do * Ho * Wo
    cdef Py_ssize_t sd = stride[0], sh = stride[1], sw = stride[2]
    cdef Py_ssize_t pf = pad[0], pt = pad[1], pl = pad[2]
    cdef Py_ssize_t dd = dilation[0], dh = dilation[1], dw = dilation[2]
    cdef Py_ssize_t rows, ntiles, T, S, items, item, s, g, t, n, r0, r1, ws_elems, q, first
    cdef Py_ssize_t R3
    cdef floating* ws = NULL
    cdef floating* col
    cdef floating* part
    cdef floating[:, ::1] parts
    cdef floating* dst
    cdef floating[:, :, ::1] fparts
    if sw == 1 and not plain:
        R3 = Cg * kd * kh
        rows = _plan.conv3d_tile_rows(Do * Ho, Wo + dw * (kw - 1), R3, sizeof(floating))
        S = _plan.conv3d_weight_slots(N * ((Do * Ho + rows - 1) // rows), K, R,
                                      sizeof(floating))
        fparts = np.empty((S, groups, kw * Kg * R3), np.asarray(gw).dtype)
        _weight_flat(x, gy, fparts, kd, kh, kw, sd, sh, pf, pt, pl, dd, dh, dw, groups,
                     nthreads)
        # [g, l, k, (c, i, j)] -> [(g, k), c, i, j, l]
        np.asarray(gw)[...] = np.moveaxis(
            np.asarray(fparts).sum(axis=0).reshape(groups, kw, Kg, Cg, kd, kh), 1,
            5).reshape(K, Cg, kd, kh, kw)
        return
    _fits_blas(R, P, Kg)
    rows = _plan.conv3d_tile_rows(Do * Ho, Wo, R, sizeof(floating))
    ntiles = (Do * Ho + rows - 1) // rows
    T = N * ntiles
    S = _plan.conv3d_weight_slots(T, K, R, sizeof(floating))
    items = S * groups
    ws_elems = R * rows * Wo
    parts = np.zeros((S, K * R), np.asarray(gw).dtype)
    nthreads = <int> max(1, min(nthreads, items))
    ws = <floating*> malloc(nthreads * ws_elems * sizeof(floating))
    if ws == NULL:
        raise MemoryError("conv3d_weight: could not allocate the column tiles")
    try:
        with nogil:
            for item in prange(items, schedule="dynamic", num_threads=nthreads):
                fc_ftz_enter()
                s = item % S
                g = item // S
                col = ws + threadid() * ws_elems
                part = &parts[s, g * Kg * R]
                first = 1
                for q in range((T - s + S - 1) // S):
                    t = s + q * S
                    n = t // ntiles
                    r0 = (t % ntiles) * rows
                    r1 = min(Do * Ho, r0 + rows)
                    _vol2col(x, n, g * Cg, Cg, kd, kh, kw, r0, r1, Ho, Wo, sd, sh, sw, pf, pt,
                             pl, dd, dh, dw, col, (r1 - r0) * Wo)
                    # part (Kg, R) += gy_tile (Kg, P_t) @ cols^T (P_t, R)
                    gemm_rm(False, True, <int> Kg, <int> R, <int> ((r1 - r0) * Wo),
                            <floating> 1, &gy[n, g * Kg, 0, 0, 0] + r0 * Wo, <int> P, col,
                            <int> ((r1 - r0) * Wo), <floating> (0 if first else 1), part,
                            <int> R)
                    first = 0
                fc_ftz_exit()
            dst = &gw[0, 0, 0, 0, 0]
            for q in prange(K * R, schedule="static", num_threads=nthreads):
                dst[q] = parts[0, q]
                for s in range(1, S):
                    dst[q] += parts[s, q]
    finally:
        free(ws)


def _all_finite(const floating[:, :, :, :, ::1] x):
    """Whether every element of x is finite (fc_absmax: NaN-aware)."""
    cdef floating m
    cdef Py_ssize_t size = x.shape[0] * x.shape[1] * x.shape[2] * x.shape[3] * x.shape[4]
    if size == 0:
        return True
    with nogil:
        if floating is float:
            m = fc_absmax_f(&x[0, 0, 0, 0, 0], size)
        else:
            m = fc_absmax_d(&x[0, 0, 0, 0, 0], size)
    return m == m and m != INFINITY


def conv3d_weight(x, gy, gw, stride, pad, dilation, Py_ssize_t groups, algo, int nthreads):
    """Gradient of conv3d wrt its weight; fills and returns ``gw`` ("direct" or "gemm", see
    the module docstring)."""
    cdef int code = _code("conv3d_weight", algo)
    if code == DIRECT and not _plan.conv3d_weight_takes_direct(stride, gw.dtype.itemsize):
        raise ValueError("conv3d_weight: algo 'direct' needs stride 1 and float32")
    if gy.shape[0] == 0:
        gw[...] = 0
        return gw
    if code == DIRECT and _all_finite(x):
        _weight_direct(x, gy, gw, pad[0], pad[1], pad[2], dilation[0], dilation[1],
                       dilation[2], groups, nthreads)
    elif code == DIRECT:
        # an inf or NaN of x: the flat grid's unused columns would multiply it by zero
        # (NaN where torch has none); the plain vol2col path reads only the real taps
        _weight_typed(x, gy, gw, stride, pad, dilation, groups, nthreads, True)
    else:  # (the stride-1 GEMM's flat grid has the same unused columns)
        _weight_typed(x, gy, gw, stride, pad, dilation, groups, nthreads,
                      stride[2] == 1 and not _all_finite(x))
    return gw


# --------------------------------------------------------------------------------------------
# flush-to-zero (fc_fpenv.h): this module's flag, kept equal to fastconv's setting
# --------------------------------------------------------------------------------------------
def _set_flush_denormal(bint on):
    """Set this module's flush-to-zero flag (fastconv._threads owns the setting)."""
    fc_ftz_set(on)


from fastconv import _threads  # noqa: E402

_threads.register_flush_hook(_set_flush_denormal)
