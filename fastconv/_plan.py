"""The plan: which algorithm each compiled convolution kernel runs, its tuning constants, and
what a call costs. Pure Python (numpy and the standard library only); the one home of these
rules for both compiled backends.

The compiled kernels take the plan's decision as an argument, the same way on both backends:
``conv2d(x, w, b, out, stride, pad, dilation, groups, algo, nthreads)``,
``conv2d_input(gy, w, gx, stride, pad, dilation, groups, algo, nthreads)`` and
``conv2d_weight(x, gy, gw, stride, pad, dilation, groups, algo, nthreads)``, where ``algo``
is one of the strings below. :func:`fastconv._dispatch.run` asks :func:`algorithm` for it on
every call (cached per shape); tests and benchmarks force one by passing it. The tile sizes
that the kernels and :mod:`fastconv._chunks` must agree on (its pieces keep the whole call's
GEMM sizes, so that results stay bitwise) are functions here too, and both read them.

Notation: ``R = (C // groups) * kh * kw``, the length of one dot product; ``Kg = K //
groups``, the filters per group; ``Ho x Wo`` the output plane. The timings behind the rules
are in the documentation (docs/guide/performance-notes.md).

conv2d
------
Cython (``fastconv._cy_conv``), the first rule that holds:

* ``"direct"`` when ``R < GEMM_MIN_R`` (16) or ``Kg < GEMM_MIN_KG`` (8): im2col costs more
  than GEMM saves; also when a size does not fit BLAS's 32-bit ints.
* ``"direct"`` for a 1x1, stride-1, unpadded layer in float32 with ``PW_DIRECT_MIN_C``
  (48) <= Cg, ``Kg <= PW_DIRECT_MAX_KG`` (384), ``Cg * Kg <= PW_DIRECT_MAX_WEIGHTS``
  (2**16: 256 KiB of weights), at least two images and ``N * Ho * Wo >= PW_DIRECT_MIN_POS``
  (400): within those bounds the direct kernel beats the GEMM (0.85 of its time over the
  documentation's grid of shapes); it loses more often on one image, on large weights at 2
  threads, on few channels, and in float64.
* ``"pointwise"``: the other 1x1, stride-1, unpadded layers; GEMM reads the input plane in
  place as the column matrix (no copy).
* ``"winograd"``: Winograd F(2x2, 3x3), 2.25x fewer multiplications, for a 3x3, stride-1,
  undilated, ungrouped layer with at least ``WINO_MIN_CK`` (32) channels and filters, at
  most ``WINO_MAX_KC`` (2**18) filter x channel pairs (its transformed weights, 32 MiB in
  float32), ``16 * (C + K) * ceil(Wo / 2) <= WINO_WS_ELEMS`` (2**21: one row of tiles'
  transforms per work item) and at least ``WINO_MIN_TILES`` (256) output tiles (2x2) in the
  batch: every call transforms all the weights, and too few tiles cannot pay for that. A
  function of the shapes only: the kernel still runs the direct kernel on data whose
  values are non-finite or large enough for the transforms to overflow
  (``_cy_conv.winograd_safe``). That is a property of the data, not of the plan, decided
  per call by a scan of x, w and b.
* ``"direct"`` when the stride is at most the kernel size on both axes (the register-blocked
  kernel on the input's stride phases) and ``R <= DIRECT_MAX_R`` (4608): it beats im2col +
  GEMM there (0.44-0.92 of its time at stride 1).
* ``"gemm"`` otherwise: tiled im2col + GEMM, each tile at most ``TILE_BYTES`` (1 MiB, about
  L2) of columns (:func:`gemm_tile_rows`).

Numba (``fastconv._numba.conv``): ``"gemm"`` when ``R >= NUMBA_GEMM_MIN_R`` (32) and
``Kg >= GEMM_MIN_KG``, else ``"direct"`` (its stride-1 kernel on a padded copy, or its
strided loop nest). Numba's threshold stays at 32, not Cython's 16: for 3x3 and 5x5
layers with R in [16, 32) its stride-1 direct kernel beat its GEMM path by 10-25% and more
in a paired A/B (docs/guide/performance-notes.md; only 1x1 layers gained from GEMM there).
Its GEMM tiles hold at most ``NUMBA_TILE_BYTES`` (2 MiB; :func:`numba_gemm_rows`).

conv2d_input and conv2d_weight
------------------------------
Both backends: ``"gemm"`` when ``R >= GEMM_MIN_R`` and ``Kg >= GEMM_MIN_KG`` (the forward's
rule), or when ``Kg >= SMALL_MIN_KG`` (3), ``R >= SMALL_MIN_R`` (4) and
``Wo <= SMALL_MAX_WO`` (64): on short output rows the direct gradient loops are loop
overhead, and GEMM was 2-3.5x faster even for lenet's 1 -> 6 channels. Else ``"direct"``
(and for an empty batch or output). Cython's GEMM also needs every size to fit BLAS's 32-bit
ints (Numba's ``np.dot`` does not). Cython's ``conv2d_input`` first takes ``"forward"``: at
stride 1 with ``pad <= dilation * (kernel - 1)`` (:func:`transposes_to_forward`) the input
gradient is a forward convolution of grad_output with the flipped, transposed weights, and
runs on ``_cy_conv`` with the algorithm :func:`conv2d` plans for that layer.

The GEMM paths of both backends cut the work the same way (:func:`grad_tiles`,
:func:`input_channel_blocks`, :func:`weight_slots`), aiming at ``GRAD_MIN_ITEMS`` (8)
work items; the direct weight gradient runs long rows in blocks of columns
(:func:`weight_columns`).

Cost
----
:func:`macs` (multiply-adds of a convolution, window taps of a pool) is the one formula of
a call's work: :func:`work` (``2 x macs`` FLOPs, against the thread grain of
:mod:`fastconv._threads`) and :func:`seconds` (the estimate behind
:mod:`fastconv._chunks`' cuts) both use it.
``seconds = macs / MAC_RATE[backend][op] + cols / COL_RATE[backend] + elems / ELEM_RATE[backend]``
with ``cols`` the im2col elements (``macs / filters per group``) and ``elems`` the elements
read and written.

Every function here depends on the shapes (and the itemsize) only, never on the data or the
thread count.
"""

from __future__ import annotations

import math

__all__ = ["DIRECT", "GEMM", "POINTWISE", "WINOGRAD", "FORWARD", "ALGORITHMS", "conv2d",
           "conv2d_input", "conv2d_weight", "algorithm", "transposes_to_forward"]

# the algorithms' names: the ``algo`` argument of the compiled kernels
DIRECT = "direct"
GEMM = "gemm"
POINTWISE = "pointwise"
WINOGRAD = "winograd"
FORWARD = "forward"
# the algorithms each compiled kernel takes
ALGORITHMS = {
    ("cython", "conv2d"): (DIRECT, GEMM, POINTWISE, WINOGRAD),
    ("cython", "conv2d_input"): (DIRECT, GEMM, FORWARD),
    ("cython", "conv2d_weight"): (DIRECT, GEMM),
    ("numba", "conv2d"): (DIRECT, GEMM),
    ("numba", "conv2d_input"): (DIRECT, GEMM),
    ("numba", "conv2d_weight"): (DIRECT, GEMM),
}

