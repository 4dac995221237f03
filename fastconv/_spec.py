"""Normalization and validation of every public call, done once, in Python.

A public function turns its arguments into a small frozen *spec*: prepared arrays (C-contiguous,
in the compute dtype), integer tuples for stride, padding and dilation, and the output shape.
Every check that keeps the compiled kernels safe lives here: the kernels run without bounds
checks and trust the spec completely. (A value the kernels must not see but that is not an
error, a max-pool index outside the plane, is replaced by :mod:`fastconv._postconditions`.)

Facts that live here and nowhere else:

* the dtype rule (:func:`result_dtype`);
* the output-size arithmetic (:func:`conv_out_size`, :func:`pool_out_size`);
* the meaning of ``padding="same"`` and of the padding modes;
* the size limits that turn an impossible request into a ValueError instead of a crash.

Specs
-----
One spec type per op family, all of one kind (``typing.NamedTuple``: the cheapest to build
and read on every call, measured against frozen slotted dataclasses):

* :class:`ConvSpec`: ``conv2d`` (conv1d/conv2d, and the NumPy/SciPy-style functions through
  :func:`signal_spec`);
* :class:`ConvGradSpec`: ``conv2d_input`` and ``conv2d_weight``;
* :class:`PoolSpec`: ``max_pool2d`` and ``avg_pool2d`` (max_pool1d/2d, avg_pool2d), and
  ``max_pool3d`` and ``avg_pool3d`` (max_pool3d, avg_pool3d, avg_pool1d and avg_pool2d with
  a ``divisor_override``, as 3-D pools of depth 1);
* :class:`PoolGradSpec`: ``max_pool2d_backward`` (max_pool3d's too, on flattened volumes),
  ``avg_pool2d_backward`` and ``avg_pool3d_backward``;
* :class:`LocalSpec`: ``locally_connected2d``;
* :class:`FoldSpec`: ``unfold`` and ``fold``;
* :class:`UnpoolSpec`: ``max_unpool`` and ``max_unpool_backward``;
* :class:`AdaptivePoolSpec`: the adaptive pools and their gradients;
* :class:`Conv3dSpec` and :class:`Conv3dGradSpec`: ``conv3d``, ``conv3d_input`` and
  ``conv3d_weight`` (the ``conv3d`` family, 5-D arrays).

Each names its kernel (``op``) and its family (``family``: :mod:`fastconv._dispatch`'s
module key), says whether there is anything to compute (``empty``), and gives the kernel's
positional arguments with the output array in place (``kernel_args(out)``, the contract of
:mod:`fastconv.reference`). The caller allocates ``out``; a max-pool's indices, its second
output, are carried by the spec (``PoolSpec.indices``). Dispatch is then
``fastconv._dispatch.run(op, backend, spec, out)``. The shape-only geometries the specs are
built from (:class:`ConvGeometry`, :class:`PoolGeometry`) are NamedTuples too.
"""

from __future__ import annotations

import operator
import os
from typing import NamedTuple

import numpy as np

__all__ = [
    "ConvSpec",
    "ConvGradSpec",
    "PoolSpec",
    "PoolGradSpec",
    "LocalSpec",
    "FoldSpec",
    "UnpoolSpec",
    "ConvGeometry",
    "PoolGeometry",
    "PADDING_MODES",
    "result_dtype",
    "conv_out_size",
    "pool_out_size",
    "conv_geometry",
    "conv_spec",
    "signal_spec",
    "local_spec",
    "pool_geometry",
    "pool_spec",
    "check_out",
]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
# numpy.pad's name for each of torch's padding modes.
_NP_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}

# The kernels index with 64-bit signed integers; flat indices returned by max-pool are int64.
_INDEX_LIMIT = 2**62


def _memory_limit() -> int:
    """Bytes of physical memory: no single array we allocate may be larger."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 2**40


MEMORY_LIMIT = _memory_limit()


# --------------------------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------------------------
def as_real_array(a, name: str) -> np.ndarray:
    """``np.asarray(a)``, refusing complex, object, string and other non-numeric dtypes."""
    if isinstance(a, (str, bytes)):
        raise TypeError(f"{name} must be a real numeric array, got a {type(a).__name__}")
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as exc:  # ragged nested sequences and the like
        raise TypeError(f"{name} must be a real numeric array: {exc}") from None
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} must be real, got complex dtype {arr.dtype}")
    if kind not in "biuf":
        raise TypeError(
            f"{name} must be a real numeric array (bool, int or float), got dtype {arr.dtype}"
        )
    return arr


def result_dtype(*arrays) -> np.dtype:
    """The dtype of every result: ``numpy.result_type(*arrays, numpy.float32)``, for arrays
    (anything with a ``dtype``), as native float32 or float64.

    float32 stays float32 and float16 gives float32; int32/int64 (and uint32/uint64) give
    float64, while bool and the 8- and 16-bit integers give float32 (they fit in it). Only
    float32 and float64 are computed natively; wider floats raise TypeError.
    """
    key = tuple([a.dtype for a in arrays])
    dt = _RESULT_DTYPES.get(key)
    if dt is not None:
        return dt
    dt = np.result_type(*arrays, np.float32)
    if dt not in (np.float32, np.float64):
        raise TypeError(
            f"fastconv computes in float32 or float64; inputs of dtype {dt} are not supported"
        )
    dt = np.dtype(dt.type)  # plain: no metadata carried over from the first caller's input
    if len(_RESULT_DTYPES) < 256:
        _RESULT_DTYPES[key] = dt
    return dt


# result_dtype's answers by the inputs' dtypes: under NumPy >= 2 (NEP 50) an array's dtype
# alone decides, 0-d arrays included; the cache saves a call a microsecond
_RESULT_DTYPES: dict = {}


def prepare(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous array of ``dtype`` holding ``arr``'s values (a copy only if needed)."""
    return np.ascontiguousarray(arr, dtype=dtype)


# --------------------------------------------------------------------------------------------
# integer arguments
# --------------------------------------------------------------------------------------------
def _as_int(v, name: str) -> int:
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got bool {v!r}")
    try:
        return operator.index(v)
    except TypeError:
        raise TypeError(f"{name} must be an int or a tuple of ints, got {v!r}") from None


# Stride, padding, dilation and kernel sizes must stay below this: far beyond any real layer,
# and small enough that no index arithmetic in a kernel can overflow int64.
ARG_LIMIT = 2**31


def int_tuple(v, n: int, name: str, minimum: int) -> tuple:
    """Normalize an int or a length-``n`` sequence of ints, each ``>= minimum`` and below
    :data:`ARG_LIMIT`."""
    if isinstance(v, (tuple, list)):
        if len(v) != n:
            raise ValueError(f"{name} must be an int or a tuple of {n} ints, got {v!r}")
        vals = tuple(_as_int(e, name) for e in v)
    elif isinstance(v, np.ndarray) and v.ndim == 1:
        return int_tuple(tuple(v.tolist()), n, name, minimum)
    else:
        vals = (_as_int(v, name),) * n
    for e in vals:
        if e < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {v!r}")
        if e >= ARG_LIMIT:
            raise ValueError(f"{name} must be < 2**31, got {v!r}")
    return vals


