"""``fastconv.signal``: scipy.signal's convolution functions, multithreaded (issue 18).

A drop-in for ``from scipy import signal`` where these functions are concerned::

    from fastconv import signal          # in place of: from scipy import signal
    signal.correlate2d(image, template, mode="same", boundary="symm")

:func:`convolve`, :func:`correlate`, :func:`convolve2d`, :func:`correlate2d` and
:func:`choose_conv_method` keep scipy.signal's signatures, defaults, results and **dtypes**:
the result has ``numpy.result_type(in1, in2)``, so integer inputs give integer results
(wrapping on overflow as scipy's do), float32 stays float32 and complex64 stays complex64.
(This differs from fastconv's top-level functions, which always return a floating dtype.)

How it computes
---------------
Every ``method="direct"`` call (and ``"auto"`` when it resolves to direct) is a composition
of fastconv's compiled convolution kernels, chosen by the keyword-only ``backend=``:

- 1-D: the conv2d kernel with a height-1 plane; 2-D: the conv2d kernel; 3-D: the conv3d
  kernel; n > 3: a loop over the leading n - 3 axes of ``in2``, each step one conv3d call
  whose batch holds the leading output positions.
- Complex inputs are real ones stacked as channels of one kernel call: a complex ``in1``
  is two input channels (real, imaginary), a complex ``in2`` two filters, and a complex
  product the four real ones ``[[re, -im], [im, re]]`` summed by the kernel.
- Integer and bool inputs compute in float64 (exact below 2**53) and are cast back:
  integers modulo their width, as scipy's integer arithmetic wraps; bool as ``!= 0``.
  float16 computes in float32. ``longdouble`` and object arrays raise TypeError.
- ``boundary="symm"``/``"wrap"``/a non-zero ``fillvalue`` extend ``in1`` once with a few
  slice copies; zero fill is the kernels' own implicit padding.

``method="fft"``, the FFT branch of ``"auto"``, :func:`fftconvolve` and :func:`oaconvolve`
run fastconv's FFT engine (overlap-save blocks on ``scipy.fft`` with fastconv's threads; see
the FFT guide in the docs). ``"auto"`` chooses by a cost model calibrated on this kind of
machine, and stays direct for integer and bool inputs (exact results).

Errors
------
Bad arguments raise ValueError or TypeError naming the argument, before any kernel runs;
the messages of scipy's own checks are kept where scipy has one.
"""

from __future__ import annotations

import itertools

import numpy as np

from . import _dispatch
from . import _fft
from . import _spec as S
from ._fft import fftconvolve, oaconvolve

__all__ = [
    "convolve",
    "correlate",
    "convolve2d",
    "correlate2d",
    "choose_conv_method",
    "sepfir2d",
    "fftconvolve",
    "oaconvolve",
]

_MODES = ("full", "same", "valid")
_METHODS = ("auto", "direct", "fft")
_BOUNDARIES = {"fill": "fill", "pad": "fill", "wrap": "wrap", "circular": "wrap",
               "symm": "symm", "symmetric": "symm"}


# --------------------------------------------------------------------------------------------
# arguments and dtypes
# --------------------------------------------------------------------------------------------
def _array(a, name):
    """``np.asarray(a)`` of a numeric dtype fastconv computes (bool, int, float <= 64 bits,
    complex <= 128 bits), else TypeError naming ``name``."""
    if isinstance(a, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array, got a {type(a).__name__}")
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} must be a numeric array: {exc}") from None
    if arr.dtype.kind not in "biufc":
        raise TypeError(f"{name} must be a numeric array (bool, int, float or complex), "
                        f"got dtype {arr.dtype}")
    if not _computable(arr.dtype):
        raise TypeError(f"{name} has dtype {arr.dtype}: fastconv computes in at most float64 "
                        "(complex128)")
    return arr