# --------------------------------------------------------------------------------------------
# constants
# --------------------------------------------------------------------------------------------
# Bytes of one im2col tile (per thread): about L2-sized, the tile is written once and read by
# GEMM's packing right after (Cython's conv2d, both backends' gradients).
TILE_BYTES = 1 << 20
# GEMM needs dot products at least this long and at least this many filters per group;
# below that, im2col costs more than GEMM saves.
GEMM_MIN_R = 16
GEMM_MIN_KG = 8
# Numba's conv2d: its direct loops win for 3x3 and 5x5 layers up to R < 32 (see the module
# docstring); its GEMM tiles hold up to 2 MiB (Numba's value before issue 16, kept apart
# from TILE_BYTES: not re-measured, and a change would move its GEMMs' rounding).
NUMBA_GEMM_MIN_R = 32
NUMBA_TILE_BYTES = 1 << 21
# Output rows per work item of Numba's stride-1 direct kernel (fixed: results never depend
# on it).
NUMBA_FLAT_ROWS = 64
# Bytes of outputs per work item of Numba's 1-D row kernel (the layers conv_row names): an
# L1-sized accumulator (fixed: results never depend on it).
NUMBA_ROW_BLOCK = 8192
# Cython's conv2d: up to this R the direct kernel, beyond it GEMM.
DIRECT_MAX_R = 4608
# Cython's conv2d, pointwise layers in float32: the direct kernel when the group has at
# least PW_DIRECT_MIN_C channels, at most PW_DIRECT_MAX_KG filters and PW_DIRECT_MAX_WEIGHTS
# weights, and the batch at least two images and PW_DIRECT_MIN_POS output positions.
PW_DIRECT_MIN_C = 48
PW_DIRECT_MAX_KG = 384
PW_DIRECT_MAX_WEIGHTS = 1 << 16
PW_DIRECT_MIN_POS = 400
# Cython's conv2d work items: at least this many (output planes or row blocks), this many
# GEMM tiles, and this many row blocks of the direct kernel (fewer, longer blocks waste less
# of the vector blocking at a block's end).
CONV_MIN_ITEMS = 16
MIN_TILES = 4
MIN_FLAT_ITEMS = 8
# Cython's conv2d, 1-D layers (one input row, a one-row kernel, one output row, stride 1):
# with one filter per group, or at most ROW_MAX_PLANES output planes in all (too few to
# share over threads plane by plane), fc_row splits the row into ranges of about
# ROW_CHUNK_MACS multiply-adds (at least one block of outputs) and runs them in parallel.
ROW_MAX_PLANES = 4
ROW_CHUNK_MACS = 1 << 18
# Accumulator elements per work item of Cython's direct kernel (an L1/L2-sized block), and
# input elements (all channels of a group, all stride phases) per item when it copies.
FLAT_ELEMS = 8192
FLAT_IN_ELEMS = 1 << 16
# one-row blocks of the direct kernel are cut into column segments of at least this many
# outputs (a multiple of 64) when the row is longer (_cy_conv._direct)
FLAT_MIN_SEG = 1024
# Winograd F(2x2, 3x3): at least this many channels and filters; about this many output
# tiles per work item (its GEMMs are (K, C) @ (C, tiles)); at most this many filter x
# channel pairs and elements of tile transforms per work item and thread; at least this
# many output tiles in the batch, and this many per work item when there are.
WINO_MIN_CK = 32
WINO_TILES = 196
WINO_MAX_KC = 1 << 18
WINO_WS_ELEMS = 1 << 21
WINO_MIN_TILES = 256
WINO_MIN_ITEM_TILES = 64
# The Winograd weights and the workspaces of the threads that run together stay below this
# (fewer threads run when they would not: the work split, and so the result, is the same).
WINO_MAX_BYTES = 48 << 20
# Gradients: GEMM also for few channels or filters when output rows are short.
SMALL_MIN_KG = 3
SMALL_MIN_R = 4
SMALL_MAX_WO = 64
# Gradients' work items aimed at (shapes only, never the thread count).
GRAD_MIN_ITEMS = 8
# The direct weight gradient's accumulators hold at most this many elements: longer output
# rows run in blocks of columns.
WEIGHT_ACC_ELEMS = 1 << 18
# conv2d_weight's GEMM: partials (beyond gw itself) hold at most about this many bytes; past
# it, filter blocks replace slots. Filter blocks keep at least this many filters.
PARTIAL_BYTES = 1 << 23
MIN_FILTER_BLOCK = 16
# BLAS (scipy.linalg.cython_blas) takes 32-bit ints.
INT_MAX = 2147483647


