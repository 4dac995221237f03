"""The sub-pixel path of the transposed convolution (issue 17): one forward convolution.

Along an axis of stride ``s``, kernel ``k`` and padding ``p`` (dilation 1), the output
positions ``o = s * m + a`` of one phase ``a`` (``0 <= a < s``) are reached only by the taps
``j = r + s * u`` with ``r = (a + p) % s``, each from input ``m + q - u``, ``q = (a + p) //
s``: a stride-1 correlation of ``x`` with the sub-kernel ``w[r::s]`` reversed. When ``s``
divides ``k`` every phase has ``k / s`` taps, so the ``s_h * s_w`` phases' sub-kernels
stack, filter after filter, into the weight of ONE forward convolution of ``x`` (stride 1,
the padding below). The direct kernel (``_cy_conv.transpose_phased``, issue 20) runs each
phase over exactly its own outputs (none of the forward layer's edge positions that no
phase uses) and stores them straight into their places of the output (rows and columns
``s`` apart): no forward output, no strided copy, no col2im scatter. On small planes
with whole blocks of 64 float32 (32 float64) filters a phase, its filters-in-lanes kernel
reads ``x`` in place and gives each class of outputs only the taps inside ``x``: the
multiply-adds are exactly the transposed convolution's own (on 64x128x7x7 -> 64, k4 s2
p1, 14% fewer than with the padding's). Elsewhere it frames the rows it reads with zeros
and multiplies those too, which adds nothing (both kernels give the same bits) unless a
weight is inf or NaN: a zero times it would put a NaN where the transposed convolution's
sum has none, so a weight with one (one scan per call, before any work) takes the
input-gradient kernels. Results equal the input-gradient path's to rounding (the sums run
in another order).

:func:`plan` says when (shapes and arguments only, never the data or the thread count):
the Cython backend (``auto``), 1-D and 2-D, dilation 1, a stride above 1 on some axis that
divides the kernel on every axis (and is at most ``MAX_PHASES``), and a padding small
enough that the forward layer's is not negative (``p // s <= k / s - 1``). Measured on the
issue's targets (1 thread, CPU time, shared machine): kernel 4, stride 2, padding 1 on
8x64x28x28 -> 32 took 0.53 of the input-gradient path's time; on 64x128x7x7 -> 64 about
0.93.

Memory: the stacked weight packed for the kernel (the weight's size), built straight from
the weight in one pass, plus its plain rows when some filters run unpacked; per thread a
zero-framed block of input rows (at most about ``_plan.FLAT_IN_ELEMS`` elements), or for
the filters-in-lanes kernel a position-major stage of the work item's output rows (its
filters x rows x columns, at most the output of one image) and two lists of its
positions; images go in blocks of about ``BLOCK_BYTES`` of output.

The weight gradient (:func:`run_weight`, for :func:`fastconv.grad.conv_transpose1d_weight`
and ``conv_transpose2d_weight`` under the same plan) runs the decomposition in reverse: the
stacked weight's gradient is the stride-1 ``conv2d_weight`` of ``x`` and ``grad_output``'s
phases put in the forward output's places, then unstacked. Its GEMM multiplies by an im2col
of ``x`` (``C * k / s`` columns per position at stride 1) instead of one of
``grad_output`` at stride ``s`` (``K * k`` columns, a strided gather). Measured on the
issue's backward target (8x64x28x28 -> 32, k4 s2 p1; 1 thread, CPU time, shared machine):
5.2 ms instead of 6.1 ms, the backward (input + weight) 7.4 ms instead of 8.2 ms. Where the
plan runs that layer as im2col + GEMM, ``_cy_grad.conv2d_weight_phased`` builds each GEMM
tile's block of the phases itself, beside its im2col, in the work item's buffer: no
stacked copy of ``grad_output`` (a single-threaded NumPy zero-fill and four strided copies,
0.5 ms of the target's 3.9 ms on 2 threads); its work items hold their tile of the phases
beside the im2col tile (conv2d_weight's GEMM reads a one-image tile of ``gy`` in place).
"""

from __future__ import annotations

import numpy as np

BLOCK_BYTES = 32 << 20
# at most this many phases (the stride) per axis: the compiled kernels' phase tables
MAX_PHASES = 32


