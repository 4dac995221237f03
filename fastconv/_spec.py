"""Normalization and validation of every public call, done once, in Python.

A public function turns its arguments into a small frozen *spec*: prepared arrays (C-contiguous,
in the compute dtype), integer tuples for stride, padding and dilation, and the output shape.
Every check that keeps the compiled kernels safe lives here: the kernels run without bounds
checks and trust the spec completely.

Facts that live here and nowhere else:

* the dtype rule (:func:`result_dtype`);
* the output-size arithmetic (:func:`conv_out_size`, :func:`pool_out_size`);
* the meaning of ``padding="same"`` and of the padding modes;
* the size limits that turn an impossible request into a ValueError instead of a crash.
"""

from __future__ import annotations

import operator
import os
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ConvSpec",
    "PoolSpec",
    "PADDING_MODES",
    "result_dtype",
    "conv_out_size",
    "pool_out_size",
    "conv_spec",
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
    """The dtype of every result: ``numpy.result_type(*arrays, numpy.float32)``.

    Integers and bool give float64, float16 gives float32, float32 stays float32. Only
    float32 and float64 are computed natively; wider floats raise TypeError.
    """
    dt = np.result_type(*arrays, np.float32)
    if dt not in (np.float32, np.float64):
        raise TypeError(
            f"fastconv computes in float32 or float64; inputs of dtype {dt} are not supported"
        )
    return dt


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


def int_tuple(v, n: int, name: str, minimum: int) -> tuple:
    """Normalize an int or a length-``n`` sequence of ints, each ``>= minimum``."""
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
@dataclass(frozen=True)
class ConvSpec:
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