def _computable(dt):
    """Whether fastconv computes arrays of dtype ``dt`` (not longdouble, object, str...)."""
    return dt.kind in "biu" or (dt.kind == "f" and dt.itemsize <= 8) or \
        (dt.kind == "c" and dt.itemsize <= 16)


def _mode(mode):
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError("Acceptable mode flags are 'valid', 'same', or 'full'; "
                         f"mode={mode!r}")
    return mode


def _method(method):
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError("Acceptable method flags are 'auto', 'direct', or 'fft'; "
                         f"method={method!r}")
    return method


def _compute_dtype(out_dtype):
    """The real dtype the kernels compute in for a result of ``out_dtype``."""
    if out_dtype.kind in "fc" and out_dtype.itemsize <= (8 if out_dtype.kind == "c" else 4):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _cast_result(r, out_dtype):
    """The computed (float or complex) result ``r`` as scipy's ``out_dtype``."""
    if r.dtype == out_dtype:
        return r
    kind = out_dtype.kind
    if kind == "b":
        return r != 0
    if kind in "iu":
        # scipy's integer arithmetic wraps: the (exact, below 2**53) sums reduced modulo
        # 2**64 into int64's range (fmod and these shifts are exact in float64), then
        # wrapped to the width by the integer cast
        r = np.fmod(np.rint(r), 2.0 ** 64)
        r[r >= 2.0 ** 63] -= 2.0 ** 64
        r[r < -2.0 ** 63] += 2.0 ** 64
        return r.astype(np.int64).astype(out_dtype)
    return r.astype(out_dtype)


def _swap_needed(mode, s1, s2):
    """scipy's ``_inputs_swap_needed``: in 'valid' mode, whether ``in2`` is the larger."""
    if mode != "valid" or not s1:
        return False
    ok1 = all(a >= b for a, b in zip(s1, s2))
    ok2 = all(b >= a for a, b in zip(s1, s2))
    if not (ok1 or ok2):
        raise ValueError("For 'valid' mode, one must be at least as large as the other in "
                         f"every dimension (in1 {s1}, in2 {s2})")
    return not ok1


# --------------------------------------------------------------------------------------------
# the real core: (N, C, *sp) x (K, C, *ksp) -> (N, K, *out_sp), through the compiled kernels
# --------------------------------------------------------------------------------------------
def _conv_spec(x, w, lo, out_shape, nd):
    """The conv2d/conv3d spec of a stride-1, undilated, ungrouped correlation with implicit
    zero padding ``lo`` before each axis (the output shape decides the rest)."""
    cls = S.Conv3dSpec if nd == 3 else S.ConvSpec
    return cls(x=x, weight=w, bias=np.zeros(w.shape[0], x.dtype), stride=(1,) * nd,
               pad=tuple(lo), dilation=(1,) * nd, groups=1, out_shape=out_shape,
               dtype=x.dtype, has_bias=False, result_shape=out_shape)


