"""The public functions: a docstring and a signature each, then spec -> dispatch -> kernel.

NN-style functions follow ``torch.nn.functional`` (cross-correlation, NCHW); the
NumPy/SciPy-style ones give the results of ``numpy.convolve``/``numpy.correlate`` and
``scipy.signal.convolve2d``/``correlate2d``. Every function takes the keyword-only
``backend=``: ``"auto"`` (default), ``"numpy"``, ``"cython"`` or ``"numba"``.

A long call runs in pieces, and Ctrl-C stops it between two of them with a plain
KeyboardInterrupt, within a fraction of a second, on every backend (:mod:`fastconv._chunks`).

The result dtype is always ``numpy.result_type(inputs..., numpy.float32)``: float32 stays
float32, float64 stays float64, float16 gives float32; 32- and 64-bit integers give float64,
while bool and 8- and 16-bit integers give float32.
"""

from __future__ import annotations

import numpy as np

from . import _chunks  # issue 17 (fold): unfold/fold/max_unpool in pieces of planes
from . import _dispatch
from . import _fastcall  # issue 20: the per-call fast path of conv1d/conv2d
from . import _plan
from . import _spec as S

__all__ = [
    "conv1d",
    "conv2d",
    "max_pool1d",
    "max_pool2d",
    "avg_pool2d",
    "convolve",
    "correlate",
    "convolve2d",
    "correlate2d",
    "locally_connected2d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "max_pool3d",
    "avg_pool1d",
    "avg_pool3d",
    "unfold",
    "fold",
    "max_unpool1d",
    "max_unpool2d",
    "max_unpool3d",
    "lp_pool1d",
    "lp_pool2d",
]

_CONV_DOC = """
    Parameters
    ----------
    x : array_like
        Input of shape {xshape}.
    weight : array_like
        Filters of shape {wshape}.
    bias : array_like, optional
        Shape (out_channels,).
    stride : int or tuple of ints, default 1
        Step between windows; each >= 1.
    padding : int, tuple of ints, 'valid' or 'same', default 0
        Padding added on both sides of each spatial axis. 'same' keeps the input size (it
        needs stride 1); an odd leftover pad goes to the end, as in PyTorch.
    dilation : int or tuple of ints, default 1
        Spacing between kernel elements; each >= 1.
    groups : int, default 1
        Blocked connections from input to output channels; divides both channel counts.
    padding_mode : {{'zeros', 'reflect', 'replicate', 'circular'}}, default 'zeros'
        As ``torch.nn.Conv{nd}d(padding_mode=...)``. 'reflect' needs padding smaller than
        the input, 'circular' at most the input size.
    backend : str, optional
        'auto', 'numpy', 'cython' or 'numba'; None uses :func:`fastconv.get_backend`.
    out : ndarray, optional
        Destination: exact shape and dtype of the result, C-contiguous, writeable, not
        overlapping an input. A long call runs in pieces (images, else filters or rows of
        one image) so that Ctrl-C stops it within a fraction of a second with a plain
        KeyboardInterrupt; ``out`` then holds the results of the pieces finished before the
        interrupt, and the rest of it is unspecified.

    Returns
    -------
    ndarray
        Shape {oshape}, dtype ``result_type(x, weight[, bias], float32)``.

    Raises
    ------
    ValueError, TypeError
        For invalid arguments, before any kernel runs, naming the argument.
"""


def _finish(spec_shape, result_shape, dtype, out, inputs):
    """The 4-D array the kernel fills: a fresh one, or the caller's validated ``out``."""
    if out is None:
        return np.empty(spec_shape, dtype)
    S.check_out(out, result_shape, dtype, inputs)
    return out.reshape(spec_shape)  # C-contiguous, so this is a view


def _conv(x, weight, bias, stride, padding, dilation, groups, padding_mode, backend, out, nd):
    # a call planned before runs its kernel directly (fastconv._fastcall: the conditions)
    key = _fastcall.key(x, weight, bias, stride, padding, dilation, groups, padding_mode,
                        backend, nd)
    plan = None if key is None else _fastcall._CACHE.get(key)
    if plan:
        got = _fastcall.run(plan, x, weight, bias, out)
        if got is not None:
            return got
    name = _dispatch.resolve(backend)
    spec = S.conv_spec(x, weight, bias, stride, padding, dilation, groups, padding_mode, nd)
    res = _finish(spec.out_shape, spec.result_shape, spec.dtype, out,
                  [("x", x), ("weight", weight), ("bias", bias)])
    whole = True
    if nd in (1, 2) and _conv_fft(backend, name, spec, res):
        # issue 19: large kernels by FFT, the filters sharing each plane's transform
        whole = False
    elif nd == 1:
        whole = _run_rows(name, spec, res)  # issue 19: long 1-D rows split across threads
    else:
        _dispatch.run("conv2d", name, spec, res)
    if plan is None and key is not None and whole:
        _fastcall.remember(key, name, spec, res, x, weight, bias)
    return out if out is not None else res.reshape(spec.result_shape)


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", backend=None, out=None):
    """1-D cross-correlation over (N, C, L) inputs, as ``torch.nn.functional.conv1d``.
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.array([[[0., 3., 2., 0., 0.]]], dtype=np.float32)
    >>> fastconv.conv1d(x, np.array([[[1., -1.]]], dtype=np.float32))
    array([[[-3.,  1.,  2.,  0.]]], dtype=float32)
    """
    return _conv(x, weight, bias, stride, padding, dilation, groups, padding_mode, backend,
                 out, 1)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", backend=None, out=None):
    """2-D cross-correlation over (N, C, H, W) inputs, as ``torch.nn.functional.conv2d``.
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> w = np.ones((2, 1, 3, 3), dtype=np.float32)
    >>> fastconv.conv2d(x, w, padding="same").shape
    (1, 2, 4, 4)
    >>> fastconv.conv2d(x, w)[0, 0]
    array([[45., 54.],
           [81., 90.]], dtype=float32)
    """
    return _conv(x, weight, bias, stride, padding, dilation, groups, padding_mode, backend,
                 out, 2)


conv1d.__doc__ = conv1d.__doc__.format(doc=_CONV_DOC.format(
    xshape="(N, C, L) or (C, L)", wshape="(out_channels, C // groups, kernel)",
    oshape="(N, out_channels, L_out), or (out_channels, L_out) for unbatched x", nd=1))
conv2d.__doc__ = conv2d.__doc__.format(doc=_CONV_DOC.format(
    xshape="(N, C, H, W) or (C, H, W)", wshape="(out_channels, C // groups, kH, kW)",
    oshape="(N, out_channels, H_out, W_out), or without N for unbatched x", nd=2))


# --------------------------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------------------------
_POOL_DOC = """
    Parameters
    ----------
    x : array_like
        Input of shape {xshape}.
    kernel_size : int or tuple of ints
        Window size. As in torch, every int-or-tuple argument takes an int or a tuple (or
        list) of one int for all spatial axes, or one int per axis.
    stride : int or tuple of ints, optional
        Step between windows; None or ``()`` (the default) means ``kernel_size``.
    padding : int or tuple of ints, default 0
        Implicit padding on both sides; at most half of ``kernel_size``.{extra}
    ceil_mode : bool, default False
        Round the output size up; a last window that would start in the padding is dropped.
"""


def _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, backend, nd):
    name = _dispatch.resolve(backend, "max_pool2d")
    spec = S.pool_spec(x, kernel_size, stride, padding, dilation, ceil_mode, nd,
                       op="max_pool2d", return_indices=return_indices)
    res = np.empty(spec.out_shape, spec.dtype)
    _dispatch.run("max_pool2d", name, spec, res)
    res = res.reshape(spec.result_shape)
    if spec.indices is None:
        return res
    return res, spec.indices.reshape(spec.result_shape)


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, backend=None):
    """1-D max pooling over (N, C, L) inputs, as ``torch.nn.functional.max_pool1d``.
    {doc}
    Returns
    -------
    ndarray, or (ndarray, ndarray of int64)
        The maxima, and with ``return_indices`` their flat positions within each input
        plane. NaN propagates; ties keep the first position. A window that sees only
        padding (possible with dilation) gives -inf and, as in torch, an index outside the
        plane, which :func:`fastconv.grad.max_pool1d` ignores.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.max_pool1d(np.array([[1., 3., 2., 5., 4.]]), 2, return_indices=True)
    (array([[3., 5.]]), array([[1, 3]]))
    """
    return _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                     backend, 1)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, backend=None):
    """2-D max pooling over (N, C, H, W) inputs, as ``torch.nn.functional.max_pool2d``.
    {doc}
    Returns
    -------
    ndarray, or (ndarray, ndarray of int64)
        The maxima, and with ``return_indices`` their flat positions ``h * W + w`` within
        each input plane. NaN propagates; ties keep the first position. A window that sees
        only padding (possible with dilation) gives -inf and torch's index for it,
        ``h0 * W + w0`` of its first tap: outside the plane (which
        :func:`fastconv.grad.max_pool2d` ignores), or, when only its columns miss the input,
        on a later row, which then receives its gradient as in torch.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    >>> fastconv.max_pool2d(x, 2)
    array([[[ 5.,  7.],
            [13., 15.]]], dtype=float32)
    """
    return _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                     backend, 2)


