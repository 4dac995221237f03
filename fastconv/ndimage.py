"""Drop-in, multithreaded replacements for scipy.ndimage's linear and rank filters.

``from fastconv import ndimage`` in place of ``from scipy import ndimage``: the functions
have scipy.ndimage's signatures, defaults, results and dtypes (the result has the input's
dtype unless ``output=`` gives another; integer outputs truncate as scipy's do), every
boundary mode (``reflect``, ``constant`` with ``cval``, ``nearest``, ``mirror``, ``wrap``
and the ``grid-*`` aliases), ``origin`` and ``axes``, on arrays of any number of
dimensions, real, integer or complex. Each also takes a keyword-only ``backend=``.

How they compute
----------------
- :func:`correlate1d`, :func:`convolve1d`, :func:`uniform_filter1d`,
  :func:`gaussian_filter1d` and the separable :func:`uniform_filter` and
  :func:`gaussian_filter` run 1-D correlation passes along each filtered axis (no
  full-size kernel is built): the kernels ``nd_correlate1d`` (a correlation) and
  ``nd_uniform1d`` (scipy's running-sum box mean, O(1) per output) of each backend
  (Cython + OpenMP, Numba, NumPy reference), which read the boundary through an index map
  of the extended line. The passes along the last two axes, in that order (a 2-D
  :func:`gaussian_filter`'s or :func:`uniform_filter`'s both), run as one call
  (``nd_sepcorr``: each row of the first pass goes through the second at once;
  ``nd_sepbox``, on arrays of at least two planes per thread: bands of rows of the first
  pass go through the second while in cache), so the array between them never goes to
  memory (the same bits as two calls).
- :func:`correlate` and :func:`convolve` with a full n-D kernel pad the input
  (:func:`fastconv._ndspec.pad`) and run the kernel ``nd_correlate`` on it: each output line
  (along the last axis) sums the padded input's lines shifted by each tap's offset, in
  float64, any number of dimensions. Taps with ``|w| <= eps`` are skipped, as scipy's.
- float32 input and output keep float32 arrays; everything else computes in float64, as
  scipy does. The sums run in float64, as scipy's (so the results are scipy's to the bit),
  except the correlation passes of float32 data (:func:`correlate1d`,
  :func:`convolve1d`, :func:`gaussian_filter1d`, :func:`gaussian_filter`), which sum in
  float32 with the weights (and cval) rounded to float32, as OpenCV and NumPy do (twice
  as many values a vector): each pass's output is within ``(k + 2) * 2**-24 * sum_j
  |w[j] x[j]|`` of its exact sum (a few float32 roundings from scipy's) barring underflow
  and overflow, and where ``sum_j |w[j] x[j]|`` or twice the largest ``|x|`` nears
  float32's largest value a pass can give inf or NaN where scipy's float64 sums do not.
  Complex inputs or weights run as real passes (scipy's own decomposition).
- Separable filters whose output dtype is not the one they compute in (an integer,
  float16, or float32 from a float64 or integer input) store every pass's result in the
  output's dtype before the next pass, as scipy's do (and then run no pair of passes as
  one call).
- The rank filters :func:`maximum_filter`, :func:`minimum_filter`, their ``1d`` forms,
  :func:`median_filter`, :func:`rank_filter` and :func:`percentile_filter` (module ``fastconv._ndrank``) keep the input's dtype and compute
  exactly in it. A box (``size``, or an all-True footprint) runs as 1-D passes along each
  axis (O(1) per output for wide windows); other footprints run a footprint kernel;
  medians use sorting networks vectorized across outputs (3x3 and 5x5 boxes) or a
  selection.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from . import _dispatch, _ndspec, _threads
from ._ndrank import (  # noqa: F401  (the rank filters, re-exported)
    maximum_filter,
    maximum_filter1d,
    median_filter,
    minimum_filter,
    minimum_filter1d,
    percentile_filter,
    rank_filter,
)

__all__ = [
    "correlate",
    "convolve",
    "correlate1d",
    "convolve1d",
    "uniform_filter",
    "uniform_filter1d",
    "gaussian_filter",
    "gaussian_filter1d",
    "maximum_filter",
    "minimum_filter",
    "maximum_filter1d",
    "minimum_filter1d",
    "median_filter",
    "rank_filter",
    "percentile_filter",
]


# ---------------------------------------------------------------------------------------
# the 1-D pass
# ---------------------------------------------------------------------------------------
def _compute_dtype(in_dtype, out_dtype):
    """float32 when both sides are float32 (or complex64), else float64."""
    small = (np.dtype(np.float32), np.dtype(np.complex64))
    return np.dtype(np.float32) if in_dtype in small and out_dtype in small \
        else np.dtype(np.float64)


def _pass(x, w, axis, mode, cval, origin, backend, dest=None):
    """One pass of the C-contiguous float array ``x`` along ``axis``: a correlation with
    the float64 weights ``w``, or scipy's running-sum box mean of size
    ``w`` (an int); the result in ``dest`` (C-contiguous, x's dtype) or a new array."""
    out = np.empty(x.shape, x.dtype) if dest is None else dest
    spec = _ndspec.line_spec(x, w, axis, mode, cval, origin)
    _dispatch.run(spec.op, backend, spec, out.reshape(spec.out_shape))
    return out


def _chain(input, output, passes, cval, backend):
    """The separable filter ``passes`` [(axis, float64 weights or a box size, mode,
    origin)] of the real array ``input`` into ``output``; scipy's intermediate stores in the
    output's dtype when that is not the compute dtype (an integer, float16, or float32 from
    float64 sums). Otherwise the last two passes, when they run along the last two axes in
    that order, both correlations or both box means, run as one call (:func:`_fuses`)."""
    ct = _compute_dtype(input.dtype, output.dtype)
    per_pass = output.dtype != ct
    cur = np.ascontiguousarray(input, dtype=ct)
    i = 0
    while i < len(passes):
        fused = (i == len(passes) - 2 and not per_pass
                 and _fuses(cur.shape, passes[i], passes[i + 1]))
        dest = None
        if ((fused or i == len(passes) - 1) and output.dtype == ct
                and output.flags.c_contiguous and not np.may_share_memory(output, cur)):
            dest = output
        if fused:
            out = np.empty(cur.shape, cur.dtype) if dest is None else dest
            first, last = ((w if isinstance(w, int) else np.ascontiguousarray(w, np.float64),
                            mode, origin) for _, w, mode, origin in passes[i:])
            spec = _ndspec.sep_spec(cur, first, last, cval)
            _dispatch.run(spec.op, backend, spec, out.reshape(spec.out_shape))
            cur = out
            i += 2
        else:
            axis, w, mode, origin = passes[i]
            if not isinstance(w, int):
                w = np.ascontiguousarray(w, dtype=np.float64)  # float32 passes round them once
            cur = _pass(cur, w, axis, mode, cval, origin, backend, dest)
            i += 1
        if cur is output:
            return output
        if per_pass:
            _ndspec.store(cur, output)
            cur = np.ascontiguousarray(output, dtype=ct)
    return _ndspec.store(cur, output)


# the most a fused pair of passes keeps per thread: a correlation's ring of k0 + 3 rows of the
# last axis (float64), a uniform filter's four extended rows and their float64 copies
# (beside a band of rows of about 256 KiB, a thread's or shared: fastconv._cy_ndfilt.
# nd_sepbox); past it, they no longer stay in a core's L2
_FUSED_RING_BYTES = 1 << 20
# the largest plane (last two axes) a fused pair of box means runs: its first pass runs down
# a plane's rows in order, so a long call (fastconv._chunks) can be cut only between planes
# (up to this, a plane takes well under SPLIT_SECONDS on any backend: Ctrl-C stays prompt)
_FUSED_BOX_PLANE = 1 << 22


def _fuses(shape, first, last):
    """Whether the passes ``first`` and ``last`` on an array of ``shape`` run as one call
    (``nd_sepcorr``, ``nd_sepbox``): two correlations, or two box means, along its last two
    axes in that order, whose rows kept per thread take at most :data:`_FUSED_RING_BYTES`
    (and box means on at least two planes per thread, of at most :data:`_FUSED_BOX_PLANE`
    elements).
    The result is the two passes' to the bit; the array between them never goes to
    memory."""
    nd = len(shape)
    if nd < 2 or first[0] != nd - 2 or last[0] != nd - 1:
        return False
    box = isinstance(first[1], int)
    if box != isinstance(last[1], int):
        return False
    if box:
        # whole planes per thread only: threads that share a plane meet at barriers four
        # times a band, and on a busy 2-core AMD EPYC (Zen 2) a 2048^2 float64 pair ran
        # slower so (9.4-10.0 ms against cv2's 9.0-10.0 in the paired bench) than as two
        # passes (8.3 ms); with whole planes, 128^3 float64 went 8.0 -> 5.8 ms
        return (math.prod(shape[:-2]) >= 2 * _threads.get_num_threads()
                and shape[-2] * shape[-1] <= _FUSED_BOX_PLANE
                and 4 * (shape[-1] + last[1]) * 16 <= _FUSED_RING_BYTES)
    # a thread's ring: the k0 + 3 rows (of doubles, 16 apart) four output rows read
    return (len(first[1]) + 3) * (shape[-1] + 16) * 8 <= _FUSED_RING_BYTES


def _real_cval(cval):
    if isinstance(cval, (complex, np.complexfloating)) and cval.imag != 0:
        raise _ndspec.ArgumentError("cval: a complex cval needs a complex input")
    try:
        return float(np.real(cval))
    except (TypeError, ValueError):
        raise TypeError(f"cval must be a number, got {cval!r}") from None


def _separable(input, output, passes, cval, backend):
    """``passes`` over ``input`` (real or complex) into ``output`` (its real and imaginary
    parts apart when complex)."""
    if input.dtype.kind == "c":
        if output.dtype.kind != "c":
            raise _ndspec.ArgumentError("output must have a complex dtype for a complex "
                                        "input")
        _chain(input.real, output.real, passes, float(np.real(cval)), backend)
        _chain(input.imag, output.imag, passes, float(np.imag(cval)), backend)
        return output
    return _chain(input, output, passes, _real_cval(cval), backend)


def _axis(axis, ndim):
    try:
        return int(np.lib.array_utils.normalize_axis_index(axis, ndim))
    except np.exceptions.AxisError:
        raise
    except TypeError:
        raise TypeError(f"axis must be an integer, got {axis!r}") from None


def _asarray(input):
    x = np.asarray(input)
    if x.dtype.kind not in "biufc":
        raise TypeError(f"input must be a numeric array, got dtype {x.dtype}")
    return x


def _weights1d(weights):
    w = np.asarray(weights)
    if w.dtype.kind not in "biufc":
        raise TypeError(f"weights must be numeric, got dtype {w.dtype}")
    if w.ndim != 1 or w.shape[0] < 1:
        raise _ndspec.ArgumentError(f"weights must be a non-empty 1-D array (no filter "
                                    f"weights given), got shape {w.shape}")
    return w


def _complex_via_real_components(func, input, weights, output, cval, **kwargs):
    """scipy's decomposition of a complex filter into real ones (same order of terms)."""
    complex_input = input.dtype.kind == "c"
    complex_weights = weights.dtype.kind == "c"
    if complex_input and complex_weights:
        func(input.real, weights.real, output=output.real, cval=np.real(cval), **kwargs)
        output.real -= func(input.imag, weights.imag, output=None, cval=np.imag(cval),
                            **kwargs)
        func(input.real, weights.imag, output=output.imag, cval=np.real(cval), **kwargs)
        output.imag += func(input.imag, weights.real, output=None, cval=np.imag(cval),
                            **kwargs)
    elif complex_input:
        func(input.real, weights, output=output.real, cval=np.real(cval), **kwargs)
        func(input.imag, weights, output=output.imag, cval=np.imag(cval), **kwargs)
    else:
        if np.iscomplexobj(cval):
            raise _ndspec.ArgumentError("cval: a complex cval needs a complex input")
        func(input, weights.real, output=output.real, cval=cval, **kwargs)
        func(input, weights.imag, output=output.imag, cval=cval, **kwargs)
    return output


# ---------------------------------------------------------------------------------------
# 1-D filters
# ---------------------------------------------------------------------------------------
def correlate1d(input, weights, axis=-1, output=None, mode="reflect", cval=0.0, origin=0,
                *, backend=None):
    """Calculate a 1-D correlation along the given axis, as
    ``scipy.ndimage.correlate1d``.

    The lines of the array along ``axis`` are correlated with ``weights``:
    ``out[i] = sum_j weights[j] * in[i + j - len(weights) // 2 - origin]`` on the line
    extended by ``mode``.

    Parameters
    ----------
    input : array_like
        The input array (any dtype scipy takes: integer, float, complex).
    weights : array_like
        1-D sequence of numbers (complex weights are conjugated, as scipy does).
    axis : int, optional
        The axis of ``input`` along which to calculate. Default -1.
    output : ndarray or dtype, optional
        The array in which to place the output, or the dtype of the returned array. By
        default an array of the input's dtype is created.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap', 'grid-mirror', \
'grid-constant', 'grid-wrap'}, optional
        How the input is extended beyond its boundaries. Default 'reflect'.
    cval : scalar, optional
        The value past the edges in 'constant' mode. Default 0.0.
    origin : int, optional
        Shifts the filter: ``-(len(weights) // 2) <= origin <= (len(weights) - 1) // 2``.
    backend : str, optional
        Keyword-only: ``"auto"``, ``"cython"``, ``"numba"`` or ``"numpy"``.

    Returns
    -------
    ndarray
        The result (``output`` when it is an array).

    Examples
    --------
    >>> from fastconv import ndimage
    >>> ndimage.correlate1d([2, 8, 0, 4, 1, 9, 9, 0], weights=[1, 3])
    array([ 8, 26,  8, 12,  7, 28, 36,  9])
    """
    input = _asarray(input)
    weights = _weights1d(weights)
    if input.dtype.kind == "c" or weights.dtype.kind == "c":
        if weights.dtype.kind == "c":
            weights = weights.conj().astype(np.complex128, copy=False)
        output = _ndspec.output(output, input, complex_output=True)
        return _complex_via_real_components(
            correlate1d, input, weights, output, cval, axis=axis, mode=mode, origin=origin,
            backend=backend)
    output = _ndspec.output(output, input)
    weights = np.asarray(weights, dtype=np.float64)
    axis = _axis(axis, input.ndim)
    origin = _ndspec.origins(origin, (weights.shape[0],))[0]
    mode = _ndspec.modes(mode, 1)[0]
    return _chain(input, output, [(axis, weights, mode, origin)], _real_cval(cval), backend)


def convolve1d(input, weights, axis=-1, output=None, mode="reflect", cval=0.0, origin=0,
               *, backend=None):
    """Calculate a 1-D convolution along the given axis, as ``scipy.ndimage.convolve1d``.

    :func:`correlate1d` with the weights reversed and the origin mirrored (``-origin``,
    and one less for an even number of weights).

    Parameters
    ----------
    input, weights, axis, output, mode, cval, origin, backend
        As :func:`correlate1d`.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> from fastconv import ndimage
    >>> ndimage.convolve1d([2, 8, 0, 4, 1, 9, 9, 0], weights=[1, 3])
    array([14, 24,  4, 13, 12, 36, 27,  0])
    """
    weights = _weights1d(weights)[::-1]
    origin = -_origin_int(origin)
    if not weights.shape[0] & 1:
        origin -= 1
    if weights.dtype.kind == "c":
        weights = weights.conj()
    return correlate1d(input, weights, axis, output, mode, cval, origin, backend=backend)


def _origin_int(origin):
    try:
        import operator
        return operator.index(origin)
    except TypeError:
        raise _ndspec.ArgumentError(f"origin must be an integer, got {origin!r}") from None


def uniform_filter1d(input, size, axis=-1, output=None, mode="reflect", cval=0.0, origin=0,
                     *, backend=None):
    """Calculate a 1-D uniform (box mean) filter along the given axis, as
    ``scipy.ndimage.uniform_filter1d``.

    scipy's running sum, in float64: the first window's mean, then one element in and one
    out per output (so integer outputs truncate exactly as scipy's).

    Parameters
    ----------
    input : array_like
    size : int
        Length of the uniform filter (>= 1).
    axis, output, mode, cval, origin, backend
        As :func:`correlate1d`.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> from fastconv import ndimage
    >>> ndimage.uniform_filter1d([2, 8, 0, 4, 1, 9, 9, 0], size=3)
    array([4, 3, 4, 1, 4, 6, 6, 3])
    """
    input = _asarray(input)
    axis = _axis(axis, input.ndim)
    size = _size(size)
    output = _ndspec.output(output, input, complex_output=input.dtype.kind == "c")
    origin = _ndspec.origins(origin, (size,))[0]
    mode = _ndspec.modes(mode, 1)[0]
    return _separable(input, output, [(axis, _box(size), mode, origin)], cval, backend)


def _size(size, name="size"):
    """A filter size: an integer (or an integral float, as scipy's int(size)) >= 1."""
    if isinstance(size, (numbers.Integral, np.integer)):
        s = int(size)
    elif isinstance(size, (float, np.floating)) and float(size).is_integer():
        s = int(size)
    else:
        raise TypeError(f"{name} must be an integer, got {size!r}")
    if s < 1:
        raise _ndspec.ArgumentError(f"{name}: incorrect filter size {size!r} (must be >= 1)")
    return s


def _box(size):
    """A box pass's "weights": its size (the kernels' running sum, as scipy's)."""
    return int(size)


def gaussian_filter1d(input, sigma, axis=-1, order=0, output=None, mode="reflect", cval=0.0,
                      truncate=4.0, *, radius=None, backend=None):
    """1-D Gaussian filter (or one of its derivatives), as
    ``scipy.ndimage.gaussian_filter1d``.

    Parameters
    ----------
    input : array_like
    sigma : scalar
        Standard deviation of the Gaussian kernel.
    axis : int, optional
    order : int, optional
        0 convolves with the Gaussian; a positive order with that derivative of it.
    output, mode, cval
        As :func:`correlate1d`.
    truncate : float, optional
        Truncate the filter at this many standard deviations (default 4.0).
    radius : None or int, optional
        Keyword-only: the kernel's radius (``2 * radius + 1`` taps); overrides
        ``truncate``. Default ``round(truncate * sigma)``.
    backend : str, optional

    Returns
    -------
    ndarray

    Examples
    --------
    >>> from fastconv import ndimage
    >>> ndimage.gaussian_filter1d([1.0, 2.0, 3.0, 4.0, 5.0], 1)
    array([1.42704095, 2.06782203, 3.        , 3.93217797, 4.57295905])
    """
    sd = float(sigma)
    lw = int(truncate * sd + 0.5)
    if radius is not None:
        lw = radius
    if not isinstance(lw, numbers.Integral) or lw < 0:
        raise _ndspec.ArgumentError("radius must be a nonnegative integer")
    weights = _gaussian_kernel1d(sigma, _order(order), lw)[::-1]
    return correlate1d(input, weights, axis, output, mode, cval, 0, backend=backend)


def _order(order):
    try:
        import operator
        o = operator.index(order)
    except TypeError:
        raise TypeError(f"order must be an integer, got {order!r}") from None
    if o < 0:
        raise _ndspec.ArgumentError("order must be non-negative")
    return o


def _gaussian_kernel1d(sigma, order, radius):
    """scipy's 1-D Gaussian kernel (or its ``order``-th derivative), ``2 * radius + 1``
    taps, float64."""
    exponent_range = np.arange(order + 1)
    sigma2 = sigma * sigma
    x = np.arange(-radius, radius + 1)
    phi_x = np.exp(-0.5 / sigma2 * x ** 2)
    phi_x = phi_x / phi_x.sum()
    if order == 0:
        return phi_x
    q = np.zeros(order + 1)
    q[0] = 1
    D = np.diag(exponent_range[1:], 1)
    P = np.diag(np.ones(order) / -sigma2, -1)
    Q_deriv = D + P
    for _ in range(order):
        q = Q_deriv.dot(q)
    q = (x[:, None] ** exponent_range).dot(q)
    return q * phi_x


# ---------------------------------------------------------------------------------------
# separable n-D filters
# ---------------------------------------------------------------------------------------
def uniform_filter(input, size=3, output=None, mode="reflect", cval=0.0, origin=0, *,
                   axes=None, backend=None):
    """Multidimensional uniform (box mean) filter, as ``scipy.ndimage.uniform_filter``:
    :func:`uniform_filter1d` along each filtered axis (axes of size 1 are skipped).

    Parameters
    ----------
    input : array_like
    size : int or sequence of ints, optional
        The box's size, one for all filtered axes or one per axis (a size <= 1 leaves its
        axis as it is). Default 3.
    output : ndarray or dtype, optional
    mode : str or sequence of str, optional
        One mode, or one per filtered axis.
    cval : scalar, optional
    origin : int or sequence of ints, optional
    axes : tuple of int or None, optional
        Keyword-only: the axes filtered (default all).
    backend : str, optional

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import ndimage
    >>> ndimage.uniform_filter(np.arange(9.0).reshape(3, 3), size=3, mode="nearest")
    array([[1.33333333, 2.        , 2.66666667],
           [3.33333333, 4.        , 4.66666667],
           [5.33333333, 6.        , 6.66666667]])
    """
    input = _asarray(input)
    output = _ndspec.output(output, input, complex_output=input.dtype.kind == "c")
    axes = _ndspec.axes(axes, input.ndim)
    n = len(axes)
    # as scipy: sizes <= 1 (0 included) leave their axis unfiltered
    sizes = tuple(_size(s) if not (isinstance(s, numbers.Real) and s <= 1) else 1
                  for s in _ndspec.sequence(size, n, "size"))
    origins = _ndspec.origins(origin, sizes)
    modes = _ndspec.modes(mode, n)
    passes = [(ax, _box(s), m, o) for ax, s, o, m in zip(axes, sizes, origins, modes)
              if s > 1]
    if not passes:
        output[...] = input
        return output
    return _separable(input, output, passes, cval, backend)


def gaussian_filter(input, sigma, order=0, output=None, mode="reflect", cval=0.0,
                    truncate=4.0, *, radius=None, axes=None, backend=None):
    """Multidimensional Gaussian filter, as ``scipy.ndimage.gaussian_filter``:
    :func:`gaussian_filter1d` along each filtered axis whose sigma exceeds 1e-15.

    Parameters
    ----------
    input : array_like
    sigma : scalar or sequence of scalars
        Standard deviation(s), one for all filtered axes or one per axis.
    order : int or sequence of ints, optional
        Derivative order per axis (0: the Gaussian).
    output : ndarray or dtype, optional
        The intermediate results are stored in the output's dtype (as scipy does): an
        integer output rounds each pass, a float32 output of a float64 input rounds each
        pass to float32.
    mode : str or sequence of str, optional
    cval : scalar, optional
    truncate : float, optional
        Truncate at this many standard deviations (default 4.0).
    radius : None, int or sequence of ints, optional
        Keyword-only: the kernel radius per axis; overrides ``truncate``.
    axes : tuple of int or None, optional
        Keyword-only: the axes filtered (default all).
    backend : str, optional

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import ndimage
    >>> ndimage.gaussian_filter(np.arange(50, step=2).reshape((5, 5)), sigma=1)
    array([[ 4,  6,  8,  9, 11],
           [10, 12, 14, 15, 17],
           [20, 22, 24, 25, 27],
           [29, 31, 33, 34, 36],
           [35, 37, 39, 40, 42]])
    """
    input = _asarray(input)
    output = _ndspec.output(output, input)
    axes = _ndspec.axes(axes, input.ndim)
    n = len(axes)
    orders = tuple(_order(o) for o in _ndspec.sequence(order, n, "order"))
    sigmas = tuple(float(s) for s in _ndspec.sequence(sigma, n, "sigma"))
    modes = _ndspec.modes(mode, n)
    radii = _ndspec.sequence(radius, n, "radius")
    passes = []
    for ax, s, o, m, r in zip(axes, sigmas, orders, modes, radii):
        if s <= 1e-15:
            continue
        lw = int(truncate * s + 0.5) if r is None else r
        if not isinstance(lw, numbers.Integral) or lw < 0:
            raise _ndspec.ArgumentError("radius must be a nonnegative integer")
        passes.append((ax, _gaussian_kernel1d(s, o, int(lw))[::-1], m, 0))
    if not passes:
        output[...] = input
        return output
    return _separable(input, output, passes, cval, backend)


# ---------------------------------------------------------------------------------------
# n-D correlate / convolve with a full kernel
# ---------------------------------------------------------------------------------------
_EPS = np.finfo(np.float64).eps


def _corr_padded(xp, wk, backend, dest=None):
    """The valid correlation of the padded, C-contiguous float array ``xp`` with ``wk``
    (float64, same ndim): kernel ``nd_correlate`` over the output's lines along the last
    axis, each tap a shifted row of ``xp`` (:func:`fastconv._ndspec.correlate_spec`: taps
    with ``|w| <= eps`` are left out, as scipy's)."""
    if xp.ndim == 0:  # a 0-d input: one tap
        return (xp * wk if abs(wk) > _EPS else np.zeros((), xp.dtype)).astype(xp.dtype)
    oshape = tuple(s - k + 1 for s, k in zip(xp.shape, wk.shape))
    out = np.empty(oshape, xp.dtype) if dest is None else dest
    spec = _ndspec.correlate_spec(xp, wk)
    _dispatch.run("nd_correlate", backend, spec, out.reshape(spec.out_shape))
    return out


# An input of at least this many bytes is read in place, not padded into a copy (the copy
# then costs more than the border's extra calls; measured on 2048^2 float64 with 5x5, the
# copy was a third of the call).
_INPLACE_BYTES = 1 << 21


def _inplace_pays(shape, itemsize, kshape):
    """Whether :func:`_corr_inplace` takes an input of ``shape``: 2-D or more, large, and
    the outputs whose windows cross the border (computed apart) a small part of all."""
    if len(shape) < 2 or math.prod(shape) * itemsize < _INPLACE_BYTES:
        return False
    return (all(n >= k for n, k in zip(shape, kshape))
            and sum((k - 1) / n for n, k in zip(shape, kshape)) <= 0.25)


def _corr_inplace(x, wk, before, after, modes, cval, backend, out):
    """:func:`_corr_padded` of ``x`` extended by ``before``/``after`` in ``modes``, into
    ``out``, with no extended copy of ``x``. ``x`` is C-contiguous (float, 2-D or more),
    ``out`` C-contiguous with its shape and dtype, apart from it.

    Output line ``l`` (along the last axis, length ``W``) is first computed from the flat
    ``x`` as if its window started at ``x[l * W - shift]``, ``shift`` the flat offset of the
    window's center: right wherever the window lies inside ``x``, for every line whose reads
    stay in ``x``. The rest, the outputs within ``before``/``after`` of an edge on some axis
    (and the one interior line at each end whose reads would leave ``x``), are then
    recomputed from their part of the extended input (:func:`fastconv._ndspec.pad_region`):
    the same values, taps and order as the padded path's, so the same bits."""
    shape, n, W = x.shape, x.ndim, x.shape[-1]
    strides = np.array(x.strides, dtype=np.int64) // x.itemsize
    taps = np.argwhere(np.abs(wk) > _EPS)
    w = np.ascontiguousarray(wk[tuple(taps.T)], dtype=np.float64)
    offs = np.ascontiguousarray(taps @ strides, dtype=np.int64)
    shift = int(np.dot(before, strides))
    span = int(offs.max(initial=0)) + W  # what one line reads, from its start
    nlines = x.size // W
    first = -(-shift // W)  # the first line whose reads start in x
    last = min(nlines - 1, (x.size - span + shift) // W)  # the last one ending in it
    if first > last:  # no line's reads stay in x: all of it from the extended input
        boxes = [[(0, s) for s in shape]]
    else:
        base = np.arange(first, last + 1, dtype=np.int64) * W - shift
        spec = _ndspec.CorrelateSpec(x.reshape(-1), base, offs, w, (last - first + 1, W),
                                     x.dtype)
        _dispatch.run("nd_correlate", backend, spec, out.reshape(nlines, W)[first:last + 1])
        boxes = []
        for a in range(n):  # the bands along each axis's edges
            for lo, hi in ((0, before[a]), (shape[a] - after[a], shape[a])):
                if hi > lo:
                    boxes.append([(0, s) for s in shape[:a]] + [(lo, hi)]
                                 + [(0, s) for s in shape[a + 1:]])
        # a line outside [first, last] whose window is inside x along the outer axes: only
        # the one just before `first` can be (an earlier one starts more than W before its
        # window, and an interior window starts at most W - 1 before) and the one just
        # after `last`; every other is in a band
        for line in (first - 1, last + 1):
            if 0 <= line < nlines:
                c = np.unravel_index(line, shape[:-1])
                if all(b <= ci < s - a for ci, s, b, a in zip(c, shape, before, after)):
                    boxes.append([(int(ci), int(ci) + 1) for ci in c] + [(0, W)])
    for box in boxes:
        region = [(lo, hi + k - 1) for (lo, hi), k in zip(box, wk.shape)]
        sub = _ndspec.pad_region(x, region, before, after, modes, cval)
        # the kernel's lines run along the box's longest axis (a band along the last axis
        # has lines of a few outputs, each costing a pass over the taps)
        a = max(range(n), key=lambda i: (box[i][1] - box[i][0], i))
        perm = [i for i in range(n) if i != a] + [a]
        sub = np.ascontiguousarray(sub.transpose(perm))
        res = np.empty(tuple(hi - lo for lo, hi in (box[i] for i in perm)), x.dtype)
        spec = _ndspec.correlate_spec(sub, wk, perm)
        _dispatch.run("nd_correlate", backend, spec, res.reshape(spec.out_shape))
        out[tuple(slice(lo, hi) for lo, hi in box)] = res.transpose(np.argsort(perm))


def _correlate_or_convolve(input, weights, output, mode, cval, origin, convolution, axes,
                           backend):
    input = _asarray(input)
    weights = np.asarray(weights)
    if weights.dtype.kind not in "biufc":
        raise TypeError(f"weights must be numeric, got dtype {weights.dtype}")
    if input.dtype.kind == "c" or weights.dtype.kind == "c":
        if weights.dtype.kind == "c" and not convolution:
            weights = weights.conj()
        output = _ndspec.output(output, input, complex_output=True)
        return _complex_via_real_components(
            _correlate_or_convolve, input, weights, output, cval, mode=mode, origin=origin,
            convolution=convolution, axes=axes, backend=backend)
    axes = _ndspec.axes(axes, input.ndim)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != len(axes):
        raise _ndspec.ArgumentError(f"weights.ndim ({weights.ndim}) must match len(axes) "
                                    f"({len(axes)})")
    if 0 in weights.shape:
        raise _ndspec.ArgumentError(f"weights must not be empty, got shape {weights.shape}")
    # the full-rank kernel (size 1 on the unfiltered axes) and per-axis origins and modes
    # (scipy: the weights' axes are the filtered axes in ascending order, whatever the
    # order of `axes`; origins and modes follow `axes`)
    full = [1] * input.ndim
    for a, s in zip(sorted(axes), weights.shape):
        full[a] = s
    wk = weights.reshape(full)
    orig = [_origin_int(o) for o in _ndspec.sequence(origin, len(axes), "origin")]
    # scipy: origin[i] is for axes[i] when some axes are not filtered, but in the array's
    # axis order when all are (whatever the order of `axes`)
    ax_origin = dict(zip(axes if len(axes) < input.ndim else range(input.ndim), orig))
    if not isinstance(mode, str) and np.iterable(mode):
        raise _ndspec.ArgumentError("mode: a sequence of modes is not supported by "
                                    "correlate and convolve (as in scipy)")
    mode = _ndspec.modes(mode, 1)[0]
    origins = [ax_origin.get(a, 0) for a in range(input.ndim)]
    if convolution:
        wk = wk[(slice(None, None, -1),) * wk.ndim]
        for a in range(input.ndim):
            origins[a] = -origins[a]
            if not wk.shape[a] & 1:
                origins[a] -= 1
    origins = _ndspec.origins(origins, wk.shape)
    cval = _real_cval(cval)
    output = _ndspec.output(output, input)
    if input.size == 0:
        return output
    ct = _compute_dtype(input.dtype, output.dtype)
    before = [k // 2 + o for k, o in zip(wk.shape, origins)]
    after = [k - 1 - b for k, b in zip(wk.shape, before)]
    modes = [mode if a in ax_origin else "constant" for a in range(input.ndim)]
    if _inplace_pays(input.shape, ct.itemsize, wk.shape) and np.abs(wk).max() > _EPS:
        x = np.ascontiguousarray(input, dtype=ct)
        direct = (output.dtype == ct and output.flags.c_contiguous
                  and not np.may_share_memory(output, x))
        res = output if direct else np.empty(x.shape, ct)
        _corr_inplace(x, wk, before, after, modes, cval, backend, res)
        return output if direct else _ndspec.store(res, output)
    xp = _ndspec.pad(np.asarray(input, dtype=ct), before, after, modes, cval)
    if xp.ndim:  # (np.ascontiguousarray makes a 0-d array 1-d)
        xp = np.ascontiguousarray(xp)
    # the result straight into the output when it can take it (no temporary)
    direct = (output.dtype == ct and output.flags.c_contiguous and input.ndim > 0
              and not np.may_share_memory(output, xp))
    res = _corr_padded(xp, wk, backend, output if direct else None)
    return output if direct else _ndspec.store(res, output)


def correlate(input, weights, output=None, mode="reflect", cval=0.0, origin=0, *,
              axes=None, backend=None):
    """Multidimensional correlation, as ``scipy.ndimage.correlate``.

    ``out[i] = sum_j weights[j] * in[i + j - weights.shape // 2 - origin]`` over the
    filtered axes, on the input extended by ``mode``.

    Parameters
    ----------
    input : array_like
    weights : ndarray
        The kernel: ``input.ndim`` dimensions, or ``len(axes)`` when ``axes`` is given
        (complex weights are conjugated, as scipy does).
    output : ndarray or dtype, optional
    mode : str, optional
        One mode for every filtered axis (as scipy, a sequence is refused).
    cval : scalar, optional
    origin : int or sequence of ints, optional
    axes : tuple of int or None, optional
        Keyword-only: the axes filtered (default all).
    backend : str, optional

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import ndimage
    >>> a = np.arange(25).reshape(5, 5)
    >>> ndimage.correlate(a, np.ones((2, 2)), mode="constant")[:2]
    array([[ 0,  1,  3,  5,  7],
           [ 5, 12, 16, 20, 24]])
    """
    return _correlate_or_convolve(input, weights, output, mode, cval, origin, False, axes,
                                  backend)


def convolve(input, weights, output=None, mode="reflect", cval=0.0, origin=0, *,
             axes=None, backend=None):
    """Multidimensional convolution, as ``scipy.ndimage.convolve``: :func:`correlate`
    with the weights reversed on every axis and each origin mirrored (``-origin``, and
    one less along an axis with an even number of weights).

    Parameters
    ----------
    input, weights, output, mode, cval, origin, axes, backend
        As :func:`correlate`.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import ndimage
    >>> a = np.array([[1, 2, 0, 0], [5, 3, 0, 4], [0, 0, 0, 7], [9, 3, 0, 0]])
    >>> k = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0]])
    >>> ndimage.convolve(a, k, mode="constant", cval=0.0)
    array([[11, 10,  7,  4],
           [10,  3, 11, 11],
           [15, 12, 14,  7],
           [12,  3,  7,  0]])
    """
    return _correlate_or_convolve(input, weights, output, mode, cval, origin, True, axes,
                                  backend)
