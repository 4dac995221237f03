"""Argument handling shared by :mod:`fastconv.ndimage`'s filters, with scipy.ndimage's
semantics (``scipy/ndimage/_ni_support.py``): mode names, per-axis sequences, ``axes``,
``origin`` ranges, ``output=`` and the padding and output casts of scipy's C filters.

Errors are ValueError/TypeError naming the argument. Where scipy raises RuntimeError (a
sequence of the wrong length, an ``output`` of the wrong shape) the error is an instance of
both ValueError and RuntimeError, so code written against either keeps working.
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Iterable

import numpy as np

__all__ = ["MODES", "modes", "axes", "sequence", "origins", "output", "pad", "store"]

#: every mode name scipy.ndimage's filters accept -> the canonical name for a filter
#: (for filters scipy treats grid-constant as constant, grid-mirror as reflect, grid-wrap as
#: wrap: ``_extend_mode_to_code(mode, is_filter=True)``)
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

# scipy's filters mode -> np.pad's mode
_NP_PAD = {"reflect": "symmetric", "mirror": "reflect", "nearest": "edge", "wrap": "wrap",
           "constant": "constant"}


class _ArgumentError(ValueError, RuntimeError):
    """A bad argument where scipy raises RuntimeError: catchable as either."""


def sequence(value, n, name):
    """scipy's ``_normalize_sequence``: a str or a non-iterable is repeated ``n`` times; an
    iterable must have length ``n``."""
    if not isinstance(value, str) and np.iterable(value):
        out = tuple(value)
        if len(out) != n:
            raise _ArgumentError(f"{name}: sequence argument must have length equal to the "
                                 f"number of filtered axes ({n}), got {len(out)}")
        return out
    return (value,) * n


def modes(mode, n, name="mode"):
    """One canonical mode name per filtered axis (``mode`` a str or ``n`` strs)."""
    out = []
    for m in sequence(mode, n, name):
        if not isinstance(m, str):
            raise TypeError(f"{name} must be a str or a sequence of str, got {m!r}")
        try:
            out.append(MODES[m])
        except KeyError:
            raise ValueError(f"{name}: boundary mode not supported: {m!r} (one of "
                             f"{', '.join(MODES)})") from None
    return tuple(out)


def axes(axes, ndim):
    """scipy's ``_check_axes``: None means every axis; negatives are normalized; repeats or
    out-of-range axes raise ValueError naming ``axes``."""
    if axes is None:
        return tuple(range(ndim))
    if np.isscalar(axes) or isinstance(axes, (np.integer, int)):
        try:
            axes = (operator.index(axes),)
        except TypeError:
            raise TypeError(f"axes must be an integer, an iterable of integers or None, "
                            f"got {axes!r}") from None
    elif isinstance(axes, Iterable):
        try:
            axes = tuple(operator.index(a) for a in axes)
        except TypeError:
            raise TypeError(f"axes must be an integer, an iterable of integers or None, "
                            f"got {axes!r}") from None
    else:
        raise TypeError(f"axes must be an integer, an iterable of integers or None, "
                        f"got {axes!r}")
    for a in axes:
        if a < -ndim or a > ndim - 1:
            raise ValueError(f"axes: specified axis {a} is out of range for an input of "
                             f"{ndim} dimensions")
    axes = tuple(a % ndim if a < 0 else a for a in axes)
    if len(set(axes)) != len(axes):
        raise ValueError(f"axes must be unique, got {axes}")
    return axes


def origins(origin, sizes, name="origin"):
    """One int origin per filtered axis; each in ``[-(size // 2), (size - 1) // 2]``."""
    sizes = tuple(sizes)
    out = []
    for o, s in zip(sequence(origin, len(sizes), name), sizes):
        try:
            o = operator.index(o)
        except TypeError:
            raise TypeError(f"{name} must be an integer or a sequence of integers, "
                            f"got {o!r}") from None
        if not -(s // 2) <= o <= (s - 1) // 2:
            raise ValueError(f"invalid {name} {o} for a filter of size {s}: it must lie in "
                             f"[{-(s // 2)}, {(s - 1) // 2}]")
        out.append(o)
    return tuple(out)


def output(output, input, shape=None, complex_output=False):
    """scipy's ``_ni_support._get_output``: a new array (``output`` None, a dtype, a type or
    a str) or the given array, checked."""
    if shape is None:
        shape = input.shape
    shape = tuple(shape)
    if output is None:
        if not complex_output:
            dt = input.dtype
        elif input.dtype.kind == "c":
            dt = input.dtype
        else:
            dt = np.promote_types(input.dtype, np.complex64)
        return np.zeros(shape, dtype=dt)
    if isinstance(output, (type, np.dtype)):
        try:
            dt = np.dtype(output)
        except TypeError:
            raise TypeError(f"output: not a dtype: {output!r}") from None
        if complex_output and dt.kind != "c":
            warnings.warn("promoting specified output dtype to complex", stacklevel=3)
            dt = np.promote_types(dt, np.complex64)
        return np.zeros(shape, dtype=dt)
    if isinstance(output, str):
        try:
            dt = np.dtype(output)
        except TypeError:
            raise TypeError(f"output: not a dtype name: {output!r}") from None
        if complex_output and dt.kind != "c":
            raise _ArgumentError("output must have complex dtype")
        if not issubclass(dt.type, np.number):
            raise _ArgumentError("output must have numeric dtype")
        return np.zeros(shape, dtype=dt)
    if not isinstance(output, np.ndarray):
        raise TypeError(f"output must be None, a dtype or an ndarray, got "
                        f"{type(output).__name__}")
    if output.shape != shape:
        raise _ArgumentError(f"output shape not correct: {output.shape}, expected {shape}")
    if complex_output and output.dtype.kind != "c":
        raise _ArgumentError("output must have complex dtype")
    if not output.flags.writeable:
        raise ValueError("output array is read-only")
    return output


def pad(x, before, after, modes, cval=0.0):
    """``x`` padded on each axis ``i`` by ``(before[i], after[i])`` as scipy's filters
    extend it in mode ``modes[i]`` (canonical names)."""
    x = np.asarray(x)
    for ax, (b, a, m) in enumerate(zip(before, after, modes)):
        if b == 0 and a == 0:
            continue
        m = MODES[m]
        widths = [(0, 0)] * x.ndim
        widths[ax] = (b, a)
        if m == "constant":
            x = np.pad(x, widths, mode="constant", constant_values=np.asarray(cval).astype(
                x.dtype) if x.dtype.kind != "f" and x.dtype.kind != "c" else cval)
        elif m == "mirror" and x.shape[ax] == 1:
            x = np.pad(x, widths, mode="edge")
        elif x.shape[ax] == 0:
            raise ValueError("pad: cannot extend an empty axis")
        else:
            x = np.pad(x, widths, mode=_NP_PAD[m])
    return x


def store(result, output):
    """Write ``result`` into ``output`` as scipy's C filters do (a plain C cast: float to
    integer truncates toward zero) and return ``output``."""
    with np.errstate(invalid="ignore", over="ignore"):
        np.copyto(output, result, casting="unsafe")
    return output