_DIL = """
    dilation : int or tuple of ints, default 1
        Spacing between window elements."""
max_pool1d.__doc__ = max_pool1d.__doc__.format(doc=_POOL_DOC.format(
    xshape="(N, C, L) or (C, L)", extra=_DIL))
max_pool2d.__doc__ = max_pool2d.__doc__.format(doc=_POOL_DOC.format(
    xshape="(N, C, H, W) or (C, H, W)", extra=_DIL))


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None, *, backend=None):
    """2-D average pooling over (N, C, H, W) inputs, as ``torch.nn.functional.avg_pool2d``.
    {doc}
    count_include_pad : bool, default True
        Count the zero padding in the divisor.
    divisor_override : int, optional
        A nonzero int that replaces the divisor of every window (as in torch; negative
        allowed). A call with one runs on the 3-D kernels with a depth of 1.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    >>> fastconv.avg_pool2d(x, 2)
    array([[[ 2.5,  4.5],
            [10.5, 12.5]]], dtype=float32)
    >>> fastconv.avg_pool2d(x, 2, divisor_override=1)
    array([[[10., 18.],
            [42., 50.]]], dtype=float32)
    """
    return _avg_pool(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, backend, 2, "avg_pool2d")


def _avg_pool(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
              backend, nd, op):
    name = _dispatch.resolve(backend, op)
    spec = S.pool_spec(x, kernel_size, stride, padding, 1, ceil_mode, nd,
                       count_include_pad=count_include_pad, op=op,
                       divisor_override=divisor_override)
    res = np.empty(spec.out_shape, spec.dtype)
    _dispatch.run(spec.op, name, spec, res)
    return res.reshape(spec.result_shape)


avg_pool2d.__doc__ = avg_pool2d.__doc__.format(doc=_POOL_DOC.format(
    xshape="(N, C, H, W) or (C, H, W)", extra=""))


# --------------------------------------------------------------------------------------------
# NumPy / SciPy style
# --------------------------------------------------------------------------------------------
_MODES = ("full", "same", "valid")


def _mode(mode):
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    return mode


def _vector(a, name):
    arr = S.as_real_array(a, name)
    if arr.ndim > 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    arr = arr.reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} cannot be empty")
    return arr


