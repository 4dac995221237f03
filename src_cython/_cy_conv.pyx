"""Cython + OpenMP + BLAS conv2d kernel (contract: the module docstring of fastconv.reference).

``conv2d(x, w, b, out, stride, pad, dilation, groups, algo, nthreads)`` fills ``out``
(N, K, Ho, Wo) with the grouped cross-correlation of ``x`` (N, C, H, W) and ``w``
(K, C // groups, kh, kw) plus ``b`` (K,), with implicit zero padding ``pad = (top, left)``,
by the algorithm ``algo``: "direct", "gemm", "pointwise" or "winograd". The choice of
algorithm, its rules and its tuning constants live in :mod:`fastconv._plan`
(``_plan.conv2d("cython", ...)``), which fastconv._dispatch asks on every call; this module
reads its constants from there at import. One source for float32 and float64
(``cython.floating``); inputs may be read-only. The kernel trusts its input (fastconv._spec
validated it). The timings behind the design are in docs/guide/performance-notes.md.

How each algorithm runs:

* ``"direct"``, when the stride is at most the kernel size (on both axes; always at stride
  1): :func:`_flat_block`; work items are (image, group, block of output rows), and a
  block of one output row (a 1-D layer, a long row) is also cut into segments of columns
  (at least ``_plan.FLAT_MIN_SEG``), so that one long row spreads over the threads; the
  block's input is split into its ``sh * sw`` stride phases (a zero-framed copy, by
  ``fc_phases`` past stride 1; at stride 1 with no padding needed, the input read in
  place), which makes every kernel tap a fixed offset into flat lines, whatever the
  stride. ``fc_taps_out`` (fc_kernels.h, compiled per x86-64
  level with ``target_clones``) keeps the sums of four filters x three vectors of positions
  in registers over all taps (eight filters x three vectors, weights packed by ``fc_pack``, in
  its AVX-512 build, taken at run time) and stores them straight into the output, masked
  at the row ends (no accumulator line, no per-row copy). Strides
  larger than the kernel go row by row (:func:`_direct_rows`), one output plane per item;
  that kernel skips the taps that fall in the padding, so with an inf or NaN weight
  (where inf * 0 must give NaN) such a layer runs on its zero-framed stride phases instead.
  A stride-1 layer with one input plane per filter (depthwise; one channel and one filter)
  whose input and output rows hold a vector (64 bytes), at most 16 kernel columns and
  finite weights runs ``fc_plane`` instead (work items: (image, filter, block of rows)):
  it reads the plane in place and writes the output directly, four output rows x four
  vectors in registers (two x two without AVX-512), and shuffles zeros into the vectors
  that cross the padding.
  A 1-D layer (one input row, a one-row kernel, stride 1 along the row) with one filter
  per group or at most ``_plan.ROW_MAX_PLANES`` output planes (``_plan.conv_row``: a
  convolve/correlate call, a conv1d of one image and filter) runs ``fc_row`` instead
  (:func:`_row`): work items are (image, filter, range of the row), so one long row
  spreads over the threads; each range reads the input rows in place and keeps eight
  vectors of outputs in registers over the channels' taps.
* ``"gemm"``: im2col + GEMM. The work items are (image, block of output rows,
  ``_plan.gemm_tile_rows``); each builds the (R, rows * Wo) column tile of one group at a
  time in its thread's workspace (at most ``_plan.TILE_BYTES``, plus one output row when a
  single row is larger) and calls the single-threaded BLAS:
  ``out[n, group, rows] = W_g @ cols + b``. The whole batch's im2col is never built.
* ``"pointwise"`` (1x1, stride 1, unpadded layers only): the same GEMM, reading the input
  plane in place as the column matrix (no copy).
* ``"winograd"`` (3x3, stride 1, undilated, ungrouped layers only): Winograd F(2x2, 3x3).
  Work items are (image, block of tile rows, ``_plan.winograd_tile_rows``); each frames its
  input rows, transforms every 4x4 tile, runs 16 GEMMs (K, C) @ (C, tiles) on the
  single-threaded BLAS, and transforms back (:func:`_wino_block`). Its memory (transformed
  weights plus the workspaces of the threads that run together) stays below
  ``_plan.WINO_MAX_BYTES``: fewer threads run when more would not fit. Its rounding differs
  from a direct sum's (the transforms add and halve) but stays within the tests' tolerance
  for the same number of terms. The plan chooses it from the shapes; the values are checked
  here, at run time (:func:`winograd_safe`: one vectorized scan of x, w and b, 1-2% of the
  layer's time): with an inf or NaN anywhere, or values large enough that the transforms
  could overflow where a direct sum does not, the call runs the direct kernel instead, so
  the result has the direct kernel's inf/NaN pattern (the transforms would turn an inf into
  NaN over whole tiles and filters). That is a property of the data, not of the plan.

Long rows: the direct kernel's workspace holds whole rows (their stride phases and
accumulator lines) and an im2col tile at least one output row, so past
``fastconv._tiling.LIMIT`` bytes per thread for one output row (:func:`_row_work`) the call
runs on blocks of output columns, one image at a time, each with the input columns its
windows read (:func:`fastconv._tiling.conv2d_tiled`), every block with the call's ``algo``.
The direct kernel's results are then bitwise those of the untiled call; a GEMM tile's may
differ in the last bits (the BLAS blocks a narrower product differently).

Tiles and row blocks depend on the shapes only, never on ``nthreads``, and every output
element is summed in a fixed order, so results are bitwise the same for any thread count.
(The algorithms sum in different orders, so they agree to rounding only.) Work buffers come
from a small pool kept between calls (:func:`release_buffers`).
"""

import functools

import numpy as np

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.stdlib cimport free, malloc

from _blas cimport gemm_rm
from libc.float cimport DBL_MAX, FLT_MAX

from _common cimport (FC_OKB, fc_absmax_d, fc_absmax_f, fc_frame_d, fc_frame_f,
                     fc_phases_d, fc_phases_f,
                     fc_fv_filters_d, fc_fv_filters_f, fc_fv_positions_d, fc_fv_positions_f,
                     fc_ogeo, fc_pack_d, fc_pack_f, fc_plane_d, fc_plane_f, fc_row_d, fc_row_f,
                     fc_row_block, fc_row_scratch, fc_taps_fv_d, fc_taps_fv_f, fc_fv_unstage_d,
                     fc_fv_unstage_f,
                     fc_taps_out_d, fc_taps_out_f,
                     fc_wide, fc_wino_weights_d,
                     fc_wino_weights_f, fc_wino_in_d, fc_wino_in_f, fc_wino_out_d,
                     fc_wino_out_f, im2col, row_blocks, valid_cols)
from _common cimport fc_ftz_enter, fc_ftz_exit, fc_ftz_set

from fastconv import _plan, _tiling

cdef extern from *:
    """
    #ifdef _OPENMP
    #define FASTCONV_HAVE_OPENMP 1
    #define FASTCONV_OPENMP_DATE _OPENMP
    #else
    #define FASTCONV_HAVE_OPENMP 0
    #define FASTCONV_OPENMP_DATE 0
    #endif
    #ifndef FASTCONV_COMPILE_ARGS
    #define FASTCONV_COMPILE_ARGS "unknown (not built by fastconv's setup.py)"
    #endif
    #ifndef FASTCONV_LINK_ARGS
    #define FASTCONV_LINK_ARGS "unknown (not built by fastconv's setup.py)"
    #endif
    #ifndef FASTCONV_CYTHON_VERSION
    #define FASTCONV_CYTHON_VERSION "unknown"
    #endif
    #ifndef FASTCONV_DEBUG
    #define FASTCONV_DEBUG -1
    #endif
    """
    const int FASTCONV_HAVE_OPENMP
    const long FASTCONV_OPENMP_DATE
    const char* FASTCONV_COMPILE_ARGS
    const char* FASTCONV_LINK_ARGS
    const char* FASTCONV_CYTHON_VERSION
    const int FASTCONV_DEBUG

# The plan's constants (fastconv._plan, their one home), read once at import.
TILE_BYTES = _plan.TILE_BYTES
cdef Py_ssize_t _MIN_ITEMS = _plan.CONV_MIN_ITEMS
cdef Py_ssize_t _ROW_CHUNK_MACS = _plan.ROW_CHUNK_MACS
cdef Py_ssize_t _MIN_FLAT_ITEMS = _plan.MIN_FLAT_ITEMS
cdef Py_ssize_t _FLAT_ELEMS = _plan.FLAT_ELEMS
cdef Py_ssize_t _FLAT_IN_ELEMS = _plan.FLAT_IN_ELEMS
cdef Py_ssize_t _MIN_SEG = _plan.FLAT_MIN_SEG
cdef Py_ssize_t _WINO_MAX_BYTES = _plan.WINO_MAX_BYTES
# The scans for non-finite and huge values (_absmax) go in chunks of at least this many
# elements, at most _SCAN_PARTS of them, spread over the threads
cdef Py_ssize_t _SCAN_CHUNK = 1 << 16
cdef enum:
    _SCAN_PARTS = 64

cdef enum:
    DIRECT = 0
    GEMM = 1
    POINTWISE = 2
    WINOGRAD = 3
# the plan's names of the algorithms (the ``algo`` argument)
_CODES = {_plan.DIRECT: DIRECT, _plan.GEMM: GEMM, _plan.POINTWISE: POINTWISE,
          _plan.WINOGRAD: WINOGRAD}


# Whether the direct kernel runs its AVX-512 build with eight accumulators (fc_kernels.h);
# decided here, once, at import (single-threaded: it reads FASTCONV_NO_WIDE).
WIDE_KERNELS = bool(fc_wide())