def _axis(L, Lo, k, s, p):
    """(taps, pad, [(r, offset, count) per phase]) along one axis, or None."""
    if k % s:
        return None
    ku = k // s
    qmin = p // s
    left = ku - 1 - qmin  # the forward layer's left padding
    if left < 0:
        return None
    phases, need = [], 0
    for a in range(s):
        q = (a + p) // s
        count = max(0, -(-(Lo - a) // s))  # outputs o = s * m + a in [0, Lo)
        phases.append(((a + p) % s, q - qmin, count))
        need = max(need, q - qmin + count)
    right = max(0, need - L - left + ku - 1)
    pad = max(left, right)  # symmetric: the forward layer's padding
    shift = pad - left
    return ku, pad, [(r, off + shift, c) for r, off, c in phases]


def plan(backend, x_shape, w_shape, out_shape, stride, padding, dilation):
    """The per-axis plans of the sub-pixel path (2-D shapes), or None to run the
    input-gradient kernels."""
    if backend != "cython" or x_shape[0] == 0:
        return None
    if any(d != 1 for d in dilation) or all(s == 1 for s in stride):
        return None
    if any(s > MAX_PHASES for s in stride):  # the kernels' phase tables
        return None
    axes = []
    for ax in range(2):
        a = _axis(x_shape[2 + ax], out_shape[2 + ax], w_shape[2 + ax], stride[ax],
                  padding[ax])
        if a is None:
            return None
        axes.append(a)
    return axes


def phase_taps(kh, kw, axes):
    """The taps of each phase's forward sub-kernel in the transposed weight's kernel (kh,
    kw): an intp array (phases, ku_h * ku_w), row phase major. Phase (rh, rw)'s tap (u, v)
    is ``w[..., rh + sh * (ku_h - 1 - u), rw + sw * (ku_w - 1 - v)]`` (the sub-kernel
    ``w[rh::sh, rw::sw]`` reversed), flattened as ``i * kw + j``. The stacked weight, the
    forward layer's (groups * phases * Kg, Cg, ku_h, ku_w) with rows in (group, phase,
    filter) order, is ``ws[(g, phase, k), c, u, v] = w[g * Cg + c, k, taps[phase, u *
    ku_w + v]]``: ``_cy_conv.transpose_phased`` builds it from these, straight into its
    kernels' packed layouts."""
    (kuh, _, ph), (kuw, _, pw) = axes
    sh, sw = len(ph), len(pw)
    return np.array([[(rh + sh * (kuh - 1 - u)) * kw + rw + sw * (kuw - 1 - v)
                      for u in range(kuh) for v in range(kuw)]
                     for rh, _, _ in ph for rw, _, _ in pw], dtype=np.intp)


def run(x, w, bias, out, groups, axes, backend):
    """Fill ``out`` (N, K, Ho, Wo), C-contiguous, with the transposed convolution of
    ``x`` (N, C, H, W) and ``w`` (C, K // groups, kh, kw), plus ``bias`` (K,) or None.

    The Cython kernel ``_cy_conv.transpose_phased`` (issue 20) computes each phase over
    exactly its own outputs and stores them in their places of ``out`` (rows and columns
    ``s`` apart): no forward output with the phases' unused edges, no copy out of it.
    Images go in blocks of about ``BLOCK_BYTES`` of output (a Ctrl-C check between
    blocks); the thread count is the dispatcher's rule for the FLOPs (results do not
    depend on it). Returns ``out``; or None, before any work, when ``w`` holds an inf or a
    NaN (the framed kernel would multiply the padding's zeros by it): the caller then runs
    the input-gradient kernels."""
    from . import _cy_conv, _threads

    if not _cy_conv.all_finite(w):
        return None
    N, K, Ho, Wo = out.shape
    Kg = K // groups
    (kuh, padh, ph), (kuw, padw, pw) = axes
    nph = len(ph) * len(pw)
    taps = phase_taps(w.shape[2], w.shape[3], axes)
    if bias is None:
        bs = np.zeros(groups * nph * Kg, w.dtype)
    else:
        bs = np.ascontiguousarray(np.broadcast_to(bias.reshape(groups, 1, Kg),
                                                  (groups, nph, Kg))).reshape(-1)
    phh = [(off, count) for _, off, count in ph]
    phw = [(off, count) for _, off, count in pw]
    per_image = max(1, K * Ho * Wo * out.itemsize)
    nb = max(1, min(N, BLOCK_BYTES // per_image))
    flops_per_image = 2 * Ho * Wo * x.shape[1] * kuh * kuw * Kg  # each output: Cg*ku taps
    dst = out if out.flags.c_contiguous else np.empty(out.shape, out.dtype)

    def block(n0, n1):
        nthreads = _threads.threads_for(flops_per_image * (n1 - n0),
                                        _threads.GRAIN_FLOPS)
        _cy_conv.transpose_phased(x[n0:n1], w, taps, kuh, kuw, bs, dst[n0:n1], padh, padw,
                                  phh, phw, groups, nthreads)

    for n0 in range(0, N, nb):
        n1 = min(N, n0 + nb)
        if _threads.needs_fresh_thread():  # fork safety, as fastconv._dispatch's calls
            _threads.call_in_fork_safe_thread(lambda: block(n0, n1))
        else:
            block(n0, n1)
    if dst is not out:
        out[...] = dst
    return out


def run_weight(x, gy, w_shape, groups, axes, backend):
    """The weight gradient (C, K // groups, kh, kw) of the transposed convolution of ``x``
    (N, C, H, W), C-contiguous, given ``gy`` (N, K, Ho, Wo), C-contiguous, of x's dtype: the
    sub-pixel decomposition in reverse. ``gy``'s phases are put in their places in the
    forward layer's output (zero where no output is), and the stacked weight's gradient is
    the stride-1 weight gradient of ``x`` and that, by the plan's kernel for that layer:
    im2col + GEMM (half the columns of an im2col of ``gy`` at stride ``s``, and no strided
    gather), fused with the phases' placement (:func:`_weight_fused`), or, where ``_plan``
    gives float32 the direct weight-gradient kernel or the layer's rows are long,
    :func:`fastconv.grad.conv2d_weight` on a stacked copy (:func:`_weight_stacked`). Each
    phase's block is then put back in the taps it came from (the inverse of the stacking
    :func:`phase_taps` describes). Image blocks and their order follow the shapes only: the
    result does not depend on the thread count."""
    C, Kg, kh, kw = w_shape
    Cg = C // groups
    (kuh, padh, ph), (kuw, padw, pw) = axes
    sh, sw = len(ph), len(pw)
    nph = sh * sw
    Hy = x.shape[2] + 2 * padh - kuh + 1
    Wy = x.shape[3] + 2 * padw - kuw + 1
    ws_shape = (groups * nph * Kg, Cg, kuh, kuw)
    nb = _fused_images(x, ws_shape, Hy, Wy, groups, (padh, padw))
    if nb:
        gws = _weight_fused(x, gy, ws_shape, Hy * Wy, groups, (padh, padw), ph, pw, nb)
    else:
        gws = _weight_stacked(x, gy, ws_shape, Hy, Wy, groups, (padh, padw), ph, pw, backend)
    # gws[(g, phase, k), c, u, v] is w[g * Cg + c, k, rh + sh * (ku_h - 1 - u), ...]
    g6 = gws.reshape(groups, nph, Kg, Cg, kuh, kuw)
    gw = np.empty((groups, Cg, Kg, kh, kw), gws.dtype)
    i = 0
    for rh, _, _ in ph:
        for rw, _, _ in pw:
            gw[:, :, :, rh::sh, rw::sw] = g6[:, i].transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
            i += 1
    return gw.reshape(w_shape)


def _fused_images(x, ws_shape, Hy, Wy, groups, pad):
    """Images per call of the fused kernel (:func:`_weight_fused`), or 0 for the stacked
    copy (:func:`_weight_stacked`): fused where the plan runs the stacked layer's weight
    gradient as im2col + GEMM (not the direct kernel, not in row tiles), in blocks of images
    estimated at about ``fastconv._chunks.PIECE_SECONDS`` each when the whole call is past
    ``_chunks.SPLIT_SECONDS`` (a Ctrl-C check between blocks); an image estimated past
    that alone takes the stacked copy, whose call the dispatcher cuts further. Shapes
    only."""
    from . import _chunks, _plan
    from .grad import _long_gemm_row

    N = x.shape[0]
    it = x.itemsize

    def args(n):
        return (_plan._Shaped((n,) + x.shape[1:], it),
                _plan._Shaped((n, ws_shape[0], Hy, Wy), it), _plan._Shaped(ws_shape, it),
                (1, 1), tuple(pad), (1, 1), groups)

    a = args(N)
    if (_plan.algorithm("conv2d_weight", "cython", a) != _plan.GEMM
            or _plan.conv2d_weight_as_3d("cython", a)
            or _long_gemm_row("conv2d_weight", "cython", a)):
        return 0
    if _plan.seconds("conv2d_weight", "cython", a) <= _chunks.SPLIT_SECONDS:
        return N
    one = _plan.seconds("conv2d_weight", "cython", args(1))
    if one > _chunks.SPLIT_SECONDS:
        return 0
    return max(1, int(_chunks.PIECE_SECONDS / max(one, 1e-12)))


def _weight_fused(x, gy, ws_shape, positions, groups, pad, ph, pw, nb):
    """The stacked weight gradient by ``_cy_grad.conv2d_weight_phased``: its GEMM tiles
    read ``gy``'s phases in their places themselves (no stacked copy of ``gy``), ``nb``
    images a call, the calls' results added in order; ``positions``: the stacked layer's
    outputs per plane (its FLOPs set the thread count)."""
    from . import _cy_grad, _threads

    N = x.shape[0]
    phh = [(off, count) for _, off, count in ph]
    phw = [(off, count) for _, off, count in pw]
    flops_per_image = 2 * ws_shape[0] * positions * ws_shape[1] * ws_shape[2] * ws_shape[3]
    gws = None
    for n0 in range(0, N, nb):
        n1 = min(N, n0 + nb)
        part = np.empty(ws_shape, x.dtype)

        def block(n0=n0, n1=n1, part=part):
            nthreads = _threads.threads_for(flops_per_image * (n1 - n0),
                                            _threads.GRAIN_FLOPS)
            with _threads.blas_single_threaded():
                _cy_grad.conv2d_weight_phased(x[n0:n1], gy[n0:n1], part, pad, phh, phw,
                                              groups, nthreads)

        if _threads.needs_fresh_thread():  # fork safety, as fastconv._dispatch's calls
            _threads.call_in_fork_safe_thread(block)
        else:
            block()
        if gws is None:
            gws = part
        else:
            gws += part
    return gws


def _weight_stacked(x, gy, ws_shape, Hy, Wy, groups, pad, ph, pw, backend):
    """The stacked weight gradient as :func:`fastconv.grad.conv2d_weight` of ``x`` and a
    stacked copy of ``gy``'s phases (blocks of images of at most ``BLOCK_BYTES`` of it)."""
    from .grad import conv2d_weight

    N, K = gy.shape[:2]
    Ho, Wo = gy.shape[2:]
    sh, sw = len(ph), len(pw)
    nph = sh * sw
    Kg = K // groups
    per_image = ws_shape[0] * Hy * Wy * x.itemsize
    nb = max(1, min(N, BLOCK_BYTES // max(1, per_image)))
    gws = None
    for n0 in range(0, N, nb):
        n1 = min(N, n0 + nb)
        ys = np.zeros((n1 - n0, groups, nph, Kg, Hy, Wy), x.dtype)
        g5 = gy[n0:n1].reshape(n1 - n0, groups, Kg, Ho, Wo)
        i = 0
        for a, (_, oh, ch) in enumerate(ph):
            for b, (_, ow, cw) in enumerate(pw):
                if ch and cw:
                    ys[:, :, i, :, oh:oh + ch, ow:ow + cw] = g5[:, :, :, a::sh, b::sw]
                i += 1
        ysb = ys.reshape(n1 - n0, ws_shape[0], Hy, Wy)
        # the plan's kernel for that layer: in float32 often Cython's direct weight-gradient
        # kernel (fc3_wgrad, run as conv3d_weight on a depth of 1), else im2col + GEMM
        part = conv2d_weight(x[n0:n1], ws_shape, ysb, 1, pad, 1, groups, backend=backend)
        if gws is None:
            gws = part
        else:
            gws += part
    return gws