def _correlate1d(a, v, mode, backend, method="auto"):
    """``numpy.correlate(a, v, mode)`` for real vectors, through the conv2d kernel or, by
    ``method`` (issue 19), the FFT path."""
    name = _dispatch.resolve(backend)
    mode = _mode(mode)
    method = _method(method)
    a = _vector(a, "a")
    v = _vector(v, "v")
    dtype = S.result_dtype(a, v)
    swap = v.size > a.size  # numpy correlates the longer with the shorter, then reverses
    if swap:
        a, v = v, a
    n = v.size
    if mode == "full":
        pads = (n - 1, n - 1)
    elif mode == "same":
        pads = (n // 2, n - 1 - n // 2)
    else:
        pads = (0, 0)
    Lo = a.size + sum(pads) - n + 1
    S.check_alloc((Lo,), dtype.itemsize, "the output")
    if _use_fft(method, name, a, v, (Lo,), (n,), dtype):
        res = _fft_correlate(a, v, [pads[0]], [Lo], dtype)
    else:
        res = np.empty((1, 1, 1, Lo), dtype)
        spec = S.signal_spec(S.prepare(a.reshape(1, 1, 1, -1), dtype),
                             S.prepare(v.reshape(1, 1, 1, -1), dtype), (0, pads[0]),
                             res.shape)
        _run_rows(name, spec, res)
    res = res.reshape(Lo)
    if swap:
        res = res[::-1].copy()
    return res


def correlate(a, v, mode="valid", *, backend=None, method="auto"):
    """Cross-correlation of two 1-D sequences, as ``numpy.correlate`` for real inputs.

    Parameters
    ----------
    a, v : array_like
        Non-empty 1-D sequences.
    mode : {'valid', 'same', 'full'}, default 'valid'
    backend : str, optional
    method : {'auto', 'direct', 'fft'}, default 'auto'
        'direct' sums the products (exact for integer inputs up to float rounding of the
        result); 'fft' uses the FFT / overlap-save path (:mod:`fastconv._fft`, error within
        :func:`fastconv._fft.error_bound`); 'auto' picks the faster by
        :func:`fastconv._fft.choose_method` on the compiled backends (integer and bool
        inputs, and ``backend='numpy'``, stay direct).

    Returns
    -------
    ndarray
        ``c[k] = sum_n a[n + k] * v[n]``, dtype ``result_type(a, v, float32)``.

    Examples
    --------
    >>> import fastconv
    >>> fastconv.correlate([1, 2, 3], [0, 1, 0.5])
    array([3.5])
    """
    if _is_complex(a, v):  # issue 18 (method: validated; complex stays on its kernel path)
        _method(method)
        return _complex_1d(a, v, mode, backend, conj=True, flip=False)
    return _correlate1d(a, v, mode, backend, method)


def convolve(a, v, mode="full", *, backend=None, method="auto"):
    """Discrete linear convolution of two 1-D sequences, as ``numpy.convolve`` for real inputs.

    Computed as :func:`correlate` with ``v`` reversed.

    Parameters
    ----------
    a, v : array_like
        Non-empty 1-D sequences.
    mode : {'full', 'valid', 'same'}, default 'full'
    backend : str, optional
    method : {'auto', 'direct', 'fft'}, default 'auto'
        As in :func:`correlate`.

    Returns
    -------
    ndarray
        dtype ``result_type(a, v, float32)``.

    Examples
    --------
    >>> import fastconv
    >>> fastconv.convolve([1, 2, 3], [0, 1, 0.5])
    array([0. , 1. , 2.5, 4. , 1.5])
    """
    if _is_complex(a, v):  # issue 18 (method: validated; complex stays on its kernel path)
        _method(method)
        return _complex_1d(a, v, mode, backend, conj=False, flip=True)
    a = _vector(a, "a")
    v = _vector(v, "v")
    if v.size > a.size:  # as numpy: convolution commutes, and 'same' follows the longer
        a, v = v, a
    return _correlate1d(a, v[::-1], mode, backend, method)


_BOUNDARIES = {"fill": "constant", "wrap": "wrap", "symm": "symmetric"}
_BOUNDARY_ALIASES = {"fill": "fill", "pad": "fill", "wrap": "wrap", "circular": "wrap",
                     "symm": "symm", "symmetric": "symm"}


def _plane(a, name):
    arr = S.as_real_array(a, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} cannot be empty, got shape {arr.shape}")
    return arr


def _correlate2d(in1, in2, mode, boundary, fillvalue, backend, flip, method="auto"):
    name = _dispatch.resolve(backend)
    mode = _mode(mode)
    method = _method(method)
    if not isinstance(boundary, str) or boundary not in _BOUNDARY_ALIASES:
        raise ValueError(
            f"boundary must be one of {tuple(_BOUNDARY_ALIASES)}, got {boundary!r}"
        )
    boundary = _BOUNDARY_ALIASES[boundary]
    in1 = _plane(in1, "in1")
    in2 = _plane(in2, "in2")
    fill = np.asarray(fillvalue)
    if fill.ndim != 0 or fill.dtype.kind not in "biuf":
        raise TypeError(f"fillvalue must be a real scalar, got {fillvalue!r}")
    dtype = S.result_dtype(in1, in2)
    swap = False
    if mode == "valid":
        ge = all(a >= b for a, b in zip(in1.shape, in2.shape))
        le = all(a <= b for a, b in zip(in1.shape, in2.shape))
        if not (ge or le):
            raise ValueError(
                "For 'valid' mode, one of in1 and in2 must be at least as large as the other "
                f"in every dimension, got {in1.shape} and {in2.shape}"
            )
        swap = not ge  # scipy swaps the inputs when in2 is the larger
    if swap:
        in1, in2 = in2, in1
    kh, kw = in2.shape
    if flip:
        in2 = in2[::-1, ::-1]
    if mode == "full":
        pads = [(kh - 1, kh - 1), (kw - 1, kw - 1)]
    elif mode == "same":
        pads = [(kh // 2, (kh - 1) // 2), (kw // 2, (kw - 1) // 2)] if flip else \
               [((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2)]
    else:
        pads = [(0, 0), (0, 0)]
    H = in1.shape[0] + sum(pads[0])
    W = in1.shape[1] + sum(pads[1])
    S.check_alloc((H, W), dtype.itemsize, "the padded input")
    S.check_alloc((H - kh + 1, W - kw + 1), dtype.itemsize, "the output")
    if (boundary == "fill" and _use_fft(method, name, in1, in2, (H - kh + 1, W - kw + 1),
                                        (kh, kw), dtype)):
        # zero-extended: the FFT path pads implicitly; a nonzero fill adds a constant
        # times the kernel's sums over the padded part (computed as a second correlation)
        res = _fft_correlate(in1, in2, [pads[0][0], pads[1][0]],
                             [H - kh + 1, W - kw + 1], dtype)
        if fill != 0:
            ones = np.ones(in1.shape, dtype)
            cover = _fft_correlate(ones, in2, [pads[0][0], pads[1][0]],
                                   [H - kh + 1, W - kw + 1], dtype)
            tot = in2.astype(dtype).sum()
            res += fill.astype(dtype) * (tot - cover)
        if swap and not flip:
            res = res[::-1, ::-1].copy()
        return res
    x = in1.astype(dtype, copy=False)
    if pads[0] != (0, 0) or pads[1] != (0, 0):
        if boundary == "fill":
            x = np.pad(x, pads, mode="constant", constant_values=fill.astype(dtype))
        else:
            x = np.pad(x, pads, mode=_BOUNDARIES[boundary])
    if _use_fft(method, name, x, in2, (H - kh + 1, W - kw + 1), (kh, kw), dtype):
        res = _fft_correlate(x, in2, [0, 0], [H - kh + 1, W - kw + 1], dtype)
        return res[::-1, ::-1].copy() if swap and not flip else res
    res = np.empty((1, 1, H - kh + 1, W - kw + 1), dtype)
    spec = S.signal_spec(S.prepare(x[None, None], dtype), S.prepare(in2[None, None], dtype),
                         (0, 0), res.shape)
    _dispatch.run("conv2d", name, spec, res)
    res = res[0, 0]
    if swap and not flip:
        res = res[::-1, ::-1].copy()
    return res


_2D_DOC = """
    Parameters
    ----------
    in1, in2 : array_like
        Non-empty 2-D arrays.
    mode : {{'full', 'valid', 'same'}}, default 'full'
        As scipy: 'same' is the size of ``in1``; in 'valid' mode one input must be at least
        as large as the other in every dimension, and they are swapped if ``in2`` is larger.
    boundary : {{'fill', 'wrap', 'symm'}}, default 'fill'
        How ``in1`` is extended: with ``fillvalue``, circularly, or mirrored (edge repeated).
    fillvalue : scalar, default 0
        The value used with ``boundary='fill'``.
    backend : str, optional
    method : {{'auto', 'direct', 'fft'}}, default 'auto'
        'direct' sums the products; 'fft' uses the FFT / overlap-save path
        (:mod:`fastconv._fft`, error within :func:`fastconv._fft.error_bound`); 'auto'
        picks the faster by :func:`fastconv._fft.choose_method` on the compiled backends
        (integer and bool inputs, and ``backend='numpy'``, stay direct).

    Returns
    -------
    ndarray
        dtype ``result_type(in1, in2, float32)``.
"""


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, backend=None,
               method="auto"):
    """2-D convolution, as ``scipy.signal.convolve2d`` for real inputs.
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.convolve2d(np.eye(3), [[1, 2]], mode="same")
    array([[1., 2., 0.],
           [0., 1., 2.],
           [0., 0., 1.]])
    """
    if _is_complex(in1, in2, fillvalue):  # issue 18 (method: validated, kernel path)
        _method(method)
        return _complex_2d(in1, in2, mode, boundary, fillvalue, backend, flip=True)
    return _correlate2d(in1, in2, mode, boundary, fillvalue, backend, flip=True,
                        method=method)


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, backend=None,
               method="auto"):
    """2-D cross-correlation, as ``scipy.signal.correlate2d`` for real inputs.
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.correlate2d(np.eye(3), [[1, 2]], mode="valid")
    array([[1., 0.],
           [2., 1.],
           [0., 2.]])
    """
    if _is_complex(in1, in2, fillvalue):  # issue 18 (method: validated, kernel path)
        _method(method)
        return _complex_2d(in1, in2, mode, boundary, fillvalue, backend, flip=False)
    return _correlate2d(in1, in2, mode, boundary, fillvalue, backend, flip=False,
                        method=method)


convolve2d.__doc__ = convolve2d.__doc__.format(doc=_2D_DOC)
correlate2d.__doc__ = correlate2d.__doc__.format(doc=_2D_DOC)


# --------------------------------------------------------------------------------------------
# the layer between dense and conv
# --------------------------------------------------------------------------------------------
def locally_connected2d(x, weight, bias=None, stride=1, padding=0, *, backend=None):
    """A convolution without weight sharing: sparse connection, one filter per position.

    Each output position ``(oh, ow)`` has its own filter bank ``weight[oh, ow]``; with all
    of them equal it is :func:`conv2d`. It isolates the two constraints that make a conv
    layer: it is as sparse as a convolution but has as many weights per output as a dense
    layer restricted to the window.

    Parameters
    ----------
    x : array_like
        (N, C, H, W) or unbatched (C, H, W).
    weight : array_like
        (Ho, Wo, K, C, kh, kw): the output size must match ``x``, ``stride`` and ``padding``.
    bias : array_like, optional
        (K,) shared across positions, or (K, Ho, Wo), one per output.
    stride, padding : int or pair of ints
        As :func:`conv2d` (zero padding).
    backend : str, optional
        'auto', 'numpy', 'cython' or 'numba'; None uses :func:`fastconv.get_backend`.

    Returns
    -------
    ndarray
        (N, K, Ho, Wo), or (K, Ho, Wo) for unbatched ``x``.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> w = np.ones((2, 2, 1, 1, 3, 3))       # one 3x3 filter at each of 2x2 positions
    >>> w[1, 1] = 0
    >>> fastconv.locally_connected2d(x, w)[0, 0]
    array([[45., 54.],
           [81.,  0.]])
    """
    name = _dispatch.resolve(backend, "locally_connected2d")
    spec = S.local_spec(x, weight, bias, stride, padding)
    res = np.empty(spec.out_shape, spec.dtype)
    _dispatch.run("locally_connected2d", name, spec, res)
    return res.reshape(spec.result_shape)


# ---- transpose (issue 17) ----
_TRANSPOSE_DOC = """
    The transposed convolution is the gradient of :func:`fastconv.conv{nd}d` wrt its
    input: it is computed by the kernels of :func:`fastconv.grad.conv{nd}d_input` (the
    compiled im2col + GEMM / direct scatter kernels of every backend{how}), on the input
    size that ``output_padding`` settles, then the bias is added.

    Parameters
    ----------
    x : array_like
        Input of shape {xshape}.
    weight : array_like
        Filters of shape {wshape} (torch's layout for transposed weights).
    bias : array_like, optional
        Shape (out_channels,).
    stride : int or tuple of ints, default 1
        Step of the windows of the convolution this one transposes; each >= 1.
    padding : int or tuple of ints, default 0
        That convolution's zero padding: ``padding`` positions are cut from both ends of
        the full result; each >= 0 (strings are refused, as in torch).
    output_padding : int or tuple of ints, default 0
        Added to one side of the output shape; each smaller than ``stride`` or than
        ``dilation`` (torch's rule).
    groups : int, default 1
        Blocked connections; divides ``in_channels``.
    dilation : int or tuple of ints, default 1
        Spacing between kernel elements; each >= 1.
    backend : str, optional
        'auto', 'numpy', 'cython' or 'numba'; None uses :func:`fastconv.get_backend`.
    out : ndarray, optional
        Destination: exact shape and dtype of the result, C-contiguous, writeable, not
        overlapping an input.

    Returns
    -------
    ndarray
        Shape {oshape}, each spatial size ``(L - 1) * stride - 2 * padding + dilation *
        (k - 1) + output_padding + 1``; dtype ``result_type(x, weight[, bias], float32)``.

    Raises
    ------
    ValueError, TypeError
        For invalid arguments, before any kernel runs, naming the argument (``x``,
        ``weight``, ``bias``, ``stride``, ``padding``, ``output_padding``, ``groups``,
        ``dilation``, ``out``).
"""


def _conv_transpose(x, weight, bias, stride, padding, output_padding, groups, dilation,
                    backend, out, nd):
    """conv_transpose{nd}d: validated in its own terms, then the input gradient of the
    convolution it transposes (2-D kernels for nd = 1, 2; :func:`fastconv.grad.conv3d_input`
    for nd = 3), plus the bias."""
    from . import grad as _grad

    name = _dispatch.resolve(backend, "conv2d_input")
    x = S.as_real_array(x, "x")
    weight = S.as_real_array(weight, "weight")
    if bias is not None:
        bias = S.as_real_array(bias, "bias")
    dtype = S.result_dtype(x, weight) if bias is None else S.result_dtype(x, weight, bias)
    geo = S.conv_transpose_geometry(x.shape, weight.shape, stride, padding, output_padding,
                                    groups, dilation, nd)
    K = geo.w_shape[1] * geo.groups
    if bias is not None and bias.shape != (K,):
        raise ValueError(f"bias must have shape ({K},) (out_channels), got {bias.shape}")
    S.check_alloc(geo.conv_input_size, dtype.itemsize,
                  "the output (from x, weight, stride, padding, output_padding, dilation)")
    if out is not None:
        S.check_out(out, geo.conv_input_size, dtype,
                    [("x", x), ("weight", weight), ("bias", bias)])
    if nd < 3 and x.size:
        res = _conv_transpose_subpixel(x, weight, bias, geo, dtype, name, out, nd)
        if res is not None:
            return res
    gy = S.pad_extra(x.astype(dtype, copy=False), geo.extra)
    w = weight.astype(dtype, copy=False)
    if nd == 3:
        res = _grad.conv3d_input(geo.conv_input_size, w, gy, geo.stride, geo.padding,
                                 geo.dilation, geo.groups, backend=name)
        if out is not None:
            out[...] = res
            res = out
    else:
        spec = S.conv_input_grad_spec(geo.conv_input_size, w, gy, geo.stride, geo.padding,
                                      geo.dilation, geo.groups, "zeros", nd)
        buf = np.empty(spec.grad_shape, dtype) if out is None else out.reshape(spec.grad_shape)
        _dispatch.run("conv2d_input", name, spec, buf, compute=_grad._run_conv_grad)
        res = out if out is not None else buf.reshape(spec.result_shape)
    if bias is not None and res.size:
        res += bias.astype(dtype, copy=False).reshape((K,) + (1,) * nd)
    return res


def _conv_transpose_subpixel(x, weight, bias, geo, dtype, name, out, nd):
    """The sub-pixel path (:mod:`fastconv._transpose`: one forward convolution) when its
    plan takes the call, else None. 1-D runs as 2-D with height 1."""
    from . import _transpose

    one = (1,) if nd == 1 else ()
    xs = geo.x_shape if geo.batched else (1,) + geo.x_shape
    rs = geo.conv_input_size if geo.batched else (1,) + geo.conv_input_size
    x4 = xs[:2] + one + xs[2:]
    w4 = geo.w_shape[:2] + one + geo.w_shape[2:]
    o4 = rs[:2] + one + rs[2:]
    lead = (1,) * (2 - nd)
    axes = _transpose.plan(name, x4, w4, o4, (1,) * (2 - nd) + geo.stride,
                           (0,) * (2 - nd) + geo.padding, lead + geo.dilation)
    if axes is None:
        return None
    buf = np.empty(o4, dtype) if out is None else out.reshape(o4)
    if _transpose.run(S.prepare(x.reshape(x4), dtype), S.prepare(weight.reshape(w4), dtype),
                      None if bias is None else S.prepare(bias, dtype), buf, geo.groups,
                      axes, name) is None:
        return None  # an inf or NaN weight: the input-gradient kernels (the same sums)
    return out if out is not None else buf.reshape(geo.conv_input_size)


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, backend=None, out=None):
    """1-D transposed convolution over (N, C, L) inputs, as
    ``torch.nn.functional.conv_transpose1d`` (note the order: ``groups`` before
    ``dilation``).
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.array([[[1., 2., 3.]]], dtype=np.float32)
    >>> fastconv.conv_transpose1d(x, np.array([[[1., 10.]]], dtype=np.float32), stride=2)
    array([[[ 1., 10.,  2., 20.,  3., 30.]]], dtype=float32)
    """
    return _conv_transpose(x, weight, bias, stride, padding, output_padding, groups,
                           dilation, backend, out, 1)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, backend=None, out=None):
    """2-D transposed convolution over (N, C, H, W) inputs, as
    ``torch.nn.functional.conv_transpose2d`` (note the order: ``groups`` before
    ``dilation``).
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.ones((1, 2, 2, 2), dtype=np.float32)
    >>> w = np.ones((2, 3, 4, 4), dtype=np.float32)
    >>> y = fastconv.conv_transpose2d(x, w, stride=2, padding=1)
    >>> y.shape
    (1, 3, 4, 4)
    >>> y[0, 0]
    array([[2., 4., 4., 2.],
           [4., 8., 8., 4.],
           [4., 8., 8., 4.],
           [2., 4., 4., 2.]], dtype=float32)
    """
    return _conv_transpose(x, weight, bias, stride, padding, output_padding, groups,
                           dilation, backend, out, 2)


