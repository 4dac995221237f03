"""Bounded work memory for long rows: conv2d run tile by tile (issue 15).

A conv2d kernel's work memory grows with the length of one output row (Cython's direct
kernel frames the stride phases of whole rows; every im2col holds at least one output row of
columns; Numba's stride-1 kernel pads the whole input), so a long 1-D signal or a long 2-D
row could ask for gigabytes. Each backend estimates the work memory its call would take
today; past :data:`LIMIT` bytes it calls :func:`conv2d_tiled`, which runs the same kernel
on tiles: whole images when one image fits in :data:`TILE_BYTES`, else one image in blocks
of output columns, each tile reading its input columns plus the halo its windows need.

The algorithm is the plan's (:mod:`fastconv._plan`), chosen once for the whole call from its
shapes: the kernel passed to :func:`conv2d_tiled` runs it on every tile (a tile's own shapes
could plan another). Each output element is still computed by the same kernel from the same
inputs, so the
direct kernels (whose sums run in a fixed order of taps) give bitwise the same result as
the untiled call; an im2col + GEMM tile's result may differ in the last bit where the
BLAS blocks the product differently. Tiles depend on the shapes only, never on the thread
count. Calls below the limit run exactly as before.

:func:`tiles` also cuts the compiled gradients' im2col + GEMM calls on long rows
(:mod:`fastconv.grad`) and the reference's gradient columns (:mod:`fastconv.reference`).
"""

from __future__ import annotations

import numpy as np

# A backend tiles a call whose work memory (per thread, or in all when it is shared) would
# exceed LIMIT bytes; a tile then costs at most about TILE_BYTES (its input and output copies,
# and its per-thread workspace), and has at least MIN_COLS output columns.
LIMIT = 16 << 20
TILE_BYTES = 8 << 20
MIN_COLS = 64


def tiles(N, Wo, image_col_bytes, limit=None):
    """The tiles ``(n0, n1, ow0, ow1)`` of an (N, ., ., Wo) output: ranges of whole images
    when one image's ``Wo`` columns cost at most ``limit`` (at ``image_col_bytes`` bytes per
    output column of one image), else one image per tile in blocks of equal width (the last
    one shorter) of about ``limit / image_col_bytes`` columns, at least :data:`MIN_COLS`.
    ``limit`` defaults to :data:`TILE_BYTES`."""
    limit = TILE_BYTES if limit is None else limit
    image = max(1, image_col_bytes) * Wo
    if image <= limit:
        per = max(1, limit // image)
        return [(n0, min(N, n0 + per), 0, Wo) for n0 in range(0, N, per)]
    width = max(MIN_COLS, limit // max(1, image_col_bytes))
    return [(n, n + 1, ow0, min(Wo, ow0 + width)) for n in range(N)
            for ow0 in range(0, Wo, width)]


def conv2d_tiled(kernel, x, w, b, out, stride, pad, dilation, groups, nthreads,
                 image_col_bytes):
    """Fill ``out`` with ``kernel`` (the conv2d kernel contract of fastconv.reference, with
    the call's algorithm already bound) run on the :func:`tiles` of the output. A tile of whole images passes views of ``x`` and
    ``out``; a block of columns copies the input columns its windows read (the left padding
    that falls in it becomes the tile's own) and writes a contiguous output tile, copied
    into ``out``. Returns False, having done nothing, when a block of columns would lie
    entirely in the right padding (no input column to read): run untiled then."""
    N, C, H, W = x.shape
    K, Cg, kh, kw = w.shape
    Ho, Wo = out.shape[2:]
    sw, pl, dw = stride[1], pad[1], dilation[1]
    todo = tiles(N, Wo, image_col_bytes)
    if any(ow0 * sw - pl >= W for _, _, ow0, _ in todo):
        return False
    for n0, n1, ow0, ow1 in todo:
        if ow0 == 0 and ow1 == Wo:
            kernel(x[n0:n1], w, b, out[n0:n1], stride, pad, dilation, groups, nthreads)
            continue
        first = ow0 * sw - pl  # the input column of the block's first window
        a, e = max(0, first), min(W, (ow1 - 1) * sw - pl + dw * (kw - 1) + 1)
        xt = np.ascontiguousarray(x[n0:n1, :, :, a:max(e, a + 1)])
        ot = np.empty((n1 - n0, K, Ho, ow1 - ow0), out.dtype)
        kernel(xt, w, b, ot, stride, (pad[0], a - first), dilation, groups, nthreads)
        out[n0:n1, :, :, ow0:ow1] = ot
    return True