def build_info():
    """How these extension modules were built: a dict of the compile and link arguments,
    whether OpenMP is compiled in (and its ``_OPENMP`` date), the debug mode and the Cython
    version that generated the C."""
    dbg = FASTCONV_DEBUG
    return {
        "compile_args": FASTCONV_COMPILE_ARGS.decode().split(),
        "link_args": FASTCONV_LINK_ARGS.decode().split(),
        "openmp": bool(FASTCONV_HAVE_OPENMP),
        "openmp_version": int(FASTCONV_OPENMP_DATE),
        "debug": None if dbg < 0 else bool(dbg),
        "cython_version": FASTCONV_CYTHON_VERSION.decode(),
        "tile_bytes": TILE_BYTES,
        "wide_kernels": WIDE_KERNELS,
    }


# --------------------------------------------------------------------------------------------
# work buffers
# --------------------------------------------------------------------------------------------
# Work buffers larger than glibc's mmap threshold come back as fresh pages on every call, and
# the kernel zeroing them cost deep's Winograd about 15% of its time. So freed buffers are
# kept for the next call: at most _POOL_MAX bytes in all, none larger than _POOL_ONE.
# The pool is a Python list, touched only with the GIL held (before and after the parallel
# regions), so concurrent calls from Python threads never share a buffer.
cdef list _pool = []  # [(nbytes, address)]
cdef size_t _pool_bytes = 0
cdef size_t _POOL_MAX = 64 << 20
cdef size_t _POOL_ONE = 32 << 20


cdef void* _take(size_t nbytes, size_t* got):
    """A work buffer of at least ``nbytes`` (its size in ``got``): the smallest kept one
    that fits, else a new one. NULL if it cannot be allocated."""
    global _pool_bytes
    cdef Py_ssize_t i, best = -1
    for i in range(len(_pool)):
        if _pool[i][0] >= nbytes and (best < 0 or _pool[i][0] < _pool[best][0]):
            best = i
    if best >= 0:
        size, addr = _pool.pop(best)
        _pool_bytes -= <size_t> size
        got[0] = <size_t> size
        return <void*> <size_t> addr
    got[0] = nbytes
    return malloc(nbytes if nbytes > 0 else 1)


cdef void _give(void* p, size_t nbytes):
    """Return a buffer from :func:`_take`: kept for the next call if the pool has room."""
    global _pool_bytes
    if p == NULL:
        return
    if nbytes <= _POOL_ONE and _pool_bytes + nbytes <= _POOL_MAX:
        _pool.append((nbytes, <size_t> p))
        _pool_bytes += nbytes
    else:
        free(p)


def release_buffers():
    """Free the work buffers the conv2d kernels keep between calls (at most 64 MiB)."""
    global _pool_bytes
    while _pool:
        free(<void*> <size_t> _pool.pop()[1])
    _pool_bytes = 0


def kept_buffer_bytes():
    """How many bytes of work buffers the conv2d kernels keep for their next calls."""
    return _pool_bytes