def conv_transpose3d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, backend=None, out=None):
    """3-D transposed convolution over (N, C, D, H, W) inputs, as
    ``torch.nn.functional.conv_transpose3d`` (note the order: ``groups`` before
    ``dilation``).
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.ones((1, 1, 2, 2, 2), dtype=np.float32)
    >>> fastconv.conv_transpose3d(x, np.ones((1, 1, 2, 2, 2), np.float32)).shape
    (1, 1, 3, 3, 3)
    """
    return _conv_transpose(x, weight, bias, stride, padding, output_padding, groups,
                           dilation, backend, out, 3)


conv_transpose1d.__doc__ = conv_transpose1d.__doc__.format(doc=_TRANSPOSE_DOC.format(
    nd=1, how=", as a 2-D call of height 1", xshape="(N, C_in, L) or (C_in, L)",
    wshape="(C_in, out_channels // groups, kernel)",
    oshape="(N, out_channels, L_out), or (out_channels, L_out) for unbatched x"))
conv_transpose2d.__doc__ = conv_transpose2d.__doc__.format(doc=_TRANSPOSE_DOC.format(
    nd=2, how="", xshape="(N, C_in, H, W) or (C_in, H, W)",
    wshape="(C_in, out_channels // groups, kH, kW)",
    oshape="(N, out_channels, H_out, W_out), or without N for unbatched x"))
conv_transpose3d.__doc__ = conv_transpose3d.__doc__.format(doc=_TRANSPOSE_DOC.format(
    nd=3, how="", xshape="(N, C_in, D, H, W) or (C_in, D, H, W)",
    wshape="(C_in, out_channels // groups, kD, kH, kW)",
    oshape="(N, out_channels, D_out, H_out, W_out), or without N for unbatched x"))