def _real_corr(x, w, lo, out_sp, name):
    """``out[n, k, i] = sum_{c, j} x[n, c, i + j - lo] * w[k, c, j]`` with zeros outside
    ``x``: one kernel call in 1-D (conv2d, height 1), 2-D (conv2d) and 3-D (conv3d); for
    n > 3, one conv3d call per index of ``w``'s leading n - 3 axes."""
    nd = len(out_sp)
    N, K = x.shape[0], w.shape[0]
    dt = x.dtype
    out_shape = (N, K) + tuple(out_sp)
    S.check_alloc(out_shape, dt.itemsize, "the output")
    if nd <= 2:
        x4 = x if nd == 2 else x[:, :, None, :]
        w4 = w if nd == 2 else w[:, :, None, :]
        o4 = (N, K) + ((1,) if nd == 1 else ()) + tuple(out_sp)
        lo2 = ((0,) if nd == 1 else ()) + tuple(lo)
        res = np.empty(o4, dt)
        _dispatch.run("conv2d", name, _conv_spec(S.prepare(x4, dt), S.prepare(w4, dt),
                                                 lo2, o4, 2), res)
        return res.reshape(out_shape)
    if nd == 3:
        res = np.empty(out_shape, dt)
        _dispatch.run("conv3d", _dispatch.resolve(name, "conv3d"),
                      _conv_spec(S.prepare(x, dt), S.prepare(w, dt), lo, out_shape, 3), res)
        return res
    # n > 3: zero-pad the leading axes explicitly, then sum one 3-D correlation per leading
    # kernel index over a batch of every (n, leading output position)
    lead = nd - 3
    hi = [o + k - 1 - lo_ - s for o, k, lo_, s in
          zip(out_sp[:lead], w.shape[2:2 + lead], lo[:lead], x.shape[2:2 + lead])]
    pads = [(0, 0), (0, 0)] + [(lo_, max(h, 0)) for lo_, h in zip(lo[:lead], hi)] + \
        [(0, 0)] * 3
    S.check_alloc(tuple(s + sum(p) for s, p in zip(x.shape, pads)), dt.itemsize,
                  "the padded in1")
    xp = np.pad(x, pads) if any(p != (0, 0) for p in pads) else x
    C = x.shape[1]
    lead_out = tuple(out_sp[:lead])
    P = int(np.prod(lead_out))
    acc = np.zeros((N,) + lead_out + (K,) + tuple(out_sp[lead:]), dt)
    perm = (0,) + tuple(range(2, 2 + lead)) + (1,) + tuple(range(2 + lead, 2 + nd))
    for j in itertools.product(*[range(k) for k in w.shape[2:2 + lead]]):
        sl = (slice(None), slice(None)) + tuple(slice(a, a + o) for a, o in zip(j, lead_out))
        xs = xp[sl].transpose(perm).reshape((N * P, C) + xp.shape[2 + lead:])
        ws = w[(slice(None), slice(None)) + j]
        part = _real_corr(xs, ws, lo[lead:], out_sp[lead:], name)
        acc += part.reshape(acc.shape)
    back = (0, 1 + lead) + tuple(range(1, 1 + lead)) + tuple(range(2 + lead, 2 + nd))
    return np.ascontiguousarray(acc.transpose(back))


def _corr(x, w, lo, out_sp, name):
    """``out[i] = sum_j x[i + j - lo] * w[j]`` (no conjugate), zeros outside ``x``, for real
    or complex ``x`` and ``w`` of one real compute precision; a complex operand is stacked
    as channels (``x``) or filters (``w``) of one real kernel call."""
    xc, wc = x.dtype.kind == "c", w.dtype.kind == "c"
    if not (xc or wc):
        return _real_corr(x[None, None], w[None, None], lo, out_sp, name)[0, 0]
    if xc and wc:  # [re, im] channels; filters [[wr, -wi], [wi, wr]]: (re, im) of x * w
        X = np.stack([x.real, x.imag])[None]
        W = np.stack([np.stack([w.real, -w.imag]), np.stack([w.imag, w.real])])
        o = _real_corr(X, W, lo, out_sp, name)[0]
    elif xc:  # a batch of two planes, one filter
        o = _real_corr(np.stack([x.real, x.imag])[:, None], w[None, None], lo, out_sp,
                       name)[:, 0]
    else:  # one plane, two filters
        o = _real_corr(x[None, None], np.stack([w.real, w.imag])[:, None], lo, out_sp,
                       name)[0]
    res = np.empty(o.shape[1:], np.result_type(o.dtype, np.complex64))
    res.real = o[0]
    res.imag = o[1]
    return res


def _as_compute(a, rdt):
    """``a`` in the compute precision ``rdt`` (complex stays complex)."""
    if a.dtype.kind == "c":
        return a.astype(np.result_type(rdt, np.complex64), copy=False)
    return a.astype(rdt, copy=False)


def _out_shape(mode, s1, s2):
    if mode == "full":
        return tuple(a + b - 1 for a, b in zip(s1, s2))
    if mode == "same":
        return tuple(s1)
    return tuple(a - b + 1 for a, b in zip(s1, s2))


