"""Hypothesis strategies for fastconv's tests, all in one place.

Each strategy draws a *valid* call: shapes and arguments for which the reference (and
PyTorch/NumPy/SciPy) return a result. Sizes stay small so that a few dozen examples per test
keep the whole suite within minutes.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

dtypes = st.sampled_from([np.float32, np.float64])
seeds = st.integers(0, 2**32 - 1)


def _per_axis_value(draw, vals):
    """``vals`` as a tuple, or as one int when all equal (drawn)."""
    if len(set(vals)) == 1 and draw(st.booleans()):
        return vals[0]
    return tuple(vals)


@st.composite
def conv_args(draw, nd=2):
    """A valid conv1d/conv2d call: ``(x_shape, w_shape, has_bias, kwargs)``.

    ``kwargs`` holds stride, padding (int, tuple, 'same' or 'valid'), dilation, groups and
    padding_mode; the input is large enough for the padding mode (as torch requires).
    """
    groups = draw(st.integers(1, 3))
    C = groups * draw(st.integers(1, 2))
    K = groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 5)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    padding_mode = draw(st.sampled_from(PADDING_MODES))
    kind = draw(st.sampled_from(["int", "tuple", "same", "valid"]))
    if kind == "same":
        stride = (1,) * nd
        pairs = [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)
                 for k, d in zip(kernel, dilation)]
        padding = "same"
    else:
        stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
        if kind == "valid":
            pads = (0,) * nd
            padding = "valid"
        elif kind == "int":
            pads = (draw(st.integers(0, 3)),) * nd
            padding = pads[0]
        else:
            pads = tuple(draw(st.integers(0, 3)) for _ in range(nd))
            padding = pads
        pairs = [(p, p) for p in pads]
    sizes = []
    for (before, after), k, d in zip(pairs, kernel, dilation):
        lo = max(1, d * (k - 1) + 1 - before - after)  # a non-empty output
        if padding_mode == "reflect":
            lo = max(lo, max(before, after) + 1)
        elif padding_mode == "circular":
            lo = max(lo, max(before, after))
        sizes.append(draw(st.integers(lo, lo + 6)))
    batch = draw(st.sampled_from([None, 1, 2, 3]))
    x_shape = ((C,) if batch is None else (batch, C)) + tuple(sizes)
    w_shape = (K, C // groups) + kernel
    kwargs = dict(stride=_per_axis_value(draw, stride), padding=padding,
                  dilation=_per_axis_value(draw, dilation), groups=groups,
                  padding_mode=padding_mode)
    return x_shape, w_shape, draw(st.booleans()), kwargs


@st.composite
def pool_args(draw, nd=2, op="max"):
    """A valid max_pool1d/2d (``op='max'``) or avg_pool2d (``op='avg'``) call:
    ``(x_shape, kwargs)``."""
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    stride = (None if draw(st.booleans())
              else tuple(draw(st.integers(1, 3)) for _ in range(nd)))
    pad = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilation = (tuple(draw(st.integers(1, 2)) for _ in range(nd)) if op == "max"
                else (1,) * nd)
    ceil_mode = draw(st.booleans())
    sizes = []
    for k, p, d in zip(kernel, pad, dilation):
        lo = max(1, d * (k - 1) + 1 - 2 * p)
        sizes.append(draw(st.integers(lo, lo + 7)))
    batch = draw(st.sampled_from([None, 1, 2]))
    C = draw(st.integers(1, 3))
    x_shape = ((C,) if batch is None else (batch, C)) + tuple(sizes)
    kwargs = dict(kernel_size=_per_axis_value(draw, kernel),
                  stride=None if stride is None else _per_axis_value(draw, stride),
                  padding=_per_axis_value(draw, pad), ceil_mode=ceil_mode)
    if op == "max":
        kwargs["dilation"] = _per_axis_value(draw, dilation)
    else:
        kwargs["count_include_pad"] = draw(st.booleans())
    return x_shape, kwargs


@st.composite
def signal1d_args(draw):
    """``(len(a), len(v), mode)`` for numpy.convolve/correlate (either may be longer)."""
    return (draw(st.integers(1, 12)), draw(st.integers(1, 12)),
            draw(st.sampled_from(["full", "same", "valid"])))


@st.composite
def signal2d_args(draw):
    """``(in1.shape, in2.shape, mode, boundary, fillvalue)`` for scipy.signal's
    convolve2d/correlate2d; in 'valid' mode one shape dominates the other."""
    mode = draw(st.sampled_from(["full", "same", "valid"]))
    s1 = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    if mode == "valid":
        smaller = (draw(st.integers(1, s1[0])), draw(st.integers(1, s1[1])))
        s2 = smaller
        if draw(st.booleans()):  # in2 the larger one: scipy swaps them
            s1, s2 = s2, s1
    else:
        s2 = (draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    boundary = draw(st.sampled_from(["fill", "wrap", "symm"]))
    fillvalue = draw(st.sampled_from([0, 0.0, 1.5, -2]))
    return s1, s2, mode, boundary, fillvalue


# --------------------------------------------------------------------------------------------
# identities (tests/test_properties.py) and fuzzing (tools/fuzz.py)
# --------------------------------------------------------------------------------------------
@st.composite
def circular_shift_args(draw, nd=2):
    """A circular conv whose output is the input's size divided by the stride, so that rolling
    the input by ``m * stride`` rolls the output by ``m``: ``(x_shape, w_shape, kwargs,
    shift)``. Odd dilated spans, symmetric padding ``d * (k - 1) // 2``, sizes multiples of
    the stride."""
    groups = draw(st.integers(1, 2))
    C = groups * draw(st.integers(1, 2))
    K = groups * draw(st.integers(1, 2))
    kernel, dilation, stride, sizes, shift = [], [], [], [], []
    for _ in range(nd):
        k = draw(st.sampled_from([1, 3, 5]))
        d = draw(st.integers(1, 2))
        s = draw(st.integers(1, 3))
        n = s * draw(st.integers(max(1, -(-(d * (k - 1) // 2) // s)), 6))
        kernel.append(k), dilation.append(d), stride.append(s), sizes.append(n)
        shift.append(s * draw(st.integers(-3, 3)))
    pad = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    batch = draw(st.integers(1, 2))
    kwargs = dict(stride=tuple(stride), padding=pad, dilation=tuple(dilation), groups=groups,
                  padding_mode="circular")
    return (batch, C) + tuple(sizes), (K, C // groups) + tuple(kernel), kwargs, tuple(shift)


@st.composite
def pool_window_args(draw, nd=2):
    """An unpadded max-pool: ``(x_shape, kernel, stride, dilation)``, non-empty output."""
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    sizes = tuple(draw(st.integers(d * (k - 1) + 1, d * (k - 1) + 9))
                  for k, d in zip(kernel, dilation))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + sizes, kernel, stride, dilation


@st.composite
def local_args(draw):
    """A valid locally_connected2d call: ``(x_shape, w_shape, bias_shape or None, kwargs)``."""
    C, K = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    H = draw(st.integers(max(1, kh - 2 * ph), 8))
    W = draw(st.integers(max(1, kw - 2 * pw), 8))
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    bias = draw(st.sampled_from([None, (K,), (K, Ho, Wo)]))
    batch = draw(st.sampled_from([None, 1, 2]))
    x_shape = ((C,) if batch is None else (batch, C)) + (H, W)
    return x_shape, (Ho, Wo, K, C, kh, kw), bias, dict(stride=(sh, sw), padding=(ph, pw))


# Anything a caller might pass for an int argument: valid ints, edge ints, and the wrong types.
any_int_arg = st.one_of(
    st.integers(-2, 6),
    st.sampled_from([0, -1, 2**31 - 1, 2**31, 2**62, 2**63, -(2**63)]),
    st.sampled_from([1.0, 2.5, True, False, None, "same", "valid", "full", np.int64(2),
                     np.float32(1), (1,), (1, 1), (1, 1, 1), (2, 0), (1, -1), (1.0, 1)]),
)
any_dtype = st.sampled_from([np.float32, np.float64, np.float16, np.int8, np.int32, np.int64,
                             np.uint8, np.bool_, np.complex64, np.longdouble, object, "U1",
                             "m8[s]"])
any_shape = st.lists(st.integers(0, 7), min_size=0, max_size=5).map(tuple)