# --------------------------------------------------------------------------------------------
# 3-D pools and avg_pool1d (issue 17)
# --------------------------------------------------------------------------------------------
def max_pool3d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, backend=None):
    """3-D max pooling over (N, C, D, H, W) inputs, as ``torch.nn.functional.max_pool3d``.
    {doc}
    Returns
    -------
    ndarray, or (ndarray, ndarray of int64)
        The maxima, and with ``return_indices`` their flat positions
        ``d * H * W + h * W + w`` within each input volume, equal to torch's. NaN
        propagates (the last NaN of a window gives its index); ties keep the first position
        in (d, h, w) order. A window that sees only padding (possible with dilation) gives
        -inf and torch's index for it, that of its first tap at or after the input's start
        on each axis: outside the volume (which :func:`fastconv.grad.max_pool3d` ignores)
        or, as in torch, on a later row or slice, which then receives its gradient.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    >>> fastconv.max_pool3d(x, 2, return_indices=True)
    (array([[[[7.]]]], dtype=float32), array([[[[7]]]]))
    """
    name = _dispatch.resolve(backend, "max_pool3d")
    spec = S.pool_spec(x, kernel_size, stride, padding, dilation, ceil_mode, 3,
                       op="max_pool3d", return_indices=return_indices)
    res = np.empty(spec.out_shape, spec.dtype)
    _dispatch.run("max_pool3d", name, spec, res)
    res = res.reshape(spec.result_shape)
    if spec.indices is None:
        return res
    return res, spec.indices.reshape(spec.result_shape)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, *, backend=None):
    """1-D average pooling over (N, C, L) inputs, as ``torch.nn.functional.avg_pool1d``
    (which has no ``divisor_override``).

    It runs on the 3-D kernels (avg_pool3d) with a depth and a height of 1.
    {doc}
    count_include_pad : bool, default True
        Count the zero padding in the divisor.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.avg_pool1d(np.array([[1., 3., 2., 5., 4.]]), 2)
    array([[2. , 3.5]])
    """
    return _avg_pool(x, kernel_size, stride, padding, ceil_mode, count_include_pad, None,
                     backend, 1, "avg_pool2d")


def avg_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None, *, backend=None):
    """3-D average pooling over (N, C, D, H, W) inputs, as
    ``torch.nn.functional.avg_pool3d``.
    {doc}
    count_include_pad : bool, default True
        Count the zero padding in the divisor.
    divisor_override : int, optional
        A nonzero int that replaces the divisor of every window (as in torch; negative
        allowed).

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    >>> fastconv.avg_pool3d(x, 2)
    array([[[[3.5]]]], dtype=float32)
    >>> fastconv.avg_pool3d(x, 2, divisor_override=2)
    array([[[[14.]]]], dtype=float32)
    """
    return _avg_pool(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, backend, 3, "avg_pool3d")


max_pool3d.__doc__ = max_pool3d.__doc__.format(doc=_POOL_DOC.format(
    xshape="(N, C, D, H, W) or (C, D, H, W)", extra=_DIL))
avg_pool1d.__doc__ = avg_pool1d.__doc__.format(doc=_POOL_DOC.format(
    xshape="(N, C, L) or (C, L)", extra=""))
avg_pool3d.__doc__ = avg_pool3d.__doc__.format(doc=_POOL_DOC.format(
    xshape="(N, C, D, H, W) or (C, D, H, W)", extra=""))


# --------------------------------------------------------------------------------------------
# ---- fold (issue 17): unfold/fold, max_unpool1d/2d/3d, lp_pool1d/2d ----
# --------------------------------------------------------------------------------------------
def unfold(x, kernel_size, dilation=1, padding=0, stride=1, *, backend=None, out=None):
    """Extract sliding local blocks (im2col), as ``torch.nn.functional.unfold``.

    Parameters
    ----------
    x : array_like
        Input of shape (N, C, H, W) or unbatched (C, H, W).
    kernel_size : int or pair of ints
        Block size (kh, kw); each >= 1.
    dilation : int or pair of ints, default 1
        Spacing between a block's elements; each >= 1.
    padding : int or pair of ints, default 0
        Implicit zero padding on both sides of each spatial axis; each >= 0.
    stride : int or pair of ints, default 1
        Step between blocks; each >= 1.
    backend : str, optional
        'auto', 'numpy', 'cython' or 'numba'; None uses :func:`fastconv.get_backend`.
    out : ndarray, optional
        Destination: exact shape and dtype of the result, C-contiguous, writeable, not
        overlapping ``x``.

    Returns
    -------
    ndarray
        (N, C * kh * kw, L), or (C * kh * kw, L) for unbatched ``x``, where L = Ho * Wo is
        the number of blocks: row ``(c * kh + i) * kw + j`` and column ``oh * Wo + ow``
        hold ``x[n, c, oh * sh - ph + i * dh, ow * sw - pw + j * dw]`` (zero in the
        padding). dtype ``result_type(x, float32)``. :func:`fold` is its adjoint.

    Raises
    ------
    ValueError, TypeError
        For invalid arguments, before any kernel runs, naming the argument.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    >>> fastconv.unfold(x, 2)
    array([[[0., 1., 3., 4.],
            [1., 2., 4., 5.],
            [3., 4., 6., 7.],
            [4., 5., 7., 8.]]], dtype=float32)
    """
    name = _dispatch.resolve(backend, "unfold")
    spec = S.unfold_spec(x, kernel_size, dilation, padding, stride)
    res = _finish(spec.out_shape, spec.result_shape, spec.dtype, out, [("x", x)])
    _dispatch.run("unfold", name, spec, res, _chunks.by_planes)
    return out if out is not None else res.reshape(spec.result_shape)


def fold(x, output_size, kernel_size, dilation=1, padding=0, stride=1, *, backend=None,
         out=None):
    """Combine sliding local blocks into an array (col2im), as
    ``torch.nn.functional.fold``: the adjoint of :func:`unfold`.

    Parameters
    ----------
    x : array_like
        Blocks of shape (N, C * kh * kw, L) or unbatched (C * kh * kw, L), laid out as
        :func:`unfold` returns them; L must be the number of blocks that ``output_size``,
        ``kernel_size``, ``dilation``, ``padding`` and ``stride`` give.
    output_size : int or pair of ints
        (H, W) of the result.
    kernel_size, dilation, padding, stride : int or pair of ints
        As :func:`unfold`.
    backend : str, optional
        'auto', 'numpy', 'cython' or 'numba'; None uses :func:`fastconv.get_backend`.
    out : ndarray, optional
        Destination: exact shape and dtype of the result, C-contiguous, writeable, not
        overlapping ``x``.

    Returns
    -------
    ndarray
        (N, C, H, W), or (C, H, W) for unbatched ``x``: zeros, with each block element added
        at the position :func:`unfold` reads it from (overlapping blocks add up; elements
        in the padding are dropped). dtype ``result_type(x, float32)``. The sums run in the
        same order for any thread count.

    Raises
    ------
    ValueError, TypeError
        For invalid arguments, before any kernel runs, naming the argument.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> cols = np.ones((1, 4, 4), dtype=np.float32)   # 2x2 blocks over a 3x3 plane
    >>> fastconv.fold(cols, (3, 3), 2)
    array([[[[1., 2., 1.],
             [2., 4., 2.],
             [1., 2., 1.]]]], dtype=float32)
    """
    name = _dispatch.resolve(backend, "fold")
    spec = S.fold_spec(x, output_size, kernel_size, dilation, padding, stride)
    res = _finish(spec.out_shape, spec.result_shape, spec.dtype, out, [("x", x)])
    _dispatch.run("fold", name, spec, res, _chunks.by_planes)
    return out if out is not None else res.reshape(spec.result_shape)


def _max_unpool(x, indices, kernel_size, stride, padding, output_size, backend, nd):
    name = _dispatch.resolve(backend, "max_unpool")
    spec = S.unpool_spec(x, indices, kernel_size, stride, padding, output_size, nd)
    res = np.empty(spec.out_shape, spec.dtype)
    _dispatch.run("max_unpool", name, spec, res, _chunks.by_planes)
    return res.reshape(spec.result_shape)


_UNPOOL_DOC = """
    Parameters
    ----------
    x : array_like
        The pooled values, {xshape}.
    indices : array_like of ints
        Shaped like ``x``: the flat position of each value within its output plane, as
        :func:`fastconv.max_pool{nd}d` (``return_indices=True``) gives them. Each must lie
        in the output plane (else ValueError, before anything is written).
    kernel_size : int or tuple of {nd} ints
        The pooling's window size.
    stride : int or tuple of {nd} ints, optional
        The pooling's stride; None (or ``()``) means ``kernel_size``.
    padding : int or tuple of {nd} ints, default 0
        The pooling's padding.
    output_size : sequence of ints, optional
        The output's spatial size ({nd} values, or {nd2} with N and C first); each must lie
        strictly within ``stride`` of the default ``(in - 1) * stride + kernel_size - 2 *
        padding``, as in torch. None: the default.
    backend : str, optional
        'auto', 'numpy', 'cython' or 'numba'; None uses :func:`fastconv.get_backend`.

    Returns
    -------
    ndarray
        Zeros of the output size with each value of ``x`` written at its index (a repeated
        index keeps the last value in C order, as torch's CPU kernel); (N, C) or (C,)
        first, like ``x``. dtype ``result_type(x, float32)``.

    Raises
    ------
    ValueError, TypeError
        For invalid arguments, before any kernel runs, naming the argument.
"""


