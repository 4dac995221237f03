"""Gradients of the convolutions and pools, as ``torch.nn.grad`` and autograd compute them.

Built like :mod:`fastconv.functional`: spec (validate once) -> dispatch -> kernel. Every
function takes the keyword-only ``backend=`` (``"auto"``, ``"numpy"``, ``"cython"``,
``"numba"``; None: :func:`fastconv.get_backend`), accepts unbatched arrays where the forward
function does, and returns ``numpy.result_type(inputs..., numpy.float32)`` (the shape-only
arguments and the max-pool indices take no part in it).

The convolution gradients take the forward call's ``stride``, ``padding`` (int, tuple,
``"same"`` or ``"valid"``), ``dilation``, ``groups`` and ``padding_mode``. With a non-zero
padding mode the gradient wrt the padded input is computed, then folded back onto the input
positions the padding copied (the adjoint of reflect/replicate/circular padding).

Long rows (issue 15): the compiled kernels' im2col + GEMM paths hold at least one output
row of columns per thread, so when one row's work would pass ``fastconv._tiling.LIMIT``
bytes, ``conv2d_input`` and ``conv2d_weight`` run the same kernel on blocks of columns of
one image (:func:`fastconv._tiling.tiles`; shapes only, never the thread count) and put
the pieces together: ``conv2d_input`` writes each block of input columns from the
``grad_output`` columns that reach it, ``conv2d_weight`` adds the blocks' weight gradients.
The sums are then cut differently from an untiled call: the result agrees with it (and the
reference) to rounding, and still does not depend on the thread count. Shorter rows,
every benchmark shape among them, run untiled as before.

Examples
--------
>>> import numpy as np, fastconv
>>> x = np.arange(9.0).reshape(1, 1, 3, 3)
>>> w = np.ones((1, 1, 2, 2))
>>> g = np.ones((1, 1, 2, 2))  # d(sum(conv2d(x, w))) / d(...)
>>> fastconv.grad.conv2d_input(x.shape, w, g)[0, 0]
array([[1., 2., 1.],
       [2., 4., 2.],
       [1., 2., 1.]])
>>> fastconv.grad.conv2d_weight(x, w.shape, g)[0, 0]
array([[ 8., 12.],
       [20., 24.]])
"""

from __future__ import annotations

import numpy as np

from . import _chunks  # issue 17 (fold): unfold/fold/max_unpool in pieces of planes
from . import _dispatch, _fastcall, _plan, _tiling
from . import _spec as S