# --------------------------------------------------------------------------------------------
# scans of the data: non-finite and huge values
# --------------------------------------------------------------------------------------------
cdef inline double _absmax1(const floating* p, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fc_absmax_f(p, n)
    else:
        return fc_absmax_d(p, n)


cdef double _absmax(const floating* p, Py_ssize_t n, int nthreads) noexcept nogil:
    """The largest ``|p[i]|`` of ``n`` values (0 if none), inf if one is infinite, NaN if one
    is NaN (fc_absmax, fc_kernels.h): chunks of at least _SCAN_CHUNK values on up to
    ``nthreads`` threads. Exact, so the same for any thread count."""
    cdef double part[_SCAN_PARTS]
    cdef double m = 0
    cdef Py_ssize_t ch, nch, i
    ch = max(_SCAN_CHUNK, (n + _SCAN_PARTS - 1) // _SCAN_PARTS)
    nch = (n + ch - 1) // ch
    if nch <= 1 or nthreads <= 1:
        return _absmax1(p, n)
    for i in prange(nch, schedule="static", num_threads=nthreads):
        # FTZ/DAZ as in every parallel body (fc_fpenv.h): DAZ can only read a subnormal
        # maximum as 0, which no bound of _wino_safe tells apart from it
        fc_ftz_enter()
        part[i] = _absmax1(p + i * ch, min(ch, n - i * ch))
        fc_ftz_exit()
    for i in range(nch):
        if part[i] != part[i]:
            return part[i]
        if part[i] > m:
            m = part[i]
    return m


cdef inline bint _all_finite(const floating[:, :, :, ::1] a) noexcept nogil:
    """Whether every value of ``a`` is finite (a serial scan: used on weights)."""
    cdef Py_ssize_t n = a.shape[0] * a.shape[1] * a.shape[2] * a.shape[3]
    cdef double big = FLT_MAX if floating is float else DBL_MAX
    return n == 0 or _absmax(&a[0, 0, 0, 0], n, 1) <= big


def all_finite(const floating[:, :, :, ::1] w):
    """Whether every value of the weight ``w`` is finite (:func:`_all_finite`: one
    fc_absmax scan, no temporary array)."""
    return _all_finite(w)


cdef bint _wino_safe(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                     const floating[::1] b, int nthreads) noexcept nogil:
    """Whether Winograd F(2x2, 3x3) can run on these values: all finite (x, w and b), and
    small enough that no intermediate value can overflow. Otherwise :func:`_conv` runs the
    direct kernel, so Winograd never changes the inf/NaN pattern of a result.

    Why: non-finite values do not survive the transforms. An inf pixel enters 4 of a tile's
    16 transformed values as inf and others as inf - inf = NaN, and the output transform
    spreads those NaN to all four outputs of the tile and to every filter; an inf weight
    does the same through G g G^T and A^T m A. And the transforms grow values, so they can
    overflow where the direct sum does not. The bound, with X = max|x|, Wm = max|w|,
    Bm = max|b| and C channels (B^T, G, A^T as in :func:`_wino_block` and fc_wino_weights):

    * input transform V = B^T d B: every row of B^T has two entries of magnitude 1, so
      each value of V is a sum of 4 inputs, |V| <= 4 X (the row pass: |r| <= 2 X);
    * weight transform U = G g G^T: the rows of G sum to at most 3/2 in magnitude, so
      |U| <= (3/2)^2 Wm = 2.25 Wm;
    * the GEMMs M = U V over C channels: every partial sum <= C * 4 X * 2.25 Wm = 9 C X Wm;
    * output transform A^T m A: the rows of A^T sum to 3 in magnitude, so the row sums are
      <= 3 |M| and the outputs <= 9 |M| = 81 C X Wm, plus the bias.

    So every intermediate value is at most max(4 X, 2.25 Wm, 81 C X Wm + Bm). Winograd runs
    when that is at most half the dtype's largest value. The half leaves room for rounding:
    a computed value exceeds its exact bound by a factor of at most (1 + eps)^(C + 10) (the
    products, the C-term sums and the transforms' few additions, each rounded once per
    step), which stays below 2 up to C = 11 million in float32 (auto picks Winograd up to
    C = 8192). The direct sum of the same layer is then bounded by Bm + 9 C X Wm, 9x less,
    so both are finite. Beyond the bound the direct kernel runs: slower, but only on data
    whose products come within a factor of 162 C of overflowing (float32:
    X * Wm > 3.4e38 / (162 C), 3.3e34 at C = 64; real activations and weights are nowhere
    near that).

    The scans (fc_absmax over x, w and b) are exact maxima: the decision depends on the
    data only, never on the thread count."""
    cdef Py_ssize_t C = x.shape[1]
    cdef Py_ssize_t nx = x.shape[0] * C * x.shape[2] * x.shape[3]
    cdef Py_ssize_t nw = w.shape[0] * w.shape[1] * w.shape[2] * w.shape[3]
    cdef double half = (FLT_MAX if floating is float else DBL_MAX) / 2
    cdef double X = 0, Wm = 0, Bm = 0
    if b.shape[0]:
        Bm = _absmax(&b[0], b.shape[0], 1)
    if nw:
        Wm = _absmax(&w[0, 0, 0, 0], nw, nthreads)
    if not (Bm <= half and 2.25 * Wm <= half):  # NaN fails every comparison
        return False
    if nx:
        X = _absmax(&x[0, 0, 0, 0], nx, nthreads)
    # in double (float32's bound is exact there); X * Wm first, as in float64 81 C X alone
    # may overflow where 81 C X Wm does not (an overflow is inf, which fails)
    return 4 * X <= half and (X * Wm) * (81.0 * C) + Bm <= half


def winograd_safe(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                  const floating[::1] b, int nthreads=1):
    """Whether Winograd runs on these values (``conv2d`` given ``algo="winograd"`` runs the
    direct kernel instead when not): every value finite, and
    ``max(4 X, 2.25 Wm, 81 C X Wm + Bm) <= FLT_MAX / 2`` (DBL_MAX for float64), with X, Wm,
    Bm the largest magnitudes in x, w and b (see ``_wino_safe`` for the derivation)."""
    cdef bint ok
    with nogil:
        ok = _wino_safe(x, w, b, nthreads)
    return bool(ok)


# --------------------------------------------------------------------------------------------
# the direct kernel's variants (a detail of the "direct" algorithm, not the plan's choice)
# --------------------------------------------------------------------------------------------
cdef inline bint _phased(Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                         Py_ssize_t sw) noexcept nogil:
    """Whether the direct kernel runs on the input's stride phases (_flat_block): always at
    stride 1, and when the stride is at most the kernel size (no phase is copied in vain
    for an undilated kernel). Otherwise the plain loop nest, _direct_rows."""
    return sh <= kh and sw <= kw


cdef bint _single_plane(const floating[:, :, :, ::1] w, Py_ssize_t W, Py_ssize_t Wo,
                        Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t groups) noexcept:
    """Whether fc_plane runs: each filter reads one input plane (one channel per group, one
    filter per group) at stride 1; input and output rows hold at least one vector (64
    bytes) and the kernel at most 16 columns (fc_kernels.h); the weights are finite
    (fc_plane skips the taps that fall in the padding, where an infinite weight would have
    to give NaN)."""
    if sh != 1 or sw != 1 or w.shape[1] != 1 or w.shape[0] != groups or w.shape[3] > 16 \
            or min(W, Wo) * <Py_ssize_t> sizeof(floating) < 64:
        return False
    return _all_finite(w)


# --------------------------------------------------------------------------------------------
# direct loop nest
# --------------------------------------------------------------------------------------------
cdef inline void _taps_s1(floating* orow, const floating* xrow, const floating* wrow,
                          Py_ssize_t kw, Py_ssize_t dw, Py_ssize_t pl, Py_ssize_t W,
                          Py_ssize_t Wo) noexcept nogil:
    """Stride 1: add the taps ``wrow[0:kw]`` of one kernel row, applied to one input row,
    to one output row. Taps go three at a time over the columns where all three are inside
    the input (one load and store of the output per three taps), one at a time at the
    borders; each output element still receives the taps in order."""
    cdef Py_ssize_t j = 0, ow, o0, a0, e0, a1, e1, a2, e2
    cdef floating w0, w1, w2
    while j + 3 <= kw:
        o0 = j * dw - pl
        valid_cols(o0, 1, W, Wo, &a0, &e0)
        valid_cols(o0 + dw, 1, W, Wo, &a1, &e1)
        valid_cols(o0 + 2 * dw, 1, W, Wo, &a2, &e2)
        # a0 >= a1 >= a2 and e0 >= e1 >= e2: all three are inside on [a0, e2)
        w0 = wrow[j]
        w1 = wrow[j + 1]
        w2 = wrow[j + 2]
        if e2 <= a0:  # no common interior: tap by tap
            for ow in range(a0, e0):
                orow[ow] += w0 * xrow[ow + o0]
            for ow in range(a1, e1):
                orow[ow] += w1 * xrow[ow + o0 + dw]
            for ow in range(a2, e2):
                orow[ow] += w2 * xrow[ow + o0 + 2 * dw]
        else:
            # left border [a1, a0) and [a2, a0): taps 1 and 2 only
            for ow in range(a1, a0):
                orow[ow] += w1 * xrow[ow + o0 + dw]
            for ow in range(a2, a0):
                orow[ow] += w2 * xrow[ow + o0 + 2 * dw]
            # interior: three taps per pass
            for ow in range(a0, e2):
                orow[ow] += w0 * xrow[ow + o0] + w1 * xrow[ow + o0 + dw] \
                    + w2 * xrow[ow + o0 + 2 * dw]
            # right border [e2, e0) and [e2, e1): taps 0 and 1 only
            for ow in range(e2, e0):
                orow[ow] += w0 * xrow[ow + o0]
            for ow in range(e2, e1):
                orow[ow] += w1 * xrow[ow + o0 + dw]
        j += 3
    while j < kw:
        o0 = j * dw - pl
        valid_cols(o0, 1, W, Wo, &a0, &e0)
        w0 = wrow[j]
        for ow in range(a0, e0):
            orow[ow] += w0 * xrow[ow + o0]
        j += 1


cdef void _direct_rows(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                       const floating[::1] b, floating[:, :, :, ::1] out, Py_ssize_t n,
                       Py_ssize_t k, Py_ssize_t oh0, Py_ssize_t oh1, Py_ssize_t sh,
                       Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh,
                       Py_ssize_t dw, Py_ssize_t groups) noexcept nogil:
    """Output rows [oh0, oh1) of plane (n, k): bias, then channel by channel, kernel row by
    kernel row, tap by tap, each tap a multiply-add along the output row."""
    cdef Py_ssize_t H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t Cg = w.shape[1], kh = w.shape[2], kw = w.shape[3]
    cdef Py_ssize_t Wo = out.shape[3], Kg = out.shape[1] // groups
    cdef Py_ssize_t c0 = (k // Kg) * Cg
    cdef Py_ssize_t oh, cc, i, j, ih, off, ow, ow0, ow1
    cdef floating bk = b[k], wv
    cdef floating* orow
    cdef const floating* xrow
    cdef const floating* wrow
    for oh in range(oh0, oh1):
        orow = &out[n, k, oh, 0]
        for ow in range(Wo):
            orow[ow] = bk
        for cc in range(Cg):
            for i in range(kh):
                ih = oh * sh - pt + i * dh
                if ih < 0 or ih >= H:
                    continue
                xrow = &x[n, c0 + cc, ih, 0]
                wrow = &w[k, cc, i, 0]
                if sw == 1:
                    _taps_s1(orow, xrow, wrow, kw, dw, pl, W, Wo)
                else:
                    for j in range(kw):
                        off = j * dw - pl
                        valid_cols(off, sw, W, Wo, &ow0, &ow1)
                        wv = wrow[j]
                        for ow in range(ow0, ow1):
                            orow[ow] += wv * xrow[ow * sw + off]


cdef inline void _plane_rows(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                             const floating[::1] b, floating[:, :, :, ::1] out, Py_ssize_t n,
                             Py_ssize_t k, Py_ssize_t oh0, Py_ssize_t oh1, Py_ssize_t pt,
                             Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw) noexcept nogil:
    """Output rows [oh0, oh1) of image n, filter k, which reads input plane k alone (stride
    1; see _single_plane): fc_plane (fc_kernels.h)."""
    if floating is float:
        fc_plane_f(&x[n, k, 0, 0], x.shape[2], x.shape[3], &w[k, 0, 0, 0], w.shape[2],
                   w.shape[3], dh, dw, pt, pl, b[k], &out[n, k, oh0, 0], out.shape[3], oh0, oh1)
    else:
        fc_plane_d(&x[n, k, 0, 0], x.shape[2], x.shape[3], &w[k, 0, 0, 0], w.shape[2],
                   w.shape[3], dh, dw, pt, pl, b[k], &out[n, k, oh0, 0], out.shape[3], oh0, oh1)


cdef void _flat_block(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                      const floating[::1] b, floating[:, :, :, ::1] out, Py_ssize_t n,
                      Py_ssize_t g, Py_ssize_t oh0, Py_ssize_t oh1, Py_ssize_t sh,
                      Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t rin,
                      Py_ssize_t Wp, Py_ssize_t cstride, bint copy, const Py_ssize_t* off,
                      const floating* wp, floating* xp, Py_ssize_t cs0,
                      Py_ssize_t wseg) noexcept nogil:
    """Output rows [oh0, oh1), columns [cs0, cs0 + wseg), of image n, group g, all its
    filters, as stride-1 work (a segment of the columns only for one-row blocks; see
    _direct).

    The input the block reads is split into its ``sh * sw`` stride phases: phase (a, c) of
    channel cc is the plane ``xp[((a * sw + c) * Cg + cc) * cstride + r * Wp + q] =
    x[n, c0 + cc, (oh0 + r) * sh + a - pt, (cs0 + q) * sw + c - pl]`` (zero outside the
    input), ``rin`` rows of ``Wp`` columns. Tap (cc, i, j) reads phase (i*dh % sh, j*dw %
    sw) at the fixed offset ``off[t]`` (row i*dh // sh, column j*dw // sw), so every tap is a
    shift of a flat
    line and output row ``r`` of the block sits at ``acc[r * Wp]``. For stride 1 there is
    one phase, a zero-framed copy; when no window reaches the padding (``not copy``) the
    input is read in place (``Wp == W``). fc_taps_out (fc_kernels.h) then computes the
    group's filters over the ``L = (rows - 1) * Wp + Wo`` positions, eight filters x three
    vectors at a time in the AVX-512 build (``wp``: the weights packed by fc_pack), keeping
    the sums in registers over all taps and storing them straight into ``out`` (the
    ``Wp - Wo`` columns between rows are computed and dropped)."""
    cdef Py_ssize_t Cg = w.shape[1], kh = w.shape[2], kw = w.shape[3]
    cdef Py_ssize_t Wo = wseg, Kg = out.shape[1] // (x.shape[1] // Cg)
    cdef Py_ssize_t R = Cg * kh * kw, c0 = g * Cg
    cdef Py_ssize_t rows = oh1 - oh0
    cdef Py_ssize_t L = (rows - 1) * Wp + Wo
    cdef Py_ssize_t cc
    cdef const floating* src
    cdef fc_ogeo geo
    if copy and sh == 1 and sw == 1:
        # one phase: each channel's rows, zero-framed
        for cc in range(Cg):
            if floating is float:
                fc_frame_f(xp + cc * cstride, Wp, &x[n, c0 + cc, 0, 0], x.shape[2],
                           x.shape[3], oh0 - pt, rin, pl - cs0)
            else:
                fc_frame_d(xp + cc * cstride, Wp, &x[n, c0 + cc, 0, 0], x.shape[2],
                           x.shape[3], oh0 - pt, rin, pl - cs0)
        src = xp
    elif copy:
        # each channel's rows split into their sh x sw stride phases, zero-framed
        for cc in range(Cg):
            if floating is float:
                fc_phases_f(xp + cc * cstride, Cg * cstride, Wp, &x[n, c0 + cc, 0, 0],
                            x.shape[2], x.shape[3], oh0 * sh - pt, rin, sh, sw,
                            pl - cs0 * sw)
            else:
                fc_phases_d(xp + cc * cstride, Cg * cstride, Wp, &x[n, c0 + cc, 0, 0],
                            x.shape[2], x.shape[3], oh0 * sh - pt, rin, sh, sw,
                            pl - cs0 * sw)
        src = xp
    else:
        src = &x[n, c0, oh0, cs0]  # stride 1 in place
    geo.ldo = out.strides[1] // sizeof(floating)
    geo.ldr = out.strides[2] // sizeof(floating)
    geo.ldc = 1
    geo.Wo = Wo
    geo.Wp = Wp
    if floating is float:
        fc_taps_out_f(src, off, R, &w[g * Kg, 0, 0, 0], R, wp + g * Kg * R, &b[g * Kg], Kg,
                      &out[n, g * Kg, oh0, cs0], &geo, L)
    else:
        fc_taps_out_d(src, off, R, &w[g * Kg, 0, 0, 0], R, wp + g * Kg * R, &b[g * Kg], Kg,
                      &out[n, g * Kg, oh0, cs0], &geo, L)


cdef inline void _row_item(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                           const floating[::1] b, floating[:, :, :, ::1] out,
                           Py_ssize_t item, Py_ssize_t nch, Py_ssize_t chunk, Py_ssize_t pl,
                           Py_ssize_t dw, Py_ssize_t groups, floating* ext) noexcept nogil:
    """Work item ``item`` of _row: (image, filter, range of ``chunk`` outputs of the row),
    ``nch`` ranges per row; ``ext`` the thread's fc_row scratch."""
    cdef Py_ssize_t W = x.shape[3], Cg = w.shape[1], kw = w.shape[3]
    cdef Py_ssize_t K = out.shape[1], Wo = out.shape[3], Kg = K // groups
    cdef Py_ssize_t p = item // nch, n = p // K, k = p % K
    cdef Py_ssize_t o0 = (item % nch) * chunk
    fc_ftz_enter()
    if floating is float:
        fc_row_f(&x[n, (k // Kg) * Cg, 0, 0], x.shape[2] * W, Cg, W, &w[k, 0, 0, 0], kw, kw,
                 dw, pl, b[k], &out[n, k, 0, 0], o0, min(Wo, o0 + chunk), ext)
    else:
        fc_row_d(&x[n, (k // Kg) * Cg, 0, 0], x.shape[2] * W, Cg, W, &w[k, 0, 0, 0], kw, kw,
                 dw, pl, b[k], &out[n, k, 0, 0], o0, min(Wo, o0 + chunk), ext)
    fc_ftz_exit()


cdef int _row(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
              const floating[::1] b, floating[:, :, :, ::1] out, Py_ssize_t pl,
              Py_ssize_t dw, Py_ssize_t groups, int nthreads) except -1:
    """A 1-D layer (``_plan.conv_row``): work items are (image, filter, range of the output
    row), ranges of about ``_plan.ROW_CHUNK_MACS`` multiply-adds (multiples of fc_row's
    block; from the shapes only), each computed by ``fc_row`` (fc_kernels_body.h) straight
    from the input row, so a single long row spreads over the threads with no copy."""
    cdef Py_ssize_t W = x.shape[3], Cg = w.shape[1], kw = w.shape[3]
    cdef Py_ssize_t N = out.shape[0], K = out.shape[1], Wo = out.shape[3]
    cdef Py_ssize_t Kg = K // groups, tb = fc_row_block(sizeof(floating))
    cdef Py_ssize_t chunk, nch, item, per
    cdef floating* ws = NULL
    cdef size_t ws_bytes = 0
    chunk = max(tb, (_ROW_CHUNK_MACS // max(1, Cg * kw)) // tb * tb)
    nch = (Wo + chunk - 1) // chunk
    nthreads = max(1, min(nthreads, N * K * nch))
    per = fc_row_scratch(Cg, kw, dw, sizeof(floating))
    ws = <floating*> _take(nthreads * per * sizeof(floating), &ws_bytes)
    if ws == NULL:
        raise MemoryError(f"conv2d: could not allocate {nthreads} work buffers of "
                          f"{per * sizeof(floating)} bytes")
    try:
        with nogil:
            if nthreads == 1:  # no OpenMP region (see _direct)
                for item in range(N * K * nch):
                    _row_item(x, w, b, out, item, nch, chunk, pl, dw, groups, ws)
            else:
                for item in prange(N * K * nch, schedule="dynamic", num_threads=nthreads):
                    _row_item(x, w, b, out, item, nch, chunk, pl, dw, groups,
                              ws + threadid() * per)
    finally:
        _give(ws, ws_bytes)
    return 0


cdef inline void _rows_item(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                            const floating[::1] b, floating[:, :, :, ::1] out,
                            Py_ssize_t item, Py_ssize_t nb, Py_ssize_t rows, bint plane,
                            Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
                            Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups) noexcept nogil:
    """Work item ``item`` of _direct's row kernels: (image, filter, block of ``rows``
    output rows), ``nb`` blocks per plane."""
    cdef Py_ssize_t K = out.shape[1], p = item // nb
    cdef Py_ssize_t oh0 = (item % nb) * rows
    cdef Py_ssize_t oh1 = min(out.shape[2], oh0 + rows)
    fc_ftz_enter()
    if plane:
        _plane_rows(x, w, b, out, p // K, p % K, oh0, oh1, pt, pl, dh, dw)
    else:
        _direct_rows(x, w, b, out, p // K, p % K, oh0, oh1, sh, sw, pt, pl, dh, dw, groups)
    fc_ftz_exit()


cdef inline void _flat_item(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                            const floating[::1] b, floating[:, :, :, ::1] out,
                            Py_ssize_t item, Py_ssize_t nb, Py_ssize_t ncs, Py_ssize_t rows,
                            Py_ssize_t cseg, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt,
                            Py_ssize_t pl, Py_ssize_t rin, Py_ssize_t Wp,
                            Py_ssize_t cstride, bint copy, const Py_ssize_t* off,
                            const floating* wp, floating* xp,
                            Py_ssize_t groups) noexcept nogil:
    """Work item ``item`` of _direct's flat kernel: (image, group, block of ``rows``
    output rows, segment of ``cseg`` columns); ``xp`` the thread's framed-input buffer."""
    cdef Py_ssize_t p = item // (nb * ncs)
    cdef Py_ssize_t oh0 = (item // ncs % nb) * rows
    cdef Py_ssize_t oh1 = min(out.shape[2], oh0 + rows)
    cdef Py_ssize_t cs0 = (item % ncs) * cseg
    fc_ftz_enter()
    _flat_block(x, w, b, out, p // groups, p % groups, oh0, oh1, sh, sw, pt, pl, rin, Wp,
                cstride, copy, off, wp, xp, cs0, min(cseg, out.shape[3] - cs0))
    fc_ftz_exit()


cdef int _direct(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                 const floating[::1] b, floating[:, :, :, ::1] out, Py_ssize_t sh,
                 Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
                 Py_ssize_t groups, int nthreads) except -1:
    cdef Py_ssize_t H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t Cg = w.shape[1], kh = w.shape[2], kw = w.shape[3]
    cdef Py_ssize_t K = out.shape[1], Ho = out.shape[2], Wo = out.shape[3]
    cdef Py_ssize_t N = out.shape[0], R = Cg * kh * kw
    cdef Py_ssize_t rows, nb, item, Wp = 0, cstride = 0, per = 0, t, cc, i, j
    cdef Py_ssize_t rin, planes = sh * sw, ncs = 1, cseg
    cdef bint copy = False, plane
    cdef floating* ws = NULL
    cdef floating* wp = NULL
    cdef size_t ws_bytes = 0
    cdef Py_ssize_t* off = NULL
    cdef Py_ssize_t g, Kg = K // groups
    nthreads = max(1, nthreads)
    # (the plan asked only for one-row layers: a Python call on every conv2d otherwise)
    if H == 1 and kh == 1 and _plan.conv_row((N, x.shape[1], H, W), (K, Cg, kh, kw),
                                             (N, K, Ho, Wo), (sh, sw), (pt, pl), groups):
        return _row(x, w, b, out, pl, dw, groups, nthreads)
    plane = _single_plane(w, W, Wo, sh, sw, groups)
    # the row kernel skips the taps that fall in the padding: with an inf or NaN weight,
    # where inf * 0 must give NaN, the layer runs on its zero-framed stride phases instead
    if plane or (not _phased(kh, kw, sh, sw) and _all_finite(w)):
        # work items are (image, filter, block of output rows): one input plane per filter
        # (depthwise; a single channel and filter) goes to fc_plane, which reads it in place
        # and writes the output directly; strides larger than the kernel go row by row
        nb = row_blocks(N * K, Ho, _MIN_ITEMS)
        rows = (Ho + nb - 1) // nb
        nb = (Ho + rows - 1) // rows
        with nogil:
            if nthreads == 1:  # no OpenMP region: its fork and barrier cost microseconds
                for item in range(N * K * nb):
                    _rows_item(x, w, b, out, item, nb, rows, plane, sh, sw, pt, pl, dh, dw,
                               groups)
            else:
                for item in prange(N * K * nb, schedule="dynamic", num_threads=nthreads):
                    _rows_item(x, w, b, out, item, nb, rows, plane, sh, sw, pt, pl, dh, dw,
                               groups)
        return 0
    # work items are (image, group, block of output rows), all filters of the group
    Wp = Wo + dw * (kw - 1) // sw
    # stride 1: read in place when every window lies inside the input, else frame a copy
    copy = not (planes == 1 and pt == 0 and pl == 0 and Wp <= W
                and Ho + dh * (kh - 1) <= H)
    if not copy:
        Wp = W
    nb = row_blocks(N * groups, Ho, _MIN_FLAT_ITEMS)
    # blocks of about _FLAT_ELEMS accumulator elements, and (copied) inputs of at most
    # _FLAT_IN_ELEMS elements; shapes only
    nb = max(nb, (Ho * Wp + _FLAT_ELEMS - 1) // _FLAT_ELEMS)
    if copy:
        nb = max(nb, (planes * Cg * Ho * Wp + _FLAT_IN_ELEMS - 1) // _FLAT_IN_ELEMS)
    nb = min(nb, Ho)
    rows = (Ho + nb - 1) // nb
    nb = (Ho + rows - 1) // rows
    # blocks of one output row (1-D layers, long rows) are cut along the columns too: work
    # items (image, group, row, segment), so one long row spreads over the threads; a
    # segment aims at _FLAT_IN_ELEMS of framed input, at least _MIN_SEG outputs (the last
    # one what is left); shapes only (every output sums its taps in one order whatever
    # the segments)
    cseg = Wo
    if rows == 1 and Wo > _MIN_SEG:
        cseg = max(_MIN_SEG, min(_FLAT_IN_ELEMS // (planes * Cg), Wo))
        if N * groups * nb * ((Wo + cseg - 1) // cseg) < _MIN_FLAT_ITEMS:
            cseg = max(_MIN_SEG, (Wo * N * groups * nb + _MIN_FLAT_ITEMS - 1)
                       // _MIN_FLAT_ITEMS)
        cseg = min(Wo, (cseg + 63) // 64 * 64)
        ncs = (Wo + cseg - 1) // cseg
        if copy:
            Wp = cseg + dw * (kw - 1) // sw
    rin = rows + dh * (kh - 1) // sh
    cstride = rin * Wp if copy else H * W
    # per thread: the block's stride phases (when copied); then the packed weights, shared
    per = planes * Cg * cstride if copy else 0
    ws = <floating*> _take((nthreads * per + K * R + 1) * sizeof(floating), &ws_bytes)
    off = <Py_ssize_t*> malloc(R * sizeof(Py_ssize_t))
    try:
        if ws == NULL or off == NULL:
            raise MemoryError(f"conv2d: could not allocate {nthreads} work buffers of "
                              f"{per * sizeof(floating)} bytes")
        wp = ws + nthreads * per
        for g in range(groups):
            if floating is float:
                fc_pack_f(&w[g * Kg, 0, 0, 0], R, R, Kg, wp + g * Kg * R)
            else:
                fc_pack_d(&w[g * Kg, 0, 0, 0], R, R, Kg, wp + g * Kg * R)
        t = 0
        for cc in range(Cg):
            for i in range(kh):
                for j in range(kw):
                    off[t] = ((((i * dh) % sh) * sw + (j * dw) % sw) * Cg + cc) * cstride \
                        + (i * dh // sh) * Wp + j * dw // sw
                    t += 1
        with nogil:
            if nthreads == 1:  # no OpenMP region (see above)
                for item in range(N * groups * nb * ncs):
                    _flat_item(x, w, b, out, item, nb, ncs, rows, cseg, sh, sw, pt, pl, rin,
                               Wp, cstride, copy, off, wp, ws, groups)
            else:
                for item in prange(N * groups * nb * ncs, schedule="dynamic",
                                   num_threads=nthreads):
                    _flat_item(x, w, b, out, item, nb, ncs, rows, cseg, sh, sw, pt, pl, rin,
                               Wp, cstride, copy, off, wp, ws + threadid() * per, groups)
    finally:
        _give(ws, ws_bytes)
        free(off)
    return 0


# --------------------------------------------------------------------------------------------
# im2col + GEMM
# --------------------------------------------------------------------------------------------
cdef void _gemm_tile(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                     const floating[::1] b, floating[:, :, :, ::1] out, Py_ssize_t n,
                     Py_ssize_t oh0, Py_ssize_t oh1, Py_ssize_t sh, Py_ssize_t sw,
                     Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
                     Py_ssize_t groups, bint pointwise, floating* col) noexcept nogil:
    """Output rows [oh0, oh1) of image n, group by group: out = W_g @ cols + b."""
    cdef Py_ssize_t H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t Cg = w.shape[1], kh = w.shape[2], kw = w.shape[3]
    cdef Py_ssize_t Ho = out.shape[2], Wo = out.shape[3], Kg = out.shape[1] // groups
    cdef Py_ssize_t R = Cg * kh * kw, M = (oh1 - oh0) * Wo
    cdef Py_ssize_t g, kk, k, q, ldb
    cdef floating bk
    cdef floating* orow
    cdef const floating* B
    for g in range(groups):
        for kk in range(Kg):
            k = g * Kg + kk
            orow = &out[n, k, oh0, 0]
            bk = b[k]
            for q in range(M):
                orow[q] = bk
        if pointwise:
            B = &x[n, g * Cg, oh0, 0]
            ldb = H * W
        else:
            im2col(x, n, g * Cg, Cg, kh, kw, oh0, oh1, Wo, sh, sw, pt, pl, dh, dw, col,
                   (oh1 - oh0) * Wo)
            B = col
            ldb = M
        # out[n, g*Kg:(g+1)*Kg, oh0:oh1, :] (Kg, M), rows Ho*Wo apart += W_g (Kg, R) @ B (R, M)
        gemm_rm(False, False, <int> Kg, <int> M, <int> R, <floating> 1, &w[g * Kg, 0, 0, 0],
                <int> R, B, <int> ldb, <floating> 1, &out[n, g * Kg, oh0, 0], <int> (Ho * Wo))


cdef int _gemm(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
               const floating[::1] b, floating[:, :, :, ::1] out, Py_ssize_t sh,
               Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
               Py_ssize_t groups, bint pointwise, int nthreads) except -1:
    cdef Py_ssize_t N = out.shape[0], Ho = out.shape[2], Wo = out.shape[3]
    cdef Py_ssize_t R = w.shape[1] * w.shape[2] * w.shape[3]
    cdef Py_ssize_t rows, ntiles, item, oh0, ws_elems
    cdef floating* ws = NULL
    cdef size_t ws_bytes = 0
    # rows per tile (the plan's, which fastconv._chunks reads too); shapes only
    rows = _plan.gemm_tile_rows(N, Ho, Wo, R, sizeof(floating))
    ntiles = (Ho + rows - 1) // rows
    ws_elems = 0 if pointwise else R * rows * Wo
    nthreads = max(1, nthreads)
    if ws_elems:
        ws = <floating*> _take(nthreads * ws_elems * sizeof(floating), &ws_bytes)
        if ws == NULL:
            raise MemoryError(f"conv2d: could not allocate {nthreads} im2col tiles of "
                              f"{ws_elems * sizeof(floating)} bytes")
    try:
        with nogil:
            for item in prange(N * ntiles, schedule="dynamic", num_threads=nthreads):
                fc_ftz_enter()
                oh0 = (item % ntiles) * rows
                _gemm_tile(x, w, b, out, item // ntiles, oh0, min(Ho, oh0 + rows), sh, sw,
                           pt, pl, dh, dw, groups, pointwise,
                           ws + threadid() * ws_elems if ws != NULL else NULL)
                fc_ftz_exit()
    finally:
        _give(ws, ws_bytes)
    return 0


# --------------------------------------------------------------------------------------------
# Winograd F(2x2, 3x3)
# --------------------------------------------------------------------------------------------
cdef inline void _wino_weights(const floating[:, :, :, ::1] w, floating* U,
                               Py_ssize_t k) noexcept nogil:
    """U[(k * 16 + xi) * C + c] = (G g G^T)[xi] for g = w[k, c] (xi = 4 * i + j): filter k
    (fc_wino_weights, fc_kernels.h). Filter-major, so that the transform writes 16 rows C
    apart: in xi-major order its rows were K * C apart, a multiple of 4 KiB for the wide
    layers, all in one cache set (the transform was 20% of deep's time, now 10%)."""
    cdef Py_ssize_t C = w.shape[1]
    if floating is float:
        fc_wino_weights_f(&w[k, 0, 0, 0], C, U + k * 16 * C, C)
    else:
        fc_wino_weights_d(&w[k, 0, 0, 0], C, U + k * 16 * C, C)


cdef void _wino_block(const floating[:, :, :, ::1] x, const floating* U,
                      const floating[::1] b, floating[:, :, :, ::1] out, Py_ssize_t n,
                      Py_ssize_t t0, Py_ssize_t t1, Py_ssize_t pt, Py_ssize_t pl,
                      floating* frame, floating* V, floating* M) noexcept nogil:
    """Output tiles (2x2) in tile rows [t0, t1) of image n, all filters.

    The block's input rows are framed (zero padding included), each 4x4 input tile d is
    transformed to B^T d B (16 values, one per xi) into V[xi] (C, T), the 16 products
    M[xi] (K, T) = U[xi] (K, C; rows 16 C apart) @ V[xi] (C, T) go to BLAS, and each
    tile's output is A^T m A + bias, with
    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]] and
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]: a row of tiles at a time by fc_wino_in and
    fc_wino_out (fc_kernels_body.h), whose loops over the tiles vectorize."""
    cdef Py_ssize_t C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t K = out.shape[1], Ho = out.shape[2], Wo = out.shape[3]
    cdef Py_ssize_t tw = (Wo + 1) // 2, T = (t1 - t0) * tw
    cdef Py_ssize_t Wp = 2 * tw + 2, rin = 2 * (t1 - t0) + 2
    cdef Py_ssize_t c, k, ti, xi, oh
    cdef floating* F
    cdef floating* o1
    for c in range(C):
        F = frame + c * rin * Wp
        if floating is float:
            fc_frame_f(F, Wp, &x[n, c, 0, 0], H, W, 2 * t0 - pt, rin, pl)
            for ti in range(t1 - t0):  # V[xi][c][t] for the tiles t of tile row ti
                fc_wino_in_f(F + 2 * ti * Wp, Wp, tw, V + c * T + ti * tw, C * T)
        else:
            fc_frame_d(F, Wp, &x[n, c, 0, 0], H, W, 2 * t0 - pt, rin, pl)
            for ti in range(t1 - t0):
                fc_wino_in_d(F + 2 * ti * Wp, Wp, tw, V + c * T + ti * tw, C * T)
    for xi in range(16):
        gemm_rm(False, False, <int> K, <int> T, <int> C, <floating> 1, U + xi * C,
                <int> (16 * C), V + xi * C * T, <int> T, <floating> 0, M + xi * K * T, <int> T)
    for k in range(K):
        for ti in range(t1 - t0):
            oh = 2 * (t0 + ti)
            o1 = &out[n, k, oh + 1, 0] if oh + 1 < Ho else NULL
            if floating is float:
                fc_wino_out_f(M + k * T + ti * tw, K * T, tw, b[k], &out[n, k, oh, 0], o1, Wo)
            else:
                fc_wino_out_d(M + k * T + ti * tw, K * T, tw, b[k], &out[n, k, oh, 0], o1, Wo)


cdef int _winograd(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                   const floating[::1] b, floating[:, :, :, ::1] out, Py_ssize_t pt,
                   Py_ssize_t pl, int nthreads) except -1:
    cdef Py_ssize_t N = out.shape[0], C = x.shape[1], K = out.shape[1]
    cdef Py_ssize_t Ho = out.shape[2], Wo = out.shape[3]
    cdef Py_ssize_t th = (Ho + 1) // 2, tw = (Wo + 1) // 2
    cdef Py_ssize_t tr, nb, T, per, item, t0
    cdef floating* U = NULL
    cdef floating* ws = NULL
    cdef size_t U_bytes = 0, ws_bytes = 0
    # tile rows per work item (the plan's, which fastconv._chunks reads too); shapes only
    tr = _plan.winograd_tile_rows((N, K, Ho, Wo), C)
    nb = (th + tr - 1) // tr
    T = tr * tw
    per = C * (2 * tr + 2) * (2 * tw + 2) + 16 * C * T + 16 * K * T
    nthreads = <int> max(1, min(nthreads, N * nb,
                                (_WINO_MAX_BYTES // <Py_ssize_t> sizeof(floating) - 16 * K * C)
                                // per))
    U = <floating*> _take(16 * K * C * sizeof(floating), &U_bytes)
    ws = <floating*> _take(nthreads * per * sizeof(floating), &ws_bytes)
    try:
        if U == NULL or ws == NULL:
            raise MemoryError(f"conv2d: could not allocate the Winograd weights and "
                              f"{nthreads} work buffers of {per * sizeof(floating)} bytes")
        with nogil:
            for item in prange(K, schedule="static", num_threads=nthreads):
                fc_ftz_enter()
                _wino_weights(w, U, item)
                fc_ftz_exit()
            for item in prange(N * nb, schedule="dynamic", num_threads=nthreads):
                fc_ftz_enter()
                t0 = (item % nb) * tr
                _wino_block(x, U, b, out, item // nb, t0, min(th, t0 + tr), pt, pl,
                            ws + threadid() * per,
                            ws + threadid() * per + C * (2 * tr + 2) * (2 * tw + 2),
                            ws + threadid() * per + C * (2 * tr + 2) * (2 * tw + 2)
                            + 16 * C * T)
                fc_ftz_exit()
    finally:
        _give(U, U_bytes)
        _give(ws, ws_bytes)
    return 0


# --------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------
cdef int _conv(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
               const floating[::1] b, floating[:, :, :, ::1] out, stride, pad, dilation,
               Py_ssize_t groups, int nthreads, int algo) except -1:
    cdef Py_ssize_t sh = stride[0], sw = stride[1], pt = pad[0], pl = pad[1]
    cdef Py_ssize_t dh = dilation[0], dw = dilation[1]
    cdef bint safe
    if out.shape[0] == 0 or out.shape[2] == 0 or out.shape[3] == 0:
        return 0
    if algo == WINOGRAD:
        # decided on the values, at run time: the plan chose Winograd from the shapes, but
        # non-finite or huge data goes to the direct kernel (see _wino_safe)
        with nogil:
            safe = _wino_safe(x, w, b, nthreads)
        if safe:
            _winograd(x, w, b, out, pt, pl, nthreads)
        else:
            algo = DIRECT
    if algo == DIRECT:
        _direct(x, w, b, out, sh, sw, pt, pl, dh, dw, groups, nthreads)
    elif algo != WINOGRAD:
        _gemm(x, w, b, out, sh, sw, pt, pl, dh, dw, groups, algo == POINTWISE, nthreads)
    return 0


cdef Py_ssize_t _row_work(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                          Py_ssize_t Wo, Py_ssize_t Ho, Py_ssize_t sh, Py_ssize_t sw,
                          Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
                          Py_ssize_t groups, int algo, Py_ssize_t* col):
    """Elements of the per-thread workspace that one output row takes (the least a work
    item holds; a block of rows holds about as much, see _direct and _gemm), and in
    ``col`` about as many per output column: the direct kernel's framed stride phases and
    accumulator lines, the im2col's column tile; 0 for the kernels that need none."""
    cdef Py_ssize_t H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t Cg = w.shape[1], kh = w.shape[2], kw = w.shape[3], Wp
    col[0] = 0
    if algo == DIRECT and H == 1 and kh == 1 and _plan.conv_row(
            (x.shape[0], x.shape[1], H, W), (w.shape[0], Cg, kh, kw),
            (x.shape[0], w.shape[0], Ho, Wo), (sh, sw), (pt, pl), groups):
        return 0  # fc_row's scratch: a block's windows, whatever the row's length
    if algo == GEMM:
        col[0] = Cg * kh * kw
        return col[0] * Wo
    if algo != DIRECT or _single_plane(w, W, Wo, sh, sw, groups) \
            or (not _phased(kh, kw, sh, sw) and _all_finite(w)):  # as _direct decides
        return 0
    Wp = Wo + dw * (kw - 1) // sw
    if sh * sw == 1 and pt == 0 and pl == 0 and Wp <= W and Ho + dh * (kh - 1) <= H:
        col[0] = 4  # read in place: four accumulator lines
        return 4 * W
    col[0] = 4 + sh * sw * Cg * (1 + dh * (kh - 1) // sh)
    return col[0] * Wp


def _conv_fixed(int algo, const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                const floating[::1] b, out, stride, pad, dilation, Py_ssize_t groups,
                int nthreads):
    """:func:`_conv` with algorithm code ``algo`` on the whole input; fills and returns
    ``out`` (a tile of fastconv._tiling.conv2d_tiled)."""
    cdef floating[:, :, :, ::1] o = out
    _conv(x, w, b, o, stride, pad, dilation, groups, nthreads, algo)
    return out


cdef int _code(algo, x, w, out, stride, pad, dilation, Py_ssize_t groups) except -1:
    """The kernel's code for the plan's ``algo``; ValueError for a name this kernel does not
    know, or an algorithm the layer cannot run (pointwise and Winograd take only their
    layers)."""
    code = _CODES.get(algo) if isinstance(algo, str) else None
    if code is None:
        _plan.check("conv2d", "cython", algo)
    if code == WINOGRAD and not _plan.winograd_layer(w.shape, stride, dilation, groups):
        raise ValueError("conv2d: algo 'winograd' needs a 3x3 kernel, stride 1, dilation 1 "
                         "and groups 1")
    if code == POINTWISE and not _plan.pointwise_layer(x.shape, w.shape, out.shape, stride,
                                                       pad):
        raise ValueError("conv2d: algo 'pointwise' needs a 1x1 kernel, stride 1 and no "
                         "padding")
    return code


def conv2d(x, w, b, out, stride, pad, dilation, Py_ssize_t groups, algo, int nthreads):
    """Grouped 2-D cross-correlation; fills and returns ``out`` (N, K, Ho, Wo).

    The kernel contract of fastconv.reference.conv2d, by the algorithm ``algo`` ("direct",
    "gemm", "pointwise" or "winograd": the plan's choice, ``fastconv._plan.conv2d``, or one
    forced by a test or benchmark; "gemm" takes any shape whose sizes fit BLAS's 32-bit
    ints) on ``nthreads`` OpenMP threads. "winograd" runs the direct kernel on data
    :func:`winograd_safe` refuses (inf, NaN, or values near overflow). A call whose output
    rows are too long for a bounded workspace runs tile by tile (fastconv._tiling), every
    tile with ``algo``.
    """
    cdef int code = _code(algo, x, w, out, stride, pad, dilation, groups)
    return _conv_bounded(code, x, w, b, out, stride, pad, dilation, groups, nthreads)


def _conv_bounded(int algo, const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                  const floating[::1] b, out, stride, pad, dilation, Py_ssize_t groups,
                  int nthreads):
    """:func:`_conv_fixed`, tiled along the batch and the output row
    (:func:`fastconv._tiling.conv2d_tiled`) when one output row's workspace passes
    ``_tiling.LIMIT`` bytes per thread."""
    cdef floating[:, :, :, ::1] o = out
    cdef Py_ssize_t col = 0, work, sz = sizeof(floating)
    cdef Py_ssize_t sh = stride[0], sw = stride[1], pt = pad[0], pl = pad[1]
    cdef Py_ssize_t dh = dilation[0], dw = dilation[1]
    if o.shape[0] == 0 or o.shape[2] == 0 or o.shape[3] == 0:
        return out
    work = _row_work(x, w, o.shape[3], o.shape[2], sh, sw, pt, pl, dh, dw, groups, algo, &col)
    if work * sz > _tiling.LIMIT and _tiling.conv2d_tiled(
            functools.partial(_conv_fixed, algo), np.asarray(x), np.asarray(w),
            np.asarray(b), out, stride, pad, dilation, groups, nthreads,
            (col + x.shape[1] * x.shape[2] * stride[1] + o.shape[1] * o.shape[2]) * sz):
        return out
    _conv(x, w, b, o, stride, pad, dilation, groups, nthreads, algo)
    return out


# --------------------------------------------------------------------------------------------
# the transposed convolution's sub-pixel phases (issue 20; fastconv._transpose)
# --------------------------------------------------------------------------------------------
cdef void _phase_block(const floating[:, :, :, ::1] x, const floating* ws, Py_ssize_t Cg,
                       Py_ssize_t kuh, Py_ssize_t kuw,
                       const floating[::1] bs, floating[:, :, :, ::1] out, Py_ssize_t n,
                       Py_ssize_t g, Py_ssize_t m0, Py_ssize_t m1, Py_ssize_t padh,
                       Py_ssize_t padw, const Py_ssize_t* ph, Py_ssize_t sh,
                       const Py_ssize_t* pw, Py_ssize_t sw, Py_ssize_t i0, Py_ssize_t rin,
                       Py_ssize_t Wp, const Py_ssize_t* off, const floating* wp,
                       floating* xp) noexcept nogil:
    """Phase rows [m0, m1) of image n, group g, every phase: the input rows they read,
    framed by zeros once (padded rows [i0, i0 + rin), ``Wp`` columns), then each phase's
    filters by fc_taps_out over exactly its own outputs, stored in their places of ``out``
    (rows ``sh * Wo``, columns ``sw`` apart). ``ws``: the stacked weight's rows of ``Cg *
    kuh * kuw`` taps where fc_taps_out reads filters unpacked, else NULL."""
    cdef Py_ssize_t H = x.shape[2], W = x.shape[3], K = out.shape[1]
    cdef Py_ssize_t Kg = K // (x.shape[1] // Cg), R = Cg * kuh * kuw, nph = sh * sw
    cdef Py_ssize_t cc, a, c, rows, k0, L
    cdef fc_ogeo geo
    for cc in range(Cg):
        if floating is float:
            fc_frame_f(xp + cc * rin * Wp, Wp, &x[n, g * Cg + cc, 0, 0], H, W, i0 - padh, rin,
                       padw)
        else:
            fc_frame_d(xp + cc * rin * Wp, Wp, &x[n, g * Cg + cc, 0, 0], H, W, i0 - padh, rin,
                       padw)
    geo.ldo = out.strides[1] // sizeof(floating)
    geo.ldr = sh * (out.strides[2] // sizeof(floating))
    geo.ldc = sw
    geo.Wp = Wp
    for a in range(sh):
        rows = min(m1, ph[2 * a + 1]) - m0
        if rows <= 0:
            continue
        for c in range(sw):
            if pw[2 * c + 1] <= 0:
                continue
            geo.Wo = pw[2 * c + 1]
            L = (rows - 1) * Wp + geo.Wo
            k0 = (g * nph + a * sw + c) * Kg
            if floating is float:
                fc_taps_out_f(xp + (ph[2 * a] + m0 - i0) * Wp + pw[2 * c], off, R,
                              ws + k0 * R if ws != NULL else NULL, R, wp + k0 * R,
                              &bs[k0], Kg,
                              &out[n, g * Kg, sh * m0 + a, c], &geo, L)
            else:
                fc_taps_out_d(xp + (ph[2 * a] + m0 - i0) * Wp + pw[2 * c], off, R,
                              ws + k0 * R if ws != NULL else NULL, R, wp + k0 * R,
                              &bs[k0], Kg,
                              &out[n, g * Kg, sh * m0 + a, c], &geo, L)


cdef inline Py_ssize_t _band(Py_ssize_t s0, Py_ssize_t m, Py_ssize_t mend, Py_ssize_t ku,
                             Py_ssize_t L, Py_ssize_t* t0, Py_ssize_t* t1) noexcept nogil:
    """The end of the band of output lines [m, end) (end <= mend) whose ``ku`` taps, from
    input index ``s0 + line`` on, have the same range [t0, t1) inside an input of ``L``
    (empty when t1 <= t0)."""
    cdef Py_ssize_t e = m + 1
    t0[0] = max(0, -(s0 + m))
    t1[0] = min(ku, L - (s0 + m))
    while e < mend and max(0, -(s0 + e)) == t0[0] and min(ku, L - (s0 + e)) == t1[0]:
        e += 1
    return e


cdef void _phase_block_fv(const floating[:, :, :, ::1] x, Py_ssize_t Cg, Py_ssize_t kuh,
                          Py_ssize_t kuw, const floating[::1] bs, floating[:, :, :, ::1] out,
                          Py_ssize_t n, Py_ssize_t g, Py_ssize_t m0, Py_ssize_t m1,
                          Py_ssize_t padh, Py_ssize_t padw, const Py_ssize_t* ph,
                          Py_ssize_t sh, const Py_ssize_t* pw, Py_ssize_t sw,
                          const floating* wp, Py_ssize_t* qs, Py_ssize_t* po,
                          Py_ssize_t* ev, floating* stage) noexcept nogil:
    """Phase rows [m0, m1) of image n, group g, every phase, by fc_taps_fv (filters in the
    vector lanes; ``wp`` packed in blocks of fc_fv_filters()) reading ``x`` in place. Each
    phase's outputs go in classes, a band of rows with the same taps inside the input
    times a band of columns with the same: a class runs only those taps (an output none
    reaches gets its bias), so no zero of the padding is multiplied, and an inf or NaN
    weight reaches only the outputs the transposed convolution's sum gives it. The
    outputs go to ``stage`` position-major (room for the ``K // groups`` filters of each
    output of rows ``[sh * m0, sh * m1)``: plain vector stores, cache-resident), then to
    ``out`` by fc_fv_unstage (``out``'s rows contiguous). ``qs``, ``po``: room for ``(m1 -
    m0) * Wo`` positions; ``ev``: for two lists of ``kuh * kuw`` taps."""
    cdef Py_ssize_t H = x.shape[2], W = x.shape[3], K = out.shape[1]
    cdef Py_ssize_t Kg = K // (x.shape[1] // Cg), R = Cg * kuh * kuw, nph = sh * sw
    cdef Py_ssize_t Wo = out.shape[3], r0o = sh * m0, nro = min(out.shape[2], sh * m1) - r0o
    cdef Py_ssize_t ldr = sh * Wo
    cdef Py_ssize_t a, c, k0, r0, c0, mend, cnt, m, me, j, je, u0, u1, v0, v1, u, v, ne, nq
    cdef Py_ssize_t mm, jj
    cdef Py_ssize_t* dv = ev + kuh * kuw
    cdef const floating* src = &x[n, g * Cg, 0, 0]
    cdef floating* obase
    for a in range(sh):
        mend = min(m1, ph[2 * a + 1])
        r0 = ph[2 * a] - padh  # the input row of phase row 0's first tap
        for c in range(sw):
            cnt = pw[2 * c + 1]
            if mend <= m0 or cnt <= 0:
                continue
            c0 = pw[2 * c] - padw
            k0 = (g * nph + a * sw + c) * Kg
            obase = stage + (a * Wo + c) * Kg  # output row sh * m0 + a, column c
            m = m0
            while m < mend:  # bands of rows with the same taps inside
                me = _band(r0, m, mend, kuh, H, &u0, &u1)
                j = 0
                while j < cnt:  # bands of columns
                    je = _band(c0, j, cnt, kuw, W, &v0, &v1)
                    ne = 0  # the class's taps of a channel, their offsets in it
                    for u in range(u0, u1):
                        for v in range(v0, v1):
                            ev[ne] = u * kuw + v
                            dv[ne] = u * W + v
                            ne += 1
                    nq = 0
                    for mm in range(m, me):
                        for jj in range(j, je):
                            qs[nq] = (r0 + mm) * W + c0 + jj
                            po[nq] = ((mm - m0) * ldr + jj * sw) * Kg
                            nq += 1
                    if floating is float:
                        fc_taps_fv_f(src, H * W, Cg, kuh * kuw, ev, dv, ne, wp + k0 * R,
                                     &bs[k0], Kg, obase, qs, po, nq)
                    else:
                        fc_taps_fv_d(src, H * W, Cg, kuh * kuw, ev, dv, ne, wp + k0 * R,
                                     &bs[k0], Kg, obase, qs, po, nq)
                    j = je
                m = me
    if floating is float:
        fc_fv_unstage_f(stage, Kg, nro * Wo, &out[n, g * Kg, r0o, 0],
                        out.strides[1] // sizeof(float))
    else:
        fc_fv_unstage_d(stage, Kg, nro * Wo, &out[n, g * Kg, r0o, 0],
                        out.strides[1] // sizeof(double))


cdef void _stack_pack(const floating* w, Py_ssize_t groups, Py_ssize_t Cg, Py_ssize_t kc,
                      Py_ssize_t khw, const Py_ssize_t* taps, Py_ssize_t nph, Py_ssize_t ku,
                      Py_ssize_t B, floating* wp, floating* ws) noexcept nogil:
    """The stacked weight of the phases straight from the transposed weight ``w`` (C, kc,
    kh, kw): row ``(g, phase, k)``, tap ``t = c * ku + e`` is ``w[g * Cg + c, k,
    taps[phase, e]]``. Into ``wp`` packed in blocks of ``B`` filters (``wp[i * kc * R +
    ((k // B) * R + t) * B + k % B]`` for the (group, phase) ``i`` and its whole blocks, as
    fc_pack and fc_taps_fv read them), and into ``ws`` row by row (rows of ``R = Cg * ku``)
    unless it is NULL. Writes ``wp`` a run of ``B`` filters at a time; the reads of one
    input channel stay within its ``kc * kh * kw`` values."""
    cdef Py_ssize_t R = Cg * ku, kb = kc // B * B, g, c, k, k0, p, e, i, d
    cdef const floating* row
    for g in range(groups):
        for c in range(Cg):
            for p in range(nph):
                i = g * nph + p
                for e in range(ku):
                    # w[g * Cg + c, k, tap] for k < kc: khw apart
                    row = w + (g * Cg + c) * kc * khw + taps[p * ku + e]
                    d = i * kc * R + (c * ku + e) * B  # wp's tap c * ku + e, filter 0
                    for k0 in range(kb // B):
                        for k in range(B):
                            wp[d + k0 * B * R + k] = row[(k0 * B + k) * khw]
                    if ws != NULL:
                        for k in range(kc):
                            ws[(i * kc + k) * R + c * ku + e] = row[k * khw]


def transpose_phased(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                     const Py_ssize_t[:, ::1] taps, Py_ssize_t kuh, Py_ssize_t kuw,
                     const floating[::1] bs, floating[:, :, :, ::1] out, Py_ssize_t padh,
                     Py_ssize_t padw, phases_h, phases_w, Py_ssize_t groups, int nthreads):
    """The transposed convolution's sub-pixel phases, each computed over exactly its own
    outputs and stored in its places of ``out`` (N, K, Ho, Wo): no wasted position, no
    forward output to copy from (fastconv._transpose.run, which sends finite weights only:
    the framed kernel below multiplies the padding's zeros by every weight).

    ``w`` (C, K // groups, kh, kw) is the transposed weight and ``taps`` (phases, kuh *
    kuw) its taps of each phase's forward sub-kernel (fastconv._transpose.phase_taps: row
    phase major); the stacked weight (group, then phase, then filter) is built from them
    here, straight into the kernels' packed layouts. ``bs`` is the stacked bias;
    ``phases_h`` / ``phases_w``: per phase ``(offset, count)`` along the axis, phase ``a``'s
    outputs ``o = s * m + a`` (m < count) being the stride-1 forward layer's outputs
    ``offset + m`` on the input padded by ``padh`` / ``padw``. Work items are (image, group,
    block of phase rows), the split from the shapes only; every output gets its bias and
    taps in one fixed order, so results do not depend on ``nthreads``.

    Two kernels, chosen from the shapes: fc_taps_out on a zero-framed copy of the rows a
    block reads (vectors of positions along the phase's lines; the padding's zeros are
    multiplied like any input), or, where whole blocks of fc_fv_filters() filters cover
    each phase and its outputs fill vectors of positions badly (small planes),
    _phase_block_fv: fc_taps_fv on the input in place with only the taps inside it. Both
    sum each output's taps in the order ``t = c * ku + e`` (the frame's extra taps add
    zeros): the same bits whichever runs (the sign of a zero sum aside)."""
    cdef Py_ssize_t N = x.shape[0], W = x.shape[3], Cg = x.shape[1] // groups
    cdef Py_ssize_t R = Cg * kuh * kuw, kc = w.shape[1], Wo = out.shape[3]
    cdef Py_ssize_t sh = len(phases_h), sw = len(phases_w), Wp = W + 2 * padw
    cdef Py_ssize_t M = 0, lo, hi, span, nb, rows, rin, per, item, p, m0, m1, i, j, t, cc, KS
    cdef Py_ssize_t vl, fvk, fvp, m, L, cost_taps, cost_fv, qper
    cdef bint fv, rows_too
    cdef Py_ssize_t* qs = NULL
    cdef Py_ssize_t* qt
    cdef Py_ssize_t ph[64]
    cdef Py_ssize_t pw[64]
    cdef floating* buf = NULL
    cdef floating* wp
    cdef floating* ws
    cdef size_t buf_bytes = 0
    cdef Py_ssize_t* off = NULL
    if sh > 32 or sw > 32:
        raise ValueError("transpose_phased: at most 32 phases per axis")
    for i in range(sh):
        ph[2 * i], ph[2 * i + 1] = phases_h[i]
        M = max(M, ph[2 * i + 1])
    for i in range(sw):
        pw[2 * i], pw[2 * i + 1] = phases_w[i]
    if N == 0 or M == 0:
        return out
    lo = min([ph[2 * i] for i in range(sh)])
    hi = max([ph[2 * i] for i in range(sh)])
    span = hi - lo + kuh - 1
    nthreads = max(1, nthreads)
    nb = row_blocks(N * groups, M, _MIN_FLAT_ITEMS)
    # framed inputs of at most about _FLAT_IN_ELEMS elements; shapes only
    nb = max(nb, (Cg * (M + span) * Wp + _FLAT_IN_ELEMS - 1) // _FLAT_IN_ELEMS)
    nb = min(nb, M)
    rows = (M + nb - 1) // nb
    nb = (M + rows - 1) // rows
    rin = rows + span
    KS = groups * sh * sw * kc  # the stacked weight's rows: (group, phase, filter)
    # filters in the vector lanes (fc_taps_fv) when whole blocks of them cover the filters
    # and the phases' outputs fill vectors of positions badly (small planes): by the
    # positions each computes for one block of rows, fc_taps_out's blocks of positions (a
    # vector in the AVX-512 build, whose tail blocks end at the line's end; AVX2's tiles of
    # three vectors) against fc_taps_fv's (each output once; a tenth more for its short
    # last blocks); fc_taps_fv's skipped padding taps are not counted
    vl = 64 // sizeof(floating) if fc_wide() else 3 * 32 // sizeof(floating)
    fvk = fc_fv_filters_f() if floating is float else fc_fv_filters_d()
    fvp = fc_fv_positions_f() if floating is float else fc_fv_positions_d()
    fv = False
    if (fvp > 0 and kc % fvk == 0
            and out.strides[2] == Wo * sizeof(floating)):  # staged rows go out as one run
        cost_taps = cost_fv = 0
        for i in range(sh):
            for j in range(sw):
                m = min(rows, ph[2 * i + 1]) * pw[2 * j + 1]
                if m:
                    L = (min(rows, ph[2 * i + 1]) - 1) * Wp + pw[2 * j + 1]
                    cost_taps += (L + vl - 1) // vl * vl
                    cost_fv += m
        fv = cost_fv * 11 < cost_taps * 10
    if (sh * sw != taps.shape[0] or kuh * kuw != taps.shape[1] or w.shape[0] != x.shape[1]
            or bs.shape[0] != KS or out.shape[1] != groups * kc):
        raise ValueError("transpose_phased: w, taps, bs and out do not fit x and the phases")
    for i in range(taps.shape[0]):
        for j in range(taps.shape[1]):
            if not 0 <= taps[i, j] < w.shape[2] * w.shape[3]:
                raise ValueError("transpose_phased: a tap outside the kernel")
    # per thread: fc_taps_out's framed rows, or fc_taps_fv's output rows (two lists of
    # positions and its taps in qs; on the small planes it takes, a cache-resident stage)
    per = kc * min(out.shape[2], sh * rows) * Wo if fv else Cg * rin * Wp
    qper = 2 * rows * Wo + 2 * kuh * kuw if fv else 0
    # the packed weights, and the stacked rows where fc_taps_out reads filters unpacked
    # (AVX2 and plain builds: all; AVX-512: those past the last whole block of FC_OKB)
    rows_too = not fv and (not fc_wide() or kc % FC_OKB != 0)
    buf = <floating*> _take((nthreads * per + (2 if rows_too else 1) * KS * R + 1)
                            * sizeof(floating), &buf_bytes)
    off = <Py_ssize_t*> malloc(R * sizeof(Py_ssize_t))
    qs = <Py_ssize_t*> malloc((nthreads * qper + 1) * sizeof(Py_ssize_t))
    try:
        if buf == NULL or off == NULL or qs == NULL:
            raise MemoryError(f"conv_transpose2d: could not allocate {nthreads} work buffers "
                              f"of {per * sizeof(floating)} bytes")
        wp = buf + nthreads * per
        ws = wp + KS * R if rows_too else NULL
        with nogil:
            _stack_pack(&w[0, 0, 0, 0], groups, Cg, kc, w.shape[2] * w.shape[3], &taps[0, 0],
                        sh * sw, kuh * kuw, fvk if fv else FC_OKB, wp, ws)
        t = 0
        for cc in range(Cg):
            for i in range(kuh):
                for j in range(kuw):
                    off[t] = cc * rin * Wp + i * Wp + j
                    t += 1
        with nogil:
            for item in prange(N * groups * nb, schedule="dynamic", num_threads=nthreads):
                fc_ftz_enter()
                p = item // nb
                m0 = (item % nb) * rows
                m1 = min(M, m0 + rows)
                if fv:
                    qt = qs + threadid() * qper
                    _phase_block_fv(x, Cg, kuh, kuw, bs, out, p // groups, p % groups, m0, m1,
                                    padh, padw, ph, sh, pw, sw, wp, qt, qt + rows * Wo,
                                    qt + 2 * rows * Wo, buf + threadid() * per)
                else:
                    _phase_block(x, ws, Cg, kuh, kuw, bs, out, p // groups, p % groups, m0,
                                 m1, padh, padw, ph, sh, pw, sw, lo + m0, rin, Wp, off, wp,
                                 buf + threadid() * per)
                fc_ftz_exit()
    finally:
        _give(buf, buf_bytes)
        free(off)
        free(qs)
    return out


# --------------------------------------------------------------------------------------------
# flush-to-zero (fc_fpenv.h): this module's flag, kept equal to fastconv's setting
# --------------------------------------------------------------------------------------------
def _set_flush_denormal(bint on):
    """Set this module's flush-to-zero flag (fastconv._threads owns the setting)."""
    fc_ftz_set(on)


from fastconv import _threads  # noqa: E402

_threads.register_flush_hook(_set_flush_denormal)