def max_unpool1d(x, indices, kernel_size, stride=None, padding=0, output_size=None, *,
                 backend=None):
    """Partial inverse of :func:`max_pool1d`, as ``torch.nn.functional.max_unpool1d``.
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> y, idx = fastconv.max_pool1d(np.array([[1., 3., 2., 5.]]), 2, return_indices=True)
    >>> fastconv.max_unpool1d(y, idx, 2)
    array([[0., 3., 0., 5.]])
    """
    return _max_unpool(x, indices, kernel_size, stride, padding, output_size, backend, 1)


def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None, *,
                 backend=None):
    """Partial inverse of :func:`max_pool2d`, as ``torch.nn.functional.max_unpool2d``.
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.array([[[1., 4.], [3., 2.]]], dtype=np.float32)
    >>> y, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    >>> fastconv.max_unpool2d(y, idx, 2)
    array([[[0., 4.],
            [0., 0.]]], dtype=float32)
    """
    return _max_unpool(x, indices, kernel_size, stride, padding, output_size, backend, 2)


def max_unpool3d(x, indices, kernel_size, stride=None, padding=0, output_size=None, *,
                 backend=None):
    """Partial inverse of a 3-D max pooling, as ``torch.nn.functional.max_unpool3d``.
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> y = np.array([[[[7.]]]])             # one value, (C, D, H, W) = (1, 1, 1, 1)
    >>> fastconv.max_unpool3d(y, np.array([[[[5]]]]), 2)[0, 1]
    array([[0., 7.],
           [0., 0.]])
    """
    return _max_unpool(x, indices, kernel_size, stride, padding, output_size, backend, 3)


max_unpool1d.__doc__ = max_unpool1d.__doc__.format(doc=_UNPOOL_DOC.format(
    xshape="(N, C, L) or (C, L)", nd=1, nd2=3))
max_unpool2d.__doc__ = max_unpool2d.__doc__.format(doc=_UNPOOL_DOC.format(
    xshape="(N, C, H, W) or (C, H, W)", nd=2, nd2=4))
max_unpool3d.__doc__ = max_unpool3d.__doc__.format(doc=_UNPOOL_DOC.format(
    xshape="(N, C, D, H, W) or (C, D, H, W)", nd=3, nd2=5))


def _lp_norm(norm_type) -> float:
    """``norm_type`` as a float: a real number, not zero or NaN (inf allowed)."""
    if isinstance(norm_type, (bool, np.bool_)) or not isinstance(
            norm_type, (int, float, np.integer, np.floating)):
        raise TypeError(f"norm_type must be a real number, got {norm_type!r}")
    try:
        p = float(norm_type)
    except OverflowError:  # an int beyond float's range (torch: OverflowError)
        raise ValueError(f"norm_type must be within the range of a float, got an int of "
                         f"{int(norm_type).bit_length()} bits") from None
    if p == 0 or p != p:
        raise ValueError(f"norm_type must be non-zero and not NaN, got {norm_type!r}")
    return p


def _lp_stride(stride):
    return None if isinstance(stride, (tuple, list)) and len(stride) == 0 else stride


def _lp_pool(x, norm_type, kernel_size, stride, ceil_mode, backend, nd):
    p = _lp_norm(norm_type)
    stride = _lp_stride(stride)
    if np.isinf(p):  # torch: the max of |x| (of -|x|, negated, for -inf)
        S.pool_spec(x, kernel_size, stride, 0, 1, ceil_mode, nd)  # errors before any work
        a = np.abs(S.as_real_array(x, "x"))
        pool = max_pool1d if nd == 1 else max_pool2d
        if p > 0:
            return pool(a, kernel_size, stride, 0, 1, ceil_mode, backend=backend)
        return -pool(-a, kernel_size, stride, 0, 1, ceil_mode, backend=backend)
    # the average pooling's spec (a 1-D one runs as a 3-D pool of depth 1: its spec.op)
    spec = S.pool_spec(x, kernel_size, stride, 0, 1, ceil_mode, nd, op="avg_pool2d")
    name = _dispatch.resolve(backend, spec.op)
    t = spec.dtype.type
    with np.errstate(all="ignore"):  # 0 ** -p, (-x) ** 0.5: inf and NaN, as in torch
        spec = spec._replace(x=np.power(spec.x, t(p)))
    res = np.empty(spec.out_shape, spec.dtype)
    _dispatch.run(spec.op, name, spec, res)
    with np.errstate(all="ignore"):
        res = np.sign(res) * np.maximum(np.abs(res), t(0))
        res *= t(np.prod(spec.kernel))
        np.power(res, t(1.0 / p), out=res)
    return res.reshape(spec.result_shape)


_LP_DOC = """
    Parameters
    ----------
    x : array_like
        Input of shape {xshape}.
    norm_type : int or float
        The power p: non-zero, not NaN; ``inf`` gives the max of ``|x|`` and ``-inf`` the
        min, as in torch.
    kernel_size : {ktype}
        Window size.
    stride : {ktype}, optional
        Step between windows; None (or ``()``) means ``kernel_size``.
    ceil_mode : bool, default False
        Round the output size up (a last window that starts past the input is dropped).
    backend : str, optional
        'auto', 'numpy', 'cython' or 'numba'; None uses :func:`fastconv.get_backend`.

    Returns
    -------
    ndarray
        torch's definition: ``(sign(a) * relu(|a|) * k) ** (1 / p)`` with ``a`` the
        average pooling (no padding) of ``x ** p`` and ``k`` the window's size, so a
        ceil-mode window clipped by the input's end has its sum scaled by ``k`` over the
        clipped size, as in torch. Negative values to a fractional power give NaN. Shape
        {oshape}, dtype ``result_type(x, float32)``.

    Raises
    ------
    ValueError, TypeError
        For invalid arguments, before any kernel runs, naming the argument.

    Notes
    -----
    Built on the average-pooling kernels (``avg_pool2d``'s, a 1-D input as height 1) of the
    chosen backend; the powers are NumPy element-wise operations.
"""


def lp_pool1d(x, norm_type, kernel_size, stride=None, ceil_mode=False, *, backend=None):
    """1-D power-average pooling, as ``torch.nn.functional.lp_pool1d``.
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.lp_pool1d(np.array([[3., 4., 1., 1.]]), 2, 2)
    array([[5.        , 1.41421356]])
    """
    return _lp_pool(x, norm_type, kernel_size, stride, ceil_mode, backend, 1)


def lp_pool2d(x, norm_type, kernel_size, stride=None, ceil_mode=False, *, backend=None):
    """2-D power-average pooling, as ``torch.nn.functional.lp_pool2d``.
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.array([[[1., 2.], [2., 4.]]], dtype=np.float32)
    >>> fastconv.lp_pool2d(x, 2, 2)
    array([[[5.]]], dtype=float32)
    """
    return _lp_pool(x, norm_type, kernel_size, stride, ceil_mode, backend, 2)


lp_pool1d.__doc__ = lp_pool1d.__doc__.format(doc=_LP_DOC.format(
    xshape="(N, C, L) or (C, L)", ktype="int", oshape="(N, C, L_out) or (C, L_out)"))
lp_pool2d.__doc__ = lp_pool2d.__doc__.format(doc=_LP_DOC.format(
    xshape="(N, C, H, W) or (C, H, W)", ktype="int or pair of ints",
    oshape="(N, C, H_out, W_out) or (C, H_out, W_out)"))


# --------------------------------------------------------------------------------------------
# adaptive pools (issue 17)
# --------------------------------------------------------------------------------------------
__all__ += [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
]

_ADAPTIVE_DOC = """
    The output has ``output_size`` along each spatial axis; output ``i`` along an axis of
    ``n`` inputs and ``m`` outputs pools the window ``[floor(i * n / m), ceil((i + 1) * n /
    m))``, as in torch.{nd}

    Parameters
    ----------
    x : array_like
        Input of shape {xshape}; the channel and spatial sizes must not be 0 (the batch
        may be).
    output_size : {osize}
        The output's spatial size: one int for every axis{none}. 0 gives an empty result.{ri}
    backend : str, optional
        'auto', 'numpy', 'cython' or 'numba'; None uses :func:`fastconv.get_backend`.

    Returns
    -------
    {ret}

    Raises
    ------
    ValueError, TypeError
        For invalid arguments, before any kernel runs, naming the argument.
"""
_ADAPTIVE_RI = """
    return_indices : bool, default False
        Also return the position of each maximum, flat within its input {within}."""
