"""Long kernel calls run in pieces, so that Ctrl-C (SIGINT) stops them within a fraction of
a second.

Why
---
CPython runs a signal handler only in the main thread, between two bytecodes. A compiled
kernel (Cython's OpenMP loops, Numba's, NumPy's einsum and BLAS) is one long C call: Ctrl-C
during it is noticed when it returns, seconds later for a large call. Numba makes it worse:
the handler runs inside its dispatcher, which then reports
``SystemError: CPUDispatcher(...) returned a result with an exception set`` with the
KeyboardInterrupt only as its ``__cause__``.

What
----
:func:`call` (the hook in :func:`fastconv._dispatch.call_kernel`) estimates the call's cost from
the shapes (:func:`estimate`). A call estimated under ``SPLIT_SECONDS`` (every benchmark
shape of ``fastconv/bench/cases.py``, on every backend) runs as it always did, in one piece: the
estimate is a few multiplications. A larger one is cut into independent pieces of about
``PIECE_SECONDS`` each (:func:`plan`), run one after the other with the same kernel. The
interpreter runs between two pieces, so a pending SIGINT raises KeyboardInterrupt there;
no kernel thread is left running (each piece's OpenMP or Numba region has ended). A
SystemError from a kernel whose cause or context is a KeyboardInterrupt is re-raised as
that plain KeyboardInterrupt.

After an interrupt, the pieces finished before it hold their results in the output array
(``out=``, when the caller gave one); the rest of it is unspecified (old values, zeros or
a partial result of the piece that was running).

Cost model
----------
``seconds = macs / MAC_RATE[backend][op] + cols / COL_RATE[backend] + elems / ELEM_RATE[backend]``
where ``macs`` is the multiply-adds (conv ops) or window taps (pools) of the call,
``cols`` its im2col elements (``macs / filters per group``: what the NumPy reference's
sliding-window einsum and Numba's GEMM path copy) and ``elems`` the elements it reads and
writes. The formula and its rates live in :mod:`fastconv._plan` (:func:`fastconv._plan.seconds`),
with the kernels' choice of algorithm; the rates are below the slow end of what was
measured (docs/guide/performance-notes.md), so pieces err on the short side. The estimate
depends on the shapes and the backend only, never on the thread count.

Where the cuts go
-----------------
Along the batch first; an image too large alone is cut along whole groups, then filters
(conv2d, conv2d_weight) or input channels (conv2d_input) within a group, then, for
conv2d, output rows (columns for a conv1d), with the input rows their windows read (the
halo) and the padding of the edge pieces; a second conv2d candidate cuts whole images by
rows, all filters together. Pools and pool gradients are cut along the planes (images,
then channels); one plane is never cut. conv2d_weight, which sums over the batch, is cut
along groups, filters and input channels, and along the batch (the partial sums added
into the result) only when nothing else gives pieces small enough; locally_connected2d
along the batch only. The ndimage ops (1-D passes, n-D correlation) are cut along their
output lines (below). Pieces are C-contiguous slices where they can be (batch slices,
channel slices of one image); otherwise a piece's inputs are copied and its result is
computed in a scratch array and copied into place. A candidate is taken only when each
of its pieces is estimated at most twice the target and all of them at most 1.25 times
the whole call (the NumPy reference would copy the windows once per filter piece).

Results
-------
No cut splits a sum, except conv2d_weight's batch cut. But the compiled kernels run the
algorithm, and the GEMM sizes, that the plan gives the shapes (:func:`fastconv._plan.path`),
and BLAS rounds differently for other matrix sizes (a GEMM with fewer rows can give other
last bits). So :func:`plan` first looks for cuts whose pieces choose exactly as
the whole call (pieces up to 4x the target): then the results are bitwise those of the
uncut call.
That holds, and tests/test_issue15_interrupt.py checks it, for the pools and pool
gradients on every backend, Cython's conv2d (batch, filters, rows; row pieces start at
multiples of ``ROW_ALIGN``, which keeps Winograd's 2x2 tiles), Cython's conv2d_input at
stride 1, and Numba's conv2d off its GEMM path. Failing that, it takes cuts that keep
the kernel's algorithm, whose results agree with the uncut call to rounding: Numba's GEMM
paths, Cython's gradients on their GEMM path (their tiles and partial sums follow the
batch size and the filter count), conv2d_weight's batch cut, and the NumPy reference,
whose einsum orders its sums by the operands' shapes.
"""