# --------------------------------------------------------------------------------------------
# the rules
# --------------------------------------------------------------------------------------------
def _blas_fits(R, Ho, Wo, H, W):
    """Whether im2col + GEMM's dimensions and leading dimensions fit 32-bit ints."""
    return not (R > INT_MAX or Ho * Wo > INT_MAX or H * W > INT_MAX or R * Wo > INT_MAX // 2)


def winograd_layer(w_shape, stride, dilation, groups) -> bool:
    """The layers Winograd F(2x2, 3x3) computes: 3x3, stride 1, undilated, ungrouped."""
    return (w_shape[2] == 3 and w_shape[3] == 3 and stride[0] == 1 and stride[1] == 1
            and dilation[0] == 1 and dilation[1] == 1 and groups == 1)


def pointwise_layer(x_shape, w_shape, out_shape, stride, pad) -> bool:
    """A 1x1, stride-1, unpadded layer: the input plane is GEMM's column matrix."""
    return (w_shape[2] == 1 and w_shape[3] == 1 and stride[0] == 1 and stride[1] == 1
            and pad[0] == 0 and pad[1] == 0 and out_shape[2] == x_shape[2]
            and out_shape[3] == x_shape[3])


def pointwise_direct(x_shape, w_shape, out_shape, groups, itemsize) -> bool:
    """Whether Cython's conv2d runs a pointwise layer (:func:`pointwise_layer`) on its
    direct kernel rather than GEMM: float32, ``PW_DIRECT_MIN_C <= Cg``, ``Kg <=
    PW_DIRECT_MAX_KG``, ``Cg * Kg <= PW_DIRECT_MAX_WEIGHTS``, ``N >= 2`` and ``N * Ho * Wo
    >= PW_DIRECT_MIN_POS`` (module docstring)."""
    N, Cg, Kg = x_shape[0], w_shape[1], w_shape[0] // groups
    return (itemsize == 4 and PW_DIRECT_MIN_C <= Cg and Kg <= PW_DIRECT_MAX_KG
            and Cg * Kg <= PW_DIRECT_MAX_WEIGHTS and N >= 2
            and N * out_shape[2] * out_shape[3] >= PW_DIRECT_MIN_POS)


def conv2d(backend, x_shape, w_shape, out_shape, stride, pad, dilation, groups,
           itemsize=4) -> str:
    """The algorithm of ``backend``'s conv2d kernel ("cython" or "numba") for these shapes:
    "direct", "gemm", "pointwise" or "winograd" (see the module docstring). ``itemsize``
    changes the choice for pointwise layers only (:func:`pointwise_direct`); otherwise
    only the tiles (:func:`path`).

    >>> conv2d("cython", (8, 64, 56, 56), (64, 64, 1, 1), (8, 64, 56, 56),
    ...        (1, 1), (0, 0), (1, 1), 1, itemsize=8)
    'pointwise'
    >>> conv2d("cython", (8, 64, 56, 56), (64, 64, 1, 1), (8, 64, 56, 56),
    ...        (1, 1), (0, 0), (1, 1), 1, itemsize=4)
    'direct'
    >>> conv2d("cython", (8, 64, 56, 56), (64, 64, 3, 3), (8, 64, 56, 56),
    ...        (1, 1), (1, 1), (1, 1), 1)
    'winograd'
    """
    N, _, H, W = x_shape
    K, Cg, kh, kw = w_shape
    Ho, Wo = out_shape[2], out_shape[3]
    R, Kg = Cg * kh * kw, K // groups
    if backend == "numba":
        return GEMM if R >= NUMBA_GEMM_MIN_R and Kg >= GEMM_MIN_KG else DIRECT
    if R < GEMM_MIN_R or Kg < GEMM_MIN_KG or not _blas_fits(R, Ho, Wo, H, W):
        return DIRECT
    if pointwise_layer(x_shape, w_shape, out_shape, stride, pad):
        return DIRECT if pointwise_direct(x_shape, w_shape, out_shape, groups, itemsize) \
            else POINTWISE
    tw = (Wo + 1) // 2
    if (winograd_layer(w_shape, stride, dilation, groups) and Cg >= WINO_MIN_CK
            and K >= WINO_MIN_CK and K * Cg <= WINO_MAX_KC
            and 16 * (Cg + K) * tw <= WINO_WS_ELEMS
            and ((Ho + 1) // 2) * tw * N >= WINO_MIN_TILES):
        return WINOGRAD
    if stride[0] <= kh and stride[1] <= kw and R <= DIRECT_MAX_R:
        return DIRECT
    return GEMM


def conv_row(x_shape, w_shape, out_shape, stride, pad, groups) -> bool:
    """Whether the direct conv2d runs this layer on its row kernel (Cython's ``fc_row``,
    Numba's ``_conv2d_row``): a 1-D layer (one input
    row, a one-row kernel, one output row that reads input row 0, stride 1)
    with one filter per group or at most ROW_MAX_PLANES output planes. From the shapes
    only (never the thread count), as every choice of a kernel's path.

    >>> conv_row((1, 1, 1, 10**6), (1, 1, 1, 11), (1, 1, 1, 10**6 + 10), (1, 1), (0, 10), 1)
    True
    >>> conv_row((8, 16, 1, 4096), (32, 16, 1, 5), (8, 32, 1, 4092), (1, 1), (0, 0), 1)
    False
    """
    N, _, H, _ = x_shape
    K, _, kh, _ = w_shape
    return (H == 1 and kh == 1 and out_shape[2] == 1 and pad[0] == 0 and stride[0] == 1
            and stride[1] == 1 and (K == groups or N * K <= ROW_MAX_PLANES))


def _grad(backend, N, K, Cg, kh, kw, Ho, Wo, H, W, groups):
    """The gradients' rule (module docstring) on both backends."""
    R, Kg = Cg * kh * kw, K // groups
    if N == 0 or Ho == 0 or Wo == 0:
        return DIRECT
    if (R < GEMM_MIN_R or Kg < GEMM_MIN_KG) and \
            (Kg < SMALL_MIN_KG or R < SMALL_MIN_R or Wo > SMALL_MAX_WO):
        return DIRECT
    if backend == "cython" and (not _blas_fits(R, Ho, Wo, H, W) or K * R > INT_MAX):
        return DIRECT
    return GEMM


def transposes_to_forward(stride, pad, dilation, w_shape) -> bool:
    """Whether Cython's conv2d_input runs as a forward convolution: stride 1 and
    ``0 <= pad <= dilation * (kernel - 1)`` on both axes."""
    return (stride[0] == 1 and stride[1] == 1
            and 0 <= pad[0] <= dilation[0] * (w_shape[2] - 1)
            and 0 <= pad[1] <= dilation[1] * (w_shape[3] - 1))


def forward_layer(w_shape, pad, dilation, groups):
    """(w_shape, pad) of the forward convolution that computes a stride-1 input gradient:
    the weights flipped and transposed per group (filters become channels), and the
    padding ``dilation * (kernel - 1) - pad``."""
    K, Cg, kh, kw = w_shape
    return ((groups * Cg, K // groups, kh, kw),
            (dilation[0] * (kh - 1) - pad[0], dilation[1] * (kw - 1) - pad[1]))


def input_as_forward(x_shape, w_shape, gy_shape, pad, dilation, groups, itemsize=4) -> str:
    """The algorithm of the forward layer (Cython's conv2d, :func:`conv2d`) that computes a
    stride-1 input gradient taken "forward" (:func:`forward_layer`; ``x_shape`` the
    input's): whether that call uses BLAS."""
    wt, padt = forward_layer(w_shape, pad, dilation, groups)
    return conv2d("cython", gy_shape, wt, x_shape, (1, 1), padt, dilation, groups, itemsize)


def conv2d_input(backend, x_shape, w_shape, gy_shape, stride, pad, dilation, groups,
                 itemsize=4) -> str:
    """The algorithm of ``backend``'s conv2d_input kernel for these shapes (``x_shape`` the
    input's, i.e. grad_input's): "forward" (Cython only), "direct" or "gemm"."""
    if backend == "cython" and x_shape[0] and transposes_to_forward(stride, pad, dilation,
                                                                    w_shape):
        return FORWARD
    return _grad(backend, gy_shape[0], w_shape[0], w_shape[1], w_shape[2], w_shape[3],
                 gy_shape[2], gy_shape[3], x_shape[2], x_shape[3], groups)


def conv2d_weight(backend, x_shape, w_shape, gy_shape, stride, pad, dilation, groups,
                  itemsize=4) -> str:
    """The algorithm of ``backend``'s conv2d_weight kernel for these shapes: "direct" or
    "gemm"."""
    return _grad(backend, gy_shape[0], w_shape[0], w_shape[1], w_shape[2], w_shape[3],
                 gy_shape[2], gy_shape[3], x_shape[2], x_shape[3], groups)


_MEMO: dict = {}  # the kernel arguments' shapes -> algo: see algorithm()
_MEMO_MAX = 4096


def algorithm(op, backend, args):
    """The ``algo`` argument of the kernel call ``op(*args, algo, nthreads)`` on
    ``backend``, from the kernel arguments' shapes; None for the ops and backends that take
    none (pools, locally_connected2d, the NumPy reference). Every kernel call asks, so the
    answer is kept per shape (a training loop plans the same layers every step)."""
    if backend == "numpy" or op not in _PLANNED:
        return _algorithm3(op, backend, args) if op in _PLANNED3 and backend != "numpy" \
            else None
    a0, a1 = args[0], args[1]
    # conv2d: (x, w, b, out, stride, pad, dilation, groups); the gradients: (gy, w, gx, ...)
    # and (x, gy, gw, ...), then stride, pad, dilation, groups
    if op == "conv2d":
        key = (op, backend, a0.shape, a1.shape, args[3].shape, args[4], args[5], args[6],
               args[7], a0.itemsize)
    else:
        key = (op, backend, a0.shape, a1.shape, args[2].shape, args[3], args[4], args[5],
               args[6], a0.itemsize)
    try:
        return _MEMO[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable argument (a list): planned, not kept
        return _algorithm(op, backend, args)
    algo = _algorithm(op, backend, args)
    if len(_MEMO) >= _MEMO_MAX:
        _MEMO.clear()
    _MEMO[key] = algo
    return algo


def _algorithm(op, backend, args):
    if op == "conv2d":  # x, w, b, out, stride, pad, dilation, groups
        x, w, out = args[0], args[1], args[3]
        return conv2d(backend, x.shape, w.shape, out.shape, args[4], args[5], args[6],
                      args[7], x.itemsize)
    if op == "conv2d_input":  # gy, w, gx, stride, pad, dilation, groups
        gy, w, gx = args[0], args[1], args[2]
        return conv2d_input(backend, gx.shape, w.shape, gy.shape, args[3], args[4], args[5],
                            args[6], gy.itemsize)
    # conv2d_weight: x, gy, gw, stride, pad, dilation, groups
    x, gy, gw = args[0], args[1], args[2]
    return conv2d_weight(backend, x.shape, gw.shape, gy.shape, args[3], args[4], args[5],
                         args[6], x.itemsize)


_PLANNED = frozenset({"conv2d", "conv2d_input", "conv2d_weight"})


def check(op, backend, algo):
    """ValueError unless ``algo`` is an algorithm of ``backend``'s ``op`` kernel."""
    names = ALGORITHMS[backend, op]
    if algo not in names:
        raise ValueError(f"{op}: algo must be one of {names} on the {backend} backend, "
                         f"got {algo!r}")


# --------------------------------------------------------------------------------------------
# tiles and work items (the kernels and fastconv._chunks read the same numbers)
# --------------------------------------------------------------------------------------------
def gemm_tile_rows(N, Ho, Wo, R, itemsize):
    """Output rows per im2col tile of Cython's conv2d GEMM: the (R, rows * Wo) column tile
    within ``TILE_BYTES`` (at least one row), and at least ``MIN_TILES`` tiles in all when
    the batch is small."""
    rows = max(1, min(TILE_BYTES // (R * Wo * itemsize), Ho))
    if N * ((Ho + rows - 1) // rows) < MIN_TILES:
        need = (MIN_TILES + N - 1) // N
        rows = max(1, min(rows, (Ho + need - 1) // need))
    return rows


def winograd_tile_rows(out_shape, C):
    """Tile rows per work item of Cython's Winograd: about ``WINO_TILES`` tiles, within
    ``WINO_WS_ELEMS`` of transforms, and at least ``MIN_FLAT_ITEMS`` items (of at least
    ``WINO_MIN_ITEM_TILES`` tiles) when the batch is small."""
    N, K, Ho, Wo = out_shape
    th, tw = (Ho + 1) // 2, (Wo + 1) // 2
    tr = max(1, min(th, (WINO_TILES + tw - 1) // tw, WINO_WS_ELEMS // (16 * (C + K) * tw)))
    if N * ((th + tr - 1) // tr) < MIN_FLAT_ITEMS:
        need = (MIN_FLAT_ITEMS + N - 1) // N
        tr = max(1, min(tr, max((th + need - 1) // need,
                                (WINO_MIN_ITEM_TILES + tw - 1) // tw)))
    return tr


def numba_gemm_rows(Ho, R, ld, itemsize):
    """Output rows per im2col tile of Numba's conv2d GEMM (``ld`` columns per row)."""
    return max(1, min(Ho, NUMBA_TILE_BYTES // (R * ld * itemsize)))


def grad_tiles(N, Ho, Wo, R, itemsize, min_tiles=GRAD_MIN_ITEMS):
    """(rows, imgs) of the gradients' GEMM tiles, both backends: at most ``TILE_BYTES`` of
    (R, P) columns, ``rows`` output rows of one image or (rows == Ho) ``imgs`` whole images;
    then made smaller until there are about ``min_tiles`` tiles (or one row per tile)."""
    r = max(1, min(TILE_BYTES // (R * Wo * itemsize), Ho))
    m = 1
    if r == Ho:
        m = max(1, min(TILE_BYTES // (R * Ho * Wo * itemsize), N))
        if (N + m - 1) // m < min_tiles:
            m = max(1, N // min_tiles)
    if m == 1 and N * ((Ho + r - 1) // r) < min_tiles:
        need = (min_tiles + N - 1) // N
        r = max(1, min(r, (Ho + need - 1) // need))
    return r, m


def input_channel_blocks(nimg, groups, Cg):
    """(channels per block, blocks) of conv2d_input's GEMM work items: more items, up to
    about ``GRAD_MIN_ITEMS``, without repeating any work."""
    ncb = max(1, min((GRAD_MIN_ITEMS + nimg * groups - 1) // (nimg * groups), Cg))
    cs = (Cg + ncb - 1) // ncb
    return cs, (Cg + cs - 1) // cs


def weight_slots(T, K, R, Kg, groups, itemsize):
    """(S, F, kb) of conv2d_weight's GEMM: ``S`` slots (a power of two, within the ``T``
    tiles and ``PARTIAL_BYTES`` of partials), then ``F`` filter blocks of ``kb`` filters,
    up to about ``GRAD_MIN_ITEMS`` work items."""
    S = 1
    while S * 2 <= min(T, GRAD_MIN_ITEMS) and (S * 2 - 1) * K * R * itemsize <= PARTIAL_BYTES:
        S *= 2
    F = max(1, min((GRAD_MIN_ITEMS + S * groups - 1) // (S * groups), Kg // MIN_FILTER_BLOCK))
    kb = (Kg + F - 1) // F
    return S, (Kg + kb - 1) // kb, kb


def weight_columns(Wo, kh, kw):
    """Output columns per block of the direct weight gradient: the whole row unless its
    accumulators would pass ``WEIGHT_ACC_ELEMS``; at least 1."""
    return max(1, min(Wo, WEIGHT_ACC_ELEMS // (kh * kw)))


def path(backend, op, args):
    """What the kernel of ``op`` on ``backend`` does with these shapes, as a hashable: the
    algorithm, with what sets its GEMMs' sizes where BLAS's rounding follows them (a GEMM
    with fewer rows or columns rounds differently). :mod:`fastconv._chunks` cuts a call
    only into pieces of the same path when it can (bitwise results). None for the NumPy
    reference, which has no choice to make."""
    algo = algorithm(op, backend, args)
    if algo is None:
        return None
    if backend == "numba":
        if op == "conv2d" and algo == DIRECT:
            return "flat" if tuple(args[4]) == (1, 1) else DIRECT
        return algo
    if op == "conv2d":
        x, w, out = args[0], args[1], args[3]
        return _cy_conv_path(algo, x.shape, w.shape, out.shape, args[7], x.itemsize)
    if op == "conv2d_input" and algo == FORWARD:
        gy, w, gx, stride, pad, dilation, groups = args
        wt, padt = forward_layer(w.shape, pad, dilation, groups)
        fwd = conv2d("cython", gy.shape, wt, gx.shape, (1, 1), padt, dilation, groups,
                     gy.itemsize)
        return FORWARD, _cy_conv_path(fwd, gy.shape, wt, gx.shape, groups, gy.itemsize)
    # conv2d_input's GEMMs have the group's channels x taps as rows
    return (algo, args[1].shape[1]) if algo == GEMM and op == "conv2d_input" else algo


def _cy_conv_path(algo, x_shape, w_shape, out_shape, groups, itemsize):
    if algo == WINOGRAD:
        return algo, winograd_tile_rows(out_shape, x_shape[1]), w_shape[0]
    if algo == DIRECT:
        return algo
    N, _, Ho, Wo = out_shape
    R = w_shape[1] * w_shape[2] * w_shape[3]
    return algo, w_shape[0] // groups, gemm_tile_rows(N, Ho, Wo, R, itemsize)


# --------------------------------------------------------------------------------------------
# cost
# --------------------------------------------------------------------------------------------
# multiply-adds (window taps for the pools) per second; below the slow end of what the 2-core
# dev machine measured on 2 threads (docs/guide/performance-notes.md), so pieces err on the
# short side
MAC_RATE = {
    "cython": {"conv2d": 25e9, "conv2d_input": 25e9, "conv2d_weight": 20e9,
               "locally_connected2d": 5e9, "max_pool2d": 0.4e9, "avg_pool2d": 0.4e9,
               "avg_pool2d_backward": 0.4e9, "max_pool2d_backward": math.inf},
    "numba": {"conv2d": 15e9, "conv2d_input": 15e9, "conv2d_weight": 10e9,
              "locally_connected2d": 3e9, "max_pool2d": 0.4e9, "avg_pool2d": 0.4e9,
              "avg_pool2d_backward": 0.2e9, "max_pool2d_backward": math.inf},
    "numpy": {"conv2d": 10e9, "conv2d_input": 10e9, "conv2d_weight": 4e9,
              "locally_connected2d": 2e9, "max_pool2d": 0.03e9, "avg_pool2d": 0.1e9,
              "avg_pool2d_backward": 0.15e9, "max_pool2d_backward": math.inf},
}
# im2col elements per second (the NumPy reference copies its windows; the compiled kernels'
# cost is in their MAC rate)
COL_RATE = {"cython": math.inf, "numba": 0.3e9, "numpy": 0.4e9}
# elements read or written per second
ELEM_RATE = {"cython": 1e9, "numba": 0.5e9, "numpy": 0.3e9}


# Each takes the kernel's arguments (only their shapes are read) and returns (macs, g, K,
# elems): the im2col elements are ``macs * g / K`` (g groups, K filters: one window copy per
# filter group), the elements read and written ``elems``. A few multiplications, because
# every kernel call pays for them.
def _conv2d_cost(a):  # x, w, b, out, stride, pad, dilation, groups
    w, out = a[1], a[3]
    K = w.shape[0]
    return out.size * (w.size // K), a[7], K, a[0].size + out.size


def _input_cost(a):  # gy, w, gx, stride, pad, dilation, groups
    gy, w = a[0], a[1]
    K = w.shape[0]
    return gy.size * (w.size // K), a[6], K, gy.size + a[2].size


def _weight_cost(a):  # x, gy, gw, stride, pad, dilation, groups
    gy, gw = a[1], a[2]
    K = gw.shape[0]
    return gy.size * (gw.size // K), a[6], K, a[0].size + gy.size


def _local_cost(a):  # x, w (Ho, Wo, K, C, kh, kw), b, out, stride, pad: a window per output
    w, out = a[1], a[3]
    return out.size * w.shape[3] * w.shape[4] * w.shape[5], 1, 1, a[0].size + out.size


def _max_pool_cost(a):  # x, out, idx, kernel, ...
    k = a[3]
    return a[1].size * k[0] * k[1], 0, 1, a[0].size + a[1].size


def _avg_pool_cost(a):  # x, out, kernel, ...
    k = a[2]
    return a[1].size * k[0] * k[1], 0, 1, a[0].size + a[1].size


def _avg_pool_backward_cost(a):  # gy, gx, kernel, ...
    k = a[2]
    return a[0].size * k[0] * k[1], 0, 1, a[0].size + a[1].size


def _max_pool_backward_cost(a):  # gy, idx, gx: gy and idx read, gx written
    return 0, 0, 1, 2 * a[0].size + a[2].size


# adaptive pools (issue 17): windows overlap by at most one position per axis, so their taps
# are about the input's elements (at most twice them per axis); and the elements read and
# written
def _adaptive_cost(a):  # x, out[, idx]
    n = a[0].size
    return n, 0, 1, n + a[1].size


def _adaptive_backward_cost(a):  # gy, gx: gx zeroed, then every window added onto it
    n = a[1].size
    return n, 0, 1, n + a[0].size


_COST = {"conv2d": _conv2d_cost, "conv2d_input": _input_cost, "conv2d_weight": _weight_cost,
         "locally_connected2d": _local_cost, "max_pool2d": _max_pool_cost,
         "avg_pool2d": _avg_pool_cost, "avg_pool2d_backward": _avg_pool_backward_cost,
         "max_pool2d_backward": _max_pool_backward_cost}
_COST["adaptive_avg_pool3d"] = _adaptive_cost  # adaptive pools (issue 17)
_COST["adaptive_max_pool3d"] = _adaptive_cost
_COST["adaptive_avg_pool3d_backward"] = _adaptive_backward_cost
_INV = {b: {op: (1 / MAC_RATE[b].get(op, math.inf), 1 / COL_RATE[b], 1 / ELEM_RATE[b])
            for op in _COST} for b in MAC_RATE}


def _register(costs, rates=None):
    """Add ops to the cost model: ``costs`` {op: cost function}, ``rates`` {backend: {op:
    MAC rate}} (an op without a rate is costed by the elements it moves only), and their
    inverse rates in ``_INV``."""
    _COST.update(costs)
    for b, r in (rates or {}).items():
        MAC_RATE[b].update(r)
    for b in MAC_RATE:
        for op in costs:
            _INV[b][op] = (1 / MAC_RATE[b].get(op, math.inf), 1 / COL_RATE[b],
                           1 / ELEM_RATE[b])


_CONV_OPS = frozenset({"conv2d", "conv2d_input", "conv2d_weight", "locally_connected2d"})


def macs(op, args):
    """Multiply-adds of the kernel call ``op(*args)`` (window taps for the pools; 0 for
    max_pool2d_backward, a scatter)."""
    return _COST[op](args)[0]


def seconds(op, backend, args) -> float:
    """Estimated seconds of the kernel call ``op(*args)`` on ``backend`` (the module
    docstring's cost model); 0 for an op it does not know."""
    cost = _COST.get(op)
    if cost is None:
        return 0.0
    m, g, K, e = cost(args)
    r = _INV[backend][op]
    return m * (r[0] + r[1] * g / K) + e * r[2]


def work(op, args):
    """(amount, flops): the work of the kernel call ``op(*args)`` that sets its thread count
    (:mod:`fastconv._threads`): FLOPs, ``2 x`` :func:`macs`, for the convolutions
    (``flops`` True); for the pools the window taps, and for the pool gradients the elements
    they spread and write."""
    if op in _CONV_OPS:
        return 2 * _COST[op](args)[0], True
    if op == "max_pool2d_backward":  # gy, idx, gx: gx zeroed, gy scattered
        return args[0].size + args[2].size, False
    if op == "avg_pool2d_backward":  # gy spread over its windows, gx written
        return _COST[op](args)[0] + args[1].size, False
    return _COST[op](args)[0], False


# ---- pool3d (issue 17) ----
# the 3-D pools' costs: window taps per output, and the elements read and written
def _max_pool3d_cost(a):  # x, out, idx, kernel, ...
    k = a[3]
    return a[1].size * k[0] * k[1] * k[2], 0, 1, a[0].size + a[1].size


def _avg_pool3d_cost(a):  # x, out, kernel, ...
    k = a[2]
    return a[1].size * k[0] * k[1] * k[2], 0, 1, a[0].size + a[1].size


def _avg_pool3d_backward_cost(a):  # gy, gx, kernel, ...
    k = a[2]
    return a[0].size * k[0] * k[1] * k[2], 0, 1, a[0].size + a[1].size


_register({"max_pool3d": _max_pool3d_cost, "avg_pool3d": _avg_pool3d_cost,
           "avg_pool3d_backward": _avg_pool3d_backward_cost},
          {b: {"max_pool3d": r["max_pool2d"], "avg_pool3d": r["avg_pool2d"],  # the 2-D
               "avg_pool3d_backward": r["avg_pool2d_backward"]}  # pools' rates
           for b, r in MAC_RATE.items()})


# ---- fold (issue 17) ----
# unfold/fold and max_unpool move memory: their cost is the elements they read and write,
# and so is their work for the thread count (:func:`work` reads the first entry: elements,
# not FLOPs, like the pools' taps); they have no MAC rate (none in ``MAC_RATE``: 0 in
# ``_INV``) and no im2col columns (g = 0).
def _fold_cost(a):  # unfold (x, out, ...), fold (cols, out, ...)
    e = a[0].size + a[1].size
    return e, 0, 1, e


def _unpool_cost(a):  # max_unpool (x, idx, out), max_unpool_backward (gy, idx, gx)
    e = a[0].size + a[1].size + a[2].size
    return e, 0, 1, e


_register({"unfold": _fold_cost, "fold": _fold_cost, "max_unpool": _unpool_cost,
           "max_unpool_backward": _unpool_cost})


# --------------------------------------------------------------------------------------------
# ---- conv3d (issue 17) ----
# --------------------------------------------------------------------------------------------
# conv3d (fastconv._cy_conv3d, fastconv._numba.conv3d). Cython's forward kernel, the first
# rule that holds:
# * "direct" (fc_taps_out on the input framed by its padding; strided layers a plain row loop)
#   when R = C/groups * kd * kh * kw < CONV3D_DIRECT_MAX_R, Kg < GEMM_MIN_KG, or a size
#   passes BLAS's ints;
# * "direct" at stride 1 with R <= DIRECT_MAX_R: the direct kernel took 0.5x the time of vol2col +
#   GEMM on the bench shape 2x16x16x64x64 -> 32, 3x3x3 (as conv2d's direct kernel does);
# * "gemm" otherwise (vol2col tiles of at most TILE_BYTES + GEMM; at stride 1 along W the
#   kw taps share one column matrix).
# Its input gradient runs "forward" (stride 1 and pad <= dilation * (kernel - 1): the
# forward conv3d of grad_output with flipped weights) when that forward runs "direct" or
# the layer is small, else "gemm" (col2vol); its weight gradient "direct" (fc3_wgrad: float32,
# stride 1, two slots of 16-lane partials within PARTIAL_BYTES, work items of at least
# CONV3D_WGRAD_MIN_POSITIONS positions and of one per CONV3D_WGRAD_PARTIAL_PER_POSITION
# bytes of a group's partials) else "gemm". Numba: "gemm" for
# R >= NUMBA_GEMM_MIN_R and Kg >= GEMM_MIN_KG, else "direct"; its gradients "direct".
CONV3D_DIRECT_MAX_R = 64
# flat positions x filters per work item of Cython's direct conv3d (rows of a depth plane)
CONV3D_FLAT_ELEMS = 1 << 14
# Cython's direct conv3d_weight (stride 1, float32; fc_conv3d.h's fc3_wgrad): the bytes of
# one work item's input window + grad_output rows, and the lanes of each weight's partials
CONV3D_WGRAD_BYTES = 1 << 19
CONV3D_WGRAD_LANES = 16
# ... and the fewest positions (rows x Wp) per work item it takes: shorter lines (deep layers
# on small planes) leave too few multiply-adds per register tile; GEMM is faster there
CONV3D_WGRAD_MIN_POSITIONS = 256
# ... and at least one position per this many bytes of a slot's partials: each work item
# reads and writes its slot's partials of one group (16 lanes per weight) once, and
# partials past the L2 cache need long lines to pay for that. Measured on AMD EPYC (Zen 4),
# 1 and 2 threads: direct over GEMM 1.1-1.5x faster on the resnet3x3 layer (2.25 MiB of
# partials, 812 positions an item) and a 5x5 layer on 100x100 (1.56 MiB, 1,768),
# 1.2-1.8x slower on the transposed convolution's stacked 2x2 layer 8x64x28x28 -> 128
# (2 MiB, 450)
CONV3D_WGRAD_PARTIAL_PER_POSITION = 4096

ALGORITHMS.update({
    ("cython", "conv3d"): (DIRECT, GEMM),
    ("cython", "conv3d_input"): (FORWARD, GEMM),
    ("cython", "conv3d_weight"): (DIRECT, GEMM),
    ("numba", "conv3d"): (DIRECT, GEMM),
    ("numba", "conv3d_input"): (DIRECT,),
    ("numba", "conv3d_weight"): (DIRECT,),
})
_PLANNED3 = frozenset({"conv3d", "conv3d_input", "conv3d_weight"})


def conv3d(backend, x_shape, w_shape, out_shape, stride, pad, dilation, groups,
           itemsize=4) -> str:
    """The algorithm of ``backend``'s conv3d kernel for these shapes: "direct" or "gemm"
    (the rule above).

    >>> conv3d("cython", (2, 16, 16, 64, 64), (32, 16, 3, 3, 3), (2, 32, 16, 64, 64),
    ...        (1, 1, 1), (1, 1, 1), (1, 1, 1), 1)
    'direct'
    >>> conv3d("cython", (1, 256, 4, 8, 8), (32, 256, 3, 3, 3), (1, 32, 2, 6, 6),
    ...        (1, 1, 1), (0, 0, 0), (1, 1, 1), 1)
    'gemm'
    >>> conv3d("cython", (8, 1, 16, 32, 32), (8, 1, 3, 3, 3), (8, 8, 14, 30, 30),
    ...        (1, 1, 1), (0, 0, 0), (1, 1, 1), 1)
    'direct'
    """
    K, Cg = w_shape[:2]
    R, Kg = Cg * w_shape[2] * w_shape[3] * w_shape[4], K // groups
    P = out_shape[2] * out_shape[3] * out_shape[4]
    if backend == "numba":
        return GEMM if R >= NUMBA_GEMM_MIN_R and Kg >= GEMM_MIN_KG else DIRECT
    if R < CONV3D_DIRECT_MAX_R or Kg < GEMM_MIN_KG or max(R, P, K * R) > INT_MAX:
        return DIRECT
    if all(s == 1 for s in stride) and R <= DIRECT_MAX_R:
        return DIRECT  # fc_taps_out on the framed input: 0.5x vol2col + GEMM's time (bench shape)
    return GEMM


def transposes_to_forward3(stride, pad, dilation, w_shape) -> bool:
    """Whether Cython's conv3d_input runs as a forward conv3d: stride 1 and
    ``0 <= pad <= dilation * (kernel - 1)`` on all three axes."""
    return all(s == 1 and 0 <= p <= d * (k - 1)
               for s, p, d, k in zip(stride, pad, dilation, w_shape[2:]))


def _algorithm3(op, backend, args):
    if op == "conv3d":  # x, w, b, out, stride, pad, dilation, groups
        x, w, out = args[0], args[1], args[3]
        return conv3d(backend, x.shape, w.shape, out.shape, args[4], args[5], args[6],
                      args[7], x.itemsize)
    if backend == "numba":
        return DIRECT
    if op == "conv3d_input":  # gy, w, gx, stride, pad, dilation, groups
        w, groups = args[1], args[6]
        R = w.shape[1] * w.shape[2] * w.shape[3] * w.shape[4]
        if not transposes_to_forward3(args[3], args[4], args[5], w.shape):
            return GEMM
        gy, gx = args[0], args[2]
        wt = (groups * w.shape[1], w.shape[0] // groups) + tuple(w.shape[2:])
        padt = tuple(d * (k - 1) - p for d, k, p in zip(args[5], w.shape[2:], args[4]))
        if (conv3d(backend, gy.shape, wt, gx.shape, (1, 1, 1), padt, args[5], groups)
                == DIRECT or R < GEMM_MIN_R or w.shape[0] // groups < GEMM_MIN_KG):
            return FORWARD  # the forward's direct kernel: 0.75x col2vol's time (bench shape)
        return GEMM  # col2vol + GEMM: 0.7x the forward's GEMM
    gy, gw = args[1], args[2]  # conv3d_weight: x, gy, gw, stride, pad, dilation, groups
    if (conv3d_weight_takes_direct(args[3], gw.itemsize)
            and 2 * gw.size * CONV3D_WGRAD_LANES * gw.itemsize <= PARTIAL_BYTES):
        groups, dil = args[6], args[5]
        Wp = gy.shape[4] + dil[2] * (gw.shape[4] - 1)
        rows, _ = conv3d_weight_direct_split(gy.shape[0], gy.shape[2], gy.shape[3], Wp,
                                             gw.shape[1] * gw.shape[2], gy.shape[1] // groups,
                                             dil[1] * (gw.shape[3] - 1), gw.size)
        partials = gw.size // groups * CONV3D_WGRAD_LANES * gw.itemsize  # one group's
        if rows * Wp >= max(CONV3D_WGRAD_MIN_POSITIONS,
                            partials // CONV3D_WGRAD_PARTIAL_PER_POSITION):
            return DIRECT  # fc3_wgrad: 0.5x vol2col + GEMM's time (bench shape, 1 thread)
    return GEMM


def conv2d_weight_as_3d(backend, args) -> bool:
    """Whether Cython's conv2d_weight (kernel arguments ``args``: x, gy, gw, stride, pad,
    dilation, groups) runs as conv3d_weight on a depth of 1: float32 at stride 1, where
    :func:`algorithm` gives conv3d_weight its direct kernel (fc3_wgrad) for those shapes.
    Measured on AMD EPYC (Zen 5), 2 threads: the resnet3x3 layer's weight gradient (8x64x56x56,
    3x3) 9.9 -> 4.8 ms, one 5x5 image (2x32x100x100) 11.2 -> 4.9 ms, the study's first layer
    (32x1x16x16 -> 8) 113 -> 47 us; where the 3-D plan picks its GEMM the 2-D kernels stay
    (the two GEMM paths measured within 7% of each other)."""
    x, gy, gw, stride, pad, dilation, groups = args
    if backend != "cython" or not conv3d_weight_takes_direct(stride, x.itemsize):
        return False
    if x.shape[0] == 0 or gy.shape[2] * gy.shape[3] == 0:
        return False
    shapes = _Shaped(x.shape[:2] + (1,) + x.shape[2:], x.itemsize), \
        _Shaped(gy.shape[:2] + (1,) + gy.shape[2:], gy.itemsize), \
        _Shaped(gw.shape[:2] + (1,) + gw.shape[2:], gw.itemsize)
    return algorithm("conv3d_weight", backend,
                     shapes + ((1,) + tuple(stride), (0,) + tuple(pad),
                               (1,) + tuple(dilation), groups)) == DIRECT


class _Shaped:
    """What the plan reads of an array (its shape, size and itemsize), for asking about
    shapes that no array has yet."""

    __slots__ = ("shape", "size", "itemsize")

    def __init__(self, shape, itemsize):
        self.shape = tuple(shape)
        self.size = math.prod(self.shape)
        self.itemsize = itemsize


def conv3d_weight_takes_direct(stride, itemsize) -> bool:
    """Whether Cython's direct conv3d_weight (float32 only) can run: stride 1, float32."""
    return itemsize == 4 and all(s == 1 for s in stride)


def conv3d_weight_direct_split(N, Do, Ho, Wp, planes, Kg, hextra, KR):
    """(output rows per work item, slots) of Cython's direct conv3d_weight. A work item is
    one block of output rows of a depth plane; its input window (``planes`` planes of
    ``rows + hextra`` rows of ``Wp``) and grad_output rows (``Kg`` lines) stay within
    ``CONV3D_WGRAD_BYTES``; the row blocks of a plane are balanced. Slots: a power of two
    up to ``GRAD_MIN_ITEMS`` (at most the number of items), their 16-lane partials
    (``KR * 16`` floats each) within ``PARTIAL_BYTES``. Shapes only, never the thread
    count: the results do not depend on it."""
    per_row = (planes + Kg) * Wp * 4
    rows = max(1, min(Ho, (CONV3D_WGRAD_BYTES - planes * hextra * Wp * 4) // per_row))
    nb = -(-Ho // rows)
    rows = -(-Ho // nb)
    T = N * Do * nb
    S = 1
    while (S * 2 <= min(T, GRAD_MIN_ITEMS)
           and S * 2 * KR * CONV3D_WGRAD_LANES * 4 <= PARTIAL_BYTES):
        S *= 2
    return rows, S


def conv3d_tile_rows(rows_total, Wo, R, itemsize):
    """Output rows (depth x height, ``Wo`` columns each) per vol2col tile of the Cython
    conv3d kernels: the (R, rows * Wo) tile within ``TILE_BYTES``, at least one row. Never
    depends on the batch size (a batch cut of fastconv._chunks keeps every GEMM's size)."""
    return max(1, min(rows_total, TILE_BYTES // (R * Wo * itemsize)))


def conv3d_direct_rows(Ho, Wp, Kg):
    """Output rows of one depth plane per work item of Cython's direct conv3d: ``Kg`` flat
    lines of outputs within ``CONV3D_FLAT_ELEMS``, at least one row."""
    return max(1, min(Ho, CONV3D_FLAT_ELEMS // (Kg * Wp)))


def conv3d_input_blocks(N, groups, Cg):
    """(channels per block, blocks) of Cython's conv3d_input GEMM work items (image, group,
    channel block): up to about ``GRAD_MIN_ITEMS`` items."""
    return input_channel_blocks(N, groups, Cg)


def conv3d_weight_slots(T, K, R, itemsize):
    """Slots of Cython's conv3d_weight: a power of two, at most ``min(T, GRAD_MIN_ITEMS)``,
    their partials within ``PARTIAL_BYTES`` (at least one)."""
    S = 1
    while S * 2 <= min(T, GRAD_MIN_ITEMS) and S * 2 * K * R * itemsize <= PARTIAL_BYTES:
        S *= 2
    return S


_register({"conv3d": _conv2d_cost, "conv3d_input": _input_cost, "conv3d_weight": _weight_cost},
          {b: dict(zip(("conv3d", "conv3d_input", "conv3d_weight"), r))
           for b, r in {"cython": (20e9, 20e9, 15e9), "numba": (2e9, 1e9, 1e9),
                        "numpy": (5e9, 3e9, 3e9)}.items()})
_CONV_OPS = _CONV_OPS | _PLANNED3



# --------------------------------------------------------------------------------------------
# conv1d / conv2d by FFT (issue 19)
# --------------------------------------------------------------------------------------------
FFT = "fft"
# the FFT layer path is never planned for kernels of fewer taps than this (kh * kw): small
# kernels keep the decisions above (tests/data/plan_main.json)
FFT_MIN_TAPS = 49


def conv2d_fft(backend, x_shape, w_shape, out_shape, stride, pad, dilation, groups,
               itemsize=4) -> bool:
    """Whether ``backend="auto"``'s conv1d/conv2d (both as (N, C, H, W)) takes the FFT path
    (:func:`fastconv._fft.conv_layer`: each input plane's block transforms shared by all
    filters) instead of the kernel :func:`conv2d` plans: stride 1, a kernel of at least
    ``FFT_MIN_TAPS`` taps, zero padding at most the (dilated) kernel's size - 1, and the
    FFT's modelled time below the direct kernel's (MACs at ``MAC_RATE``).

    >>> conv2d_fft("cython", (1, 1, 1024, 1024), (8, 1, 31, 31), (1, 8, 1024, 1024),
    ...            (1, 1), (15, 15), (1, 1), 1)
    True
    >>> conv2d_fft("cython", (8, 64, 56, 56), (64, 64, 3, 3), (8, 64, 56, 56),
    ...            (1, 1), (1, 1), (1, 1), 1)
    False
    """
    N, C, H, W = x_shape
    K, Cg, kh, kw = w_shape
    if tuple(stride) != (1, 1) or kh * kw < FFT_MIN_TAPS or N == 0 or K == 0:
        return False
    if out_shape[2] <= 0 or out_shape[3] <= 0:
        return False
    keh = (kh - 1) * dilation[0] + 1
    kew = (kw - 1) * dilation[1] + 1
    ph, pw = pad
    if not (0 <= ph <= keh - 1 and 0 <= pw <= kew - 1):
        return False
    if out_shape[2] - 1 + keh - ph > H + keh - 1 or out_shape[3] - 1 + kew - pw > W + kew - 1:
        return False
    if itemsize not in (4, 8):
        return False
    from . import _fft
    t_fft = _fft.conv_layer_seconds(x_shape, (K, Cg, keh, kew), out_shape, groups, itemsize)
    macs = N * K * out_shape[2] * out_shape[3] * Cg * kh * kw
    t_direct = macs / MAC_RATE.get(backend, MAC_RATE["cython"])["conv2d"]
    return t_fft < t_direct
# ---- ndimage (issue 18) ----
def _nd_correlate1d_cost(a):  # x, w, idx, cval, out: taps per output, elements moved
    return a[4].size * a[1].shape[0], 0, 1, a[0].size + a[4].size


def _nd_uniform1d_cost(a):  # x, size, idx, cval, out: a running sum, 2 terms per output
    return 2 * a[4].size, 0, 1, a[0].size + a[4].size


def _nd_sepcorr_cost(a):  # x, w0, idx0, w1, idx1, cval, out: both passes' taps; in, out
    return a[6].size * (a[1].shape[0] + a[3].shape[0]), 0, 1, 2 * a[6].size


def _nd_sepbox_cost(a):  # x, size0, idx0, size1, idx1, cval, out: two running sums
    return 4 * a[6].size, 0, 1, 2 * a[6].size


def _nd_correlate_cost(a):  # xp, base, offs, w, out: taps per output, elements moved
    return a[4].size * a[3].shape[0], 0, 1, a[0].size + a[4].size


# taps per second, about half what a loaded 2-core AMD EPYC (Zen 2) measured on 2 threads
# (2048^2 float32: a 9x9 correlate, 61-tap lines along either axis, a 41 box), so a long
# call's pieces (fastconv._chunks) err on the short side; except Numba's lines, 6.5e9 along
# the first axis and 0.36e9 along the last: its rate between the two keeps the pieces of
# the fast passes from being too many, and those of the slow ones within 3x the target.
# The fused pairs (nd_sepcorr, nd_sepbox) count both passes' taps at their passes' rates
# (Numba's: its pair's two passes, one along each axis)
_register({"nd_correlate1d": _nd_correlate1d_cost, "nd_uniform1d": _nd_uniform1d_cost,
           "nd_correlate": _nd_correlate_cost, "nd_sepcorr": _nd_sepcorr_cost,
           "nd_sepbox": _nd_sepbox_cost},
          {"cython": {"nd_correlate1d": 3e9, "nd_uniform1d": 0.5e9, "nd_correlate": 3e9,
                      "nd_sepcorr": 3e9, "nd_sepbox": 0.5e9},
           "numba": {"nd_correlate1d": 1e9, "nd_uniform1d": 0.1e9, "nd_correlate": 0.5e9,
                     "nd_sepcorr": 0.35e9, "nd_sepbox": 0.1e9},
           "numpy": {"nd_correlate1d": 0.1e9, "nd_uniform1d": 0.1e9, "nd_correlate": 0.05e9,
                     "nd_sepcorr": 0.1e9, "nd_sepbox": 0.1e9}})