_AVG_RET = """ndarray
        Shape (N, C) + output size (without N for unbatched ``x``), dtype
        ``result_type(x, float32)``: each window's mean."""
_MAX_RET = """ndarray, or (ndarray, ndarray of int64)
        Shape (N, C) + output size (without N for unbatched ``x``), dtype
        ``result_type(x, float32)``: each window's maximum (a NaN wins; ties keep the
        first position; a window of -inf keeps its first position, as in torch), and with
        ``return_indices`` its flat position {flat}."""


def _adaptive(x, output_size, nd, op, return_indices, backend):
    name = _dispatch.resolve(backend, op)
    spec = S.adaptive_pool_spec(x, output_size, nd, op, return_indices)
    res = np.empty(spec.out_shape, spec.dtype)
    _dispatch.run(op, name, spec, res)
    res = res.reshape(spec.result_shape)
    if spec.indices is None:
        return res
    return res, spec.indices.reshape(spec.result_shape)


def adaptive_avg_pool1d(x, output_size, *, backend=None):
    """1-D adaptive average pooling over (N, C, L) inputs, as
    ``torch.nn.functional.adaptive_avg_pool1d``.
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.adaptive_avg_pool1d(np.array([[1., 2., 3., 4., 5.]]), 2)
    array([[2., 4.]])
    """
    return _adaptive(x, output_size, 1, "adaptive_avg_pool3d", False, backend)


def adaptive_avg_pool2d(x, output_size, *, backend=None):
    """2-D adaptive average pooling over (N, C, H, W) inputs, as
    ``torch.nn.functional.adaptive_avg_pool2d``.
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    >>> fastconv.adaptive_avg_pool2d(x, 1)
    array([[[7.5]]], dtype=float32)
    >>> fastconv.adaptive_avg_pool2d(x, (None, 2))
    array([[[ 0.5,  2.5],
            [ 4.5,  6.5],
            [ 8.5, 10.5],
            [12.5, 14.5]]], dtype=float32)
    """
    return _adaptive(x, output_size, 2, "adaptive_avg_pool3d", False, backend)


def adaptive_avg_pool3d(x, output_size, *, backend=None):
    """3-D adaptive average pooling over (N, C, D, H, W) inputs, as
    ``torch.nn.functional.adaptive_avg_pool3d``.
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.arange(8.0).reshape(1, 2, 2, 2)
    >>> fastconv.adaptive_avg_pool3d(x, (1, None, 1))
    array([[[[2.5],
             [4.5]]]])
    """
    return _adaptive(x, output_size, 3, "adaptive_avg_pool3d", False, backend)


def adaptive_max_pool1d(x, output_size, return_indices=False, *, backend=None):
    """1-D adaptive max pooling over (N, C, L) inputs, as
    ``torch.nn.functional.adaptive_max_pool1d``.
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.adaptive_max_pool1d(np.array([[1., 5., 3., 2., 4.]]), 2, True)
    (array([[5., 4.]]), array([[1, 4]]))
    """
    return _adaptive(x, output_size, 1, "adaptive_max_pool3d", return_indices, backend)


def adaptive_max_pool2d(x, output_size, return_indices=False, *, backend=None):
    """2-D adaptive max pooling over (N, C, H, W) inputs, as
    ``torch.nn.functional.adaptive_max_pool2d``.
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.array([[[1., 4., 2.], [3., 0., 5.]]], dtype=np.float32)
    >>> fastconv.adaptive_max_pool2d(x, (1, 2), return_indices=True)
    (array([[[4., 5.]]], dtype=float32), array([[[1, 5]]]))
    """
    return _adaptive(x, output_size, 2, "adaptive_max_pool3d", return_indices, backend)


def adaptive_max_pool3d(x, output_size, return_indices=False, *, backend=None):
    """3-D adaptive max pooling over (N, C, D, H, W) inputs, as
    ``torch.nn.functional.adaptive_max_pool3d``.
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.arange(8.0).reshape(1, 2, 2, 2)
    >>> fastconv.adaptive_max_pool3d(x, 1, return_indices=True)
    (array([[[[7.]]]]), array([[[[7]]]]))
    """
    return _adaptive(x, output_size, 3, "adaptive_max_pool3d", return_indices, backend)


def _adaptive_doc(fn, nd, avg):
    xshape = S._ADAPTIVE_SHAPES[nd]
    within = {1: "row", 2: "plane", 3: "volume"}[nd]
    flat = {1: "``l``", 2: "``h * W + w``", 3: "``d * H * W + h * W + w``"}[nd]
    fn.__doc__ = fn.__doc__.format(doc=_ADAPTIVE_DOC.format(
        xshape=xshape,
        nd={1: "\n    The 3-D kernels compute it, on a depth and height of 1.",
            2: "\n    The 3-D kernels compute it, on a depth of 1.", 3: ""}[nd],
        osize="int or tuple of 1 int" if nd == 1 else f"int or tuple of {nd} ints or None",
        none="" if nd == 1 else ", or a tuple with None for the input's size along that axis",
        ri="" if avg else _ADAPTIVE_RI.format(within=within),
        ret=_AVG_RET if avg else _MAX_RET.format(flat=f"{flat} within its {within}")))


for _fn, _nd, _avg in ((adaptive_avg_pool1d, 1, True), (adaptive_avg_pool2d, 2, True),
                       (adaptive_avg_pool3d, 3, True), (adaptive_max_pool1d, 1, False),
                       (adaptive_max_pool2d, 2, False), (adaptive_max_pool3d, 3, False)):
    _adaptive_doc(_fn, _nd, _avg)
del _fn, _nd, _avg


# --------------------------------------------------------------------------------------------
# ---- conv3d (issue 17) ----
# --------------------------------------------------------------------------------------------
__all__ += [
    "conv3d",
]


def conv3d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", backend=None, out=None):
    """3-D cross-correlation over (N, C, D, H, W) inputs, as
    ``torch.nn.functional.conv3d`` (with ``torch.nn.Conv3d``'s ``padding_mode``).
    {doc}
    Notes
    -----
    The compiled backends run, by the plan (:func:`fastconv._plan.conv3d`), vol2col in
    bounded tiles + GEMM for many channels, or a direct register-blocked kernel for few
    (e.g. one input channel). Results do not depend on the thread count.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.ones((1, 1, 3, 4, 4), dtype=np.float32)
    >>> w = np.ones((2, 1, 2, 2, 2), dtype=np.float32)
    >>> y = fastconv.conv3d(x, w, padding="same")
    >>> y.shape
    (1, 2, 3, 4, 4)
    >>> fastconv.conv3d(x, w)[0, 0, 0]
    array([[8., 8., 8.],
           [8., 8., 8.],
           [8., 8., 8.]], dtype=float32)
    """
    name = _dispatch.resolve(backend, "conv3d")
    spec = S.conv_spec(x, weight, bias, stride, padding, dilation, groups, padding_mode, 3)
    res = _finish(spec.out_shape, spec.result_shape, spec.dtype, out,
                  [("x", x), ("weight", weight), ("bias", bias)])
    _dispatch.run("conv3d", name, spec, res)
    return out if out is not None else res.reshape(spec.result_shape)


conv3d.__doc__ = conv3d.__doc__.format(doc=_CONV_DOC.format(
    xshape="(N, C, D, H, W) or (C, D, H, W)",
    wshape="(out_channels, C // groups, kD, kH, kW)",
    oshape="(N, out_channels, D_out, H_out, W_out), or without N for unbatched x", nd=3))


# ---- complex inputs of convolve/correlate/convolve2d/correlate2d (issue 18) ----
def _is_complex(*args) -> bool:
    """Whether any argument is complex (then the call takes :func:`_complex_1d` or
    :func:`_complex_2d`; the real path is unchanged)."""
    return any(np.iscomplexobj(a) for a in args)