# --------------------------------------------------------------------------------------------
# output sizes
# --------------------------------------------------------------------------------------------
def conv_out_size(size: int, kernel: int, stride: int, pad_total: int, dilation: int) -> int:
    """Output length of a convolution along one axis (PyTorch's formula)."""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def pool_out_size(size, kernel, stride, pad, dilation, ceil_mode) -> int:
    """Output length of a pooling along one axis, with PyTorch's ceil_mode rule.

    With ``ceil_mode`` the last window may run past the end, but a window that would start
    in the right padding is dropped.
    """
    num = size + 2 * pad - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = -(-num // stride) + 1
        if (out - 1) * stride >= size + pad:
            out -= 1
    else:
        out = num // stride + 1
    return out


def frame_shape(x_shape, out_shape, pad, stride, span) -> tuple:
    """(N, C, Hp, Wp): the zero/-inf frame that holds the input, its top/left padding and every
    window of the output (what the reference kernels, and Numba's stride-1 conv, allocate)."""
    N, C, H, W = x_shape
    Ho, Wo = out_shape[2:]
    return (N, C, max(H + pad[0], (Ho - 1) * stride[0] + span[0]),
            max(W + pad[1], (Wo - 1) * stride[1] + span[1]))


def check_alloc(shape, itemsize: int, what: str) -> None:
    """Refuse, before allocating, an array that could not exist on this machine."""
    count = 1
    for s in shape:
        count *= int(s)
    if count >= _INDEX_LIMIT or count * itemsize > MEMORY_LIMIT:
        raise ValueError(
            f"{what} of shape {tuple(int(s) for s in shape)} would need {count * itemsize:,} "
            f"bytes, more than this machine's {MEMORY_LIMIT:,} bytes of memory"
        )


# --------------------------------------------------------------------------------------------
# convolution
# --------------------------------------------------------------------------------------------
def _x_empty(spec) -> bool:
    """A spec's ``empty``: nothing to compute, an empty batch."""
    return spec.x.size == 0


def _grad_output_empty(spec) -> bool:
    """A gradient spec's ``empty``: nothing to compute, an empty ``grad_output``."""
    return spec.grad_output.size == 0


class ConvSpec(NamedTuple):
    """A validated convolution, always expressed in 2-D (a 1-D one has height 1).

    ``x`` is (N, C, H, W) already padded explicitly for the non-zero padding modes, so the
    kernels only ever see implicit zero padding ``pad = (top, left)``; ``weight`` is
    (K, C // groups, kh, kw); ``bias`` is (K,) (zeros when the caller gave none).
    """

    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    stride: tuple
    pad: tuple  # (top, left): implicit zero padding left for the kernel
    dilation: tuple
    groups: int
    out_shape: tuple  # (N, K, Ho, Wo)
    dtype: np.dtype
    has_bias: bool
    result_shape: tuple  # the shape returned to the caller (1-D and unbatched squeezed)

    op = "conv2d"
    family = "conv2d"

    empty = property(_x_empty)

    def kernel_args(self, out):
        """``(x, w, b, out, stride, pad, dilation, groups)``."""
        return (self.x, self.weight, self.bias, out, self.stride, self.pad, self.dilation,
                self.groups)


def _spatial_padding(padding, nd, ksize, stride, dilation):
    """Turn ``padding`` into per-axis (before, after) pairs."""
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * nd
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(
                    f"padding='same' needs stride 1 (as in PyTorch), got stride={stride}"
                )
            pairs = []
            for k, d in zip(ksize, dilation):
                total = d * (k - 1)
                pairs.append((total // 2, total - total // 2))
            return pairs
        raise ValueError(f"padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
    pads = int_tuple(padding, nd, "padding", 0)
    return [(p, p) for p in pads]


class ConvGeometry(NamedTuple):
    """The validated shapes of a convolution, in 2-D (a 1-D one has height 1).

    ``pairs`` holds the (before, after) padding of each of the two spatial axes.
    """

    batched: bool
    x_shape: tuple  # (N, C, H, W)
    w_shape: tuple  # (K, C // groups, kh, kw)
    stride: tuple
    pairs: tuple
    dilation: tuple
    groups: int
    padding_mode: str
    out_shape: tuple  # (N, K, Ho, Wo)
    result_shape: tuple  # the forward output's shape as the caller sees it


def conv_geometry(x_shape, w_shape, stride, padding, dilation, groups, padding_mode, nd: int,
                  xname="x", wname="weight") -> ConvGeometry:
    """Validate the shapes and arguments of a conv1d/conv2d/conv3d (``nd`` = 1, 2 or 3).

    A conv1d/conv2d geometry is in 2-D (4-D shapes, a 1-D one with height 1); a conv3d one
    keeps its three spatial axes (5-D shapes: x (N, C, D, H, W), out (N, K, Do, Ho, Wo)).

    Shared by :func:`conv_spec` and the gradient specs, which know the input or the weight
    only by its shape; ``xname``/``wname`` are the argument names the errors quote.
    """
    if len(w_shape) != nd + 2:
        raise ValueError(
            f"{wname} must have {nd + 2} dimensions (out_channels, in_channels/groups"
            f"{_KERNEL_DIMS[nd]}), got shape {w_shape}"
        )
    if len(x_shape) == nd + 1:
        batched = False
    elif len(x_shape) == nd + 2:
        batched = True
    else:
        raise ValueError(
            f"{xname} must have shape {_INPUT_DIMS[nd]}, got {len(x_shape)} dimensions "
            f"{x_shape}"
        )
    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    groups = _as_int(groups, "groups")
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")

    xs = x_shape if batched else (1,) + x_shape
    N, C = xs[0], xs[1]
    spatial = tuple(xs[2:])
    K, Cg = w_shape[0], w_shape[1]
    ksize = tuple(w_shape[2:])
    if K == 0 or Cg == 0 or any(k == 0 for k in ksize):
        raise ValueError(f"{wname} must not be empty, got shape {w_shape}")
    if C == 0 or any(s == 0 for s in spatial):
        raise ValueError(
            f"{xname} must have non-empty channel and spatial dimensions, got {x_shape}"
        )
    if C % groups:
        raise ValueError(f"groups={groups} must divide the input channels of {xname} ({C})")
    if K % groups:
        raise ValueError(f"groups={groups} must divide {wname}'s out_channels ({K})")
    if Cg * groups != C:
        raise ValueError(
            f"{wname} has {Cg} input channels per group, but {xname} has {C} channels and "
            f"groups={groups} (expected {wname}.shape[1] == {C // groups})"
        )

    stride = int_tuple(stride, nd, "stride", 1)
    dilation = int_tuple(dilation, nd, "dilation", 1)
    pairs = _spatial_padding(padding, nd, ksize, stride, dilation)

    out_sp = []
    for ax in range(nd):
        o = conv_out_size(spatial[ax], ksize[ax], stride[ax], sum(pairs[ax]), dilation[ax])
        if o < 1:
            raise ValueError(
                f"the output would be empty: along spatial axis {ax}, {xname} has size "
                f"{spatial[ax]} with padding {pairs[ax]}, but the dilated kernel spans "
                f"{dilation[ax] * (ksize[ax] - 1) + 1}"
            )
        out_sp.append(o)

    if padding_mode == "reflect":
        for ax in range(nd):
            if max(pairs[ax]) >= spatial[ax]:
                raise ValueError(
                    f"padding_mode='reflect' needs padding smaller than the input size: "
                    f"padding {pairs[ax]} along spatial axis {ax} of size {spatial[ax]}"
                )
    elif padding_mode == "circular":
        for ax in range(nd):
            if max(pairs[ax]) > spatial[ax]:
                raise ValueError(
                    f"padding_mode='circular' needs padding at most the input size: "
                    f"padding {pairs[ax]} along spatial axis {ax} of size {spatial[ax]}"
                )

    if nd == 1:
        spatial = (1,) + spatial
        ksize = (1,) + ksize
        stride = (1,) + stride
        dilation = (1,) + dilation
        pairs = [(0, 0)] + pairs
        out_sp = [1] + out_sp
    result_shape = (N, K) + tuple(out_sp[max(0, 2 - nd):])
    if not batched:
        result_shape = result_shape[1:]
    return ConvGeometry(
        batched=batched,
        x_shape=(N, C) + spatial,
        w_shape=(K, Cg) + ksize,
        stride=stride,
        pairs=tuple(pairs),
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
        out_shape=(N, K) + tuple(out_sp),
        result_shape=result_shape,
    )


def explicit_padding(geo: ConvGeometry) -> bool:
    """Whether the input is padded explicitly (a non-zeros mode with some padding)."""
    return geo.padding_mode != "zeros" and any(p != (0, 0) for p in geo.pairs)


def padded_shape(geo: ConvGeometry) -> tuple:
    """(N, C, H, W) (conv3d: (N, C, D, H, W)) of the input with all of its padding made
    explicit."""
    return geo.x_shape[:2] + tuple(s + sum(p) for s, p in zip(geo.x_shape[2:], geo.pairs))


def padded_input(x4: np.ndarray, geo: ConvGeometry, dtype: np.dtype):
    """The (N, C, H, W) input the kernels see, and the implicit zero padding (top, left)
    left for them: the non-zero padding modes are applied here, once, with ``np.pad``."""
    if explicit_padding(geo):
        xp = np.pad(x4.astype(dtype, copy=False), [(0, 0), (0, 0)] + list(geo.pairs),
                    mode=_NP_PAD_MODE[geo.padding_mode])
        return prepare(xp, dtype), (0,) * len(geo.pairs)
    return prepare(x4, dtype), tuple(p[0] for p in geo.pairs)


def _plain(v) -> bool:
    """Whether ``v`` is an int, a str or a tuple of ints, exactly: a value that hashes and
    compares like nothing else valid (``True == 1`` and ``hash(True) == hash(1)``, so a bool
    must never reach a cache key)."""
    t = type(v)
    return t is int or t is str or (t is tuple and all(type(e) is int for e in v))


_PLAN_CACHE: dict = {}
_PLAN_CACHE_SIZE = 512


def _check_frame(geo, itemsize):
    """Refuse a geometry whose padded input frame (the input framed by its padding and the
    windows' reach) could not be allocated: the same rule for a convolution and for its
    input gradient, which scatters into that frame."""
    span = tuple(d * (k - 1) + 1 for d, k in zip(geo.dilation, geo.w_shape[2:]))
    top_left = (0,) * len(geo.pairs) if explicit_padding(geo) else tuple(
        p[0] for p in geo.pairs)
    if len(geo.pairs) == 3:  # conv3d: the same frame, with a depth axis
        shape = geo.x_shape[:2] + tuple(
            max(s + p, (o - 1) * st + sp) for s, p, o, st, sp in
            zip(geo.x_shape[2:], top_left, geo.out_shape[2:], geo.stride, span))
    else:
        shape = frame_shape(geo.x_shape, geo.out_shape, top_left, geo.stride, span)
    check_alloc(shape, itemsize, "the padded input frame (from padding and dilation)")


def _conv_plan(x_shape, w_shape, itemsize, stride, padding, dilation, groups, padding_mode,
               nd):
    """:func:`conv_geometry` and every size check of :func:`conv_spec`, which depend only on
    shapes, the itemsize and the arguments; cached for plain arguments (a training loop
    validates the same layer every step)."""
    key = None
    if (_plain(stride) and _plain(padding) and _plain(dilation) and _plain(groups)
            and type(padding_mode) is str):
        key = (x_shape, w_shape, itemsize, stride, padding, dilation, groups, padding_mode,
               nd)
        geo = _PLAN_CACHE.get(key)
        if geo is not None:
            return geo
    geo = conv_geometry(x_shape, w_shape, stride, padding, dilation, groups, padding_mode, nd)
    check_alloc(geo.out_shape, itemsize,
                "the output (from x, weight, stride, padding, dilation)")
    if explicit_padding(geo):
        check_alloc(padded_shape(geo), itemsize, "the padded input")
    # the prepared copies must be possible too (a broadcast view can be huge but free)
    check_alloc(geo.x_shape, itemsize, "the prepared input x")
    check_alloc(w_shape, itemsize, "the prepared weight")
    _check_frame(geo, itemsize)
    if key is not None:
        if len(_PLAN_CACHE) >= _PLAN_CACHE_SIZE:
            _PLAN_CACHE.clear()
        _PLAN_CACHE[key] = geo
    return geo


def conv_spec(x, weight, bias, stride, padding, dilation, groups, padding_mode, nd: int):
    """Validate and normalize a conv1d (``nd=1``) or conv2d (``nd=2``) call."""
    x = as_real_array(x, "x")
    weight = as_real_array(weight, "weight")
    if bias is not None:
        bias = as_real_array(bias, "bias")
    dtype = result_dtype(x, weight) if bias is None else result_dtype(x, weight, bias)

    geo = _conv_plan(x.shape, weight.shape, dtype.itemsize, stride, padding, dilation, groups,
                     padding_mode, nd)
    K = geo.w_shape[0]
    if bias is not None and bias.shape != (K,):
        raise ValueError(f"bias must have shape ({K},) (out_channels), got {bias.shape}")

    xp, pad = padded_input(x.reshape(geo.x_shape), geo, dtype)
    b = np.zeros(K, dtype) if bias is None else prepare(bias, dtype)

    return (Conv3dSpec if nd == 3 else ConvSpec)(
        x=xp,
        weight=prepare(weight.reshape(geo.w_shape), dtype),
        bias=b,
        stride=geo.stride,
        pad=pad,
        dilation=geo.dilation,
        groups=geo.groups,
        out_shape=geo.out_shape,
        dtype=dtype,
        has_bias=bias is not None,
        result_shape=geo.result_shape,
    )


def signal_spec(x4: np.ndarray, v4: np.ndarray, pad: tuple, out_shape: tuple) -> ConvSpec:
    """The :class:`ConvSpec` of a NumPy/SciPy-style correlation, whose caller
    (:mod:`fastconv.functional`) has validated, padded and prepared both (1, 1, h, w)
    operands: stride and dilation 1, one group, no bias, implicit zero padding ``pad``
    (top, left) and the (1, 1, Ho, Wo) output ``out_shape``."""
    return ConvSpec(x=x4, weight=v4, bias=np.zeros(1, x4.dtype), stride=(1, 1), pad=pad,
                    dilation=(1, 1), groups=1, out_shape=out_shape, dtype=x4.dtype,
                    has_bias=False, result_shape=out_shape)


# --------------------------------------------------------------------------------------------
# locally connected
# --------------------------------------------------------------------------------------------
class LocalSpec(NamedTuple):
    """A validated locally_connected2d: ``x`` (N, C, H, W), ``weight`` (Ho, Wo, K, C, kh,
    kw) and ``bias`` (K, Ho, Wo), all C-contiguous in ``dtype``; zero padding ``pad``."""

    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    stride: tuple
    pad: tuple
    out_shape: tuple  # (N, K, Ho, Wo)
    dtype: np.dtype
    result_shape: tuple

    op = "locally_connected2d"
    family = "local"

    empty = property(_x_empty)

    def kernel_args(self, out):
        """``(x, w, b, out, stride, pad)``."""
        return (self.x, self.weight, self.bias, out, self.stride, self.pad)


def local_spec(x, weight, bias, stride, padding) -> LocalSpec:
    """Validate and normalize a locally_connected2d call: the shape rules of a conv2d with
    the same filter size, and an output size that matches ``weight``'s."""
    x = as_real_array(x, "x")
    weight = as_real_array(weight, "weight")
    if weight.ndim != 6:
        raise ValueError(f"weight must have shape (Ho, Wo, K, C, kh, kw), got {weight.shape}")
    Ho, Wo, K, Cw, kh, kw = weight.shape
    # the shape rules of a conv with the same filter size
    shared = np.broadcast_to(np.zeros((), weight.dtype), (K, Cw, kh, kw))
    if bias is not None:
        bias = as_real_array(bias, "bias")
        if bias.shape not in ((K,), (K, Ho, Wo)):
            raise ValueError(f"bias must have shape ({K},) or ({K}, {Ho}, {Wo}), got {bias.shape}")
    dtype = result_dtype(x, weight) if bias is None else result_dtype(x, weight, bias)
    spec = conv_spec(x, shared, None, stride, padding, 1, 1, "zeros", 2)
    if spec.out_shape[2:] != (Ho, Wo):
        raise ValueError(
            f"weight is for a {Ho}x{Wo} output, but x, stride and padding give "
            f"{spec.out_shape[2]}x{spec.out_shape[3]}"
        )
    b = np.zeros((K, Ho, Wo), dtype)
    if bias is not None:
        b[...] = bias.reshape((K, 1, 1) if bias.ndim == 1 else (K, Ho, Wo))
    return LocalSpec(x=prepare(spec.x, dtype), weight=prepare(weight, dtype), bias=b,
                     stride=spec.stride, pad=spec.pad, out_shape=spec.out_shape, dtype=dtype,
                     result_shape=spec.result_shape)


# --------------------------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------------------------
class PoolGeometry(NamedTuple):
    """The validated shapes and arguments of a pooling: in 2-D for max_pool1d/2d and
    avg_pool1d/2d (a 1-D one has height 1), in 3-D for the 3-D pools."""

    batched: bool
    x_shape: tuple  # (N, C, H, W), or (N, C, D, H, W) for a 3-D pool
    kernel: tuple
    stride: tuple
    pad: tuple
    dilation: tuple
    ceil_mode: bool
    count_include_pad: bool
    out_shape: tuple  # (N, C, Ho, Wo), or (N, C, Do, Ho, Wo)
    result_shape: tuple  # the output's shape as the caller sees it
    divisor: int = 0  # avg pools: divisor_override, 0 for none


class PoolSpec(NamedTuple):
    """A validated pooling (``op``): ``max_pool2d`` or ``avg_pool2d`` in 2-D (``x`` is
    (N, C, H, W) C-contiguous), ``max_pool3d`` or ``avg_pool3d`` in 3-D (``x`` is
    (N, C, D, H, W)); ``indices`` the int64 array shaped like the output that a max-pool
    fills with its positions (None: not asked for, and always None for the avg pools);
    ``divisor`` the avg pools' ``divisor_override`` (0: none; always 0 for avg_pool2d,
    whose calls with one run as ``avg_pool3d`` with depth 1)."""

    op: str  # "max_pool2d", "avg_pool2d", "max_pool3d" or "avg_pool3d"
    x: np.ndarray
    indices: np.ndarray
    kernel: tuple
    stride: tuple
    pad: tuple
    dilation: tuple
    ceil_mode: bool
    count_include_pad: bool
    out_shape: tuple  # (N, C, Ho, Wo) or (N, C, Do, Ho, Wo)
    dtype: np.dtype
    result_shape: tuple
    divisor: int = 0

    # dispatch's module key: the 3-D pools' kernels are a family of their own
    family = property(lambda self: "pool3d" if self.op.endswith("3d") else "pool")

    empty = property(_x_empty)

    def kernel_args(self, out):
        """max_pool2d/3d: ``(x, out, indices, kernel, stride, pad, dilation)``; avg_pool2d:
        ``(x, out, kernel, stride, pad, count_include_pad)``; avg_pool3d: those and
        ``divisor``."""
        if self.op in ("max_pool2d", "max_pool3d"):
            return (self.x, out, self.indices, self.kernel, self.stride, self.pad,
                    self.dilation)
        if self.op == "avg_pool3d":
            return (self.x, out, self.kernel, self.stride, self.pad, self.count_include_pad,
                    self.divisor)
        return (self.x, out, self.kernel, self.stride, self.pad, self.count_include_pad)


def _as_bool(v, name):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    raise TypeError(f"{name} must be a bool, got {v!r}")


_POOL_NAMES = {1: "(N, C, L) or (C, L)", 2: "(N, C, H, W) or (C, H, W)",
               3: "(N, C, D, H, W) or (C, D, H, W)"}


def pool_tuple(v, nd: int, name: str, minimum: int) -> tuple:
    """torch's argument forms for an ``nd``-d pool's ``kernel_size``, ``stride``,
    ``padding`` and ``dilation``: an int, or a tuple/list (or 1-D array) of 1 or ``nd``
    ints, one int standing for all ``nd`` axes; each ``>= minimum`` and below
    :data:`ARG_LIMIT`. (``stride=None`` or ``()`` is the caller's to turn into the kernel
    size.)"""
    if isinstance(v, np.ndarray) and v.ndim == 1:
        v = tuple(v.tolist())
    if isinstance(v, (tuple, list)):
        if len(v) not in (1, nd):
            what = "1 int" if nd == 1 else f"{nd} ints (or of 1 int)"
            raise ValueError(f"{name} must be an int or a tuple of {what}, got {v!r}")
        vals = tuple(_as_int(e, name) for e in v)
        if len(vals) == 1:
            vals = vals * nd
    else:
        vals = (_as_int(v, name),) * nd
    for e in vals:
        if e < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {v!r}")
        if e >= ARG_LIMIT:
            raise ValueError(f"{name} must be < 2**31, got {v!r}")
    return vals


def divisor_value(v) -> int:
    """``divisor_override`` as the kernels take it: None gives 0 (none); else a nonzero
    int (negative allowed, as in torch), below :data:`ARG_LIMIT` in size."""
    if v is None:
        return 0
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"divisor_override must be an int or None, got bool {v!r}")
    try:
        d = operator.index(v)
    except TypeError:
        raise TypeError(f"divisor_override must be an int or None, got {v!r}") from None
    if d == 0:
        raise ValueError("divisor_override must not be zero")
    if abs(d) >= ARG_LIMIT:
        raise ValueError(f"divisor_override must be smaller than 2**31 in size, got {d}")
    return d


def pool_geometry(x_shape, kernel_size, stride, padding, dilation, ceil_mode, nd: int,
                  count_include_pad=True, op="max_pool", xname="x", divisor_override=None):
    """Validate a pooling's shape and arguments; return its :class:`PoolGeometry`.

    Shared by :func:`pool_spec` and the gradients of the avg pools (which know the input
    only by its shape, ``xname``). ``kernel_size``, ``stride``, ``padding`` and
    ``dilation`` take torch's forms (:func:`pool_tuple`; ``stride`` None or empty: the
    kernel size). ``nd`` 1 and 2 give a 2-D geometry, 3 a 3-D one.
    """
    if len(x_shape) == nd + 1:
        batched = False
    elif len(x_shape) == nd + 2:
        batched = True
    else:
        raise ValueError(
            f"{xname} must have shape {_POOL_NAMES[nd]}, got {len(x_shape)} dimensions "
            f"{x_shape}"
        )
    kernel = pool_tuple(kernel_size, nd, "kernel_size", 1)
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        stride = kernel
    else:
        stride = pool_tuple(stride, nd, "stride", 1)
    pad = pool_tuple(padding, nd, "padding", 0)
    dilation = pool_tuple(dilation, nd, "dilation", 1)
    ceil_mode = _as_bool(ceil_mode, "ceil_mode")
    count_include_pad = _as_bool(count_include_pad, "count_include_pad")
    divisor = divisor_value(divisor_override)
    for k, p, d in zip(kernel, pad, dilation):
        if p > k // 2:
            raise ValueError(
                f"padding must be at most half of kernel_size (as in PyTorch), got "
                f"padding={padding!r} with kernel_size={kernel_size!r}"
            )
    xs = x_shape if batched else (1,) + x_shape
    N, C = xs[0], xs[1]
    spatial = tuple(xs[2:])
    if C == 0 or any(s == 0 for s in spatial):
        raise ValueError(
            f"{xname} must have non-empty channel and spatial dimensions, got {x_shape}"
        )
    if nd == 3 and op == "avg_pool" and any(n < k for n, k in zip(spatial, kernel)):
        # torch's avg_pool3d (not its 1-D/2-D pools, nor max_pool3d) refuses these, padding
        # or not
        raise ValueError(
            f"{xname} must be at least kernel_size along each spatial axis for avg_pool3d "
            f"(as in PyTorch), got spatial size {spatial} with kernel_size {kernel}"
        )
    out_sp = []
    for ax in range(nd):
        o = pool_out_size(spatial[ax], kernel[ax], stride[ax], pad[ax], dilation[ax], ceil_mode)
        if o < 1:
            raise ValueError(
                f"the output would be empty: along spatial axis {ax}, {xname} has size "
                f"{spatial[ax]} but the {op} window spans "
                f"{dilation[ax] * (kernel[ax] - 1) + 1} (padding {pad[ax]})"
            )
        out_sp.append(o)
    if nd == 1:
        spatial = (1,) + spatial
        kernel = (1,) + kernel
        stride = (1,) + stride
        pad = (0,) + pad
        dilation = (1,) + dilation
        out_sp = [1] + out_sp
    out_shape = (N, C) + tuple(out_sp)
    result_shape = (N, C) + tuple(out_sp[len(out_sp) - nd:])
    if not batched:
        result_shape = result_shape[1:]
    return PoolGeometry(batched=batched, x_shape=(N, C) + spatial, kernel=kernel,
                        stride=stride, pad=pad, dilation=dilation, ceil_mode=ceil_mode,
                        count_include_pad=count_include_pad, out_shape=out_shape,
                        result_shape=result_shape, divisor=divisor)


def as_depth1(geo: PoolGeometry) -> PoolGeometry:
    """A 2-D pool's geometry as a 3-D one of depth 1: avg_pool2d with a
    ``divisor_override``, and avg_pool1d (whose 2-D geometry has height 1), run on the 3-D
    kernels (avg_pool1d's gradient on the 2-D ones)."""
    N, C = geo.x_shape[:2]
    return geo._replace(x_shape=(N, C, 1) + tuple(geo.x_shape[2:]),
                        kernel=(1,) + geo.kernel, stride=(1,) + geo.stride, pad=(0,) + geo.pad,
                        dilation=(1,) + geo.dilation,
                        out_shape=(N, C, 1) + tuple(geo.out_shape[2:]))


def _pool_frame(geo) -> tuple:
    """The padded frame the reference kernels allocate (any number of spatial axes)."""
    sp = []
    for size, o, k, s, p, d in zip(geo.x_shape[2:], geo.out_shape[2:], geo.kernel, geo.stride,
                                   geo.pad, geo.dilation):
        sp.append(max(size + p, (o - 1) * s + d * (k - 1) + 1))
    return tuple(geo.x_shape[:2]) + tuple(sp)


_POOL_NDS = {"max_pool2d": (1, 2), "avg_pool2d": (1, 2), "max_pool3d": (3,),
             "avg_pool3d": (3,)}


def pool_spec(x, kernel_size, stride, padding, dilation, ceil_mode, nd: int,
              count_include_pad=True, op="max_pool2d", return_indices=False,
              divisor_override=None):
    """Validate and normalize a pooling call: max_pool1d/2d (``op="max_pool2d"``),
    avg_pool1d/2d (``op="avg_pool2d"``), max_pool3d or avg_pool3d (``nd=3``); a max-pool
    with ``return_indices`` gets its indices array. An avg_pool2d with a
    ``divisor_override`` becomes an ``avg_pool3d`` of depth 1 (the spec's ``op``)."""
    if nd not in _POOL_NDS.get(op, ()):  # a caller's mistake
        raise ValueError(f"pool_spec: op {op!r} is not a {nd}-d pool")
    x = as_real_array(x, "x")
    dtype = result_dtype(x)
    is_max = op.startswith("max")
    geo = pool_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode, nd,
                        count_include_pad, "max_pool" if is_max else "avg_pool",
                        divisor_override=None if is_max else divisor_override)
    if op == "avg_pool2d" and (geo.divisor or nd == 1):  # avg_pool1d: see as_depth1
        geo, op = as_depth1(geo), "avg_pool3d"
    check_alloc(geo.out_shape, 8,
                "the output (from x, kernel_size, stride, padding)")  # int64 indices
    check_alloc(geo.x_shape, dtype.itemsize, "the prepared input x")
    check_alloc(_pool_frame(geo), dtype.itemsize,
                "the padded input frame (from kernel_size, padding, dilation)")
    return_indices = _as_bool(return_indices, "return_indices")
    return PoolSpec(op=op, x=prepare(x.reshape(geo.x_shape), dtype),
                    indices=np.empty(geo.out_shape, np.int64) if return_indices else None,
                    kernel=geo.kernel, stride=geo.stride, pad=geo.pad, dilation=geo.dilation,
                    ceil_mode=geo.ceil_mode, count_include_pad=geo.count_include_pad,
                    out_shape=geo.out_shape, dtype=dtype, result_shape=geo.result_shape,
                    divisor=geo.divisor)


# --------------------------------------------------------------------------------------------
# out=
# --------------------------------------------------------------------------------------------
def check_out(out, shape, dtype, inputs):
    """Validate a caller's ``out=`` array; return it viewed with the kernel's 4-D shape."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"out must have shape {tuple(shape)}, got {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"out must have dtype {np.dtype(dtype)}, got {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    for name, a in inputs:
        if isinstance(a, np.ndarray) and np.shares_memory(out, a):
            raise ValueError(f"out must not overlap the input {name}")
    return out


# --------------------------------------------------------------------------------------------
# gradients (fastconv.grad)
# --------------------------------------------------------------------------------------------
def shape_tuple(v, name: str) -> tuple:
    """A shape given as a tuple/list/1-D array of non-negative ints (e.g. ``x.shape``)."""
    if isinstance(v, np.ndarray) and v.ndim == 1:
        v = tuple(v.tolist())
    if not isinstance(v, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of ints (a shape), got {v!r}")
    vals = tuple(_as_int(e, name) for e in v)
    if any(e < 0 for e in vals):
        raise ValueError(f"{name} must hold non-negative sizes, got {v!r}")
    return vals


def fold_padding(gp: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """The adjoint of :func:`padded_input`'s ``np.pad``: the gradient wrt the padded input
    (N, C, H + pads, W + pads) folded back onto the (N, C, H, W) input, each padded position
    adding onto the input position it copies (reflect, edge or wrap)."""
    if not explicit_padding(geo):
        return gp
    g = gp
    for ax, (before, after) in zip(range(2, 2 + len(geo.pairs)), geo.pairs):
        if before == 0 and after == 0:
            continue
        n = g.shape[ax] - before - after
        src = np.arange(-before, n + after)  # input position, before reflecting/clamping
        if geo.padding_mode == "reflect":
            src = np.where(src < 0, -src, np.where(src >= n, 2 * (n - 1) - src, src))
        elif geo.padding_mode == "replicate":
            src = np.clip(src, 0, n - 1)
        else:  # circular
            src = src % n
        gt = np.moveaxis(g, ax, 0)
        res = gt[before:before + n].copy()
        margin = np.r_[0:before, before + n:before + n + after]
        np.add.at(res, src[margin], gt[margin])  # in a fixed order: deterministic
        g = np.moveaxis(res, 0, ax)
    return np.ascontiguousarray(g)


class ConvGradSpec(NamedTuple):
    """A validated conv1d/conv2d gradient (``op``: ``"conv2d_input"`` or
    ``"conv2d_weight"``), in 2-D.

    ``grad_output`` is (N, K, Ho, Wo); ``weight`` (input gradient; else None) is (K, C //
    groups, kh, kw); ``x`` (weight gradient; else None) is the input, already padded
    explicitly for the non-zero padding modes. ``stride``, ``dilation`` and ``groups`` are
    ``geo``'s, ``pad`` the implicit zero padding (top, left) left for the kernel.
    ``grad_shape`` is the 4-D array the kernel fills (for the input gradient of a non-zero
    padding mode, the padded input's shape: :func:`fold_padding` finishes it).
    """

    op: str
    grad_output: np.ndarray
    weight: np.ndarray
    x: np.ndarray
    stride: tuple
    pad: tuple
    dilation: tuple
    groups: int
    geo: ConvGeometry
    grad_shape: tuple
    dtype: np.dtype
    result_shape: tuple

    family = "grad"

    empty = property(_grad_output_empty)

    def kernel_args(self, out):
        """conv2d_input: ``(grad_output, weight, out, stride, pad, dilation, groups)``;
        conv2d_weight: ``(x, grad_output, out, stride, pad, dilation, groups)``."""
        if self.op in _INPUT_GRAD_OPS:
            return (self.grad_output, self.weight, out, self.stride, self.pad, self.dilation,
                    self.groups)
        return (self.x, self.grad_output, out, self.stride, self.pad, self.dilation,
                self.groups)


def _check_grad_output(grad_output, expected, what):
    if grad_output.shape != tuple(expected):
        raise ValueError(
            f"grad_output must have shape {tuple(expected)} ({what}), got {grad_output.shape}"
        )


def conv_input_grad_spec(input_size, weight, grad_output, stride, padding, dilation, groups,
                         padding_mode, nd: int) -> ConvGradSpec:
    """Validate a ``conv{nd}d_input`` call (gradient wrt the input)."""
    input_size = shape_tuple(input_size, "input_size")
    weight = as_real_array(weight, "weight")
    grad_output = as_real_array(grad_output, "grad_output")
    dtype = result_dtype(weight, grad_output)
    geo = conv_geometry(input_size, weight.shape, stride, padding, dilation, groups,
                        padding_mode, nd, xname="input_size")
    _check_grad_output(grad_output, geo.result_shape, "the convolution's output")
    if explicit_padding(geo):
        grad_shape = padded_shape(geo)
        pad = (0,) * len(geo.pairs)
    else:
        grad_shape = geo.x_shape
        pad = tuple(p[0] for p in geo.pairs)
    check_alloc(grad_shape, dtype.itemsize, "the input gradient (from input_size)")
    _check_frame(geo, dtype.itemsize)
    return (Conv3dGradSpec if nd == 3 else ConvGradSpec)(
        op="conv3d_input" if nd == 3 else "conv2d_input",
        grad_output=prepare(grad_output.reshape(geo.out_shape), dtype),
        weight=prepare(weight.reshape(geo.w_shape), dtype),
        x=None,
        stride=geo.stride,
        pad=pad,
        dilation=geo.dilation,
        groups=geo.groups,
        geo=geo,
        grad_shape=grad_shape,
        dtype=dtype,
        result_shape=input_size,
    )


def conv_weight_grad_spec(x, weight_size, grad_output, stride, padding, dilation, groups,
                          padding_mode, nd: int) -> ConvGradSpec:
    """Validate a ``conv{nd}d_weight`` call (gradient wrt the weight)."""
    x = as_real_array(x, "input")
    weight_size = shape_tuple(weight_size, "weight_size")
    grad_output = as_real_array(grad_output, "grad_output")
    dtype = result_dtype(x, grad_output)
    geo = conv_geometry(x.shape, weight_size, stride, padding, dilation, groups, padding_mode,
                        nd, xname="input", wname="weight_size")
    _check_grad_output(grad_output, geo.result_shape, "the convolution's output")
    if explicit_padding(geo):
        check_alloc(padded_shape(geo), dtype.itemsize, "the padded input")
    check_alloc(geo.x_shape, dtype.itemsize, "the prepared input")
    check_alloc(weight_size, dtype.itemsize, "the weight gradient (from weight_size)")
    xp, pad = padded_input(x.reshape(geo.x_shape), geo, dtype)
    return (Conv3dGradSpec if nd == 3 else ConvGradSpec)(
        op="conv3d_weight" if nd == 3 else "conv2d_weight",
        grad_output=prepare(grad_output.reshape(geo.out_shape), dtype),
        weight=None,
        x=xp,
        stride=geo.stride,
        pad=pad,
        dilation=geo.dilation,
        groups=geo.groups,
        geo=geo,
        grad_shape=geo.w_shape,
        dtype=dtype,
        result_shape=weight_size,
    )


class PoolGradSpec(NamedTuple):
    """A validated pooling gradient (``op``: ``"max_pool2d_backward"``,
    ``"avg_pool2d_backward"`` or ``"avg_pool3d_backward"``): ``grad_output`` C-contiguous,
    (N, C, Ho, Wo) or, for avg_pool3d_backward, (N, C, Do, Ho, Wo); for a max-pool, its
    ``indices`` (int64, the same shape, as the caller gave them: an index outside the plane
    is the postcondition ``indices_outside_plane`` of :mod:`fastconv._postconditions`; a
    3-D max-pool's volumes are flattened to (N, C, 1, D * H * W) planes, its flat indices
    unchanged); for an avg-pool, the forward call's ``kernel``, ``stride``, ``pad`` and
    ``count_include_pad`` (None for a max-pool), and ``divisor`` (its divisor_override, 0
    for none). ``grad_shape`` is the array the kernel fills."""

    op: str
    grad_output: np.ndarray
    indices: np.ndarray
    kernel: tuple
    stride: tuple
    pad: tuple
    count_include_pad: bool
    grad_shape: tuple
    dtype: np.dtype
    result_shape: tuple
    divisor: int = 0

    # dispatch's module key: avg_pool3d_backward lives with the 3-D pools' kernels
    family = property(lambda self: "pool3d" if self.op == "avg_pool3d_backward" else "grad")

    empty = property(_grad_output_empty)  # an empty batch, or an empty pooled plane

    def kernel_args(self, out):
        """max_pool2d_backward: ``(grad_output, indices, out)``; avg_pool2d_backward:
        ``(grad_output, out, kernel, stride, pad, count_include_pad)``;
        avg_pool3d_backward: those and ``divisor``."""
        if self.op == "max_pool2d_backward":
            return (self.grad_output, self.indices, out)
        if self.op == "avg_pool3d_backward":
            return (self.grad_output, out, self.kernel, self.stride, self.pad,
                    self.count_include_pad, self.divisor)
        return (self.grad_output, out, self.kernel, self.stride, self.pad,
                self.count_include_pad)


def max_pool_grad_spec(grad_output, indices, input_size, nd: int) -> PoolGradSpec:
    """Validate a ``max_pool{nd}d`` gradient call (arrays 4-D, C-contiguous, indices int64;
    indices outside the plane are left to :mod:`fastconv._postconditions`). A 3-D one's
    volumes are flat planes (N, C, 1, D * H * W): its indices are flat already."""
    grad_output = as_real_array(grad_output, "grad_output")
    dtype = result_dtype(grad_output)
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"indices must be an integer array, got dtype {indices.dtype}")
    input_size = shape_tuple(input_size, "input_size")
    if len(input_size) not in (nd + 1, nd + 2):
        raise ValueError(f"input_size must be a shape {_POOL_NAMES[nd]}, got {input_size}")
    if grad_output.ndim != len(input_size):
        raise ValueError(
            f"grad_output must have {len(input_size)} dimensions like input_size "
            f"{input_size}, got shape {grad_output.shape}"
        )
    if indices.shape != grad_output.shape:
        raise ValueError(
            f"indices must have the shape of grad_output {grad_output.shape}, got "
            f"{indices.shape}"
        )
    batched = len(input_size) == nd + 2
    xs = input_size if batched else (1,) + input_size
    gs = grad_output.shape if batched else (1,) + grad_output.shape
    if xs[1] == 0 or any(s == 0 for s in xs[2:]):
        raise ValueError(
            f"input_size must have non-empty channel and spatial dimensions, got {input_size}"
        )
    if gs[:2] != xs[:2]:
        raise ValueError(
            f"grad_output {grad_output.shape} and input_size {input_size} must agree on the "
            f"batch and channel dimensions"
        )
    if nd == 1:
        xs = xs[:2] + (1,) + xs[2:]
        gs = gs[:2] + (1,) + gs[2:]
    elif nd == 3:
        check_alloc(xs, dtype.itemsize, "the input gradient (from input_size)")
        xs = xs[:2] + (1, xs[2] * xs[3] * xs[4])
        gs = gs[:2] + (1, gs[2] * gs[3] * gs[4])
    check_alloc(xs, dtype.itemsize, "the input gradient (from input_size)")
    return PoolGradSpec(op="max_pool2d_backward",
                        grad_output=prepare(grad_output.reshape(gs), dtype),
                        indices=prepare(indices.reshape(gs), np.int64), kernel=None,
                        stride=None, pad=None, count_include_pad=None, grad_shape=tuple(xs),
                        dtype=dtype, result_shape=input_size)


def avg_pool_grad_spec(grad_output, input_size, kernel_size, stride, padding, ceil_mode,
                       count_include_pad, nd: int = 2, divisor_override=None) -> PoolGradSpec:
    """Validate an ``avg_pool{nd}d`` gradient call (an avg_pool2d one with a
    ``divisor_override`` runs as avg_pool3d_backward of depth 1)."""
    grad_output = as_real_array(grad_output, "grad_output")
    dtype = result_dtype(grad_output)
    input_size = shape_tuple(input_size, "input_size")
    geo = pool_geometry(input_size, kernel_size, stride, padding, 1, ceil_mode, nd,
                        count_include_pad, "avg_pool", xname="input_size",
                        divisor_override=divisor_override)
    _check_grad_output(grad_output, geo.result_shape, "the pooling's output")
    op = "avg_pool3d_backward" if nd == 3 else "avg_pool2d_backward"
    if nd == 2 and geo.divisor:
        geo, op = as_depth1(geo), "avg_pool3d_backward"
    check_alloc(geo.x_shape, dtype.itemsize, "the input gradient (from input_size)")
    return PoolGradSpec(op=op,
                        grad_output=prepare(grad_output.reshape(geo.out_shape), dtype),
                        indices=None, kernel=geo.kernel, stride=geo.stride, pad=geo.pad,
                        count_include_pad=geo.count_include_pad, grad_shape=geo.x_shape,
                        dtype=dtype, result_shape=input_size, divisor=geo.divisor)


# ---- transpose (issue 17) ----
class ConvTransposeGeometry(NamedTuple):
    """The validated shapes of a transposed convolution of ``nd`` spatial axes.

    A transposed convolution is the input gradient of the convolution whose input has the
    transposed one's output shape (``conv_input_size``) and whose weight is ``weight``
    itself: (in_channels, out_channels // groups, k...). ``extra[ax]`` is
    ``output_padding // stride`` along each axis: the number of zero positions to append to
    ``x`` along that axis so that it is exactly that convolution's output (non-zero only
    when ``output_padding >= stride``, which torch allows when it is below ``dilation``).
    """

    batched: bool
    x_shape: tuple  # as given: (N, C_in, ...) or (C_in, ...)
    w_shape: tuple  # (C_in, C_out // groups, k...)
    stride: tuple
    padding: tuple
    output_padding: tuple
    groups: int
    dilation: tuple
    conv_input_size: tuple  # the result's shape, batched as x is
    extra: tuple


def conv_transpose_geometry(x_shape, w_shape, stride, padding, output_padding, groups,
                            dilation, nd: int, xname="x", wname="weight",
                            ) -> ConvTransposeGeometry:
    """Validate the shapes and arguments of a ``conv_transpose{nd}d`` call, torch's rules
    and output size ``(L - 1) * stride - 2 * padding + dilation * (k - 1) +
    output_padding + 1``; errors name ``xname``/``wname``, ``stride``, ``padding``,
    ``output_padding``, ``groups`` and ``dilation``. Shared by the forward function and
    its gradients (which know ``x`` or ``weight`` only by its shape)."""
    x_shape, w_shape = tuple(x_shape), tuple(w_shape)
    knames = {1: "kernel", 2: "kH, kW", 3: "kD, kH, kW"}[nd]
    if len(w_shape) != nd + 2:
        raise ValueError(
            f"{wname} must have {nd + 2} dimensions (in_channels, out_channels/groups, "
            f"{knames}), got shape {w_shape}"
        )
    if len(x_shape) not in (nd + 1, nd + 2):
        sp = {1: "L", 2: "H, W", 3: "D, H, W"}[nd]
        raise ValueError(
            f"{xname} must have shape (N, C, {sp}) or (C, {sp}), got {len(x_shape)} "
            f"dimensions {x_shape}"
        )
    batched = len(x_shape) == nd + 2
    if isinstance(padding, str):
        raise TypeError(
            f"padding must be an int or a tuple of ints for a transposed convolution "
            f"(as in torch), got {padding!r}"
        )
    groups = _as_int(groups, "groups")
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    stride = int_tuple(stride, nd, "stride", 1)
    padding = int_tuple(padding, nd, "padding", 0)
    output_padding = int_tuple(output_padding, nd, "output_padding", 0)
    dilation = int_tuple(dilation, nd, "dilation", 1)
    xs = x_shape if batched else (1,) + x_shape
    N, C = xs[0], xs[1]
    spatial = xs[2:]
    Cin, Cog = w_shape[0], w_shape[1]
    ksize = w_shape[2:]
    if Cin == 0 or Cog == 0 or any(k == 0 for k in ksize):
        raise ValueError(f"{wname} must not be empty, got shape {w_shape}")
    if C == 0 or any(s == 0 for s in spatial):
        raise ValueError(
            f"{xname} must have non-empty channel and spatial dimensions, got {x_shape}"
        )
    if Cin != C:
        raise ValueError(
            f"{wname} has {Cin} input channels (its first dimension), but {xname} has {C} "
            f"channels"
        )
    if C % groups:
        raise ValueError(f"groups={groups} must divide the input channels of {xname} ({C})")
    for ax in range(nd):
        if not (output_padding[ax] < stride[ax] or output_padding[ax] < dilation[ax]):
            raise ValueError(
                f"output_padding must be smaller than either stride or dilation (as in "
                f"torch), got output_padding={output_padding[ax]} with stride="
                f"{stride[ax]} and dilation={dilation[ax]} along spatial axis {ax}"
            )
    out_sp = []
    for ax in range(nd):
        o = ((spatial[ax] - 1) * stride[ax] - 2 * padding[ax]
             + dilation[ax] * (ksize[ax] - 1) + output_padding[ax] + 1)
        if o < 1:
            raise ValueError(
                f"the output would be empty: along spatial axis {ax}, {xname} of size "
                f"{spatial[ax]} with stride {stride[ax]}, padding {padding[ax]}, "
                f"output_padding {output_padding[ax]} and the dilated kernel's span "
                f"{dilation[ax] * (ksize[ax] - 1) + 1} gives size {o}"
            )
        out_sp.append(o)
    size = (N, Cog * groups) + tuple(out_sp)
    return ConvTransposeGeometry(
        batched=batched, x_shape=x_shape, w_shape=w_shape, stride=stride, padding=padding,
        output_padding=output_padding, groups=groups, dilation=dilation,
        conv_input_size=size if batched else size[1:],
        extra=tuple(op // s for op, s in zip(output_padding, stride)))


def pad_extra(a: np.ndarray, extra: tuple) -> np.ndarray:
    """``a`` with ``extra[ax]`` zeros appended along each of its last ``len(extra)`` axes
    (:class:`ConvTransposeGeometry`'s ``extra``); ``a`` itself when there are none."""
    if not any(extra):
        return a
    lead = [(0, 0)] * (a.ndim - len(extra))
    return np.pad(a, lead + [(0, e) for e in extra])


# --------------------------------------------------------------------------------------------
# ---- fold (issue 17): unfold/fold (FoldSpec), max_unpool (UnpoolSpec) ----
# --------------------------------------------------------------------------------------------
class FoldSpec(NamedTuple):
    """A validated unfold (im2col) or fold (col2im) (``op``), in torch's layout.

    ``x`` is the prepared input: (N, C, H, W) for ``"unfold"``, (N, C * kh * kw, L) for
    ``"fold"``; ``blocks`` the (Ho, Wo) grid of sliding blocks (L = Ho * Wo); ``out_shape``
    the array the kernel fills: (N, C * kh * kw, L) for unfold, (N, C, H, W) for fold.
    """

    op: str
    x: np.ndarray
    kernel: tuple
    dilation: tuple
    pad: tuple
    stride: tuple
    blocks: tuple
    out_shape: tuple
    dtype: np.dtype
    result_shape: tuple

    family = "fold"

    empty = property(_x_empty)

    def kernel_args(self, out):
        """``(x, out, kernel, dilation, pad, stride, blocks)``."""
        return (self.x, out, self.kernel, self.dilation, self.pad, self.stride, self.blocks)


def _fold_args(kernel_size, dilation, padding, stride):
    return (int_tuple(kernel_size, 2, "kernel_size", 1), int_tuple(dilation, 2, "dilation", 1),
            int_tuple(padding, 2, "padding", 0), int_tuple(stride, 2, "stride", 1))


def _blocks(size, kernel, dilation, pad, stride, what):
    """(Ho, Wo), the grid of sliding blocks over a plane of ``size`` (H, W); ValueError
    when it would be empty."""
    blocks = tuple(conv_out_size(s, k, st, 2 * p, d)
                   for s, k, st, p, d in zip(size, kernel, stride, pad, dilation))
    if min(blocks) < 1:
        raise ValueError(
            f"{what} of spatial size {tuple(size)} with kernel_size={kernel}, "
            f"dilation={dilation}, padding={pad}, stride={stride} has no sliding block: "
            f"the grid would be {blocks}"
        )
    return blocks


def unfold_spec(x, kernel_size, dilation, padding, stride, xname="x") -> FoldSpec:
    """Validate and normalize an unfold call (torch.nn.functional.unfold's checks);
    ``xname`` is the name the errors give ``x`` (grad.fold's ``grad_output``)."""
    x = as_real_array(x, xname)
    dtype = result_dtype(x)
    if x.ndim not in (3, 4):
        raise ValueError(f"{xname} must have shape (N, C, H, W) or (C, H, W), got shape {x.shape}")
    kernel, dilation, pad, stride = _fold_args(kernel_size, dilation, padding, stride)
    batched = x.ndim == 4
    xs = x.shape if batched else (1,) + x.shape
    N, C, H, W = xs
    if C == 0 or H == 0 or W == 0:
        raise ValueError(
            f"{xname} must have non-empty channel and spatial dimensions, got {x.shape}"
        )
    blocks = _blocks((H, W), kernel, dilation, pad, stride, xname)
    out_shape = (N, C * kernel[0] * kernel[1], blocks[0] * blocks[1])
    check_alloc(out_shape, dtype.itemsize, f"the output (from {xname}, kernel_size, stride)")
    check_alloc(xs, dtype.itemsize, f"the prepared input {xname}")
    return FoldSpec(op="unfold", x=prepare(x.reshape(xs), dtype), kernel=kernel,
                    dilation=dilation, pad=pad, stride=stride, blocks=blocks,
                    out_shape=out_shape, dtype=dtype,
                    result_shape=out_shape if batched else out_shape[1:])


def fold_spec(x, output_size, kernel_size, dilation, padding, stride, xname="x",
              sizename="output_size") -> FoldSpec:
    """Validate and normalize a fold call (torch.nn.functional.fold's checks); ``xname``
    and ``sizename`` are the names the errors give ``x`` and ``output_size``
    (grad.unfold's ``grad_output`` and ``input_size``)."""
    x = as_real_array(x, xname)
    dtype = result_dtype(x)
    if x.ndim not in (2, 3):
        raise ValueError(
            f"{xname} must have shape (N, C * kh * kw, L) or (C * kh * kw, L), got shape {x.shape}"
        )
    size = int_tuple(output_size, 2, sizename, 1)
    kernel, dilation, pad, stride = _fold_args(kernel_size, dilation, padding, stride)
    batched = x.ndim == 3
    xs = x.shape if batched else (1,) + x.shape
    N, CK, L = xs
    taps = kernel[0] * kernel[1]
    if CK == 0 or CK % taps:
        raise ValueError(
            f"{xname}'s dimension {x.ndim - 2} ({CK}) must be a positive multiple of the kernel's "
            f"taps, kernel_size[0] * kernel_size[1] = {taps}"
        )
    blocks = _blocks(size, kernel, dilation, pad, stride, sizename)
    if L != blocks[0] * blocks[1]:
        raise ValueError(
            f"{xname}'s last dimension ({L}) must be the number of sliding blocks, "
            f"{blocks[0]} x {blocks[1]} = {blocks[0] * blocks[1]} for {sizename}={size}, "
            f"kernel_size={kernel}, dilation={dilation}, padding={pad}, stride={stride}"
        )
    out_shape = (N, CK // taps) + size
    check_alloc(out_shape, dtype.itemsize, f"the output (from {sizename})")
    check_alloc(xs, dtype.itemsize, f"the prepared input {xname}")
    return FoldSpec(op="fold", x=prepare(x.reshape(xs), dtype), kernel=kernel,
                    dilation=dilation, pad=pad, stride=stride, blocks=blocks,
                    out_shape=out_shape, dtype=dtype,
                    result_shape=out_shape if batched else out_shape[1:])


class UnpoolSpec(NamedTuple):
    """A validated max_unpool (``op="max_unpool"``, 1-D to 3-D alike: each plane flat) or
    its gradient (``"max_unpool_backward"``).

    max_unpool: ``x`` (N, C, P) the pooled values, ``indices`` (N, C, P) int64 flat
    positions, every one checked to lie in [0, Q), ``out_shape`` (N, C, Q). The gradient:
    ``x`` the (N, C, Q) grad_output, ``indices`` as above, ``out_shape`` (N, C, P).
    """

    op: str
    x: np.ndarray
    indices: np.ndarray
    out_shape: tuple
    dtype: np.dtype
    result_shape: tuple

    family = "fold"

    empty = property(_x_empty)

    def kernel_args(self, out):
        """``(x, indices, out)`` (the gradient: ``(grad_output, indices, grad_input)``)."""
        return (self.x, self.indices, out)


def _unpool_indices(indices, shape, plane):
    """``indices`` as an integer array of ``shape`` whose values all lie in [0, plane)."""
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"indices must be an integer array, got dtype {indices.dtype}")
    if indices.shape != tuple(shape):
        raise ValueError(f"indices must have the shape of x {tuple(shape)}, got {indices.shape}")
    if indices.size:
        lo, hi = indices.min(), indices.max()
        if lo < 0 or hi >= plane:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"indices holds an invalid max index {int(bad)}: each must lie in "
                f"[0, {plane}), the output plane's positions"
            )
    return indices


def _unpool_size(in_sp, kernel, stride, pad, output_size, nd):
    """torch's ``_unpool_output_size``: the default size, or ``output_size`` checked
    against it."""
    default = tuple((i - 1) * s + k - 2 * p for i, k, s, p in zip(in_sp, kernel, stride, pad))
    if output_size is None:
        size = default
    else:
        if isinstance(output_size, np.ndarray) and output_size.ndim == 1:
            output_size = tuple(output_size.tolist())
        if isinstance(output_size, (int, np.integer)) and not isinstance(output_size, bool):
            output_size = (output_size,)
        if not isinstance(output_size, (tuple, list)):
            raise TypeError(f"output_size must be a sequence of ints, got {output_size!r}")
        size = tuple(_as_int(v, "output_size") for v in output_size)
        if len(size) == nd + 2:
            size = size[2:]
        if len(size) != nd:
            raise ValueError(
                f"output_size should be a sequence containing {nd} or {nd + 2} elements, "
                f"got {len(size)}: {output_size!r}"
            )
        for d in range(nd):
            lo, hi = default[d] - stride[d], default[d] + stride[d]
            if not lo < size[d] < hi:
                raise ValueError(
                    f"invalid output_size {output_size!r} (dim {d} must be between {lo} "
                    f"and {hi})"
                )
    if min(size) < 1:
        raise ValueError(
            f"the output would be empty: size {size} from kernel_size={kernel}, "
            f"stride={stride}, padding={pad}, output_size={output_size!r}"
        )
    return size


def unpool_spec(x, indices, kernel_size, stride, padding, output_size, nd: int) -> UnpoolSpec:
    """Validate and normalize a max_unpool{nd}d call (torch's output-size rule)."""
    x = as_real_array(x, "x")
    dtype = result_dtype(x)
    if x.ndim not in (nd + 1, nd + 2):
        names = {1: "(N, C, L) or (C, L)", 2: "(N, C, H, W) or (C, H, W)",
                 3: "(N, C, D, H, W) or (C, D, H, W)"}[nd]
        raise ValueError(f"x must have shape {names}, got shape {x.shape}")
    kernel = int_tuple(kernel_size, nd, "kernel_size", 1)
    empty_stride = stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
    stride = kernel if empty_stride else int_tuple(stride, nd, "stride", 1)
    pad = int_tuple(padding, nd, "padding", 0)
    batched = x.ndim == nd + 2
    xs = x.shape if batched else (1,) + x.shape
    if xs[1] == 0 or any(s == 0 for s in xs[2:]):
        raise ValueError(f"x must have non-empty channel and spatial dimensions, got {x.shape}")
    size = _unpool_size(xs[2:], kernel, stride, pad, output_size, nd)
    plane = int(np.prod(size, dtype=object))
    out_full = xs[:2] + size
    check_alloc(out_full, dtype.itemsize, "the output (from kernel_size, stride, output_size)")
    indices = _unpool_indices(indices, x.shape, plane)
    N, C = xs[:2]
    P = int(np.prod(xs[2:], dtype=object))
    return UnpoolSpec(op="max_unpool", x=prepare(x.reshape(N, C, P), dtype),
                      indices=prepare(indices.reshape(N, C, P), np.int64),
                      out_shape=(N, C, plane), dtype=dtype,
                      result_shape=out_full if batched else out_full[1:])


def unpool_grad_spec(grad_output, indices, nd: int) -> UnpoolSpec:
    """Validate a max_unpool{nd}d gradient call: ``grad_output`` shaped like the unpooled
    output, ``indices`` like the unpooled input."""
    grad_output = as_real_array(grad_output, "grad_output")
    dtype = result_dtype(grad_output)
    if grad_output.ndim not in (nd + 1, nd + 2):
        raise ValueError(
            f"grad_output must have {nd + 1} or {nd + 2} dimensions, got shape "
            f"{grad_output.shape}"
        )
    ind = np.asarray(indices)
    if ind.ndim != grad_output.ndim:
        raise ValueError(
            f"indices must have {grad_output.ndim} dimensions like grad_output, got shape "
            f"{ind.shape}"
        )
    batched = grad_output.ndim == nd + 2
    gs = grad_output.shape if batched else (1,) + grad_output.shape
    xs = ind.shape if batched else (1,) + ind.shape
    if gs[:2] != xs[:2]:
        raise ValueError(
            f"grad_output {grad_output.shape} and indices {ind.shape} must agree on the batch "
            f"and channel dimensions"
        )
    if gs[1] == 0 or any(s == 0 for s in gs[2:]) or any(s == 0 for s in xs[2:]):
        raise ValueError(
            f"grad_output and indices must have non-empty channel and spatial dimensions, "
            f"got {grad_output.shape} and {ind.shape}"
        )
    N, C = gs[:2]
    Q = int(np.prod(gs[2:], dtype=object))
    P = int(np.prod(xs[2:], dtype=object))
    ind = _unpool_indices(ind, ind.shape, Q)
    check_alloc(xs, dtype.itemsize, "the input gradient (from indices)")
    return UnpoolSpec(op="max_unpool_backward",
                      x=prepare(grad_output.reshape(N, C, Q), dtype),
                      indices=prepare(ind.reshape(N, C, P), np.int64), out_shape=(N, C, P),
                      dtype=dtype, result_shape=ind.shape)


# --------------------------------------------------------------------------------------------
# adaptive pools (issue 17)
# --------------------------------------------------------------------------------------------
class AdaptivePoolSpec(NamedTuple):
    """A validated adaptive pool or its average's gradient, always in 3-D (a 1-D or 2-D
    call has size-1 leading spatial axes).

    ``op`` is ``"adaptive_avg_pool3d"``, ``"adaptive_max_pool3d"`` or
    ``"adaptive_avg_pool3d_backward"``. Forward: ``x`` (N, C, D, H, W) C-contiguous,
    ``indices`` the int64 (N, C, Do, Ho, Wo) array a max-pool with ``return_indices``
    fills (else None), ``out_shape`` (N, C, Do, Ho, Wo). Backward: ``x`` is
    ``grad_output`` (N, C, Do, Ho, Wo) and ``out_shape`` the input gradient's (N, C, D, H,
    W). The windows along an axis of input size ``n`` and output size ``m`` are torch's:
    ``[floor(i * n / m), ceil((i + 1) * n / m))`` (:func:`adaptive_windows`); the kernels
    read them from the two shapes."""

    op: str
    x: np.ndarray
    indices: np.ndarray
    out_shape: tuple
    dtype: np.dtype
    result_shape: tuple

    family = "adaptive"

    empty = property(_x_empty)

    def kernel_args(self, out):
        """avg and avg backward: ``(x, out)``; max: ``(x, out, indices)``."""
        if self.op == "adaptive_max_pool3d":
            return (self.x, out, self.indices)
        return (self.x, out)


def adaptive_windows(size: int, out_size: int):
    """(start, end), int64 arrays of length ``out_size``: torch's adaptive windows along an
    axis of ``size`` inputs, ``start = floor(i * size / out_size)``,
    ``end = ceil((i + 1) * size / out_size)``; none is empty, together they cover the axis,
    and neighbours overlap by at most one position."""
    i = np.arange(out_size, dtype=np.int64)
    return (i * size) // out_size, -((-(i + 1) * size) // out_size)


_ADAPTIVE_SHAPES = {1: "(N, C, L) or (C, L)", 2: "(N, C, H, W) or (C, H, W)",
                    3: "(N, C, D, H, W) or (C, D, H, W)"}


def _adaptive_output_size(output_size, spatial, nd):
    """torch's ``output_size``: an int (every axis), or a sequence of ``nd`` entries, each an
    int >= 0 or (2-D/3-D only, as in torch) None for "the input's size"."""
    if type(output_size) is int and 0 <= output_size < ARG_LIMIT:  # the common call: fast
        return (output_size,) * nd
    if isinstance(output_size, np.ndarray) and output_size.ndim == 1:
        output_size = tuple(output_size.tolist())
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != nd:
            raise ValueError(
                f"output_size must be an int or a tuple of {nd} "
                f"{'ints' if nd == 1 else 'ints or None'}, got {output_size!r}")
        vals = []
        for v, s in zip(output_size, spatial):
            if v is None and nd > 1:
                vals.append(s)
            elif v is None:
                raise TypeError(f"output_size must be an int, got {output_size!r}")
            else:
                vals.append(_as_int(v, "output_size"))
    elif output_size is None:
        raise TypeError("output_size must be an int or a tuple of ints, got None")
    else:
        vals = [_as_int(output_size, "output_size")] * nd
    for v in vals:
        if v < 0:
            raise ValueError(f"output_size must be >= 0, got {output_size!r}")
        if v >= ARG_LIMIT:
            raise ValueError(f"output_size must be < 2**31, got {output_size!r}")
    return tuple(vals)


def _check_adaptive_windows(spatial, out_sp, what):
    """The window arithmetic ``(i + 1) * n`` of every kernel must not overflow int64."""
    for n, m in zip(spatial, out_sp):
        if (m + 1) * n >= _INDEX_LIMIT:
            raise ValueError(f"{what} {m} is too large for an input axis of size {n}: "
                             f"the window arithmetic would overflow int64")


_ONES = {1: (1, 1), 2: (1,), 3: ()}  # the size-1 leading spatial axes of a 1-D/2-D call


def _adaptive_geometry(shape, nd, name):
    """(batched, (N, C) + spatial padded to 3-D) of an adaptive pool's input ``shape``."""
    shape = tuple(shape)
    batched = len(shape) == nd + 2
    if not batched and len(shape) != nd + 1:
        raise ValueError(f"{name} must have shape {_ADAPTIVE_SHAPES[nd]}, got "
                         f"{len(shape)} dimensions {shape}")
    xs = shape if batched else (1,) + shape
    if 0 in xs[1:]:
        raise ValueError(f"{name} must have non-empty channel and spatial dimensions, "
                         f"got {shape}")
    return batched, xs[:2] + _ONES[nd] + xs[2:]


def adaptive_pool_spec(x, output_size, nd: int, op: str, return_indices=False):
    """Validate an ``adaptive_{avg,max}_pool{nd}d`` call (``op``: ``"adaptive_avg_pool3d"``
    or ``"adaptive_max_pool3d"``); a max-pool with ``return_indices`` gets its indices
    array."""
    x = as_real_array(x, "x")
    dtype = result_dtype(x)
    batched, xs = _adaptive_geometry(x.shape, nd, "x")
    out_sp = _adaptive_output_size(output_size, xs[5 - nd:], nd)
    return_indices = _as_bool(return_indices, "return_indices")
    out_shape = xs[:2] + _ONES[nd] + out_sp
    count = xs[0] * xs[1] * out_shape[2] * out_shape[3] * out_shape[4]
    if count >= _INDEX_LIMIT or count * 8 > MEMORY_LIMIT:  # int64 indices: check_alloc's test
        check_alloc(out_shape, 8, "the output (from output_size)")
    if max(xs[2:]) * ARG_LIMIT >= _INDEX_LIMIT:  # (m + 1) <= ARG_LIMIT: the common call
        _check_adaptive_windows(xs[2:], out_shape[2:], "output_size")
    # positional, in the field order (op, x, indices, out_shape, dtype, result_shape): a
    # global average of a small batch is a few microseconds, and every one counts
    return AdaptivePoolSpec(
        op, prepare(x.reshape(xs), dtype),
        np.empty(out_shape, np.int64) if return_indices else None,
        out_shape, dtype, (xs[:2] if batched else xs[1:2]) + out_sp)


def _adaptive_grad_shapes(grad_output, input_size, nd):
    """(gs, xs): grad_output's and input_size's shapes in 3-D, checked against each other."""
    input_size = shape_tuple(input_size, "input_size")
    batched, xs = _adaptive_geometry(input_size, nd, "input_size")
    if grad_output.ndim != len(input_size):
        raise ValueError(f"grad_output must have {len(input_size)} dimensions like "
                         f"input_size {input_size}, got shape {grad_output.shape}")
    g = grad_output.shape if batched else (1,) + grad_output.shape
    if g[:2] != xs[:2]:
        raise ValueError(f"grad_output {grad_output.shape} and input_size {input_size} must "
                         f"agree on the batch and channel dimensions")
    return g[:2] + (1,) * (3 - nd) + g[2:], xs, input_size


def adaptive_avg_grad_spec(grad_output, input_size, nd: int) -> AdaptivePoolSpec:
    """Validate an ``adaptive_avg_pool{nd}d`` gradient call: any output size (the one
    ``grad_output`` has) of an input of ``input_size``."""
    grad_output = as_real_array(grad_output, "grad_output")
    dtype = result_dtype(grad_output)
    gs, xs, input_size = _adaptive_grad_shapes(grad_output, input_size, nd)
    check_alloc(xs, dtype.itemsize, "the input gradient (from input_size)")
    _check_adaptive_windows(xs[2:], gs[2:], "grad_output's spatial size")
    return AdaptivePoolSpec(op="adaptive_avg_pool3d_backward",
                            x=prepare(grad_output.reshape(gs), dtype), indices=None,
                            out_shape=xs, dtype=dtype, result_shape=input_size)


def adaptive_max_grad_spec(grad_output, indices, input_size, nd: int) -> PoolGradSpec:
    """Validate an ``adaptive_max_pool{nd}d`` gradient call. Its indices are flat within
    each input plane or volume, as max_pool2d's are within a plane: the spec is
    ``max_pool2d_backward``'s, on planes of one row (N, C, 1, D * H * W)."""
    grad_output = as_real_array(grad_output, "grad_output")
    dtype = result_dtype(grad_output)
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"indices must be an integer array, got dtype {indices.dtype}")
    gs, xs, input_size = _adaptive_grad_shapes(grad_output, input_size, nd)
    if indices.shape != grad_output.shape:
        raise ValueError(f"indices must have the shape of grad_output {grad_output.shape}, "
                         f"got {indices.shape}")
    check_alloc(xs, dtype.itemsize, "the input gradient (from input_size)")
    g4 = gs[:2] + (1, gs[2] * gs[3] * gs[4])
    x4 = xs[:2] + (1, xs[2] * xs[3] * xs[4])
    return PoolGradSpec(op="max_pool2d_backward",
                        grad_output=prepare(grad_output.reshape(g4), dtype),
                        indices=prepare(indices.reshape(g4), np.int64), kernel=None,
                        stride=None, pad=None, count_include_pad=None, grad_shape=x4,
                        dtype=dtype, result_shape=input_size)


# --------------------------------------------------------------------------------------------
# ---- conv3d (issue 17) ----
# --------------------------------------------------------------------------------------------
# conv_geometry's error messages: the weight's kernel dimensions and the input's shapes by nd
_KERNEL_DIMS = {1: ", kernel", 2: ", kH, kW", 3: ", kD, kH, kW"}
_INPUT_DIMS = {1: "(N, C, L) or (C, L)", 2: "(N, C, H, W) or (C, H, W)",
               3: "(N, C, D, H, W) or (C, D, H, W)"}
# the ops whose ConvGradSpec.kernel_args start with grad_output and the weight
_INPUT_GRAD_OPS = frozenset({"conv2d_input", "conv3d_input"})


class Conv3dSpec(ConvSpec):
    """A validated conv3d (:func:`conv_spec` with ``nd=3``): :class:`ConvSpec`'s fields in
    3-D. ``x`` (N, C, D, H, W), already padded explicitly for the non-zero padding modes;
    ``weight`` (K, C // groups, kd, kh, kw); ``stride``, ``pad`` (front, top, left) and
    ``dilation`` 3-tuples; ``out_shape`` (N, K, Do, Ho, Wo). Its gradients are
    :class:`Conv3dGradSpec`."""

    __slots__ = ()

    op = "conv3d"
    family = "conv3d"


class Conv3dGradSpec(ConvGradSpec):
    """A validated conv3d gradient (``op``: ``"conv3d_input"`` or ``"conv3d_weight"``):
    :class:`ConvGradSpec`'s fields in 3-D (5-D arrays, 3-tuples), in the ``conv3d``
    family."""

    __slots__ = ()

    family = "conv3d"