def _direct(volume, kernel, mode, name, same_lo):
    """scipy's direct n-D correlation ``sum volume[i + j - lo] * kernel[j]`` (no conjugate,
    no flip) in ``mode``, with ``lo`` = k - 1 (full), 0 (valid) or ``same_lo(k)`` (same); in
    the result dtype of the two."""
    out_dtype = np.result_type(volume, kernel)
    rdt = _compute_dtype(out_dtype)
    ks = kernel.shape
    lo = [k - 1 for k in ks] if mode == "full" else [0] * len(ks) if mode == "valid" \
        else [same_lo(k) for k in ks]
    r = _corr(_as_compute(volume, rdt), _as_compute(kernel, rdt), lo,
              _out_shape(mode, volume.shape, ks), name)
    return _cast_result(r, out_dtype)


def _nd_args(in1, in2, mode, method):
    in1 = _array(in1, "in1")
    in2 = _array(in2, "in2")
    mode = _mode(mode)
    method = _method(method)
    if in1.ndim != in2.ndim:
        raise ValueError(f"in1 and in2 should have the same dimensionality, got in1.ndim="
                         f"{in1.ndim} and in2.ndim={in2.ndim}")
    if in1.ndim and in1.size == 0:
        raise ValueError(f"in1 cannot be empty, got shape {in1.shape}")
    if in2.ndim and in2.size == 0:
        raise ValueError(f"in2 cannot be empty, got shape {in2.shape}")
    return in1, in2, mode, method


def _reverse(a):
    return a[(slice(None, None, -1),) * a.ndim]


def _fft_path(in1, in2, mode):
    out_dtype = np.result_type(in1, in2)
    # float32/64 and complex as they are (as scipy.signal.fftconvolve); integers and bool
    # as float64, float16 as float32
    in1, in2 = [a if a.dtype.kind in "fc" and a.dtype.itemsize >= 4 else
                a.astype(np.float32 if a.dtype.kind == "f" else np.float64) for a in (in1, in2)]
    out = _fft.fftconvolve(in1, in2, mode, None)
    if out_dtype.kind in "biu":
        out = np.rint(out.real if out.dtype.kind == "c" else out)
    return _cast_result(np.asarray(out), out_dtype)


def _auto_is_fft(in1, in2, mode):
    """Whether ``method='auto'`` takes the FFT: never for integer or bool inputs (exact
    results, as scipy's integer rule would allow only sometimes), else issue 19's cost
    model (``fastconv._fft.choose_method``)."""
    if in1.dtype.kind in "biu" and in2.dtype.kind in "biu":
        return False
    return _fft.choose_method(in1, in2, mode, None) == "fft"