def _complex_1d(a, v, mode, backend, conj, flip):
    """``numpy.correlate`` (``conj``: ``v`` conjugated) or ``numpy.convolve`` (``flip``:
    ``v`` reversed, the longer input first) of complex sequences, in the dtype
    ``result_type(a, v, float32)``: ``out[i] = sum_j a[i + j - lo] * w[j]`` with numpy's
    output length and offset ``lo`` per mode, one real kernel call on the real and
    imaginary parts stacked as channels (:func:`fastconv.signal._corr`)."""
    from . import signal as _signal

    name = _dispatch.resolve(backend)
    mode = _mode(mode)
    a = _signal._array(a, "a")
    v = _signal._array(v, "v")
    for arr, nm in ((a, "a"), (v, "v")):
        if arr.ndim > 1:
            raise ValueError(f"{nm} must be one-dimensional, got shape {arr.shape}")
        if arr.size == 0:
            raise ValueError(f"{nm} cannot be empty")
    a, v = a.reshape(-1), v.reshape(-1)
    dtype = np.result_type(a, v, np.float32)
    if flip:
        if v.size > a.size:  # convolution commutes; 'same' follows the longer
            a, v = v, a
        v = v[::-1]
    if conj:
        v = np.conj(v)
    Na, Nv = a.size, v.size
    if mode == "full":
        lo, L = Nv - 1, Na + Nv - 1
    elif mode == "valid":
        lo, L = max(Nv - Na, 0), abs(Na - Nv) + 1
    else:
        lo, L = (Nv // 2 if Na >= Nv else Nv - 1 - Na // 2), max(Na, Nv)
    rdt = np.float32 if dtype == np.complex64 else np.float64
    S.check_alloc((2, L), np.dtype(rdt).itemsize, "the output")
    res = _signal._corr(_signal._as_compute(a, rdt), _signal._as_compute(v, rdt), [lo], (L,),
                        name)
    return res.astype(dtype, copy=False)


def _complex_2d(in1, in2, mode, boundary, fillvalue, backend, flip):
    """``scipy.signal.convolve2d``/``correlate2d`` of complex arrays: those of
    :mod:`fastconv.signal` (one real kernel call with the parts as channels), whose dtype
    ``result_type(in1, in2)`` is fastconv's ``result_type(in1, in2, float32)`` for complex
    inputs."""
    from . import signal as _signal

    return _signal._signal2d(in1, in2, mode, boundary, fillvalue, backend, flip)


# --------------------------------------------------------------------------------------------
# FFT paths and the 1-D thread split (issue 19)
# --------------------------------------------------------------------------------------------
_METHODS = ("auto", "direct", "fft")
# a (N, K, 1, Lo) direct call with fewer than 2 * threads rows of work and at least this many
# outputs per row is cut into row segments, so that every thread has some
_ROW_SPLIT_MIN = 1 << 15
# the bytes of one piece's segment copies and outputs (see _run_rows)
_ROW_SPLIT_BYTES = 16 << 20


def _method(method):
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    return method


def _use_fft(method, name, a, v, out_shape, kshape, dtype):
    """Whether a NumPy/SciPy-style call takes the FFT path: 'fft' always; 'auto' on the
    compiled backends for float inputs when :func:`fastconv._fft.choose_method`'s cost
    model says so (integer and bool inputs stay direct, as scipy's choice does)."""
    if method == "direct":
        return False
    if method == "fft":
        return True
    if name == "numpy" or a.dtype.kind not in "f" or v.dtype.kind not in "f":
        return False
    from . import _fft
    return _fft.choose_shapes(out_shape, kshape, dtype) == "fft"


def _fft_correlate(x, w, left, lens, dtype):
    """``out[i] = sum_j xpad[i + j] * w[j]`` (per axis), ``xpad`` being ``x`` with ``left[a]``
    zeros before it (and zeros after): the full convolution with the flipped ``w``,
    windowed. Through :func:`fastconv._fft._conv_window`."""
    from . import _fft
    d = x.ndim
    xa = x.astype(dtype, copy=False)
    h = w[(slice(None, None, -1),) * d].astype(dtype, copy=False)
    starts = [k - 1 - p for k, p in zip(w.shape, left)]
    return _fft._conv_window(xa, h, d, starts, list(lens), np.dtype(dtype))


def _splits_rows(name, spec, res):
    """Whether the kernel spreads this one-row layer over the threads by itself: the
    compiled backends' direct kernels on a 1-D layer (``fastconv._plan.conv_row``: Cython's
    fc_row takes ranges of the row, Numba's ``_conv2d_row`` blocks of it, read in place)."""
    if name not in ("cython", "numba"):
        return False
    args = spec.kernel_args(res)
    return (_plan.algorithm("conv2d", name, args) == _plan.DIRECT
            and _plan.conv_row(spec.x.shape, spec.weight.shape, res.shape, spec.stride,
                               spec.pad, spec.groups))


def _run_rows(name, spec, res):
    """Run a conv2d spec whose output has one row (1-D work: conv1d, convolve, correlate).
    With fewer than two rows of work per thread and long rows, the row is cut into segments
    stacked as rows of a (N, C, segments, span) input, so that the kernel's row blocks
    spread over the threads (one long row ran on one thread while the others waited,
    slower on 2 threads than on 1). The compiled direct kernels spread a 1-D layer with
    few planes by themselves (:func:`_splits_rows`): that call runs whole. The same sums per
    output, so the same results. The row runs in pieces of at most ``_ROW_SPLIT_BYTES`` of
    segment copies and their outputs, so the extra memory stays bounded however long the
    row is. Returns whether the row ran whole, as one kernel call."""
    from ._threads import get_num_threads
    N, K, Ho, Wo = spec.out_shape
    nt = get_num_threads()
    if (name == "numpy" or Ho != 1 or nt < 2 or N * K >= 2 * nt or Wo < _ROW_SPLIT_MIN
            or spec.x.shape[2] != 1 or _splits_rows(name, spec, res)):
        _dispatch.run("conv2d", name, spec, res)
        return True
    x = spec.x
    Nx, C, _, Lin = x.shape
    k = spec.weight.shape[3]
    s, dl = spec.stride[1], spec.dilation[1]
    pl = spec.pad[1]
    it = x.itemsize
    reach = (k - 1) * dl + 1  # input positions one output reads
    # outputs per piece: the piece's input copy and segments (about 2 * C * s per output)
    # and its outputs (K per output) within the budget, and at least 2 segments per thread
    per_out = (2 * Nx * C * s + N * K) * it
    piece = max(2, _ROW_SPLIT_BYTES // per_out)
    for o0 in range(0, Wo, piece):
        o1 = min(Wo, o0 + piece)
        n_out = o1 - o0
        nseg = int(min(8 * nt, max(2, n_out // 4096)))
        seg = -(-n_out // nseg)
        span = (seg - 1) * s + reach
        total = (nseg - 1) * seg * s + span
        i0 = o0 * s - pl  # the piece's first input position (negative: zero padding)
        xp = np.zeros((Nx, C, total), x.dtype)
        a, b = max(0, i0), min(Lin, i0 + total)
        if b > a:
            xp[:, :, a - i0:b - i0] = x[:, :, 0, a:b]
        xs = np.lib.stride_tricks.as_strided(
            xp, (Nx, C, nseg, span), (xp.strides[0], xp.strides[1], seg * s * it, it)).copy()
        del xp
        tmp = np.empty((N, K, nseg, seg), res.dtype)
        spec2 = spec._replace(x=xs, pad=(0, 0), out_shape=tmp.shape, result_shape=tmp.shape)
        _dispatch.run("conv2d", name, spec2, tmp)
        res[:, :, 0, o0:o1] = tmp.reshape(N, K, nseg * seg)[:, :, :n_out]
    return False


def _conv_fft(backend, name, spec, res):
    """conv1d/conv2d under ``backend="auto"``: the FFT layer path when
    :func:`fastconv._plan.conv2d_fft` plans it (large kernels, stride 1); fills ``res`` and
    returns True, else returns False (the kernels run as before)."""
    from . import _plan
    x, w = spec.x, spec.weight
    if w.shape[-1] * w.shape[-2] < _plan.FFT_MIN_TAPS or name == "numpy":
        return False  # first the O(1) test that rules out almost every layer
    if (backend if backend is not None else _dispatch_default()) != "auto":
        return False
    if not _plan.conv2d_fft(name, x.shape, w.shape, spec.out_shape, spec.stride, spec.pad,
                            spec.dilation, spec.groups, x.dtype.itemsize):
        return False
    if not (np.isfinite(w).all()):
        return False  # a non-finite weight would spread NaN over every output of the FFT
    from . import _fft
    _fft.conv_layer(x, w, spec.pad, spec.dilation, spec.groups, res)
    if spec.has_bias:
        res += spec.bias.reshape(1, -1, 1, 1)
    return True


def _dispatch_default():
    from . import get_backend
    return get_backend()
