"""Argument rules shared by :mod:`fastconv.ndimage`'s filters (issue 18), with
scipy.ndimage's semantics: boundary modes, axes, per-axis sequences, origins, the output
array and the final store into it; and the specs of the linear filters' kernel calls
(:class:`LineSpec`: ``nd_correlate1d`` and ``nd_uniform1d``, :class:`SepSpec`: the last two
passes of a separable filter as one, ``nd_sepcorr`` and ``nd_sepbox``, :class:`CorrelateSpec`:
``nd_correlate``), which :func:`fastconv._dispatch.run` takes as it takes every op's.

Errors are :class:`ArgumentError`, a ValueError that is also a RuntimeError: fastconv names
the argument in a ValueError, and code written for scipy (which raises RuntimeError for some
of these) still catches it.
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

__all__ = ["MODES", "ArgumentError", "modes", "axes", "sequence", "origins", "output", "pad",
           "store", "LineSpec", "line_spec", "SepSpec", "sep_spec", "CorrelateSpec",
           "correlate_spec"]


class ArgumentError(ValueError, RuntimeError):
    """A bad argument of an ndimage function (a ValueError; also a RuntimeError, as scipy
    raises for some of them)."""


# every mode name scipy.ndimage's filters accept -> the one the filters mean by it
MODES = {
    "reflect": "reflect",
    "grid-mirror": "reflect",
    "constant": "constant",
    "grid-constant": "constant",
    "nearest": "nearest",
    "mirror": "mirror",
    "wrap": "wrap",
    "grid-wrap": "wrap",
}

# ndimage's mode -> np.pad's
_NP_PAD = {"reflect": "symmetric", "mirror": "reflect", "nearest": "edge", "wrap": "wrap",
           "constant": "constant"}


def sequence(value, n, name):
    """scipy's ``_normalize_sequence``: a str or scalar repeated ``n`` times, or a sequence
    of length ``n`` (else an error naming ``name``), as a tuple."""
    if not isinstance(value, str) and np.iterable(value):
        seq = tuple(value)
        if len(seq) != n:
            raise ArgumentError(f"{name}: sequence argument must have length equal to input "
                                f"rank (the number of filtered axes, {n}), got length "
                                f"{len(seq)}")
        return seq
    return (value,) * n


def modes(mode, n, name="mode"):
    """One canonical mode name (a value of :data:`MODES`) per filtered axis."""
    out = []
    for m in sequence(mode, n, name):
        if not isinstance(m, str) or m not in MODES:
            raise ArgumentError(f"{name} must be one of {sorted(MODES)}, got {m!r}")
        out.append(MODES[m])
    return tuple(out)


def axes(axes, ndim):
    """scipy's ``_check_axes``: the filtered axes as non-negative ints (None: all); a
    non-integer axis is a TypeError."""
    if axes is None:
        return tuple(range(ndim))
    try:
        seq = (operator.index(axes),) if np.isscalar(axes) else (
            tuple(operator.index(a) for a in axes) if isinstance(axes, Iterable) else None)
    except TypeError as exc:
        raise TypeError(f"axes: {exc}") from None
    if seq is None:
        raise ArgumentError(f"axes must be an integer, an iterable of integers or None, "
                            f"got {axes!r}")
    for a in seq:
        if a < -ndim or a > ndim - 1:
            raise ArgumentError(f"axes: axis {a} is out of range for an array of {ndim} "
                                f"dimensions")
    seq = tuple(a % ndim for a in seq)
    if len(set(seq)) != len(seq):
        raise ArgumentError(f"axes must be unique, got {axes!r}")
    return seq


def origins(origin, sizes, name="origin"):
    """One int origin per filter size in ``sizes``; each in ``[-(size // 2), (size - 1)
    // 2]`` (the window must cover its output element)."""
    out = []
    for o, s in zip(sequence(origin, len(sizes), name), sizes):
        try:
            o = operator.index(o)
        except TypeError:
            raise ArgumentError(f"{name} must be an integer or a sequence of integers, "
                                f"got {o!r}") from None
        if o < -(s // 2) or o > (s - 1) // 2:
            raise ArgumentError(f"Invalid {name} {o} for a filter of size {s}: it must "
                                f"satisfy -(size // 2) <= {name} <= (size - 1) // 2")
        out.append(o)
    return tuple(out)


def output(output, input, shape=None, complex_output=False):
    """scipy's ``_ni_support._get_output``: the array the result goes to (None: a new
    array of the input's dtype; a dtype, type or str: a new array of that dtype; an array:
    itself). A new array is left uninitialized (scipy's is zeros): every filter writes all
    of its output, and zeroing a 2048^2 float32 array took 1.5 ms, a sixth of a
    gaussian_filter."""
    if shape is None:
        shape = input.shape
    if output is None:
        dt = np.promote_types(input.dtype, np.complex64) if complex_output else input.dtype
        return np.empty(shape, dtype=dt)
    if isinstance(output, (type, np.dtype)):
        try:
            dt = np.dtype(output)
        except TypeError:
            raise ArgumentError(f"output must be an array or a numeric dtype, got "
                                f"{output!r}") from None
        if complex_output and dt.kind != "c":
            warnings.warn("promoting specified output dtype to complex", stacklevel=3)
            dt = np.promote_types(dt, np.complex64)
        if dt.kind not in "biufc":
            raise ArgumentError(f"output must have a numeric (or bool) dtype, got {dt}")
        return np.empty(shape, dtype=dt)
    if isinstance(output, str):
        try:
            dt = np.dtype(output)
        except TypeError:
            raise ArgumentError(f"output: {output!r} is not a dtype") from None
        if complex_output and dt.kind != "c":
            raise ArgumentError("output must have a complex dtype")
        if not issubclass(dt.type, np.number):
            raise ArgumentError(f"output must have a numeric dtype, got {dt}")
        return np.empty(shape, dtype=dt)
    if not isinstance(output, np.ndarray):
        raise ArgumentError(f"output must be None, a dtype or an ndarray, got "
                            f"{type(output).__name__}")
    if output.shape != tuple(shape):
        raise ArgumentError(f"output shape not correct: {output.shape}, expected "
                            f"{tuple(shape)}")
    if complex_output and output.dtype.kind != "c":
        raise ArgumentError("output must have a complex dtype")
    if not output.flags.writeable:
        raise ArgumentError("output must be writeable")
    return output


def source_index(n, b, a, mode):
    """For each of the ``b + n + a`` elements of a line of ``n`` extended by ``b`` and ``a``
    in ``mode`` (a canonical name), the index in the line of the element it repeats, as
    np.pad's equivalent mode gives it (:func:`pad`); -1 for ``constant``'s ``cval``."""
    if mode == "constant":
        return np.concatenate([np.full(b, -1, np.intp), np.arange(n, dtype=np.intp),
                               np.full(a, -1, np.intp)])
    if mode == "mirror" and n == 1:
        return np.zeros(b + n + a, dtype=np.intp)  # scipy: a length-1 line mirrors to itself
    return np.pad(np.arange(n, dtype=np.intp), (b, a), mode=_NP_PAD[mode])


def pad_region(x, region, before, after, modes, cval):
    """``pad(x, before, after, modes, cval)[tuple(slice(*r) for r in region)]``, as a new
    C-contiguous array, without extending the rest of ``x``: ``region`` gives each axis's
    ``(start, stop)`` in the extended array's coordinates (a part of a border, say)."""
    idx = [source_index(n, b, a, m)[lo:hi]
           for n, b, a, m, (lo, hi) in zip(x.shape, before, after, modes, region)]
    # a slice along the axes whose indices run in order, then a take along each other one,
    # the most shrinking first (one take per axis copies blocks; x[np.ix_(...)] computed
    # every element's index, and cost 1.7 ms for a 132 x 132 x 6 part of a 128^3 array)
    sub = x
    takes = []
    for ax, i in enumerate(idx):
        if len(i) and i[0] >= 0 and np.array_equal(i, np.arange(i[0], i[0] + len(i))):
            sub = sub[(slice(None),) * ax + (slice(int(i[0]), int(i[0]) + len(i)),)]
        else:
            takes.append(ax)
    for ax in sorted(takes, key=lambda ax: len(idx[ax]) / x.shape[ax]):
        sub = np.take(sub, np.maximum(idx[ax], 0), axis=ax)
    sub = np.ascontiguousarray(sub)
    if np.may_share_memory(sub, x):  # slices alone: a view, and cval must not go into x
        sub = sub.copy()
    for ax, i in enumerate(idx):
        if (i < 0).any():
            sub[(slice(None),) * ax + (i < 0,)] = cval
    return sub


def pad(x, before, after, modes, cval):
    """``x`` extended on each axis by ``before[i]`` and ``after[i]`` elements as
    scipy.ndimage's filters extend lines in mode ``modes[i]`` (canonical names; constant
    with ``cval``), as a new C-contiguous array. Any pad width works (the extension
    repeats, as scipy's does).

    The interior is copied once; each axis's border slabs are then copied from the
    positions np.pad's equivalent mode (reflect -> symmetric, mirror -> reflect, nearest ->
    edge, wrap -> wrap) gives a line of indices, which costs the borders only."""
    x = np.asarray(x)
    before = [int(b) for b in before]
    after = [int(a) for a in after]
    if any(x.shape[ax] == 0 and (b or a) for ax, (b, a) in enumerate(zip(before, after))):
        # nothing to extend from: scipy's lines are empty, so is the result's
        shape = tuple(s + b + a for s, b, a in zip(x.shape, before, after))
        return np.zeros(shape, dtype=x.dtype)
    shape = tuple(s + b + a for s, b, a in zip(x.shape, before, after))
    out = np.empty(shape, dtype=x.dtype)
    out[tuple(slice(b, b + s) for b, s in zip(before, x.shape))] = x
    for ax, (b, a, m) in enumerate(zip(before, after, modes)):
        if b == 0 and a == 0:
            continue
        n = x.shape[ax]
        lo = [slice(None)] * out.ndim
        hi = [slice(None)] * out.ndim
        lo[ax] = slice(0, b)
        hi[ax] = slice(b + n, b + n + a)
        if m == "constant":
            out[tuple(lo)] = cval
            out[tuple(hi)] = cval
            continue
        src = source_index(n, b, a, m)
        if b:
            out[tuple(lo)] = np.take(out, src[:b] + b, axis=ax)
        if a:
            out[tuple(hi)] = np.take(out, src[b + n:] + b, axis=ax)
    return out


def store(result, output):
    """Write the float (or complex) ``result`` into ``output`` as scipy.ndimage's filters
    store theirs, and return ``output``: into an integer (or bool) output, a C cast of the
    double, i.e. truncated toward zero and wrapped modulo the type's range (scipy's
    ``-(unsigned)(-x)`` for negative values into an unsigned type does the same); complex
    into a real output keeps the real part; floats round to the output's precision."""
    result = np.asarray(result)
    if result.dtype.kind == "c" and output.dtype.kind != "c":
        result = result.real
    if output.dtype.kind in "iub" and result.dtype.kind == "f":
        with np.errstate(invalid="ignore", over="ignore"):
            whole = np.trunc(result).astype(np.int64)
        if output.dtype.kind == "b":
            np.copyto(output, (whole & 0xFF) != 0)
        else:
            np.copyto(output, whole, casting="unsafe")
        return output
    with np.errstate(invalid="ignore", over="ignore"):
        np.copyto(output, result, casting="unsafe")
    return output


# ---------------------------------------------------------------------------------------
# the kernels' specs (fastconv._dispatch.run)
# ---------------------------------------------------------------------------------------
# ndimage has no batch axis: a call is empty when its output has no element (an input
# with a zero-length axis, which scipy accepts), and nd_correlate's is also empty when
# scipy skips every tap (|w| <= eps): a sum over no terms. The empty_batch rule of
# fastconv._postconditions then gives zeros without running a kernel.
_EPS = np.finfo(np.float64).eps


def line_index(n, k, origin, mode):
    """The source index of each of the ``n + k - 1`` elements of an extended line (-1:
    cval), for a k-tap correlation with ``origin`` in ``mode``."""
    before = k // 2 + origin
    return np.ascontiguousarray(
        pad(np.arange(n, dtype=np.int64), (before,), (k - 1 - before,), (mode,), -1),
        dtype=np.int64)


class LineSpec(NamedTuple):
    """One 1-D pass: ``op`` ``"nd_correlate1d"`` (``weights`` the k float64 weights) or
    ``"nd_uniform1d"`` (``weights`` the box size, an int), along axis 1 of ``x``, the
    C-contiguous ``(outer, n, inner)`` float32 or float64 view of the input; ``idx`` the
    ``n + k - 1`` int64 source indices of the extended line (-1: ``cval``). The output has
    ``x``'s shape and dtype (:func:`fastconv.reference.nd_correlate1d`)."""

    op: str
    x: np.ndarray
    weights: object
    idx: np.ndarray
    cval: float
    out_shape: tuple
    dtype: np.dtype

    family = "ndimage"

    empty = property(lambda self: self.x.size == 0)

    def kernel_args(self, out):
        """``(x, weights, idx, cval, out)``."""
        return (self.x, self.weights, self.idx, self.cval, out)


def line_spec(x, weights, axis, mode, cval, origin):
    """The :class:`LineSpec` of a pass of the C-contiguous float32 or float64 array ``x``
    along ``axis``: a correlation with the float64 weights ``weights`` (a 1-D array), or
    scipy's running-sum box mean of size ``weights`` (an int); ``mode`` a canonical mode
    name, ``origin`` an int valid for the filter's size. The output is viewed as
    ``out_shape`` (the kernel's ``(outer, n, inner)``), of ``x``'s shape."""
    box = isinstance(weights, int)
    n = x.shape[axis]
    k = weights if box else weights.shape[0]
    x3 = x.reshape(math.prod(x.shape[:axis]), n, math.prod(x.shape[axis + 1:]))
    # the cval as the kernel's dtype sees it: a float32 pass rounds it to float32 once,
    # where scipy's double line buffers keep it (a cval float32 cannot hold gives results
    # that differ from scipy's in their last bits)
    return LineSpec("nd_uniform1d" if box else "nd_correlate1d", x3, weights,
                    line_index(n, k, origin, mode), float(cval), x3.shape, x.dtype)


class SepSpec(NamedTuple):
    """The last two passes of a separable filter as one call: ``op`` ``"nd_sepcorr"`` (two
    correlations, ``w0`` and ``w1`` float64 weights) or ``"nd_sepbox"`` (two box means,
    ``w0`` and ``w1`` their sizes), along axis 1 of ``x`` (the C-contiguous ``(outer, n,
    inner)`` float32 or float64 view of the input: its last two axes) with ``w0`` and
    ``idx0``, then along axis 2 with ``w1`` and ``idx1`` (each as a :class:`LineSpec`'s
    ``weights`` and ``idx``). The output has ``x``'s shape and dtype
    (:func:`fastconv.reference.nd_sepcorr`, :func:`fastconv.reference.nd_sepbox`)."""

    op: str
    x: np.ndarray
    w0: object
    idx0: np.ndarray
    w1: object
    idx1: np.ndarray
    cval: float
    out_shape: tuple
    dtype: np.dtype

    family = "ndimage"

    empty = property(lambda self: self.x.size == 0)

    def kernel_args(self, out):
        """``(x, w0, idx0, w1, idx1, cval, out)``."""
        return (self.x, self.w0, self.idx0, self.w1, self.idx1, self.cval, out)


def sep_spec(x, first, last, cval):
    """The :class:`SepSpec` of the passes ``first`` along axis ``x.ndim - 2`` and ``last``
    along the last axis of the C-contiguous float32 or float64 array ``x`` (at least 2-D),
    each ``(weights, canonical mode, origin)``: both float64 weights (correlations) or both
    box sizes (ints)."""
    (w0, mode0, origin0), (w1, mode1, origin1) = first, last
    box = isinstance(w0, int)
    if box != isinstance(w1, int):
        raise ValueError("sep_spec: a correlation and a box mean do not fuse")
    n, inner = x.shape[-2:]
    x3 = x.reshape(math.prod(x.shape[:-2]), n, inner)
    k0, k1 = (w0, w1) if box else (w0.shape[0], w1.shape[0])
    return SepSpec("nd_sepbox" if box else "nd_sepcorr", x3, w0,
                   line_index(n, k0, origin0, mode0), w1, line_index(inner, k1, origin1, mode1),
                   float(cval), x3.shape, x.dtype)


class CorrelateSpec(NamedTuple):
    """The n-D correlation on a padded input: ``xp`` the flat, contiguous padded input
    (float32 or float64), ``base`` the flat index in ``xp`` of each output line's first
    element (the lines run along the last axis), ``offs`` each kept tap's flat offset and
    ``weights`` its float64 weight; the output is ``out_shape`` ``(lines, line length)``
    (:func:`fastconv.reference.nd_correlate`)."""

    xp: np.ndarray
    base: np.ndarray
    offs: np.ndarray
    weights: np.ndarray
    out_shape: tuple
    dtype: np.dtype

    op = "nd_correlate"
    family = "ndimage"

    # no output element, or no tap kept: zeros (a sum over no terms)
    empty = property(lambda self: 0 in self.out_shape or self.weights.size == 0)

    def kernel_args(self, out):
        """``(xp, base, offs, weights, out)``."""
        return (self.xp, self.base, self.offs, self.weights, out)


def correlate_spec(xp, wk, perm=None):
    """The :class:`CorrelateSpec` of the valid correlation of the padded, C-contiguous
    float array ``xp`` (at least 1-D) with ``wk`` (float64, ``xp.ndim`` dimensions, each
    no longer than ``xp``'s). Taps with ``|w| <= eps`` are left out, as scipy's
    NI_Correlate leaves them (so 0 * inf never enters a sum). The output, of shape
    ``tuple(s - k + 1)``, is viewed as ``out_shape``: its lines along the last axis.

    With ``perm``, ``xp`` is the padded input transposed by ``perm`` (a copy made
    C-contiguous) and ``wk`` the kernel as it is: the output is the transposed one, its
    lines along the input's axis ``perm[-1]``, and the taps keep ``wk``'s order, so each
    output is the same sum, in the same order, as without the transpose."""
    perm = list(range(wk.ndim)) if perm is None else list(perm)
    oshape = tuple(s - wk.shape[p] + 1 for s, p in zip(xp.shape, perm))
    strides = np.array(xp.strides, dtype=np.int64) // xp.itemsize
    taps = np.argwhere(np.abs(wk) > _EPS)
    w = np.ascontiguousarray(wk[tuple(taps.T)], dtype=np.float64)
    offs = np.ascontiguousarray(taps[:, perm] @ strides, dtype=np.int64)
    base = np.zeros(oshape[:-1], np.int64)
    for a, n in enumerate(oshape[:-1]):
        shape = [1] * len(oshape[:-1])
        shape[a] = n
        base = base + (np.arange(n, dtype=np.int64) * strides[a]).reshape(shape)
    base = np.ascontiguousarray(base.reshape(-1))
    return CorrelateSpec(xp.reshape(-1), base, offs, w, (base.size, oshape[-1]), xp.dtype)