# --------------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------------
def convolve(in1, in2, mode="full", method="auto", *, backend=None):
    """Convolve two N-dimensional arrays, as ``scipy.signal.convolve``.

    Parameters
    ----------
    in1, in2 : array_like
        Arrays of the same number of dimensions (both 0-d gives ``in1 * in2``); bool, int,
        float (up to 64 bits) or complex (up to 128 bits).
    mode : {'full', 'valid', 'same'}, default 'full'
        'same' is centered on ``in1``'s shape; in 'valid' mode one input must be at least
        as large as the other in every dimension (they commute).
    method : {'auto', 'direct', 'fft'}, default 'auto'
        'direct' runs fastconv's compiled kernels (see the module docstring); 'fft' runs
        :mod:`fastconv._fft`; 'auto' decides by :func:`choose_conv_method`.
    backend : str, optional
        Of the direct path: 'auto', 'numpy', 'cython' or 'numba'; None uses
        :func:`fastconv.get_backend`.

    Returns
    -------
    ndarray
        dtype ``numpy.result_type(in1, in2)``, as scipy.

    Raises
    ------
    ValueError, TypeError
        For invalid arguments, naming the argument.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import signal
    >>> signal.convolve([1, 2, 3], [0, 1, 0.5])
    array([0. , 1. , 2.5, 4. , 1.5])
    >>> signal.convolve(np.array([1, 2, 3]), np.array([1, 1]))  # integers stay integers
    array([1, 3, 5, 3])
    """
    name = _dispatch.resolve(backend)
    in1, in2, mode, method = _nd_args(in1, in2, mode, method)
    if in1.ndim == 0:
        return in1 * in2
    if _swap_needed(mode, in1.shape, in2.shape):
        in1, in2 = in2, in1
    if method == "fft" or (method == "auto" and _auto_is_fft(in1, in2, mode)):
        return _fft_path(in1, in2, mode)
    return _direct(in1, _reverse(in2), mode, name, lambda k: k // 2)


def correlate(in1, in2, mode="full", method="auto", *, backend=None):
    """Cross-correlate two N-dimensional arrays, as ``scipy.signal.correlate``.

    ``z[k] = sum_l in1[l] * conj(in2[l - k + K])`` over the overlap, i.e.
    :func:`convolve` of ``in1`` with ``in2`` reversed and conjugated.

    Parameters
    ----------
    in1, in2 : array_like
        Arrays of the same number of dimensions (both 0-d gives ``in1 * conj(in2)``).
    mode : {'full', 'valid', 'same'}, default 'full'
    method : {'auto', 'direct', 'fft'}, default 'auto'
    backend : str, optional

    Returns
    -------
    ndarray
        dtype ``numpy.result_type(in1, in2)``, as scipy.

    Examples
    --------
    >>> from fastconv import signal
    >>> signal.correlate([1.0, 2.0, 3.0], [0.0, 1.0, 0.5])
    array([0.5, 2. , 3.5, 3. , 0. ])
    >>> signal.correlate([1j, 2], [1j], mode="valid")
    array([1.+0.j, 0.-2.j])
    """
    name = _dispatch.resolve(backend)
    in1, in2, mode, method = _nd_args(in1, in2, mode, method)
    if in1.ndim == 0:
        return in1 * (np.conj(in2) if in2.dtype.kind == "c" else in2)
    k = np.conj(_reverse(in2)) if in2.dtype.kind == "c" else _reverse(in2)
    if _swap_needed(mode, in1.shape, k.shape):  # convolution commutes
        in1, k = k, in1
    if method == "fft" or (method == "auto" and _auto_is_fft(in1, k, mode)):
        return _fft_path(in1, k, mode)
    return _direct(in1, _reverse(k), mode, name, lambda n: n // 2)


def choose_conv_method(in1, in2, mode="full", measure=False):
    """Find the faster of 'direct' and 'fft' for :func:`convolve`/:func:`correlate`, as
    ``scipy.signal.choose_conv_method``.

    Integer and bool inputs always get 'direct' (exact results); otherwise the answer is
    issue 19's cost model (:func:`fastconv._fft.choose_method`), calibrated on fastconv's
    own kernels, or 'direct' while that module is absent.

    Parameters
    ----------
    in1, in2 : array_like
    mode : {'full', 'valid', 'same'}, default 'full'
    measure : bool, default False
        Time both methods (one call each after a warm-up) and also return the times.

    Returns
    -------
    method : str
        'direct' or 'fft'.
    times : dict, optional
        With ``measure=True``: seconds per method.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import signal
    >>> signal.choose_conv_method(np.arange(10), np.arange(3))
    'direct'
    """
    if not isinstance(measure, (bool, np.bool_)):
        raise TypeError(f"measure must be a bool, got {measure!r}")
    if not measure:
        a1, a2 = np.asarray(in1), np.asarray(in2)
        mode = _mode(mode)
        if a1.ndim != a2.ndim:
            raise ValueError(f"in1 and in2 should have the same dimensionality, got "
                             f"in1.ndim={a1.ndim} and in2.ndim={a2.ndim}")
        if not all(_computable(a.dtype) for a in (a1, a2)):
            return "direct"  # longdouble, object...: as scipy, no FFT for them
    in1, in2, mode, _ = _nd_args(in1, in2, mode, "auto")
    if measure:
        import time

        times = {}
        for method in ("fft", "direct"):
            convolve(in1, in2, mode=mode, method=method)
            t0 = time.perf_counter()
            convolve(in1, in2, mode=mode, method=method)
            times[method] = time.perf_counter() - t0
        return ("fft" if times["fft"] < times["direct"] else "direct"), times
    if in1.ndim == 0:
        return "direct"
    if _swap_needed(mode, in1.shape, in2.shape):
        in1, in2 = in2, in1
    return "fft" if _auto_is_fft(in1, in2, mode) else "direct"


# ---- 2-D with boundaries ----
def _extend(x, pads, boundary, fill):
    """``x`` (2-D) extended by ``pads`` ((top, bottom), (left, right)) as scipy's boundary
    ('fill' with ``fill``, 'wrap' circular, 'symm' mirrored with the edge repeated): slice
    copies into one new array (numpy.pad's rule for pads longer than the plane)."""
    (t, b), (lft, r) = pads
    H, W = x.shape
    if (boundary == "symm" and (max(t, b) > H or max(lft, r) > W)) or \
            (boundary == "wrap" and (max(t, b) > H or max(lft, r) > W)):
        return np.pad(x, pads, mode="symmetric" if boundary == "symm" else "wrap")
    out = np.empty((H + t + b, W + lft + r), x.dtype)
    if boundary == "fill":
        out[:t] = fill
        out[t + H:] = fill
        out[t:t + H, :lft] = fill
        out[t:t + H, lft + W:] = fill
        out[t:t + H, lft:lft + W] = x
        return out
    out[t:t + H, lft:lft + W] = x
    rows = out[t:t + H]
    if boundary == "symm":
        if lft:
            rows[:, :lft] = x[:, :lft][:, ::-1]
        if r:
            rows[:, lft + W:] = x[:, W - r:][:, ::-1]
        if t:
            out[:t] = out[t:2 * t][::-1]
        if b:
            out[t + H:] = out[t + H - b:t + H][::-1]
    else:  # wrap
        if lft:
            rows[:, :lft] = x[:, W - lft:]
        if r:
            rows[:, lft + W:] = x[:, :r]
        if t:
            out[:t] = out[H:H + t]
        if b:
            out[t + H:] = out[t:t + b]
    return out


def _plane(a, name):
    arr = _array(a, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} cannot be empty, got shape {arr.shape}")
    return arr


def _fillvalue(fillvalue, out_dtype):
    fv = np.asarray(fillvalue)
    if fv.size != 1:
        raise ValueError("`fillvalue` must be scalar or an array with one element, got "
                         f"shape {fv.shape}")
    if fv.dtype.kind not in "biufc":
        raise TypeError(f"fillvalue must be a number, got {fillvalue!r}")
    fv = fv.reshape(())
    if fv.dtype.kind == "c" and out_dtype.kind != "c":
        if fv.imag != 0:
            raise ValueError("could not cast `fillvalue` directly to the output type "
                             f"{out_dtype} (fillvalue={fillvalue!r})")
        fv = fv.real
    return fv


def _signal2d(in1, in2, mode, boundary, fillvalue, backend, flip):
    name = _dispatch.resolve(backend)
    in1 = _plane(in1, "in1")
    in2 = _plane(in2, "in2")
    mode = _mode(mode)
    if not isinstance(boundary, str) or boundary not in _BOUNDARIES:
        raise ValueError("Acceptable boundary flags are 'fill', 'circular' (or 'wrap'), and "
                         f"'symmetric' (or 'symm'); boundary={boundary!r}")
    boundary = _BOUNDARIES[boundary]
    out_dtype = np.result_type(in1, in2)
    fv = _fillvalue(fillvalue, out_dtype)
    swap = _swap_needed(mode, in1.shape, in2.shape)
    if swap:
        in1, in2 = in2, in1
    rdt = _compute_dtype(out_dtype)
    k = in2
    if flip:
        k = _reverse(k)
    else:
        k = np.conj(k) if k.dtype.kind == "c" else k
    kh, kw = k.shape
    if mode == "full":
        pads = ((kh - 1, kh - 1), (kw - 1, kw - 1))
    elif mode == "same":  # scipy's convolve2d and correlate2d centre differently
        pads = ((kh // 2, (kh - 1) // 2), (kw // 2, (kw - 1) // 2)) if flip else \
            (((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2))
    else:
        pads = ((0, 0), (0, 0))
    H, W = in1.shape
    out_sp = (H + sum(pads[0]) - kh + 1, W + sum(pads[1]) - kw + 1)
    x = _as_compute(in1, rdt)
    fill = fv.astype(out_dtype)  # as scipy: the fill value in the result dtype
    if fill.dtype.kind == "c":
        if x.dtype.kind != "c" and fill.imag != 0:
            x = x.astype(np.result_type(x.dtype, np.complex64))
        fill = fill if x.dtype.kind == "c" else fill.real
    if any(p != (0, 0) for p in pads) and (boundary != "fill" or fill != 0):
        S.check_alloc((H + sum(pads[0]), W + sum(pads[1])), x.dtype.itemsize,
                      "the extended in1")
        x = _extend(x, pads, boundary, fill.astype(x.dtype))
        lo = (0, 0)
    else:
        lo = (pads[0][0], pads[1][0])
    r = _corr(x, _as_compute(k, rdt), lo, out_sp, name)
    if swap and not flip:  # scipy reverses (and does not conjugate) a swapped correlation
        r = _reverse(r)
    return _cast_result(np.ascontiguousarray(r), out_dtype)


_2D_DOC = """
    Parameters
    ----------
    in1, in2 : array_like
        Non-empty 2-D arrays: bool, int, float (up to 64 bits) or complex.
    mode : {{'full', 'valid', 'same'}}, default 'full'
        As scipy: 'same' is the size of ``in1``; in 'valid' mode one input must be at least
        as large as the other in every dimension, and they are swapped if ``in2`` is larger.
    boundary : {{'fill', 'wrap', 'symm'}}, default 'fill'
        How ``in1`` is extended: with ``fillvalue``, circularly ('circular' too), or
        mirrored with the edge repeated ('symmetric' too).
    fillvalue : scalar, default 0
        The value used with ``boundary='fill'``, cast to the result dtype.
    backend : str, optional
        'auto', 'numpy', 'cython' or 'numba'; None uses :func:`fastconv.get_backend`.

    Returns
    -------
    ndarray
        dtype ``numpy.result_type(in1, in2)``, as scipy.

    Raises
    ------
    ValueError, TypeError
        For invalid arguments, naming the argument.
"""


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, backend=None):
    """Convolve two 2-D arrays, as ``scipy.signal.convolve2d``.
    {doc}
    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import signal
    >>> scharr = np.array([[-3 - 3j, -10j, 3 - 3j], [-10, 0, 10], [-3 + 3j, 10j, 3 + 3j]])
    >>> signal.convolve2d(np.eye(3), scharr, boundary="symm", mode="same")
    array([[ 10.+10.j,  13. -7.j,   3. -3.j],
           [ -7.+13.j,   0. +0.j,   7.-13.j],
           [ -3. +3.j, -13. +7.j, -10.-10.j]])
    """
    return _signal2d(in1, in2, mode, boundary, fillvalue, backend, flip=True)


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, backend=None):
    """Cross-correlate two 2-D arrays, as ``scipy.signal.correlate2d`` (``in2`` is
    conjugated).
    {doc}
    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import signal
    >>> signal.correlate2d(np.eye(3, dtype=int), [[1, 2]], mode="valid")
    array([[1, 0],
           [2, 1],
           [0, 2]])
    """
    return _signal2d(in1, in2, mode, boundary, fillvalue, backend, flip=False)


convolve2d.__doc__ = convolve2d.__doc__.format(doc=_2D_DOC)
correlate2d.__doc__ = correlate2d.__doc__.format(doc=_2D_DOC)


# ---- separable FIR ----
def _fir(h, name):
    arr = _array(h, name)
    if arr.ndim != 1:  # scipy's words, then the argument's name
        raise ValueError(f"object {'too deep' if arr.ndim > 1 else 'of too small depth'} for "
                         f"desired array: {name} must be one-dimensional, got shape "
                         f"{arr.shape}")
    if arr.size % 2 == 0:
        raise ValueError(f"hrow and hcol must be odd length; {name} has length {arr.size}")
    return arr


def sepfir2d(input, hrow, hcol, *, backend=None):
    """Convolve with a 2-D separable FIR filter, as ``scipy.signal.sepfir2d``.

    The rows of ``input`` are convolved with ``hrow``, then its columns with ``hcol``, with
    mirror-symmetric boundaries (the edge repeated, scipy.ndimage's 'reflect'): two 1-D
    passes of the compiled conv2d kernel, each on ``input`` extended by half the filter.

    Parameters
    ----------
    input : array_like
        A non-empty 2-D array: bool, int, float or complex.
    hrow, hcol : array_like
        1-D filters of odd length, cast to the result dtype (complex filters need a complex
        ``input``).
    backend : str, optional
        'auto', 'numpy', 'cython' or 'numba'; None uses :func:`fastconv.get_backend`.

    Returns
    -------
    ndarray
        ``input``'s shape; dtype ``result_type(input, float32)`` as scipy (uint8 gives
        float32, int64 float64, complex64 stays).

    Notes
    -----
    scipy's result is defined while half a filter (``len(h) // 2``) is at most half the
    plane's size along its axis; beyond, scipy 1.17 reads outside its input (garbage
    values, at times a crash). fastconv then keeps mirroring (numpy.pad's 'symmetric').

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import signal
    >>> signal.sepfir2d(np.arange(9.0).reshape(3, 3), [1, 2, 1], [0, 1, 0])
    array([[ 1.,  4.,  7.],
           [13., 16., 19.],
           [25., 28., 31.]])
    """
    name = _dispatch.resolve(backend)
    x = _array(input, "input")
    if x.ndim != 2:
        raise ValueError(f"object {'too deep' if x.ndim > 2 else 'of too small depth'} for "
                         f"desired array: input must be 2-D, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"input cannot be empty, got shape {x.shape}")
    hr, hc = _fir(hrow, "hrow"), _fir(hcol, "hcol")
    dt = x.dtype
    out_dtype = np.result_type(dt, np.float32)  # scipy's: uint8 gives float32, int64 float64
    for h, nm in ((hr, "hrow"), (hc, "hcol")):
        if h.dtype.kind == "c" and out_dtype.kind != "c":
            raise TypeError(f"{nm} is complex ({h.dtype}) but input is real ({dt}): the "
                            "result would be complex")
    rdt = _compute_dtype(out_dtype)
    H, W = x.shape
    t = _as_compute(x, rdt)
    for h, pads, k_shape in ((hr, ((0, 0), (hr.size // 2,) * 2), (1, hr.size)),
                             (hc, ((hc.size // 2,) * 2, (0, 0)), (hc.size, 1))):
        if h.size > 1:
            S.check_alloc((H + sum(pads[0]), W + sum(pads[1])), t.dtype.itemsize,
                          "the extended input")
            t = _corr(_extend(t, pads, "symm", None),
                      _as_compute(h[::-1], rdt).reshape(k_shape), (0, 0), (H, W), name)
        else:
            t = t * _as_compute(h, rdt)[0]
    return np.ascontiguousarray(t, dtype=out_dtype)