from __future__ import annotations

import numpy as np

from . import _plan

__all__ = ["call", "estimate", "plan", "SPLIT_SECONDS", "PIECE_SECONDS"]

# A call estimated above this runs in pieces; pieces aim at PIECE_SECONDS each.
SPLIT_SECONDS = 0.3
PIECE_SECONDS = 0.04
# Output rows of a conv2d row piece start at multiples of this (Winograd's tiles are 2x2).
ROW_ALIGN = 8

# The cost model and the kernels' choices are the plan's (fastconv._plan).
def estimate(op, backend, args) -> float:
    """Estimated seconds of the kernel call ``op(*args)`` on ``backend`` (the module
    docstring's cost model, :func:`fastconv._plan.seconds`); 0 for an op this module does
    not know (never cut)."""
    return _plan.seconds(op, backend, args)


def _path(backend, op, args):
    """What the kernel of ``op`` on ``backend`` chooses from these shapes, as a hashable
    (:func:`fastconv._plan.path`): pieces must choose the same. The NumPy reference has no
    choice to make."""
    return _plan.path(backend, op, args)


# --------------------------------------------------------------------------------------------
# pieces
# --------------------------------------------------------------------------------------------
def _chunks(length, unit_s, target_s, align=1):
    """[(start, stop)] cutting ``range(length)`` into about equal runs of about ``target_s``
    seconds (each item costs ``unit_s``); the runs start at multiples of ``align``, and
    none is shorter than ``align`` (a short last run joins the one before)."""
    per = max(1, int(target_s / unit_s)) if unit_s > 0 else length
    if per >= length:
        return [(0, length)]
    n = -(-length // per)
    size = -(-length // n)
    size = -(-size // align) * align
    runs = [(a, min(length, a + size)) for a in range(0, length, size)]
    if len(runs) > 1 and runs[-1][1] - runs[-1][0] < align:
        runs[-2:] = [(runs[-2][0], length)]
    return runs


class _Add:
    """A piece's destination that adds the piece's result instead of copying it."""

    __slots__ = ("view",)

    def __init__(self, view):
        self.view = view

    def __setitem__(self, key, value):
        self.view += value


class _Piece:
    """One kernel call of a cut: its arguments, and where its result goes when the kernel
    fills a scratch array (``dest`` a view of the caller's output, else None)."""

    __slots__ = ("args", "scratch", "dest")

    def __init__(self, args, scratch=None, dest=None):
        self.args, self.scratch, self.dest = args, scratch, dest


def _contig(a):
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _target(view):
    """(array the kernel fills, dest): the view itself when C-contiguous, else a scratch
    array that is copied into it afterwards."""
    if view.flags.c_contiguous:
        return view, None
    return np.empty(view.shape, view.dtype), view


_VIEWS_ONLY = (lambda a: a, lambda v: (v, None))


def _image_ranges(N, per_image, target):
    """Batch runs, or None when one image alone is too large for a piece."""
    if per_image <= 1.5 * target:
        return _chunks(N, per_image, target)
    return None


def _spatial(out, per_plane, target):
    """[(axis, start, stop)]: the output rows (axis 2) of one plane in runs of about
    ``target``, or its columns (axis 3) when it has too few rows (a conv1d has one)."""
    Ho, Wo = out.shape[2:]
    axis, size = (2, Ho) if Ho >= 2 * ROW_ALIGN or Ho >= Wo else (3, Wo)
    return [(axis, a, b) for a, b in _chunks(size, per_plane / size, target, ROW_ALIGN)]


def _plan_conv2d(args, total, target, spatial=True):
    """conv2d's cuts: batch runs, else whole groups, else filters (within a group), else
    (``spatial``) one filter of one image by output rows; conv3d's (``spatial=False``) stop
    at single filters. ``args[:4]`` are (x, w, b, out), ``args[7]`` the groups."""
    x, w, b, out = args[:4]
    groups = args[7]
    N = x.shape[0]
    K = w.shape[0]
    Kg = K // groups
    per_image = total / N
    runs = _image_ranges(N, per_image, target)
    if runs is not None:
        return [(n0, n1, 0, K, None, 0, 0) for n0, n1 in runs]
    per_filter = per_image / K
    if groups > 1 and per_filter * Kg <= 1.5 * target:  # whole groups
        runs = [(g0 * Kg, g1 * Kg) for g0, g1 in _chunks(groups, per_filter * Kg, target)]
    elif per_filter <= 1.5 * target or not spatial:  # filters, within a group if grouped
        runs = [(g * Kg + a, g * Kg + b_) for g in range(groups)
                for a, b_ in _chunks(Kg, per_filter, target)]
    else:  # one filter at a time, by output rows (or columns)
        return [(n, n + 1, k, k + 1) + sp for n in range(N) for k in range(K)
                for sp in _spatial(out, per_filter, target)]
    return [(n, n + 1, k0, k1, None, 0, 0) for n in range(N) for k0, k1 in runs]


def _window_span(r0, r1, stride, pad, dilation, k):
    """The input positions [s, e) that outputs r0 .. r1 - 1 read along one axis (s < 0 or
    e past the input: padding)."""
    return r0 * stride - pad, (r1 - 1) * stride - pad + dilation * (k - 1) + 1


def _conv2d_piece(args, cut, io):
    _contig, _target = io
    x, w, b, out, stride, pad, dilation, groups = args
    n0, n1, k0, k1, axis, r0, r1 = cut
    K, Cg = w.shape[:2]
    Kg = K // groups
    if k0 % Kg == 0 and k1 % Kg == 0:  # whole groups
        c0, c1, g = k0 // Kg * Cg, k1 // Kg * Cg, (k1 - k0) // Kg
    else:  # filters of one group
        c0 = k0 // Kg * Cg
        c1, g = c0 + Cg, 1
    xv = x[n0:n1, c0:c1]
    ov = out[n0:n1, k0:k1]
    pad = tuple(pad)
    if axis is not None:  # the input rows (columns) the outputs' windows read: the halo
        a = axis - 2
        s, e = _window_span(r0, r1, stride[a], pad[a], dilation[a], w.shape[axis])
        i0, i1 = max(s, 0), min(e, x.shape[axis])
        sl = [slice(None)] * 4
        sl[axis] = slice(i0, i1)
        xv = xv[tuple(sl)]
        sl[axis] = slice(r0, r1)
        ov = ov[tuple(sl)]
        pad = (i0 - s, pad[1]) if a == 0 else (pad[0], i0 - s)
    dst, dest = _target(ov)
    return _Piece((_contig(xv), w[k0:k1], b[k0:k1], dst, stride, pad, dilation, g), dst, dest)


def _conv2d_cuts_ok(args, cuts):
    """Whether every row (column) cut reads some input (one wholly inside a huge padding
    would not: kernels are not written for an empty input)."""
    x, w, _, out, stride, pad, dilation, _ = args
    for cut in cuts:
        axis, r0, r1 = cut[4:]
        if axis is not None:
            a = axis - 2
            s, e = _window_span(r0, r1, stride[a], pad[a], dilation[a], w.shape[axis])
            if min(e, x.shape[axis]) <= max(s, 0):
                return False
    return True


def _plan_planes(N, C, total, target):
    """(n0, n1, c0, c1) runs of whole planes: images, then channels of one image."""
    per_image = total / N
    runs = _image_ranges(N, per_image, target)
    if runs is not None:
        return [(n0, n1, 0, C) for n0, n1 in runs]
    return [(n, n + 1, c0, c1) for n in range(N) for c0, c1 in _chunks(C, per_image / C, target)]


def _plan_conv2d_input(args, total, target):
    gy, w, gx, stride, pad, dilation, groups = args
    N, C = gx.shape[:2]
    K, Cg = w.shape[:2]
    per_image = total / N
    runs = _image_ranges(N, per_image, target)
    if runs is not None:
        return [(n0, n1, 0, C) for n0, n1 in runs]
    per_channel = per_image / C
    if groups > 1 and per_channel * Cg <= 1.5 * target:
        runs = [(g0 * Cg, g1 * Cg) for g0, g1 in _chunks(groups, per_channel * Cg, target)]
    else:
        runs = [(g * Cg + a, g * Cg + b) for g in range(groups)
                for a, b in _chunks(Cg, per_channel, target)]
    return [(n, n + 1, c0, c1) for n in range(N) for c0, c1 in runs]


def _conv2d_input_piece(args, cut, io):
    _contig, _target = io
    gy, w, gx, stride, pad, dilation, groups = args
    n0, n1, c0, c1 = cut
    K, Cg = w.shape[:2]
    Kg = K // groups
    if c0 % Cg == 0 and c1 % Cg == 0:  # whole groups
        k0, k1, g = c0 // Cg * Kg, c1 // Cg * Kg, (c1 - c0) // Cg
        wv = w[k0:k1]
    else:  # channels of one group
        k0 = c0 // Cg * Kg
        k1, g = k0 + Kg, 1
        wv = _contig(w[k0:k1, c0 % Cg : c0 % Cg + (c1 - c0)])
    dst, dest = _target(gx[n0:n1, c0:c1])
    return _Piece((_contig(gy[n0:n1, k0:k1]), wv, dst, stride, pad, dilation, g), dst, dest)


def _plan_conv2d_weight(args, total, target):
    x, gy, gw, stride, pad, dilation, groups = args
    K, Cg = gw.shape[:2]
    Kg = K // groups
    per_filter = total / K
    if groups > 1 and per_filter * Kg <= 1.5 * target:
        return [(g0 * Kg, g1 * Kg, 0, Cg) for g0, g1 in _chunks(groups, per_filter * Kg, target)]
    if per_filter <= 1.5 * target:
        return [(g * Kg + a, g * Kg + b, 0, Cg) for g in range(groups)
                for a, b in _chunks(Kg, per_filter, target)]
    return [(k, k + 1, c0, c1) for k in range(K)
            for c0, c1 in _chunks(Cg, per_filter / Cg, target)]


def _conv2d_weight_piece(args, cut, io):
    _contig, _target = io
    x, gy, gw, stride, pad, dilation, groups = args
    if cut[0] == "batch":  # a partial sum, added into gw (a scratch array but the first)
        _, n0, n1 = cut
        dst = gw if n0 == 0 else (np.empty(gw.shape, gw.dtype) if io is not _VIEWS_ONLY
                                  else gw)
        return _Piece((x[n0:n1], gy[n0:n1], dst, stride, pad, dilation, groups), dst,
                      None if n0 == 0 else _Add(gw))
    k0, k1, c0, c1 = cut
    K, Cg = gw.shape[:2]
    Kg = K // groups
    if k0 % Kg == 0 and k1 % Kg == 0 and (c0, c1) == (0, Cg):  # whole groups
        xc0, xc1, g = k0 // Kg * Cg, k1 // Kg * Cg, (k1 - k0) // Kg
    else:  # filters (and channels) of one group
        xc0 = k0 // Kg * Cg + c0
        xc1, g = xc0 + (c1 - c0), 1
    dst, dest = _target(gw[k0:k1, c0:c1])
    return _Piece((_contig(x[:, xc0:xc1]), _contig(gy[:, k0:k1]), dst, stride, pad, dilation,
                   g), dst, dest)


def _plane_piece(op, args, cut):
    """A piece of a pool or pool gradient: the same planes of every 4-D array argument."""
    n0, n1, c0, c1 = cut
    new = []
    dst = dest = None
    fills = {"max_pool2d": (1, 2), "avg_pool2d": (1,), "max_pool2d_backward": (2,),
             "avg_pool2d_backward": (1,)}[op]
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray) and a.ndim == 4:
            v = a[n0:n1, c0:c1]  # contiguous: a batch run, or channels of one image
            if i in fills:
                dst, dest = v, None
            new.append(v)
        else:
            new.append(a)
    return _Piece(tuple(new), dst, dest)


# The 3-D pools, avg_pool3d_backward and the adaptive pools are cut along their volumes
# (planes (n, c)), as the 2-D pools are along their planes: no cut splits a window, so
# results are bitwise those of the uncut call. Each maps to the argument whose first two
# axes are the planes (N, C).
_PLANE_OPS = {"max_pool3d": 0, "avg_pool3d": 0, "avg_pool3d_backward": 1,
              "adaptive_avg_pool3d": 0, "adaptive_max_pool3d": 0,
              "adaptive_avg_pool3d_backward": 0}


def _volume_piece(args, cut):
    """A piece of an op in ``_PLANE_OPS``: the same volumes of every 5-D array argument
    (contiguous: a batch run, or channels of one image)."""
    n0, n1, c0, c1 = cut
    return _Piece(tuple(a[n0:n1, c0:c1] if isinstance(a, np.ndarray) and a.ndim == 5 else a
                        for a in args), None, None)


def _cuts(op, args, total, target):
    """Candidate cuts, the preferred first (lists of opaque tuples for :func:`_piece`)."""
    if op in _CUTS_3D:  # conv3d and its gradients (at the end of this module)
        return _CUTS_3D[op](args, total, target)
    if op in _PLANE_OPS:
        return [_plan_planes(*args[_PLANE_OPS[op]].shape[:2], total, target)]
    if op == "conv2d":
        out = args[3]
        N, K = out.shape[:2]
        # whole images (all filters) by output rows: when a cut along the filters would
        # change the kernel's algorithm (Winograd and GEMM need enough filters)
        rows = [(n, n + 1, 0, K) + sp for n in range(N)
                for sp in _spatial(out, total / N, target)]
        return [c for c in (_plan_conv2d(args, total, target), rows)
                if _conv2d_cuts_ok(args, c)]
    if op == "conv2d_input":
        return [_plan_conv2d_input(args, total, target)]
    if op == "conv2d_weight":
        # the batch last: its pieces' sums are added up, which changes the order
        N = args[0].shape[0]
        return [_plan_conv2d_weight(args, total, target),
                [("batch", n0, n1) for n0, n1 in _chunks(N, total / N, target)]]
    if op == "locally_connected2d":
        runs = _chunks(args[0].shape[0], total / args[0].shape[0], target)
        return [[(n0, n1) for n0, n1 in runs]]
    if op in ("max_pool2d", "avg_pool2d"):
        return [_plan_planes(*args[0].shape[:2], total, target)]
    if op in ("max_pool2d_backward", "avg_pool2d_backward"):
        gx = args[2] if op == "max_pool2d_backward" else args[1]
        return [_plan_planes(*gx.shape[:2], total, target)]
    if op in _ND_OPS:
        return _nd_cuts(op, args, total, target)
    return []


def _piece(op, args, cut, io=(_contig, _target)):
    """The piece ``cut`` of the call; with ``io=_VIEWS_ONLY`` its arguments are views that
    may not be C-contiguous (nothing copied or allocated: for reading shapes)."""
    if op in _CUTS_3D:  # conv3d and its gradients: conv2d's pieces, on 5-D arrays
        return _PIECES_3D[op](args, cut, io)
    if op in _PLANE_OPS:
        return _volume_piece(args, cut)
    if op == "conv2d":
        return _conv2d_piece(args, cut, io)
    if op == "conv2d_input":
        return _conv2d_input_piece(args, cut, io)
    if op == "conv2d_weight":
        return _conv2d_weight_piece(args, cut, io)
    if op == "locally_connected2d":
        n0, n1 = cut
        x, w, b, out = args[:4]
        return _Piece((x[n0:n1], w, b, out[n0:n1]) + tuple(args[4:]))
    if op in _ND_OPS:
        return _nd_piece(args, cut, io)
    return _plane_piece(op, args, cut)


def _shapes(op, piece_args):
    """The shapes of a piece's array arguments (pieces with equal shapes choose alike)."""
    return tuple(a.shape if isinstance(a, np.ndarray) else a for a in piece_args)


def plan(op, backend, args):
    """The cuts of the call ``op(*args)`` on ``backend`` (opaque tuples for
    :func:`_piece`), or None when it runs in one piece.

    The cuts depend on the shapes and the backend only. Candidates (:func:`_cuts`) are
    tried with pieces of ``PIECE_SECONDS``, then twice, four times ... that: first up to 4x
    for cuts whose pieces choose exactly as the whole call (:func:`_path`: bitwise
    results), then for cuts that keep its algorithm (results to rounding)."""
    total = estimate(op, backend, args)
    if total <= SPLIT_SECONDS:
        return None
    whole = _path(backend, op, args)
    # first cuts that keep every detail of the kernel's choice (bitwise results), with
    # pieces up to 4x the target; else cuts that keep its algorithm (results to rounding)
    passes = [(True, total)] if whole is None else [(True, 4 * PIECE_SECONDS), (False, total)]
    for strict, limit in passes:
        target = PIECE_SECONDS
        while target < total and target <= limit:
            for cuts in _cuts(op, args, total, target):
                if len(cuts) >= 2 and _fits(op, backend, args, cuts, total, target) and (
                        whole is None or _same_path(op, backend, args, cuts, whole, strict)):
                    return cuts
            target *= 2
    return None


def _fits(op, backend, args, cuts, total, target):
    """Whether the pieces' own estimates are at most twice the target, and add up to at
    most 1.25 times the whole call's: a cut that repeats work (the NumPy reference copies
    the windows once per filter piece) is not taken."""
    seen = {}
    for cut in cuts:
        p = _piece(op, args, cut, _VIEWS_ONLY).args
        key = _shapes(op, p)
        if key not in seen:
            seen[key] = [estimate(op, backend, p), 0]
        seen[key][1] += 1
    return (max(e for e, _ in seen.values()) <= 2 * target
            and sum(e * n for e, n in seen.values()) <= 1.25 * total)


def _same_path(op, backend, args, cuts, whole, strict=True):
    """Whether every piece makes the kernel choose as the whole call (``strict``: in every
    detail of :func:`_path`; else the algorithm, its first item)."""
    seen = set()
    for cut in cuts:
        p = _piece(op, args, cut, _VIEWS_ONLY).args
        key = _shapes(op, p)
        if key in seen:
            continue
        seen.add(key)
        path = _path(backend, op, p)
        if path != whole and (strict or _algo(path) != _algo(whole)):
            return False
    return True


def _algo(path):
    return path[0] if isinstance(path, tuple) else path


# --------------------------------------------------------------------------------------------
# running them
# --------------------------------------------------------------------------------------------
def call(op, name, fn, args, call_one) -> None:
    """``call_one(op, name, fn, args)``, in pieces when the call is large (see the module
    docstring): the kernel's output arguments in ``args`` are filled."""
    if _plan.seconds(op, name, args) <= SPLIT_SECONDS:
        try:
            call_one(op, name, fn, args)
            return
        except SystemError as exc:
            _reraise_interrupt(exc)
            raise
    cuts = plan(op, name, args)
    if cuts is None:
        _run_one(call_one, op, name, fn, args)
        return
    for cut in cuts:
        p = _piece(op, args, cut)
        _run_one(call_one, op, name, fn, p.args)
        if p.dest is not None:
            p.dest[...] = p.scratch
        # back in the interpreter: a pending SIGINT raises KeyboardInterrupt here


def _run_one(call_one, op, name, fn, args):
    try:
        return call_one(op, name, fn, args)
    except SystemError as exc:
        _reraise_interrupt(exc)
        raise


def _reraise_interrupt(exc):
    """Raise the KeyboardInterrupt behind a SystemError, if there is one: Numba's
    dispatcher reports a SIGINT handled inside it as ``SystemError: CPUDispatcher(...)
    returned a result with an exception set``, caused by the KeyboardInterrupt."""
    for e in (exc.__cause__, exc.__context__):
        if isinstance(e, KeyboardInterrupt):
            raise e from None


# ---- fold (issue 17): unfold, fold, max_unpool and its gradient, in pieces of planes ----
def by_planes(op, name, spec, out):
    """The ``compute`` that :func:`fastconv._dispatch.run` takes, for the ops of a
    :class:`fastconv._spec.FoldSpec` or ``UnpoolSpec`` (unfold, fold, max_unpool,
    max_unpool_backward): a call estimated over ``SPLIT_SECONDS`` runs as pieces of whole
    (image, channel) planes of about ``PIECE_SECONDS`` each, so Ctrl-C stops it between two
    of them, as it does the other ops'.

    Each of these kernels reads and writes every plane on its own (no sum crosses planes),
    so every array viewed as (N * C, per-plane rows, ...) and sliced along the planes is a
    smaller call of the same kernel on C-contiguous views, and the pieces' results are
    bitwise the whole call's.
    """
    from . import _dispatch

    args = spec.kernel_args(out)
    total = _plan.seconds(op, name, args)
    if total <= SPLIT_SECONDS:
        _dispatch.call_kernel(op, name, args)
        return
    x = args[0]
    N = x.shape[0]
    C = out.shape[1] if op == "fold" else x.shape[1]
    P = N * C

    def planes(a):
        return a.reshape((P, a.shape[1] // C) + a.shape[2:])

    whole = [planes(a) if isinstance(a, np.ndarray) else a for a in args]
    for p0, p1 in _chunks(P, total / P, PIECE_SECONDS):
        _dispatch.call_kernel(op, name, tuple(a[p0:p1] if isinstance(a, np.ndarray) else a
                                              for a in whole))
        # back in the interpreter: a pending SIGINT raises KeyboardInterrupt here


# --------------------------------------------------------------------------------------------
# ---- ndimage (issue 18): the 1-D passes and the n-D correlation, cut along their lines ----
# --------------------------------------------------------------------------------------------
# Every output line of these kernels is computed on its own, from the same inputs, in the
# same order, whatever the other lines: so the pieces' results are bitwise the uncut call's.
# * nd_correlate1d / nd_uniform1d ``(x, weights, idx, cval, out)``, ``x`` and ``out``
#   ``(outer, n, inner)``: the lines along axis 1, cut along ``outer`` (contiguous views),
#   or along ``inner`` (a pass along the first axis: ``outer`` is 1), whose pieces copy
#   their columns of ``x`` and fill a scratch array copied into ``out``.
# * nd_correlate ``(xp, base, offs, weights, out)``: ``out`` ``(lines, length)``, line ``i``
#   starting at ``xp[base[i]]`` (increasing), each tap ``offs`` (>= 0) further: cut along the
#   lines, each piece given the span of ``xp`` its lines read.
# * nd_sepcorr ``(x, w0, idx0, w1, idx1, cval, out)``, ``x`` ``(outer, nx, inner)`` and
#   ``out`` ``(outer, n, inner)``: cut along ``outer``, or along the rows ``n`` (each piece
#   the whole ``x``, the indices ``idx0`` its rows read, and its rows of ``out``).
#   nd_sepbox, the same arguments: along ``outer`` only (its first pass is a running sum
#   down the rows: a piece of them would start the sums afresh, another rounding).
_ND_OPS = ("nd_correlate1d", "nd_uniform1d", "nd_correlate", "nd_sepcorr", "nd_sepbox")


def _nd_cuts(op, args, total, target):
    out = args[-1]
    if op in ("nd_sepcorr", "nd_sepbox"):
        kinds = (("outer", out.shape[0]),) + ((("rows", out.shape[1]),)
                                              if op == "nd_sepcorr" else ())
        return [[(kind, a, b) for a, b in _chunks(size, total / size, target)]
                for kind, size in kinds if size > 1]
    if op == "nd_correlate":
        L = out.shape[0]
        return [[("lines", a, b) for a, b in _chunks(L, total / L, target)]]
    outer, _, inner = out.shape
    return [[(kind, a, b) for a, b in _chunks(size, total / size, target)]
            for kind, size in (("outer", outer), ("inner", inner)) if size > 1]


def _nd_piece(args, cut, io):
    kind, a, b = cut
    if kind == "lines":  # the span of xp the lines read, and their starts in it
        xp, base, offs, w, out = args
        lo = int(base[a])
        hi = int(base[b - 1]) + int(offs.max(initial=0)) + out.shape[1]
        return _Piece((xp[lo:hi], base[a:b] - lo, offs, w, out[a:b]))
    if len(args) == 7:  # nd_sepcorr, nd_sepbox
        x, w0, idx0, w1, idx1, cval, out = args
        if kind == "outer":
            return _Piece((x[a:b], w0, idx0, w1, idx1, cval, out[a:b]))
        target, dest = io[1](out[:, a:b])
        return _Piece((x, w0, idx0[a:b + w0.shape[0] - 1], w1, idx1, cval, target), target,
                      dest)
    x, w, idx, cval, out = args
    if kind == "outer":
        return _Piece((x[a:b], w, idx, cval, out[a:b]))
    target, dest = io[1](out[:, :, a:b])
    return _Piece((io[0](x[:, :, a:b]), w, idx, cval, target), target, dest)


# --------------------------------------------------------------------------------------------
# ---- conv3d (issue 17) ----
# --------------------------------------------------------------------------------------------
# conv3d is cut along the batch, then whole groups or filters within a group (one filter of
# one image is never cut); conv3d_input along the batch, then input channels; conv3d_weight
# along groups, filters and channels, then the batch (partial sums). The pieces slice the
# first two axes only, as conv2d's do, so conv2d's piece builders serve the 5-D arrays.
_CUTS_3D = {
    "conv3d": lambda args, total, target: [_plan_conv2d(args, total, target, spatial=False)],
    "conv3d_input": lambda args, total, target: [_plan_conv2d_input(args, total, target)],
    "conv3d_weight": lambda args, total, target: _cuts("conv2d_weight", args, total, target),
}
_PIECES_3D = {
    "conv3d": _conv2d_piece,
    "conv3d_input": _conv2d_input_piece,
    "conv3d_weight": _conv2d_weight_piece,
}