def conv_spec(x, weight, bias, stride, padding, dilation, groups, padding_mode, nd: int):
    """Validate and normalize a conv1d (``nd=1``) or conv2d (``nd=2``) call."""
    x = as_real_array(x, "x")
    weight = as_real_array(weight, "weight")
    if bias is not None:
        bias = as_real_array(bias, "bias")
    dtype = result_dtype(x, weight) if bias is None else result_dtype(x, weight, bias)

    if weight.ndim != nd + 2:
        raise ValueError(
            f"weight must have {nd + 2} dimensions (out_channels, in_channels/groups"
            f"{', kernel' if nd == 1 else ', kH, kW'}), got shape {weight.shape}"
        )
    if x.ndim == nd + 1:
        batched = False
    elif x.ndim == nd + 2:
        batched = True
    else:
        names = "(N, C, L) or (C, L)" if nd == 1 else "(N, C, H, W) or (C, H, W)"
        raise ValueError(f"x must have shape {names}, got {x.ndim} dimensions {x.shape}")
    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    groups = _as_int(groups, "groups")
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")

    xs = x.shape if batched else (1,) + x.shape
    N, C = xs[0], xs[1]
    spatial = tuple(xs[2:])
    K, Cg = weight.shape[0], weight.shape[1]
    ksize = tuple(weight.shape[2:])
    if K == 0 or Cg == 0 or any(k == 0 for k in ksize):
        raise ValueError(f"weight must not be empty, got shape {weight.shape}")
    if C == 0 or any(s == 0 for s in spatial):
        raise ValueError(f"x must have non-empty channel and spatial dimensions, got {x.shape}")
    if C % groups:
        raise ValueError(f"groups={groups} must divide the input channels of x ({C})")
    if K % groups:
        raise ValueError(f"groups={groups} must divide weight's out_channels ({K})")
    if Cg * groups != C:
        raise ValueError(
            f"weight has {Cg} input channels per group, but x has {C} channels and "
            f"groups={groups} (expected weight.shape[1] == {C // groups})"
        )
    if bias is not None and bias.shape != (K,):
        raise ValueError(f"bias must have shape ({K},) (out_channels), got {bias.shape}")

    stride = int_tuple(stride, nd, "stride", 1)
    dilation = int_tuple(dilation, nd, "dilation", 1)
    pairs = _spatial_padding(padding, nd, ksize, stride, dilation)

    out_sp = []
    for ax in range(nd):
        o = conv_out_size(spatial[ax], ksize[ax], stride[ax], sum(pairs[ax]), dilation[ax])
        if o < 1:
            raise ValueError(
                f"the output would be empty: along spatial axis {ax}, x has size {spatial[ax]}"
                f" with padding {pairs[ax]}, but the dilated kernel spans "
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
    out_shape = (N, K, out_sp[0], out_sp[1])
    check_alloc(out_shape, dtype.itemsize, "the output (from x, weight, stride, padding, dilation)")

    padded = padding_mode != "zeros" and any(p != (0, 0) for p in pairs)
    if padded:
        check_alloc(
            (N, C, spatial[0] + sum(pairs[0]), spatial[1] + sum(pairs[1])),
            dtype.itemsize,
            "the padded input",
        )
    # the prepared copies must be possible too (a broadcast view can be huge but free)
    check_alloc((N, C) + spatial, dtype.itemsize, "the prepared input x")
    check_alloc(weight.shape, dtype.itemsize, "the prepared weight")
    x4 = x.reshape((N, C) + spatial)
    w4 = weight.reshape((K, Cg) + ksize)
    if padded:
        xp = np.pad(x4.astype(dtype, copy=False), [(0, 0), (0, 0)] + list(pairs),
                    mode=_NP_PAD_MODE[padding_mode])
        pad = (0, 0)
    else:
        xp = prepare(x4, dtype)
        pad = (pairs[0][0], pairs[1][0])
    b = np.zeros(K, dtype) if bias is None else prepare(bias, dtype)

    result_shape = (N, K) + tuple(out_sp[2 - nd:])
    if not batched:
        result_shape = result_shape[1:]
    return ConvSpec(
        x=prepare(xp, dtype),
        weight=prepare(w4, dtype),
        bias=b,
        stride=stride,
        pad=pad,
        dilation=dilation,
        groups=groups,
        out_shape=out_shape,
        dtype=dtype,
        has_bias=bias is not None,
        result_shape=result_shape,
    )


# --------------------------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PoolSpec:
    """A validated pooling, always in 2-D: ``x`` is (N, C, H, W) C-contiguous."""

    x: np.ndarray
    kernel: tuple
    stride: tuple
    pad: tuple
    dilation: tuple
    ceil_mode: bool
    count_include_pad: bool
    out_shape: tuple  # (N, C, Ho, Wo)
    dtype: np.dtype
    result_shape: tuple


def _as_bool(v, name):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    raise TypeError(f"{name} must be a bool, got {v!r}")


def pool_spec(x, kernel_size, stride, padding, dilation, ceil_mode, nd: int,
              count_include_pad=True, op="max_pool"):
    """Validate and normalize a max_pool1d/2d or avg_pool2d call."""
    x = as_real_array(x, "x")
    dtype = result_dtype(x)
    if x.ndim == nd + 1:
        batched = False
    elif x.ndim == nd + 2:
        batched = True
    else:
        names = "(N, C, L) or (C, L)" if nd == 1 else "(N, C, H, W) or (C, H, W)"
        raise ValueError(f"x must have shape {names}, got {x.ndim} dimensions {x.shape}")
    kernel = int_tuple(kernel_size, nd, "kernel_size", 1)
    stride = kernel if stride is None else int_tuple(stride, nd, "stride", 1)
    pad = int_tuple(padding, nd, "padding", 0)
    dilation = int_tuple(dilation, nd, "dilation", 1)
    ceil_mode = _as_bool(ceil_mode, "ceil_mode")
    count_include_pad = _as_bool(count_include_pad, "count_include_pad")
    for k, p, d in zip(kernel, pad, dilation):
        if p > k // 2:
            raise ValueError(
                f"padding must be at most half of kernel_size (as in PyTorch), got "
                f"padding={padding!r} with kernel_size={kernel_size!r}"
            )
    xs = x.shape if batched else (1,) + x.shape
    N, C = xs[0], xs[1]
    spatial = tuple(xs[2:])
    if C == 0 or any(s == 0 for s in spatial):
        raise ValueError(f"x must have non-empty channel and spatial dimensions, got {x.shape}")
    out_sp = []
    for ax in range(nd):
        o = pool_out_size(spatial[ax], kernel[ax], stride[ax], pad[ax], dilation[ax], ceil_mode)
        if o < 1:
            raise ValueError(
                f"the output would be empty: along spatial axis {ax}, x has size "
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
    out_shape = (N, C, out_sp[0], out_sp[1])
    check_alloc(out_shape, 8, "the output (from x, kernel_size, stride, padding)")  # int64 indices
    check_alloc((N, C) + spatial, dtype.itemsize, "the prepared input x")
    result_shape = (N, C) + tuple(out_sp[2 - nd:])
    if not batched:
        result_shape = result_shape[1:]
    return PoolSpec(
        x=prepare(x.reshape((N, C) + spatial), dtype),
        kernel=kernel,
        stride=stride,
        pad=pad,
        dilation=dilation,
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
        out_shape=out_shape,
        dtype=dtype,
        result_shape=result_shape,
    )


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