__all__ = [
    "conv1d_input",
    "conv1d_weight",
    "conv2d_input",
    "conv2d_weight",
    "conv1d_bias",
    "conv2d_bias",
    "max_pool1d",
    "max_pool2d",
    "avg_pool2d",
    "conv_transpose1d_input",
    "conv_transpose2d_input",
    "conv_transpose3d_input",
    "conv_transpose1d_weight",
    "conv_transpose2d_weight",
    "conv_transpose3d_weight",
    "conv_transpose1d_bias",
    "conv_transpose2d_bias",
    "conv_transpose3d_bias",
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

_CONV_ARGS = """
    stride, padding, dilation, groups
        The forward call's: see :func:`fastconv.{fwd}`. ``padding`` may be an int, a tuple,
        ``"valid"`` or ``"same"``.
    padding_mode : {{'zeros', 'reflect', 'replicate', 'circular'}}, default 'zeros'
        The forward call's; the padding's gradient is folded back onto the input.
    backend : str, optional
        'auto', 'numpy', 'cython' or 'numba'; None uses :func:`fastconv.get_backend`.

    Raises
    ------
    ValueError, TypeError
        For invalid arguments, naming the argument; in particular when ``grad_output`` is not
        shaped like the forward output.
"""


def _input_grad(input_size, weight, grad_output, stride, padding, dilation, groups,
                padding_mode, backend, nd):
    return _conv_grad("conv2d_input", weight, input_size, grad_output, stride, padding,
                      dilation, groups, padding_mode, backend, nd)


def _weight_grad(x, weight_size, grad_output, stride, padding, dilation, groups, padding_mode,
                 backend, nd):
    return _conv_grad("conv2d_weight", x, weight_size, grad_output, stride, padding,
                      dilation, groups, padding_mode, backend, nd)


def _conv_grad(op, arr, size, grad_output, stride, padding, dilation, groups, padding_mode,
               backend, nd):
    """conv{nd}d_input (``arr`` the weight, ``size`` the input_size) or conv{nd}d_weight
    (``arr`` the input, ``size`` the weight_size). A call planned before runs its kernel
    directly (fastconv._fastcall: the conditions), bitwise as the full path below."""
    key = _fastcall.grad_key(op, arr, size, grad_output, stride, padding, dilation, groups,
                             padding_mode, backend, nd)
    plan = None if key is None else _fastcall._CACHE.get(key)
    if plan:
        got = _fastcall.grad_run(plan, arr, grad_output)
        if got is not None:
            return got
    name = _dispatch.resolve(backend, op)
    if op == "conv2d_input":
        spec = S.conv_input_grad_spec(size, arr, grad_output, stride, padding, dilation,
                                      groups, padding_mode, nd)
    else:
        spec = S.conv_weight_grad_spec(arr, size, grad_output, stride, padding, dilation,
                                       groups, padding_mode, nd)
    res = np.empty(spec.grad_shape, spec.dtype)
    # the weight gradient's postcondition: a non-finite grad_output that meets the zero
    # padding (fastconv._postconditions)
    _dispatch.run(op, name, spec, res, compute=_run_conv_grad)
    if plan is None and key is not None:
        _fastcall.grad_remember(key, name, spec, res, arr, grad_output,
                                *_route(op, name, spec.kernel_args(res)))
    if op == "conv2d_input":
        res = S.fold_padding(res, spec.geo)
    return res.reshape(spec.result_shape)


# --------------------------------------------------------------------------------------------
# long rows (issue 15): the compiled im2col + GEMM paths, tile by tile
# --------------------------------------------------------------------------------------------
def _run_conv_grad(op, name, spec, out):
    """Run the kernel of ``op`` on ``spec.kernel_args(out)`` ("conv2d_input": ``(gy, w,
    gx, stride, pad, dilation, groups)``; "conv2d_weight": ``(x, gy, gw, ...)``) on
    ``name``'s backend, tiled along the row when :func:`_long_gemm_row` says so (the
    ``compute`` of :func:`fastconv._dispatch.run`). Such a row never takes Cython's 3-D
    weight-gradient route (``_plan.conv2d_weight_as_3d``), whose buffers grow with the
    row: about twice the input on a 16-channel row of 2^19 samples."""
    args = spec.kernel_args(out)
    kop, kargs = _route(op, name, args)
    if kop is None:
        if op == "conv2d_input":
            _input_tiled(name, *args)
        else:
            _weight_tiled(name, *args)
    else:
        _dispatch.call_kernel(kop, name, kargs)


def _route(op, name, args):
    """(kernel op, its arguments) of one gradient kernel call on ``args`` (``op``'s), or
    (None, None) when the call runs tiled along its long rows. Cython's float32 stride-1
    weight gradient may run as the 3-D kernel on a depth of 1."""
    if _long_gemm_row(op, name, args):  # first: the 3-D route's buffers grow with the row
        return None, None
    if op == "conv2d_weight" and _plan.conv2d_weight_as_3d(name, args):
        # float32, stride 1: Cython's direct 3-D weight-gradient kernel on a depth of 1
        x, gy, gw, stride, pad, dilation, groups = args
        return "conv3d_weight", (x[:, :, None], gy[:, :, None], gw[:, :, None],
                                 (1,) + stride, (0,) + pad, (1,) + dilation, groups)
    return op, args


def _long_gemm_row(op, name, args) -> bool:
    """Whether a compiled gradient call runs as im2col + GEMM (the plan's choice,
    :func:`fastconv._plan.algorithm`) on output rows so long that one row's work buffers, about
    ``(R + Kg) * Wo`` elements per thread (the (R, Wo) columns of one row, with
    ``R = (C // groups) * kh * kw``, and a (Kg, Wo) block of ``grad_output``; the kernels'
    tiles hold at least one output row), pass ``fastconv._tiling.LIMIT`` bytes. Shapes
    only; the NumPy reference tiles its own columns (:mod:`fastconv.reference`)."""
    if name == "numpy" or args[0].size == 0 or args[1].size == 0:
        return False
    gy, w = (args[0], args[1]) if op == "conv2d_input" else (args[1], args[2])
    K, Cg, kh, kw = w.shape
    row = (Cg * kh * kw + K // args[6]) * gy.shape[3] * gy.itemsize
    return row > _tiling.LIMIT and _plan.algorithm(op, name, args) == _plan.GEMM


def _input_tiled(name, gy, w, gx, stride, pad, dilation, groups):
    """conv2d_input in tiles of ``gx`` (:func:`fastconv._tiling.tiles` of its input
    columns: one image per tile, in blocks of columns): each tile is a call of the same
    kernel on the columns of ``grad_output`` whose windows reach the block (plus a few whose
    windows miss it, so that the tile's left padding is not negative). A tile costs its
    copies of ``gx`` and ``grad_output`` columns and one row of the kernel's columns, about
    ``_tiling.TILE_BYTES``. Every element of ``gx`` sums the same terms as untiled; the
    GEMMs' sizes differ, so the result agrees with the untiled call to rounding."""
    N, C, H, W = gx.shape
    K, Cg, kh, kw = w.shape
    Ho, Wo = gy.shape[2:]
    sw, pl, span = stride[1], pad[1], dilation[1] * (kw - 1)
    # bytes per input column of one image: its gx copy, and the grad_output columns and
    # one row of kernel work that the stride gives it
    per = C * H + -(-(K * Ho + Cg * kh * kw + K // groups) // sw)
    for n0, n1, a, e in _tiling.tiles(N, W, per * gx.itemsize):
        # output columns [o0, o1) have a tap in [a, e); o0 at most (a + pl) // sw
        o0 = max(0, min(-(-(a - pl - span) // sw), (a + pl) // sw))
        o1 = min(Wo, (e - 1 + pl) // sw + 1)
        if o1 <= o0:  # no window reaches the block
            gx[n0:n1, :, :, a:e] = 0
            continue
        if a == 0 and e == W and o0 == 0 and o1 == Wo:  # whole images: views
            _dispatch.call_kernel("conv2d_input", name, (gy[n0:n1], w, gx[n0:n1], stride,
                                                         pad, dilation, groups))
            continue
        gyt = np.ascontiguousarray(gy[n0:n1, :, :, o0:o1])
        gxt = np.empty((n1 - n0, C, H, e - a), gx.dtype)
        _dispatch.call_kernel("conv2d_input", name, (gyt, w, gxt, stride,
                                                     (pad[0], pl + a - o0 * sw), dilation,
                                                     groups))
        gx[n0:n1, :, :, a:e] = gxt


def _weight_tiled(name, x, gy, gw, stride, pad, dilation, groups):
    """conv2d_weight summed over tiles of ``grad_output`` (:func:`fastconv._tiling.tiles`
    of its output columns: one image per tile, in blocks of columns): each tile is a call
    of the same kernel on the block and the input columns its windows read (the left
    padding that falls in it becomes the tile's own), its weight gradient added into
    ``gw`` in tile order. A tile costs its copies of input and ``grad_output`` columns and
    one row of the kernel's columns, about ``_tiling.TILE_BYTES``. The sums run in another
    order than untiled: the result agrees with the untiled call to rounding. A block whose
    windows all lie in the zero padding adds nothing (the compiled kernels skip padding
    taps; a non-finite ``grad_output`` there is handled by the postcondition
    ``nonfinite_meets_padding`` of :mod:`fastconv._postconditions`, around the whole
    call)."""
    N, C, H, W = x.shape
    K, Cg, kh, kw = gw.shape
    Ho, Wo = gy.shape[2:]
    sw, pl, dw = stride[1], pad[1], dilation[1]
    # bytes per output column of one image: the input columns it reads, its grad_output
    # column, and one row of kernel work
    per = C * H * sw + K * Ho + Cg * kh * kw + K // groups
    gw[...] = 0
    part = np.empty_like(gw)
    for n0, n1, ow0, ow1 in _tiling.tiles(N, Wo, per * x.itemsize):
        first = ow0 * sw - pl  # the input column of the block's first window
        a, e = max(0, first), min(W, (ow1 - 1) * sw - pl + dw * (kw - 1) + 1)
        if a >= e:
            continue
        if a == 0 and e == W and ow0 == 0 and ow1 == Wo:  # whole images: views
            xt, gyt, p = x[n0:n1], gy[n0:n1], pad
        else:
            xt = np.ascontiguousarray(x[n0:n1, :, :, a:e])
            gyt = np.ascontiguousarray(gy[n0:n1, :, :, ow0:ow1])
            p = (pad[0], a - first)
        _dispatch.call_kernel("conv2d_weight", name, (xt, gyt, part, stride, p, dilation,
                                                      groups))
        gw += part


def conv1d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1,
                 *, padding_mode="zeros", backend=None):
    """Gradient of :func:`fastconv.conv1d` wrt its input, as ``torch.nn.grad.conv1d_input``.

    Parameters
    ----------
    input_size : tuple of ints
        The input's shape, (N, C, L) or (C, L).
    weight : array_like
        (out_channels, C // groups, kernel).
    grad_output : array_like
        Gradient wrt the output, shaped like it: (N, out_channels, L_out) (no N if unbatched).
    {args}
    Returns
    -------
    ndarray
        Shape ``input_size``, dtype ``result_type(weight, grad_output, float32)``.
    """
    return _input_grad(input_size, weight, grad_output, stride, padding, dilation, groups,
                       padding_mode, backend, 1)


def conv2d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1,
                 *, padding_mode="zeros", backend=None):
    """Gradient of :func:`fastconv.conv2d` wrt its input, as ``torch.nn.grad.conv2d_input``.

    The transposed convolution of ``grad_output``; ``input_size`` settles the size that a
    stride > 1 leaves ambiguous.

    Parameters
    ----------
    input_size : tuple of ints
        The input's shape, (N, C, H, W) or (C, H, W).
    weight : array_like
        (out_channels, C // groups, kH, kW).
    grad_output : array_like
        Gradient wrt the output, shaped like it: (N, out_channels, H_out, W_out) (no N if
        unbatched).
    {args}
    Returns
    -------
    ndarray
        Shape ``input_size``, dtype ``result_type(weight, grad_output, float32)``.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> w = np.array([[[[1., 2.]]]], dtype=np.float32)
    >>> fastconv.grad.conv2d_input((1, 1, 1, 3), w, np.ones((1, 1, 1, 2), np.float32))
    array([[[[1., 3., 2.]]]], dtype=float32)
    """
    return _input_grad(input_size, weight, grad_output, stride, padding, dilation, groups,
                       padding_mode, backend, 2)


def conv1d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1,
                  *, padding_mode="zeros", backend=None):
    """Gradient of :func:`fastconv.conv1d` wrt its weight, as ``torch.nn.grad.conv1d_weight``.

    Parameters
    ----------
    input : array_like
        The forward input, (N, C, L) or (C, L).
    weight_size : tuple of ints
        The weight's shape, (out_channels, C // groups, kernel).
    grad_output : array_like
        Gradient wrt the output, shaped like it.
    {args}
    Returns
    -------
    ndarray
        Shape ``weight_size``, dtype ``result_type(input, grad_output, float32)``.
    """
    return _weight_grad(input, weight_size, grad_output, stride, padding, dilation, groups,
                        padding_mode, backend, 1)


def conv2d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1,
                  *, padding_mode="zeros", backend=None):
    """Gradient of :func:`fastconv.conv2d` wrt its weight, as ``torch.nn.grad.conv2d_weight``.

    Parameters
    ----------
    input : array_like
        The forward input, (N, C, H, W) or (C, H, W).
    weight_size : tuple of ints
        The weight's shape, (out_channels, C // groups, kH, kW).
    grad_output : array_like
        Gradient wrt the output, shaped like it.
    {args}
    Returns
    -------
    ndarray
        Shape ``weight_size``, dtype ``result_type(input, grad_output, float32)``.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.array([[[[1., 2., 3.]]]])
    >>> fastconv.grad.conv2d_weight(x, (1, 1, 1, 2), np.ones((1, 1, 1, 2)))
    array([[[[3., 5.]]]])
    """
    return _weight_grad(input, weight_size, grad_output, stride, padding, dilation, groups,
                        padding_mode, backend, 2)


for _f, _fwd in ((conv1d_input, "conv1d"), (conv2d_input, "conv2d"),
                 (conv1d_weight, "conv1d"), (conv2d_weight, "conv2d")):
    _f.__doc__ = _f.__doc__.format(args=_CONV_ARGS.format(fwd=_fwd))


def _bias_grad(grad_output, nd):
    g = S.as_real_array(grad_output, "grad_output")
    if g.ndim not in (nd + 1, nd + 2):
        names = "(N, K, L) or (K, L)" if nd == 1 else "(N, K, H, W) or (K, H, W)"
        raise ValueError(f"grad_output must have shape {names}, got shape {g.shape}")
    axes = (0,) + tuple(range(2, g.ndim)) if g.ndim == nd + 2 else tuple(range(1, g.ndim))
    dtype = S.result_dtype(g)
    return g.astype(dtype, copy=False).sum(axis=axes, dtype=dtype)


def conv1d_bias(grad_output):
    """Gradient of :func:`fastconv.conv1d` wrt its bias: ``grad_output`` summed over all
    axes but the channel axis ((N, K, L) or unbatched (K, L)); dtype
    ``result_type(grad_output, float32)``."""
    return _bias_grad(grad_output, 1)


def conv2d_bias(grad_output):
    """Gradient of :func:`fastconv.conv2d` wrt its bias: ``grad_output`` summed over all
    axes but the channel axis ((N, K, H, W) or unbatched (K, H, W)).

    Returns
    -------
    ndarray
        Shape (K,), dtype ``result_type(grad_output, float32)`` (NumPy's pairwise sum).

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.grad.conv2d_bias(np.ones((2, 3, 4, 4), np.float32))
    array([32., 32., 32.], dtype=float32)
    """
    return _bias_grad(grad_output, 2)


# --------------------------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------------------------
def _max_pool_grad(grad_output, indices, input_size, backend, nd):
    name = _dispatch.resolve(backend, "max_pool2d_backward")
    spec = S.max_pool_grad_spec(grad_output, indices, input_size, nd)
    gx = np.empty(spec.grad_shape, spec.dtype)
    # indices outside the plane: fastconv._postconditions
    _dispatch.run("max_pool2d_backward", name, spec, gx)
    return gx.reshape(spec.result_shape)


def max_pool1d(grad_output, indices, input_size, *, backend=None):
    """Gradient of :func:`fastconv.max_pool1d` wrt its input.

    Parameters
    ----------
    grad_output : array_like
        Gradient wrt the pooled output, (N, C, L_out) or (C, L_out).
    indices : array_like of ints
        The forward call's ``return_indices`` result, shaped like ``grad_output``: positions
        in [0, L). An index outside that range adds nothing: the forward returns one, as
        torch's does, for a window that sees only padding, whose output does not depend on
        the input (torch's own backward writes through it, out of bounds).
    input_size : tuple of ints
        The input's shape, (N, C, L) or (C, L).
    backend : str, optional

    Returns
    -------
    ndarray
        Zeros of shape ``input_size`` with ``grad_output`` added at ``indices`` (overlapping
        windows accumulate); dtype ``result_type(grad_output, float32)``.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.grad.max_pool1d(np.array([[1., 2.]]), np.array([[1, 1]]), (1, 4))
    array([[0., 3., 0., 0.]])
    """
    return _max_pool_grad(grad_output, indices, input_size, backend, 1)


def max_pool2d(grad_output, indices, input_size, *, backend=None):
    """Gradient of :func:`fastconv.max_pool2d` wrt its input.

    Parameters
    ----------
    grad_output : array_like
        Gradient wrt the pooled output, (N, C, H_out, W_out) or (C, H_out, W_out).
    indices : array_like of ints
        The forward call's ``return_indices`` result, shaped like ``grad_output``: flat
        positions ``h * W + w`` in [0, H * W). An index outside that range adds nothing: the
        forward returns one, as torch's does, for a window that sees only padding, whose
        output does not depend on the input (torch's own backward writes through it, out of
        bounds). When only such a window's columns miss the input, its index (torch's)
        lands on a later row instead, and that position receives its gradient, as in torch.
    input_size : tuple of ints
        The input's shape, (N, C, H, W) or (C, H, W).
    backend : str, optional

    Returns
    -------
    ndarray
        Zeros of shape ``input_size`` with ``grad_output`` added at ``indices`` (overlapping
        windows accumulate); dtype ``result_type(grad_output, float32)``.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.array([[[1., 4.], [3., 2.]]], dtype=np.float32)
    >>> y, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    >>> fastconv.grad.max_pool2d(np.ones_like(y), idx, x.shape)
    array([[[0., 1.],
            [0., 0.]]], dtype=float32)
    """
    return _max_pool_grad(grad_output, indices, input_size, backend, 2)


def avg_pool2d(grad_output, input_size, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None, *, backend=None):
    """Gradient of :func:`fastconv.avg_pool2d` wrt its input.

    Parameters
    ----------
    grad_output : array_like
        Gradient wrt the pooled output, shaped like it.
    input_size : tuple of ints
        The input's shape, (N, C, H, W) or (C, H, W).
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        The forward call's: see :func:`fastconv.avg_pool2d`.
    backend : str, optional

    Returns
    -------
    ndarray
        Shape ``input_size``, dtype ``result_type(grad_output, float32)``: each output's
        gradient divided by its window's divisor and spread over the window.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.grad.avg_pool2d(np.ones((1, 1, 1)), (1, 2, 2), 2)
    array([[[0.25, 0.25],
            [0.25, 0.25]]])
    """
    return _avg_pool_grad(grad_output, input_size, kernel_size, stride, padding, ceil_mode,
                          count_include_pad, divisor_override, backend, 2)


def _avg_pool_grad(grad_output, input_size, kernel_size, stride, padding, ceil_mode,
                   count_include_pad, divisor_override, backend, nd):
    op = "avg_pool3d_backward" if nd == 3 else "avg_pool2d_backward"
    name = _dispatch.resolve(backend, op)
    spec = S.avg_pool_grad_spec(grad_output, input_size, kernel_size, stride, padding,
                                ceil_mode, count_include_pad, nd, divisor_override)
    gx = np.empty(spec.grad_shape, spec.dtype)
    _dispatch.run(spec.op, name, spec, gx)
    return gx.reshape(spec.result_shape)


# ---- transpose (issue 17) ----
_TRANSPOSE_ARGS = """
    stride, padding, output_padding, groups, dilation
        The forward call's, in its order: see :func:`fastconv.conv_transpose{nd}d`.
    backend : str, optional
        'auto', 'numpy', 'cython' or 'numba'; None uses :func:`fastconv.get_backend`.

    Raises
    ------
    ValueError, TypeError
        For invalid arguments, naming the argument; in particular when ``grad_output`` is not
        shaped like the forward output.
"""


def _transpose_geometry(x_shape, w_shape, grad_output, stride, padding, output_padding,
                        groups, dilation, nd, xname, wname):
    geo = S.conv_transpose_geometry(x_shape, w_shape, stride, padding, output_padding,
                                    groups, dilation, nd, xname=xname, wname=wname)
    _check_grad_output_t(grad_output, geo.conv_input_size)
    return geo


def _check_grad_output_t(grad_output, expected):
    if grad_output.shape != tuple(expected):
        raise ValueError(
            f"grad_output must have shape {tuple(expected)} (the transposed convolution's "
            f"output), got {grad_output.shape}"
        )


def _transpose_input_grad(input_size, weight, grad_output, stride, padding, output_padding,
                          groups, dilation, backend, nd):
    from . import functional

    input_size = S.shape_tuple(input_size, "input_size")
    weight = S.as_real_array(weight, "weight")
    grad_output = S.as_real_array(grad_output, "grad_output")
    geo = _transpose_geometry(input_size, weight.shape, grad_output, stride, padding,
                              output_padding, groups, dilation, nd, "input_size", "weight")
    S.check_alloc(input_size, S.result_dtype(weight, grad_output).itemsize,
                  "the input gradient (from input_size)")
    # the forward convolution the transposed one is the input gradient of
    gx = getattr(functional, f"conv{nd}d")(grad_output, weight, None, geo.stride,
                                           geo.padding, geo.dilation, geo.groups,
                                           backend=backend)
    if any(geo.extra):  # output_padding >= stride: the appended zero positions' gradient
        gx = np.ascontiguousarray(gx[(Ellipsis,) + tuple(slice(0, s) for s in
                                                         input_size[-nd:])])
    return gx


def _transpose_weight_grad(x, weight_size, grad_output, stride, padding, output_padding,
                           groups, dilation, backend, nd):
    x = S.as_real_array(x, "input")
    weight_size = S.shape_tuple(weight_size, "weight_size")
    grad_output = S.as_real_array(grad_output, "grad_output")
    geo = _transpose_geometry(x.shape, weight_size, grad_output, stride, padding,
                              output_padding, groups, dilation, nd, "input", "weight_size")
    if nd < 3 and x.size and grad_output.size:
        gw = _transpose_weight_subpixel(x, grad_output, geo, backend)
        if gw is not None:
            return gw
    # the weight gradient of that convolution, whose input is grad_output and whose output
    # gradient is x (with the zero positions output_padding >= stride appends)
    return globals()[f"conv{nd}d_weight"](grad_output, weight_size,
                                          S.pad_extra(x, geo.extra), geo.stride,
                                          geo.padding, geo.dilation, geo.groups,
                                          backend=backend)


def _transpose_weight_subpixel(x, grad_output, geo, backend):
    """The sub-pixel path of the weight gradient (:func:`fastconv._transpose.run_weight`)
    when :func:`fastconv._transpose.plan` takes the call (as the forward's), else None.
    1-D runs as 2-D with height 1."""
    from . import _transpose

    name = _dispatch.resolve(backend, "conv2d_weight")
    nd = len(geo.stride)
    one = (1,) if nd == 1 else ()
    xs = geo.x_shape if geo.batched else (1,) + geo.x_shape
    rs = geo.conv_input_size if geo.batched else (1,) + geo.conv_input_size
    x4 = xs[:2] + one + xs[2:]
    w4 = geo.w_shape[:2] + one + geo.w_shape[2:]
    o4 = rs[:2] + one + rs[2:]
    lead = (1,) * (2 - nd)
    axes = _transpose.plan(name, x4, w4, o4, lead + geo.stride,
                           (0,) * (2 - nd) + geo.padding, lead + geo.dilation)
    if axes is None:
        return None
    dtype = S.result_dtype(x, grad_output)
    gw = _transpose.run_weight(S.prepare(x.reshape(x4), dtype),
                               S.prepare(grad_output.reshape(o4), dtype), w4, geo.groups,
                               axes, name)
    return gw.reshape(geo.w_shape)


def _transpose_bias_grad(grad_output, nd):
    g = S.as_real_array(grad_output, "grad_output")
    if g.ndim not in (nd + 1, nd + 2):
        sp = {1: "L", 2: "H, W", 3: "D, H, W"}[nd]
        raise ValueError(
            f"grad_output must have shape (N, C_out, {sp}) or (C_out, {sp}), got shape "
            f"{g.shape}"
        )
    axes = (0,) + tuple(range(2, g.ndim)) if g.ndim == nd + 2 else tuple(range(1, g.ndim))
    dtype = S.result_dtype(g)
    return g.astype(dtype, copy=False).sum(axis=axes, dtype=dtype)


def conv_transpose1d_input(input_size, weight, grad_output, stride=1, padding=0,
                           output_padding=0, groups=1, dilation=1, *, backend=None):
    """Gradient of :func:`fastconv.conv_transpose1d` wrt its input ``x``.

    The convolution :func:`fastconv.conv1d` of ``grad_output`` with ``weight`` (the
    transposed convolution's adjoint), cut to ``input_size``.

    Parameters
    ----------
    input_size : tuple of ints
        The input's shape, (N, C_in, L) or (C_in, L).
    weight : array_like
        (C_in, out_channels // groups, kernel).
    grad_output : array_like
        Gradient wrt the output, shaped like it.
    {args}
    Returns
    -------
    ndarray
        Shape ``input_size``, dtype ``result_type(weight, grad_output, float32)``.
    """
    return _transpose_input_grad(input_size, weight, grad_output, stride, padding,
                                 output_padding, groups, dilation, backend, 1)


def conv_transpose2d_input(input_size, weight, grad_output, stride=1, padding=0,
                           output_padding=0, groups=1, dilation=1, *, backend=None):
    """Gradient of :func:`fastconv.conv_transpose2d` wrt its input ``x``.

    The convolution :func:`fastconv.conv2d` of ``grad_output`` with ``weight`` (the
    transposed convolution's adjoint), cut to ``input_size``.

    Parameters
    ----------
    input_size : tuple of ints
        The input's shape, (N, C_in, H, W) or (C_in, H, W).
    weight : array_like
        (C_in, out_channels // groups, kH, kW).
    grad_output : array_like
        Gradient wrt the output, shaped like it.
    {args}
    Returns
    -------
    ndarray
        Shape ``input_size``, dtype ``result_type(weight, grad_output, float32)``.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> w = np.array([[[[1., 10.]]]], dtype=np.float32)
    >>> g = np.arange(4, dtype=np.float32).reshape(1, 1, 1, 4)
    >>> fastconv.grad.conv_transpose2d_input((1, 1, 1, 2), w, g, stride=(1, 2))
    array([[[[10., 32.]]]], dtype=float32)
    """
    return _transpose_input_grad(input_size, weight, grad_output, stride, padding,
                                 output_padding, groups, dilation, backend, 2)


def conv_transpose3d_input(input_size, weight, grad_output, stride=1, padding=0,
                           output_padding=0, groups=1, dilation=1, *, backend=None):
    """Gradient of :func:`fastconv.conv_transpose3d` wrt its input ``x``: the convolution
    :func:`fastconv.conv3d` of ``grad_output`` with ``weight``, cut to ``input_size``.

    Parameters
    ----------
    input_size : tuple of ints
        The input's shape, (N, C_in, D, H, W) or (C_in, D, H, W).
    weight : array_like
        (C_in, out_channels // groups, kD, kH, kW).
    grad_output : array_like
        Gradient wrt the output, shaped like it.
    {args}
    Returns
    -------
    ndarray
        Shape ``input_size``, dtype ``result_type(weight, grad_output, float32)``.
    """
    return _transpose_input_grad(input_size, weight, grad_output, stride, padding,
                                 output_padding, groups, dilation, backend, 3)


def conv_transpose1d_weight(input, weight_size, grad_output, stride=1, padding=0,
                            output_padding=0, groups=1, dilation=1, *, backend=None):
    """Gradient of :func:`fastconv.conv_transpose1d` wrt its weight.

    :func:`conv1d_weight` with the roles swapped: ``grad_output`` is that convolution's
    input and ``input`` its output gradient. On the Cython backend, when the stride divides
    the kernel (dilation 1, the plan of :mod:`fastconv._transpose`), it runs as one
    stride-1 ``conv2d_weight`` of ``input`` and ``grad_output``'s stride phases instead
    (the sub-pixel decomposition in reverse; the same values to rounding).

    Parameters
    ----------
    input : array_like
        The forward input ``x``, (N, C_in, L) or (C_in, L).
    weight_size : tuple of ints
        The weight's shape, (C_in, out_channels // groups, kernel).
    grad_output : array_like
        Gradient wrt the output, shaped like it.
    {args}
    Returns
    -------
    ndarray
        Shape ``weight_size``, dtype ``result_type(input, grad_output, float32)``.
    """
    return _transpose_weight_grad(input, weight_size, grad_output, stride, padding,
                                  output_padding, groups, dilation, backend, 1)


def conv_transpose2d_weight(input, weight_size, grad_output, stride=1, padding=0,
                            output_padding=0, groups=1, dilation=1, *, backend=None):
    """Gradient of :func:`fastconv.conv_transpose2d` wrt its weight.

    :func:`conv2d_weight` with the roles swapped: ``grad_output`` is that convolution's
    input and ``input`` its output gradient. On the Cython backend, when the stride divides
    the kernel (dilation 1, the plan of :mod:`fastconv._transpose`), it runs as one
    stride-1 ``conv2d_weight`` of ``input`` and ``grad_output``'s stride phases instead
    (the sub-pixel decomposition in reverse; the same values to rounding).

    Parameters
    ----------
    input : array_like
        The forward input ``x``, (N, C_in, H, W) or (C_in, H, W).
    weight_size : tuple of ints
        The weight's shape, (C_in, out_channels // groups, kH, kW).
    grad_output : array_like
        Gradient wrt the output, shaped like it.
    {args}
    Returns
    -------
    ndarray
        Shape ``weight_size``, dtype ``result_type(input, grad_output, float32)``.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.array([[[[1., 2.]]]])
    >>> g = np.arange(4.).reshape(1, 1, 1, 4)
    >>> fastconv.grad.conv_transpose2d_weight(x, (1, 1, 1, 2), g, stride=(1, 2))
    array([[[[4., 7.]]]])
    """
    return _transpose_weight_grad(input, weight_size, grad_output, stride, padding,
                                  output_padding, groups, dilation, backend, 2)


def conv_transpose3d_weight(input, weight_size, grad_output, stride=1, padding=0,
                            output_padding=0, groups=1, dilation=1, *, backend=None):
    """Gradient of :func:`fastconv.conv_transpose3d` wrt its weight: ``conv3d_weight``
    with the roles swapped (``grad_output`` is that convolution's input, ``input`` its
    output gradient).

    Parameters
    ----------
    input : array_like
        The forward input ``x``, (N, C_in, D, H, W) or (C_in, D, H, W).
    weight_size : tuple of ints
        The weight's shape, (C_in, out_channels // groups, kD, kH, kW).
    grad_output : array_like
        Gradient wrt the output, shaped like it.
    {args}
    Returns
    -------
    ndarray
        Shape ``weight_size``, dtype ``result_type(input, grad_output, float32)``.
    """
    return _transpose_weight_grad(input, weight_size, grad_output, stride, padding,
                                  output_padding, groups, dilation, backend, 3)


for _f, _nd in ((conv_transpose1d_input, 1), (conv_transpose2d_input, 2),
                (conv_transpose3d_input, 3), (conv_transpose1d_weight, 1),
                (conv_transpose2d_weight, 2), (conv_transpose3d_weight, 3)):
    _f.__doc__ = _f.__doc__.format(args=_TRANSPOSE_ARGS.format(nd=_nd))


def conv_transpose1d_bias(grad_output):
    """Gradient of :func:`fastconv.conv_transpose1d` wrt its bias: ``grad_output`` summed
    over all axes but the channel axis ((N, C_out, L) or unbatched (C_out, L)); dtype
    ``result_type(grad_output, float32)``."""
    return _transpose_bias_grad(grad_output, 1)


def conv_transpose2d_bias(grad_output):
    """Gradient of :func:`fastconv.conv_transpose2d` wrt its bias: ``grad_output`` summed
    over all axes but the channel axis ((N, C_out, H, W) or unbatched (C_out, H, W)).

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.grad.conv_transpose2d_bias(np.ones((2, 3, 4, 4), np.float32))
    array([32., 32., 32.], dtype=float32)
    """
    return _transpose_bias_grad(grad_output, 2)


def conv_transpose3d_bias(grad_output):
    """Gradient of :func:`fastconv.conv_transpose3d` wrt its bias: ``grad_output`` summed
    over all axes but the channel axis ((N, C_out, D, H, W) or unbatched (C_out, D, H,
    W)); dtype ``result_type(grad_output, float32)``."""
    return _transpose_bias_grad(grad_output, 3)


# --------------------------------------------------------------------------------------------
# 3-D pools and avg_pool1d (issue 17)
# --------------------------------------------------------------------------------------------
def max_pool3d(grad_output, indices, input_size, *, backend=None):
    """Gradient of :func:`fastconv.max_pool3d` wrt its input.

    Each volume is a flat plane of D * H * W positions for the scatter, so this runs the
    kernels of :func:`max_pool2d`'s gradient on (N, C, 1, D * H * W) planes.

    Parameters
    ----------
    grad_output : array_like
        Gradient wrt the pooled output, (N, C, D_out, H_out, W_out) or without N.
    indices : array_like of ints
        The forward call's ``return_indices`` result, shaped like ``grad_output``: flat
        positions ``d * H * W + h * W + w`` in [0, D * H * W). An index outside that range
        adds nothing (the forward returns one, as torch's does, for a window that sees only
        padding, whose output does not depend on the input).
    input_size : tuple of ints
        The input's shape, (N, C, D, H, W) or (C, D, H, W).
    backend : str, optional

    Returns
    -------
    ndarray
        Zeros of shape ``input_size`` with ``grad_output`` added at ``indices`` (overlapping
        windows accumulate); dtype ``result_type(grad_output, float32)``.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    >>> y, idx = fastconv.max_pool3d(x, 2, return_indices=True)
    >>> fastconv.grad.max_pool3d(np.ones_like(y), idx, x.shape)[0, 1]
    array([[0., 0.],
           [0., 1.]], dtype=float32)
    """
    return _max_pool_grad(grad_output, indices, input_size, backend, 3)


def avg_pool1d(grad_output, input_size, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, *, backend=None):
    """Gradient of :func:`fastconv.avg_pool1d` wrt its input (the kernels of
    :func:`avg_pool2d`'s gradient, with a height of 1).

    Parameters
    ----------
    grad_output : array_like
        Gradient wrt the pooled output, shaped like it.
    input_size : tuple of ints
        The input's shape, (N, C, L) or (C, L).
    kernel_size, stride, padding, ceil_mode, count_include_pad
        The forward call's: see :func:`fastconv.avg_pool1d`.
    backend : str, optional

    Returns
    -------
    ndarray
        Shape ``input_size``, dtype ``result_type(grad_output, float32)``.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.grad.avg_pool1d(np.ones((1, 2)), (1, 4), 2)
    array([[0.5, 0.5, 0.5, 0.5]])
    """
    return _avg_pool_grad(grad_output, input_size, kernel_size, stride, padding, ceil_mode,
                          count_include_pad, None, backend, 1)


def avg_pool3d(grad_output, input_size, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None, *, backend=None):
    """Gradient of :func:`fastconv.avg_pool3d` wrt its input.

    Parameters
    ----------
    grad_output : array_like
        Gradient wrt the pooled output, shaped like it.
    input_size : tuple of ints
        The input's shape, (N, C, D, H, W) or (C, D, H, W).
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        The forward call's: see :func:`fastconv.avg_pool3d`.
    backend : str, optional

    Returns
    -------
    ndarray
        Shape ``input_size``, dtype ``result_type(grad_output, float32)``: each output's
        gradient divided by its window's divisor and spread over the window.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.grad.avg_pool3d(np.ones((1, 1, 1, 1)), (1, 2, 2, 2), 2)[0, 0]
    array([[0.125, 0.125],
           [0.125, 0.125]])
    """
    return _avg_pool_grad(grad_output, input_size, kernel_size, stride, padding, ceil_mode,
                          count_include_pad, divisor_override, backend, 3)


# --------------------------------------------------------------------------------------------
# ---- fold (issue 17): unfold/fold, max_unpool1d/2d/3d, lp_pool1d/2d ----
# --------------------------------------------------------------------------------------------
def unfold(grad_output, input_size, kernel_size, dilation=1, padding=0, stride=1, *,
           backend=None):
    """Gradient of :func:`fastconv.unfold` wrt its input: :func:`fastconv.fold` of
    ``grad_output`` (unfold is linear, and fold is its adjoint).

    Parameters
    ----------
    grad_output : array_like
        Gradient wrt unfold's output, (N, C * kh * kw, L) or (C * kh * kw, L).
    input_size : tuple of ints
        The input's shape, (N, C, H, W) or (C, H, W).
    kernel_size, dilation, padding, stride
        The forward call's: see :func:`fastconv.unfold`.
    backend : str, optional

    Returns
    -------
    ndarray
        Shape ``input_size``, dtype ``result_type(grad_output, float32)``.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.grad.unfold(np.ones((4, 4)), (1, 3, 3), 2)
    array([[[1., 2., 1.],
            [2., 4., 2.],
            [1., 2., 1.]]])
    """
    input_size = S.shape_tuple(input_size, "input_size")
    if len(input_size) not in (3, 4):
        raise ValueError(f"input_size must be a shape (N, C, H, W) or (C, H, W), got {input_size}")
    name = _dispatch.resolve(backend, "fold")
    grad_output = S.as_real_array(grad_output, "grad_output")
    if grad_output.ndim != len(input_size) - 1:
        raise ValueError(
            f"grad_output must have {len(input_size) - 1} dimensions for input_size "
            f"{input_size}, got shape {grad_output.shape}"
        )
    spec = S.fold_spec(grad_output, input_size[-2:], kernel_size, dilation, padding, stride,
                       xname="grad_output", sizename="input_size")
    if spec.result_shape != input_size:
        raise ValueError(
            f"grad_output of shape {grad_output.shape} does not fit input_size {input_size} "
            f"(it gives {spec.result_shape})"
        )
    gx = np.empty(spec.out_shape, spec.dtype)
    _dispatch.run("fold", name, spec, gx, _chunks.by_planes)
    return gx.reshape(spec.result_shape)


def fold(grad_output, kernel_size, dilation=1, padding=0, stride=1, *, backend=None):
    """Gradient of :func:`fastconv.fold` wrt its input: :func:`fastconv.unfold` of
    ``grad_output`` (fold is linear, and unfold is its adjoint).

    Parameters
    ----------
    grad_output : array_like
        Gradient wrt fold's output, (N, C, H, W) or (C, H, W).
    kernel_size, dilation, padding, stride
        The forward call's: see :func:`fastconv.fold`.
    backend : str, optional

    Returns
    -------
    ndarray
        Shaped like fold's input, (N, C * kh * kw, L) or (C * kh * kw, L); dtype
        ``result_type(grad_output, float32)``.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.grad.fold(np.arange(4.).reshape(1, 2, 2), 2)
    array([[0.],
           [1.],
           [2.],
           [3.]])
    """
    name = _dispatch.resolve(backend, "unfold")
    spec = S.unfold_spec(grad_output, kernel_size, dilation, padding, stride,
                         xname="grad_output")
    gx = np.empty(spec.out_shape, spec.dtype)
    _dispatch.run("unfold", name, spec, gx, _chunks.by_planes)
    return gx.reshape(spec.result_shape)


def _max_unpool_grad(grad_output, indices, backend, nd):
    name = _dispatch.resolve(backend, "max_unpool_backward")
    spec = S.unpool_grad_spec(grad_output, indices, nd)
    gx = np.empty(spec.out_shape, spec.dtype)
    _dispatch.run("max_unpool_backward", name, spec, gx,
                  _chunks.by_planes)
    return gx.reshape(spec.result_shape)


_UNPOOL_GRAD_DOC = """
    Parameters
    ----------
    grad_output : array_like
        Gradient wrt the unpooled output, {oshape}.
    indices : array_like of ints
        The forward call's ``indices``, shaped like its input (N and C as
        ``grad_output``'s); each must lie in the output plane.
    backend : str, optional

    Returns
    -------
    ndarray
        The gather ``grad_output[..., indices]`` plane by plane, shaped like ``indices``;
        dtype ``result_type(grad_output, float32)``. As torch's autograd, a repeated index
        passes its gradient to every input that named it.
"""


def max_unpool1d(grad_output, indices, *, backend=None):
    """Gradient of :func:`fastconv.max_unpool1d` wrt its input.
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.grad.max_unpool1d(np.array([[0., 1., 2., 3.]]), np.array([[1, 3]]))
    array([[1., 3.]])
    """
    return _max_unpool_grad(grad_output, indices, backend, 1)


def max_unpool2d(grad_output, indices, *, backend=None):
    """Gradient of :func:`fastconv.max_unpool2d` wrt its input.
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> g = np.arange(4.).reshape(1, 2, 2)
    >>> fastconv.grad.max_unpool2d(g, np.array([[[3]]]))
    array([[[3.]]])
    """
    return _max_unpool_grad(grad_output, indices, backend, 2)


def max_unpool3d(grad_output, indices, *, backend=None):
    """Gradient of :func:`fastconv.max_unpool3d` wrt its input.
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> g = np.arange(8.).reshape(1, 2, 2, 2)
    >>> fastconv.grad.max_unpool3d(g, np.array([[[[5]]]]))
    array([[[[5.]]]])
    """
    return _max_unpool_grad(grad_output, indices, backend, 3)


max_unpool1d.__doc__ = max_unpool1d.__doc__.format(doc=_UNPOOL_GRAD_DOC.format(
    oshape="(N, C, L_out) or (C, L_out)"))
max_unpool2d.__doc__ = max_unpool2d.__doc__.format(doc=_UNPOOL_GRAD_DOC.format(
    oshape="(N, C, H_out, W_out) or (C, H_out, W_out)"))
max_unpool3d.__doc__ = max_unpool3d.__doc__.format(doc=_UNPOOL_GRAD_DOC.format(
    oshape="(N, C, D_out, H_out, W_out) or (C, D_out, H_out, W_out)"))


def _lp_pool_grad(grad_output, x, norm_type, kernel_size, stride, ceil_mode, backend, nd):
    from . import functional as F

    p = F._lp_norm(norm_type)
    stride = F._lp_stride(stride)
    x = S.as_real_array(x, "x")
    grad_output = S.as_real_array(grad_output, "grad_output")
    dtype = S.result_dtype(x, grad_output)
    spec = S.pool_spec(x, kernel_size, stride, 0, 1, ceil_mode, nd, op="avg_pool2d")
    _check_grad_output(grad_output, spec.result_shape)
    t = dtype.type
    xd = spec.x.astype(dtype, copy=False)
    gy = S.prepare(grad_output.reshape(spec.out_shape), dtype)
    pool_grad = max_pool1d if nd == 1 else max_pool2d
    if np.isinf(p):  # y = max |x| (inf), -max(-|x|) (-inf): d|x|/dx = sign(x)
        pool = F.max_pool1d if nd == 1 else F.max_pool2d
        a = np.abs(x) if p > 0 else -np.abs(x)
        _, idx = pool(a, kernel_size, stride, 0, 1, ceil_mode, True, backend=backend)
        g = pool_grad(grad_output.astype(dtype, copy=False), idx, x.shape, backend=backend)
        return g * np.sign(x).astype(dtype, copy=False)
    name = _dispatch.resolve(backend, spec.op)  # avg_pool2d, or avg_pool3d of depth 1
    with np.errstate(all="ignore"):
        xp = np.power(xd, t(p))
    s = np.empty(spec.out_shape, dtype)
    _dispatch.run(spec.op, name, spec._replace(x=xp), s)
    k = t(np.prod(spec.kernel))
    with np.errstate(all="ignore"):
        # torch's chain: pow(1/p), mul(k), sign(s) * relu(|s|) (no gradient where |s| is 0;
        # a NaN passes relu), abs; torch's sign of NaN is 0, so a NaN power sum (a NaN in x,
        # a negative x to a fractional p) gives NaN only through a NaN factor, as in torch
        ga = gy * (t(1.0 / p) * np.power(s * k, t(1.0 / p - 1.0))) * k
        sg = np.where(np.isnan(s), t(0), np.sign(s))
        ga = np.where((np.abs(s) > 0) | np.isnan(s), ga * sg * sg, t(0))
    avg_grad = avg_pool1d if nd == 1 else avg_pool2d
    gxp = avg_grad(ga.reshape(spec.result_shape), x.shape, kernel_size, stride, 0, ceil_mode,
                   True, backend=backend)
    with np.errstate(all="ignore"):
        gx = gxp * (t(p) * np.power(xd.reshape(x.shape), t(p - 1.0)))
    return gx


def _check_grad_output(grad_output, shape):
    if grad_output.shape != tuple(shape):
        raise ValueError(
            f"grad_output must have the pooled output's shape {tuple(shape)}, got "
            f"{grad_output.shape}"
        )


_LP_GRAD_DOC = """
    Parameters
    ----------
    grad_output : array_like
        Gradient wrt the pooled output, shaped like it.
    x : array_like
        The forward call's input (the pooling is not linear).
    norm_type, kernel_size, stride, ceil_mode
        The forward call's: see :func:`fastconv.{fwd}`.
    backend : str, optional

    Returns
    -------
    ndarray
        Shaped like ``x``, dtype ``result_type(x, grad_output, float32)``: torch's autograd
        of its definition, so a window whose sum of powers is 0 passes no gradient; for
        ``norm_type=inf`` the gradient goes to each window's maximum of ``|x|``, times
        ``sign(x)``.
"""


def lp_pool1d(grad_output, x, norm_type, kernel_size, stride=None, ceil_mode=False, *,
              backend=None):
    """Gradient of :func:`fastconv.lp_pool1d` wrt its input.
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.grad.lp_pool1d(np.ones((1, 1)), np.array([[3., 4.]]), 2, 2)
    array([[0.6, 0.8]])
    """
    return _lp_pool_grad(grad_output, x, norm_type, kernel_size, stride, ceil_mode, backend,
                         1)


def lp_pool2d(grad_output, x, norm_type, kernel_size, stride=None, ceil_mode=False, *,
              backend=None):
    """Gradient of :func:`fastconv.lp_pool2d` wrt its input.
    {doc}
    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.array([[[1., 2.], [2., 4.]]])
    >>> fastconv.grad.lp_pool2d(np.ones((1, 1, 1)), x, 2, 2)
    array([[[0.2, 0.4],
            [0.4, 0.8]]])
    """
    return _lp_pool_grad(grad_output, x, norm_type, kernel_size, stride, ceil_mode, backend,
                         2)


lp_pool1d.__doc__ = lp_pool1d.__doc__.format(doc=_LP_GRAD_DOC.format(fwd="lp_pool1d"))
lp_pool2d.__doc__ = lp_pool2d.__doc__.format(doc=_LP_GRAD_DOC.format(fwd="lp_pool2d"))


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

_ADAPTIVE_AVG_GRAD_DOC = """Gradient of :func:`fastconv.adaptive_avg_pool{nd}d` wrt its input.

    Parameters
    ----------
    grad_output : array_like
        Gradient wrt the pooled output, {gshape}: its spatial size is the forward call's
        ``output_size``.
    input_size : tuple of ints
        The input's shape, {xshape}.
    backend : str, optional

    Returns
    -------
    ndarray
        Shape ``input_size``, dtype ``result_type(grad_output, float32)``: each output's
        gradient divided by its window's size and added over the window (windows overlap
        by at most one position per axis).

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.grad.adaptive_avg_pool{nd}d(np.ones({ex_g}), {ex_x})
    {ex_out}
    """

_ADAPTIVE_MAX_GRAD_DOC = """Gradient of :func:`fastconv.adaptive_max_pool{nd}d` wrt its input.

    Parameters
    ----------
    grad_output : array_like
        Gradient wrt the pooled output, {gshape}.
    indices : array_like of ints
        The forward call's ``return_indices`` result, shaped like ``grad_output``: flat
        positions {flat} within each input {within}. An index outside the {within} adds
        nothing.
    input_size : tuple of ints
        The input's shape, {xshape}.
    backend : str, optional

    Returns
    -------
    ndarray
        Zeros of shape ``input_size`` with ``grad_output`` added at ``indices``; dtype
        ``result_type(grad_output, float32)``. The kernel is max_pool2d's backward, on
        {within}s seen as one row.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.array([[1., 5., 3., 2., 4.]])
    >>> y, idx = fastconv.adaptive_max_pool1d(x, 2, return_indices=True)
    >>> fastconv.grad.adaptive_max_pool1d(np.ones_like(y), idx, x.shape)
    array([[0., 1., 0., 0., 1.]])
    """


def _adaptive_avg_grad(grad_output, input_size, backend, nd):
    op = "adaptive_avg_pool3d_backward"
    name = _dispatch.resolve(backend, op)
    spec = S.adaptive_avg_grad_spec(grad_output, input_size, nd)
    gx = np.empty(spec.out_shape, spec.dtype)
    _dispatch.run(op, name, spec, gx)
    return gx.reshape(spec.result_shape)


def _adaptive_max_grad(grad_output, indices, input_size, backend, nd):
    name = _dispatch.resolve(backend, "max_pool2d_backward")
    spec = S.adaptive_max_grad_spec(grad_output, indices, input_size, nd)
    gx = np.empty(spec.grad_shape, spec.dtype)
    # indices outside the volume: fastconv._postconditions (indices_outside_plane)
    _dispatch.run("max_pool2d_backward", name, spec, gx)
    return gx.reshape(spec.result_shape)


def adaptive_avg_pool1d(grad_output, input_size, *, backend=None):
    return _adaptive_avg_grad(grad_output, input_size, backend, 1)


def adaptive_avg_pool2d(grad_output, input_size, *, backend=None):
    return _adaptive_avg_grad(grad_output, input_size, backend, 2)


def adaptive_avg_pool3d(grad_output, input_size, *, backend=None):
    return _adaptive_avg_grad(grad_output, input_size, backend, 3)


def adaptive_max_pool1d(grad_output, indices, input_size, *, backend=None):
    return _adaptive_max_grad(grad_output, indices, input_size, backend, 1)


def adaptive_max_pool2d(grad_output, indices, input_size, *, backend=None):
    return _adaptive_max_grad(grad_output, indices, input_size, backend, 2)


def adaptive_max_pool3d(grad_output, indices, input_size, *, backend=None):
    return _adaptive_max_grad(grad_output, indices, input_size, backend, 3)


_ADAPTIVE_GRAD_SHAPES = {
    1: ("(N, C, L_out) or (C, L_out)", "(N, C, L) or (C, L)", "``l``", "row",
        "(1, 2)", "(1, 3)", "array([[0.5, 1. , 0.5]])"),
    2: ("(N, C, H_out, W_out) or (C, H_out, W_out)", "(N, C, H, W) or (C, H, W)",
        "``h * W + w``", "plane", "(1, 1, 1)", "(1, 2, 2)",
        "array([[[0.25, 0.25],\n            [0.25, 0.25]]])"),
    3: ("(N, C, D_out, H_out, W_out) or without N", "(N, C, D, H, W) or (C, D, H, W)",
        "``d * H * W + h * W + w``", "volume", "(1, 1, 1, 1)", "(1, 1, 1, 2)",
        "array([[[[0.5, 0.5]]]])"),
}
for _nd, (_g, _x, _flat, _within, _eg, _ex, _eo) in _ADAPTIVE_GRAD_SHAPES.items():
    globals()[f"adaptive_avg_pool{_nd}d"].__doc__ = _ADAPTIVE_AVG_GRAD_DOC.format(
        nd=_nd, gshape=_g, xshape=_x, ex_g=_eg, ex_x=_ex, ex_out=_eo)
    globals()[f"adaptive_max_pool{_nd}d"].__doc__ = _ADAPTIVE_MAX_GRAD_DOC.format(
        nd=_nd, gshape=_g, xshape=_x, flat=_flat, within=_within)
del _nd, _g, _x, _flat, _within, _eg, _ex, _eo


# --------------------------------------------------------------------------------------------
# ---- conv3d (issue 17) ----
# --------------------------------------------------------------------------------------------
__all__ += [
    "conv3d_input",
    "conv3d_weight",
    "conv3d_bias",
]


def conv3d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1,
                 *, padding_mode="zeros", backend=None):
    """Gradient of :func:`fastconv.conv3d` wrt its input, as ``torch.nn.grad.conv3d_input``.

    Parameters
    ----------
    input_size : tuple of ints
        The input's shape, (N, C, D, H, W) or unbatched (C, D, H, W).
    weight : array_like
        (out_channels, C // groups, kD, kH, kW).
    grad_output : array_like
        Shaped like the forward output.
    {args}
    Returns
    -------
    ndarray
        Shape ``input_size``, dtype ``result_type(weight, grad_output, float32)``.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> g = fastconv.grad.conv3d_input((1, 1, 2, 2, 2), np.ones((1, 1, 2, 2, 2)),
    ...                                np.ones((1, 1, 1, 1, 1)))
    >>> g.shape, float(g.sum())
    ((1, 1, 2, 2, 2), 8.0)
    """
    name = _dispatch.resolve(backend, "conv3d_input")
    spec = S.conv_input_grad_spec(input_size, weight, grad_output, stride, padding, dilation,
                                  groups, padding_mode, 3)
    gx = np.empty(spec.grad_shape, spec.dtype)
    _dispatch.run("conv3d_input", name, spec, gx)
    return S.fold_padding(gx, spec.geo).reshape(spec.result_shape)


def conv3d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1,
                  *, padding_mode="zeros", backend=None):
    """Gradient of :func:`fastconv.conv3d` wrt its weight, as
    ``torch.nn.grad.conv3d_weight``.

    Parameters
    ----------
    input : array_like
        The forward input, (N, C, D, H, W) or unbatched (C, D, H, W).
    weight_size : tuple of ints
        (out_channels, C // groups, kD, kH, kW).
    grad_output : array_like
        Shaped like the forward output.
    {args}
    Returns
    -------
    ndarray
        Shape ``weight_size``, dtype ``result_type(input, grad_output, float32)``.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.arange(8.0).reshape(1, 1, 2, 2, 2)
    >>> fastconv.grad.conv3d_weight(x, (1, 1, 1, 1, 1), np.ones((1, 1, 2, 2, 2)))
    array([[[[[28.]]]]])
    """
    name = _dispatch.resolve(backend, "conv3d_weight")
    spec = S.conv_weight_grad_spec(input, weight_size, grad_output, stride, padding, dilation,
                                   groups, padding_mode, 3)
    gw = np.empty(spec.grad_shape, spec.dtype)
    _dispatch.run("conv3d_weight", name, spec, gw)
    return gw.reshape(spec.result_shape)


def conv3d_bias(grad_output):
    """Gradient of :func:`fastconv.conv3d` wrt its bias: ``grad_output`` summed over all
    axes but the channel axis ((N, K, D, H, W) or unbatched (K, D, H, W)).

    Returns
    -------
    ndarray
        Shape (K,), dtype ``result_type(grad_output, float32)`` (NumPy's pairwise sum).

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.grad.conv3d_bias(np.ones((2, 3, 2, 2, 2), np.float32))
    array([16., 16., 16.], dtype=float32)
    """
    g = S.as_real_array(grad_output, "grad_output")
    if g.ndim not in (4, 5):
        raise ValueError(f"grad_output must have shape (N, K, D, H, W) or (K, D, H, W), got "
                         f"shape {g.shape}")
    return _bias_grad(g, 3)


conv3d_input.__doc__ = conv3d_input.__doc__.format(args=_CONV_ARGS.format(fwd="conv3d"))
conv3d_weight.__doc__ = conv3d_weight.__doc__.format(args=_CONV_ARGS.format(fwd="conv3d"))
