"""The error-input table: for every public function, each invalid argument, the exception it
raises and a regex of its message (in the spirit of PyTorch's ``error_inputs``).

``tests/test_errors.py`` holds the first hand-written cases (and the torch boundary sweeps);
this table is the systematic one. Every row mutates one argument of a valid base call, which
is itself checked to succeed, and runs on every backend with the kernels disabled: all
validation happens in Python, before any kernel runs, and leaves the inputs unchanged.

Also here: the one empty dimension that is *not* an error (an empty batch, N == 0, gives an
empty result, as in torch) and the requests that would overflow int64 or need terabytes.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest

import fastconv
from fastconv import _dispatch

from conftest import BACKENDS

G = fastconv.grad


def _huge(shape, dtype=np.float64):
    """A read-only view of ``shape`` that costs one element of memory."""
    return np.broadcast_to(np.ones((1,) * len(shape), dtype), shape)


def _readonly(shape):
    a = np.zeros(shape)
    a.flags.writeable = False
    return a


# Valid calls, all by keyword: every row below changes one or two of these arguments.
X2, W2 = np.ones((2, 4, 7, 7)), np.ones((6, 2, 3, 3))  # groups=2
X1, W1 = np.ones((2, 4, 9)), np.ones((6, 2, 3))
BASE = {
    "conv1d": dict(x=X1, weight=W1, bias=np.ones(6), groups=2),
    "conv2d": dict(x=X2, weight=W2, bias=np.ones(6), groups=2),
    "max_pool1d": dict(x=X1, kernel_size=2),
    "max_pool2d": dict(x=X2, kernel_size=2),
    "avg_pool2d": dict(x=X2, kernel_size=2),
    "convolve": dict(a=np.ones(6), v=np.ones(3)),
    "correlate": dict(a=np.ones(6), v=np.ones(3)),
    "convolve2d": dict(in1=np.ones((5, 5)), in2=np.ones((2, 3))),
    "correlate2d": dict(in1=np.ones((5, 5)), in2=np.ones((2, 3))),
    "locally_connected2d": dict(x=X2, weight=np.ones((5, 5, 3, 4, 3, 3)), bias=np.ones(3)),
    "grad.conv1d_input": dict(input_size=(2, 4, 9), weight=W1, grad_output=np.ones((2, 6, 7)),
                              groups=2),
    "grad.conv2d_input": dict(input_size=(2, 4, 7, 7), weight=W2,
                              grad_output=np.ones((2, 6, 5, 5)), groups=2),
    "grad.conv1d_weight": dict(input=X1, weight_size=(6, 2, 3), grad_output=np.ones((2, 6, 7)),
                               groups=2),
    "grad.conv2d_weight": dict(input=X2, weight_size=(6, 2, 3, 3),
                               grad_output=np.ones((2, 6, 5, 5)), groups=2),
    "grad.conv1d_bias": dict(grad_output=np.ones((2, 6, 7))),
    "grad.conv2d_bias": dict(grad_output=np.ones((2, 6, 5, 5))),
    "grad.max_pool1d": dict(grad_output=np.ones((2, 4, 4)), indices=np.zeros((2, 4, 4), int),
                            input_size=(2, 4, 9)),
    "grad.max_pool2d": dict(grad_output=np.ones((2, 4, 3, 3)),
                            indices=np.zeros((2, 4, 3, 3), int), input_size=(2, 4, 7, 7)),
    "grad.avg_pool2d": dict(grad_output=np.ones((2, 4, 3, 3)), input_size=(2, 4, 7, 7),
                            kernel_size=2),
    # adaptive pools (issue 17)
    "adaptive_avg_pool1d": dict(x=X1, output_size=4),
    "adaptive_avg_pool2d": dict(x=X2, output_size=(3, None)),
    "adaptive_avg_pool3d": dict(x=np.ones((2, 4, 5, 6, 7)), output_size=(2, 3, 4)),
    "adaptive_max_pool1d": dict(x=X1, output_size=4, return_indices=True),
    "adaptive_max_pool2d": dict(x=X2, output_size=3, return_indices=True),
    "adaptive_max_pool3d": dict(x=np.ones((2, 4, 5, 6, 7)), output_size=2),
    "grad.adaptive_avg_pool1d": dict(grad_output=np.ones((2, 4, 4)), input_size=(2, 4, 9)),
    "grad.adaptive_avg_pool2d": dict(grad_output=np.ones((2, 4, 3, 7)),
                                     input_size=(2, 4, 7, 7)),
    "grad.adaptive_avg_pool3d": dict(grad_output=np.ones((2, 4, 2, 3, 4)),
                                     input_size=(2, 4, 5, 6, 7)),
    "grad.adaptive_max_pool1d": dict(grad_output=np.ones((2, 4, 4)),
                                     indices=np.zeros((2, 4, 4), int), input_size=(2, 4, 9)),
    "grad.adaptive_max_pool2d": dict(grad_output=np.ones((2, 4, 3, 3)),
                                     indices=np.zeros((2, 4, 3, 3), int),
                                     input_size=(2, 4, 7, 7)),
    "grad.adaptive_max_pool3d": dict(grad_output=np.ones((2, 4, 2, 2, 2)),
                                     indices=np.zeros((2, 4, 2, 2, 2), int),
                                     input_size=(2, 4, 5, 6, 7)),
    # conv3d (issue 17): its rows are in the conv3d block below
    "conv3d": dict(x=np.ones((2, 4, 5, 6, 7)), weight=np.ones((6, 2, 3, 3, 3)),
                   bias=np.ones(6), groups=2),
    "grad.conv3d_input": dict(input_size=(2, 4, 5, 6, 7), weight=np.ones((6, 2, 3, 3, 3)),
                              grad_output=np.ones((2, 6, 3, 4, 5)), groups=2),
    "grad.conv3d_weight": dict(input=np.ones((2, 4, 5, 6, 7)), weight_size=(6, 2, 3, 3, 3),
                               grad_output=np.ones((2, 6, 3, 4, 5)), groups=2),
    "grad.conv3d_bias": dict(grad_output=np.ones((2, 6, 3, 4, 5))),
}
NO_BACKEND = {"grad.conv1d_bias", "grad.conv2d_bias"}  # plain NumPy sums
NO_BACKEND |= {"grad.conv3d_bias"}


def _fn(name):
    obj = fastconv
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


ROWS = []  # (function, id, changes, exception, regex)


def bad(fn, what, exc, match, **changes):
    ROWS.append((fn, what, changes, exc, match))


# conv1d / conv2d, and (through the same geometry) the conv gradients ---------------------------
for fn, nd in (("conv1d", 1), ("conv2d", 2)):
    sp = (9,) if nd == 1 else (7, 7)
    ks = (3,) if nd == 1 else (3, 3)
    bad(fn, "x ndim too small", ValueError, r"\bx\b.*dimensions", x=np.ones(sp))
    bad(fn, "x ndim too large", ValueError, r"\bx\b.*dimensions", x=np.ones((1, 2, 4) + sp))
    bad(fn, "x 0-d", ValueError, r"\bx\b.*dimensions", x=np.float64(1.0))
    bad(fn, "weight ndim too small", ValueError, r"weight must have \d dimensions",
        weight=np.ones((6, 2)))
    bad(fn, "weight ndim too large", ValueError, r"weight must have \d dimensions",
        weight=np.ones((6, 2, 3) + ks))
    bad(fn, "channels mismatch", ValueError, r"weight has \d input channels per group",
        weight=np.ones((6, 3) + ks))
    bad(fn, "groups do not divide in_channels", ValueError, r"groups=3 must divide the input",
        groups=3, weight=np.ones((6, 1) + ks), bias=None)
    bad(fn, "groups do not divide out_channels", ValueError, r"groups=2 must divide weight",
        weight=np.ones((5, 2) + ks), bias=None)
    bad(fn, "groups 0", ValueError, r"groups must be >= 1", groups=0)
    bad(fn, "groups negative", ValueError, r"groups must be >= 1", groups=-2)
    bad(fn, "groups float", TypeError, r"groups must be an int", groups=2.0)
    bad(fn, "groups bool", TypeError, r"groups must be an int, got bool", groups=True)
    bad(fn, "groups str", TypeError, r"groups must be an int", groups="2")
    bad(fn, "bias wrong length", ValueError, r"bias must have shape \(6,\)", bias=np.ones(5))
    bad(fn, "bias 2-D", ValueError, r"bias must have shape", bias=np.ones((6, 1)))
    bad(fn, "bias 0-d", ValueError, r"bias must have shape", bias=np.float64(1.0))
    bad(fn, "bias complex", TypeError, r"bias must be real", bias=np.ones(6, complex))
    bad(fn, "bias strings", TypeError, r"bias must be a real numeric array", bias=["a"] * 6)
    bad(fn, "kernel larger than padded input", ValueError, r"output would be empty.*\bx\b",
        weight=np.ones((6, 2) + (12,) * nd))
    bad(fn, "kernel larger than input, padding 1", ValueError, r"output would be empty",
        weight=np.ones((6, 2) + (12,) * nd), padding=1)
    bad(fn, "dilated kernel larger than input", ValueError, r"output would be empty.*spans",
        dilation=5)
    for arg, lo in (("stride", 1), ("dilation", 1), ("padding", 0)):
        bad(fn, f"{arg} below minimum", ValueError, rf"{arg} must be >= {lo}", **{arg: lo - 1})
        bad(fn, f"{arg} negative", ValueError, rf"{arg} must be >= {lo}", **{arg: -3})
        bad(fn, f"{arg} negative in a tuple", ValueError, rf"{arg} must be >= {lo}",
            **{arg: (1,) * (nd - 1) + (-1,)})
        bad(fn, f"{arg} float", TypeError, rf"{arg} must be an int or a tuple of ints",
            **{arg: 1.0})
        bad(fn, f"{arg} float in a tuple", TypeError, rf"{arg} must be an int",
            **{arg: (1,) * (nd - 1) + (1.5,)})
        bad(fn, f"{arg} numpy float", TypeError, rf"{arg} must be an int",
            **{arg: np.float32(1)})
        bad(fn, f"{arg} bool", TypeError, rf"{arg} must be an int, got bool", **{arg: True})
        bad(fn, f"{arg} numpy bool in a tuple", TypeError, rf"{arg} must be an int, got bool",
            **{arg: (np.True_,) * nd})
        bad(fn, f"{arg} wrong length", ValueError, rf"{arg} must be an int or a tuple of {nd}",
            **{arg: (1,) * (nd + 1)})
        bad(fn, f"{arg} None", TypeError, rf"{arg} must be an int", **{arg: None})
        bad(fn, f"{arg} >= 2**31", ValueError, rf"{arg} must be < 2\*\*31", **{arg: 2**31})
    bad(fn, "padding unknown string", ValueError, r"padding must be an int, a tuple, 'valid'",
        padding="full")
    bad(fn, "padding 'SAME'", ValueError, r"padding must be", padding="SAME")
    bad(fn, "'same' with stride 2", ValueError, r"padding='same' needs stride 1",
        padding="same", stride=2)
    bad(fn, "'same' with a stride tuple", ValueError, r"padding='same' needs stride 1",
        padding="same", stride=(1,) * (nd - 1) + (3,))
    bad(fn, "padding_mode unknown", ValueError, r"padding_mode must be one of",
        padding_mode="mirror")
    bad(fn, "padding_mode None", ValueError, r"padding_mode must be one of", padding_mode=None)
    bad(fn, "reflect padding == size", ValueError,
        r"padding_mode='reflect' needs padding smaller", padding=sp[-1], padding_mode="reflect")
    bad(fn, "reflect padding > size", ValueError, r"padding_mode='reflect'",
        padding=sp[-1] + 2, padding_mode="reflect")
    bad(fn, "reflect 'same' too wide", ValueError, r"padding_mode='reflect'",
        padding="same", dilation=9, padding_mode="reflect")
    bad(fn, "circular padding > size", ValueError, r"padding_mode='circular'",
        padding=sp[-1] + 1, padding_mode="circular")
    for arg, name in (("x", r"\bx\b"), ("weight", "weight")):
        v = BASE[fn][arg]
        bad(fn, f"{arg} complex", TypeError, rf"{name} must be real, got complex", **{arg: v + 0j})
        bad(fn, f"{arg} object", TypeError, rf"{name} must be a real numeric array",
            **{arg: v.astype(object)})
        bad(fn, f"{arg} strings", TypeError, rf"{name} must be a real numeric array",
            **{arg: v.astype(str)})
        bad(fn, f"{arg} bytes", TypeError, rf"{name} must be a real numeric array", **{arg: b"ab"})
        bad(fn, f"{arg} str", TypeError, rf"{name} must be a real numeric array", **{arg: "abc"})
        bad(fn, f"{arg} timedelta", TypeError, rf"{name} must be a real numeric array",
            **{arg: v.astype("m8[s]")})
        bad(fn, f"{arg} longdouble", TypeError, r"float32 or float64",
            **{arg: v.astype(np.longdouble)})
        bad(fn, f"{arg} None", TypeError, rf"{name} must be a real numeric array", **{arg: None})
    bad(fn, "x ragged", TypeError, r"\bx\b must be a real numeric array",
        x=[[[1.0, 2.0], [1.0]]])
    bad(fn, "x batch of 0 channels", ValueError, r"\bx\b must have non-empty channel",
        x=np.ones((2, 0) + sp))
    bad(fn, "x empty spatial", ValueError, r"\bx\b must have non-empty",
        x=np.ones((2, 4) + (0,) * nd))
    bad(fn, "unbatched x empty spatial", ValueError, r"\bx\b must have non-empty",
        x=np.ones((4,) + (5,) * (nd - 1) + (0,)))
    bad(fn, "weight 0 out_channels", ValueError, r"weight must not be empty",
        weight=np.ones((0, 2) + ks), bias=None)
    bad(fn, "weight 0 in_channels", ValueError, r"weight must not be empty",
        weight=np.ones((6, 0) + ks))
    bad(fn, "weight empty kernel", ValueError, r"weight must not be empty",
        weight=np.ones((6, 2) + (0,) * nd))
    oshape = (2, 6, 7) if nd == 1 else (2, 6, 5, 5)
    bad(fn, "out wrong shape", ValueError, r"out must have shape",
        out=np.empty(oshape[:-1] + (oshape[-1] + 1,)))
    bad(fn, "out missing batch", ValueError, r"out must have shape", out=np.empty(oshape[1:]))
    bad(fn, "out wrong dtype", TypeError, r"out must have dtype float64",
        out=np.empty(oshape, np.float32))
    bad(fn, "out int dtype", TypeError, r"out must have dtype", out=np.empty(oshape, np.int64))
    bad(fn, "out Fortran order", ValueError, r"out must be C-contiguous",
        out=np.asfortranarray(np.empty(oshape)))
    bad(fn, "out strided", ValueError, r"out must be C-contiguous",
        out=np.empty(oshape[:-1] + (2 * oshape[-1],))[..., ::2])
    bad(fn, "out read-only", ValueError, r"out must be writeable", out=_readonly(oshape))
    bad(fn, "out a list", TypeError, r"out must be a numpy.ndarray", out=np.empty(oshape).tolist())
    bad(fn, "out is the bias' memory", ValueError, r"out must not overlap the input bias",
        **(lambda o: dict(out=o, bias=o.reshape(-1)[:6]))(np.zeros(oshape)))
    bad(fn, "huge batch (broadcast x)", ValueError, r"bytes",
        x=_huge((10**9, 4) + (10**3,) * nd))
    bad(fn, "huge out_channels", ValueError, r"bytes",
        weight=_huge((10**10, 2) + ks), bias=None)
    bad(fn, "huge padding, output beyond memory", ValueError, r"bytes|memory",
        padding=10**9)
    bad(fn, "huge replicate padding", ValueError, r"bytes|memory",
        padding=10**6 if nd == 2 else 2**30, padding_mode="replicate")
    bad(fn, "output beyond int64 (padding near 2**31)", ValueError, r"bytes|memory|2\*\*31",
        padding=2**31 - 1)


def _overlap_rows():
    """``out`` sharing memory with x or weight (a view into the same buffer)."""
    for fn, nd in (("conv1d", 1), ("conv2d", 2)):
        x = BASE[fn]["x"]
        oshape = (2, 6, 7) if nd == 1 else (2, 6, 5, 5)
        big = np.ones(x.size + int(np.prod(oshape)))
        xs = big[: x.size].reshape(x.shape)
        outs = big[x.size // 2: x.size // 2 + int(np.prod(oshape))].reshape(oshape)
        bad(fn, "out overlapping x", ValueError, r"out must not overlap the input x",
            x=xs, out=outs)
        w = np.ones(int(np.prod(oshape)))
        bad(fn, "out is the weight's memory", ValueError, r"out must not overlap the input weight",
            weight=w[: W1.size if nd == 1 else W2.size].reshape(BASE[fn]["weight"].shape),
            out=w.reshape(oshape))


_overlap_rows()

# pooling ----------------------------------------------------------------------------------------
for fn, nd in (("max_pool1d", 1), ("max_pool2d", 2), ("avg_pool2d", 2)):
    sp = (9,) if nd == 1 else (7, 7)
    args = ["kernel_size", "stride", "padding"] + (["dilation"] if fn.startswith("max") else [])
    bad(fn, "x ndim too small", ValueError, r"\bx\b must have shape", x=np.ones(sp))
    bad(fn, "x ndim too large", ValueError, r"\bx\b must have shape", x=np.ones((1, 2, 4) + sp))
    for arg in args:
        lo = 0 if arg == "padding" else 1
        bad(fn, f"{arg} below minimum", ValueError, rf"{arg} must be >= {lo}", **{arg: lo - 1})
        bad(fn, f"{arg} negative", ValueError, rf"{arg} must be >= {lo}", **{arg: -2})
        bad(fn, f"{arg} float", TypeError, rf"{arg} must be an int", **{arg: 2.0})
        bad(fn, f"{arg} bool", TypeError, rf"{arg} must be an int, got bool", **{arg: True})
        bad(fn, f"{arg} wrong length", ValueError, rf"{arg} must be an int or a tuple of {nd}",
            **{arg: (1,) * (nd + 1)})
        bad(fn, f"{arg} string", TypeError, rf"{arg} must be an int", **{arg: "same"})
        bad(fn, f"{arg} >= 2**31", ValueError, rf"{arg} must be < 2\*\*31", **{arg: 2**31})
    bad(fn, "kernel_size None", TypeError, r"kernel_size must be an int", kernel_size=None)
    bad(fn, "padding over half the kernel", ValueError, r"padding must be at most half",
        kernel_size=3, padding=2)
    bad(fn, "padding over half, kernel 2", ValueError, r"padding must be at most half",
        kernel_size=2, padding=2)
    bad(fn, "window larger than input", ValueError, r"output would be empty.*\bx\b",
        kernel_size=10)
    bad(fn, "ceil_mode int", TypeError, r"ceil_mode must be a bool", ceil_mode=1)
    bad(fn, "ceil_mode str", TypeError, r"ceil_mode must be a bool", ceil_mode="True")
    bad(fn, "x complex", TypeError, r"\bx\b must be real", x=BASE[fn]["x"] * 1j)
    bad(fn, "x object", TypeError, r"\bx\b must be a real numeric", x=BASE[fn]["x"].astype(object))
    bad(fn, "x strings", TypeError, r"\bx\b must be a real numeric", x=BASE[fn]["x"].astype(str))
    bad(fn, "x str", TypeError, r"\bx\b must be a real numeric", x="abc")
    bad(fn, "x longdouble", TypeError, r"float32 or float64",
        x=BASE[fn]["x"].astype(np.longdouble))
    bad(fn, "x 0 channels", ValueError, r"\bx\b must have non-empty", x=np.ones((2, 0) + sp))
    bad(fn, "x empty spatial", ValueError, r"\bx\b must have non-empty",
        x=np.ones((2, 4) + (0,) * nd))
    bad(fn, "huge x (broadcast)", ValueError, r"bytes", x=_huge((10**9, 4) + (10**3,) * nd))
    bad(fn, "huge padding, kernel and frame", ValueError, r"bytes|memory",
        kernel_size=2 * 10**9, padding=10**9)
for fn in ("max_pool1d", "max_pool2d"):
    bad(fn, "dilated window larger than input", ValueError, r"output would be empty",
        kernel_size=3, dilation=5)
    bad(fn, "return_indices int", TypeError, r"return_indices must be a bool", return_indices=1)
    bad(fn, "return_indices None", TypeError, r"return_indices must be a bool",
        return_indices=None)
bad("avg_pool2d", "count_include_pad int", TypeError, r"count_include_pad must be a bool",
    count_include_pad=0)
bad("avg_pool2d", "count_include_pad None", TypeError, r"count_include_pad must be a bool",
    count_include_pad=None)
bad("avg_pool2d", "dilation is not an argument", TypeError, r"dilation", dilation=2)

# NumPy-style 1-D ---------------------------------------------------------------------------------
for fn in ("convolve", "correlate"):
    for arg in ("a", "v"):
        name = rf"\b{arg}\b"
        bad(fn, f"{arg} empty", ValueError, rf"{name} cannot be empty", **{arg: np.ones(0)})
        bad(fn, f"{arg} empty list", ValueError, rf"{name} cannot be empty", **{arg: []})
        bad(fn, f"{arg} 2-D", ValueError, rf"{name} must be one-dimensional",
            **{arg: np.ones((2, 3))})
        bad(fn, f"{arg} object", TypeError, rf"{name} must be a real numeric",
            **{arg: np.array([1, None], object)})
        bad(fn, f"{arg} string", TypeError, rf"{name} must be a real numeric", **{arg: "abc"})
        bad(fn, f"{arg} string array", TypeError, rf"{name} must be a real numeric",
            **{arg: np.array(["1", "2"])})
        bad(fn, f"{arg} longdouble", TypeError, r"float32 or float64",
            **{arg: np.ones(3, np.longdouble)})
        bad(fn, f"{arg} huge", ValueError, r"bytes", **{arg: _huge((10**12,))})
    bad(fn, "mode unknown", ValueError, r"mode must be one of", mode="circular")
    bad(fn, "mode int", ValueError, r"mode must be one of", mode=0)
    bad(fn, "mode upper case", ValueError, r"mode must be one of", mode="FULL")
    bad(fn, "huge full output", ValueError, r"bytes", a=_huge((10**12,)), v=_huge((10**12,)),
        mode="full")

# SciPy-style 2-D ---------------------------------------------------------------------------------
for fn in ("convolve2d", "correlate2d"):
    for arg in ("in1", "in2"):
        v = BASE[fn][arg]
        bad(fn, f"{arg} 1-D", ValueError, rf"{arg} must be a 2-D array", **{arg: np.ones(4)})
        bad(fn, f"{arg} 3-D", ValueError, rf"{arg} must be a 2-D array",
            **{arg: np.ones((2, 2, 2))})
        bad(fn, f"{arg} empty rows", ValueError, rf"{arg} cannot be empty",
            **{arg: np.ones((0, 3))})
        bad(fn, f"{arg} empty columns", ValueError, rf"{arg} cannot be empty",
            **{arg: np.ones((3, 0))})
        bad(fn, f"{arg} object", TypeError, rf"{arg} must be a real numeric",
            **{arg: v.astype(object)})
        bad(fn, f"{arg} strings", TypeError, rf"{arg} must be a real numeric",
            **{arg: v.astype(str)})
        bad(fn, f"{arg} longdouble", TypeError, r"float32 or float64",
            **{arg: v.astype(np.longdouble)})
    bad(fn, "mode unknown", ValueError, r"mode must be one of", mode="nope")
    bad(fn, "mode None", ValueError, r"mode must be one of", mode=None)
    bad(fn, "boundary unknown", ValueError, r"boundary must be one of", boundary="reflect")
    bad(fn, "boundary None", ValueError, r"boundary must be one of", boundary=None)
    # issue 18: complex inputs are computed; a complex fill with real ones cannot be, as scipy
    bad(fn, "fillvalue complex", ValueError, r"fillvalue", fillvalue=1j)
    bad(fn, "fillvalue array", TypeError, r"fillvalue must be a real scalar", fillvalue=[1, 2])
    bad(fn, "fillvalue string", TypeError, r"fillvalue must be a real scalar", fillvalue="0")
    bad(fn, "fillvalue None", TypeError, r"fillvalue must be a real scalar", fillvalue=None)
    bad(fn, "valid, neither dominates", ValueError, r"'valid' mode, one of in1 and in2",
        in2=np.ones((2, 6)), mode="valid")
    bad(fn, "huge in1", ValueError, r"bytes", in1=_huge((10**6, 10**6)))
    bad(fn, "huge valid", ValueError, r"bytes", in1=_huge((10**6, 10**6)),
        in2=_huge((10**6, 10**6)), mode="valid")

# locally_connected2d -----------------------------------------------------------------------------
fn = "locally_connected2d"
LW = BASE[fn]["weight"]
bad(fn, "x ndim", ValueError, r"\bx\b must have shape", x=np.ones((7, 7)))
bad(fn, "x ndim 5", ValueError, r"\bx\b must have shape", x=np.ones((1, 2, 4, 7, 7)))
bad(fn, "weight ndim", ValueError, r"weight must have shape \(Ho, Wo, K, C, kh, kw\)",
    weight=np.ones((3, 4, 3, 3)))
bad(fn, "weight for another output size", ValueError, r"weight is for a 4x5 output",
    weight=np.ones((4, 5, 3, 4, 3, 3)))
bad(fn, "weight channels mismatch", ValueError, r"weight has 3 input channels",
    weight=np.ones((5, 5, 3, 3, 3, 3)))
bad(fn, "weight empty", ValueError, r"weight must not be empty", weight=np.ones((5, 5, 0, 4, 3, 3)),
    bias=None)
bad(fn, "kernel larger than input", ValueError, r"output would be empty",
    weight=np.ones((1, 1, 3, 4, 9, 9)))
bad(fn, "bias wrong length", ValueError, r"bias must have shape \(3,\) or \(3, 5, 5\)",
    bias=np.ones(4))
bad(fn, "bias per-position wrong shape", ValueError, r"bias must have shape",
    bias=np.ones((3, 4, 5)))
bad(fn, "bias complex", TypeError, r"bias must be real", bias=np.ones(3) * 1j)
for arg, lo in (("stride", 1), ("padding", 0)):
    bad(fn, f"{arg} below minimum", ValueError, rf"{arg} must be >= {lo}", **{arg: lo - 1})
    bad(fn, f"{arg} float", TypeError, rf"{arg} must be an int", **{arg: 1.0})
    bad(fn, f"{arg} bool", TypeError, rf"{arg} must be an int, got bool", **{arg: False})
    bad(fn, f"{arg} wrong length", ValueError, rf"{arg} must be an int or a tuple of 2",
        **{arg: (1, 1, 1)})
bad(fn, "padding 'same' is not supported", ValueError, r"padding|weight is for",
    padding="same", weight=np.ones((7, 7, 3, 4, 3, 3)), stride=2)
bad(fn, "padding unknown string", ValueError, r"padding must be", padding="full")
bad(fn, "x complex", TypeError, r"\bx\b must be real", x=X2 * 1j)
bad(fn, "x object", TypeError, r"\bx\b must be a real numeric", x=X2.astype(object))
bad(fn, "weight strings", TypeError, r"weight must be a real numeric", weight=LW.astype(str))
bad(fn, "x and weight with 0 channels", ValueError, r"weight must not be empty",
    x=np.ones((2, 0, 7, 7)),
    weight=np.ones((5, 5, 3, 0, 3, 3)))
bad(fn, "huge x and weight", ValueError, r"bytes", x=_huge((1, 1, 10**6, 10**6)),
    weight=_huge((10**6, 10**6, 1, 1, 1, 1)), bias=None)

# gradients of the convolutions -------------------------------------------------------------------
for fn, nd in (("grad.conv1d_input", 1), ("grad.conv2d_input", 2)):
    size = BASE[fn]["input_size"]
    ks = (3,) * nd
    gy = BASE[fn]["grad_output"]
    bad(fn, "input_size ndim", ValueError, r"input_size must have shape", input_size=size[1:][1:])
    bad(fn, "input_size float", TypeError, r"input_size must be an int",
        input_size=tuple(float(s) for s in size))
    bad(fn, "input_size bool", TypeError, r"input_size must be an int, got bool",
        input_size=(True,) + size[1:])
    bad(fn, "input_size negative", ValueError, r"input_size must hold non-negative",
        input_size=(-2,) + size[1:])
    bad(fn, "input_size an int", TypeError, r"input_size must be a tuple of ints",
        input_size=7)
    bad(fn, "input_size an array", TypeError, r"input_size must be a tuple of ints",
        input_size=np.ones(size))
    bad(fn, "input_size empty spatial", ValueError, r"input_size must have non-empty",
        input_size=size[:-1] + (0,))
    bad(fn, "weight ndim", ValueError, r"weight must have \d dimensions", weight=np.ones((6, 2)))
    bad(fn, "channels mismatch", ValueError, r"weight has 3 input channels per group",
        weight=np.ones((6, 3) + ks))
    bad(fn, "groups do not divide", ValueError, r"groups=3 must divide", groups=3)
    bad(fn, "groups float", TypeError, r"groups must be an int", groups=2.0)
    bad(fn, "grad_output wrong shape", ValueError, r"grad_output must have shape",
        grad_output=np.ones(gy.shape[:-1] + (gy.shape[-1] + 1,)))
    bad(fn, "grad_output wrong ndim", ValueError, r"grad_output must have shape",
        grad_output=gy[0])
    bad(fn, "grad_output complex", TypeError, r"grad_output must be real", grad_output=gy * 1j)
    bad(fn, "grad_output object", TypeError, r"grad_output must be a real numeric",
        grad_output=gy.astype(object))
    bad(fn, "weight strings", TypeError, r"weight must be a real numeric",
        weight=BASE[fn]["weight"].astype(str))
    bad(fn, "stride 0", ValueError, r"stride must be >= 1", stride=0)
    bad(fn, "stride float", TypeError, r"stride must be an int", stride=1.0)
    bad(fn, "dilation bool", TypeError, r"dilation must be an int, got bool", dilation=True)
    bad(fn, "padding negative", ValueError, r"padding must be >= 0", padding=-1)
    bad(fn, "'same' with stride", ValueError, r"padding='same' needs stride 1", padding="same",
        stride=2)
    bad(fn, "padding_mode unknown", ValueError, r"padding_mode must be", padding_mode="wrap")
    bad(fn, "reflect padding >= size", ValueError, r"padding_mode='reflect'",
        padding=size[-1], padding_mode="reflect")
    bad(fn, "kernel larger than input", ValueError, r"output would be empty.*input_size",
        input_size=size[:-1] + (2,))
    bad(fn, "huge input_size", ValueError, r"bytes",
        input_size=(10**9, 4) + (10**3,) * nd, grad_output=_huge((10**9, 6) + (998,) * nd))

for fn, nd in (("grad.conv1d_weight", 1), ("grad.conv2d_weight", 2)):
    size = BASE[fn]["weight_size"]
    x = BASE[fn]["input"]
    gy = BASE[fn]["grad_output"]
    bad(fn, "input ndim", ValueError, r"input must have shape", input=x[0, 0])
    bad(fn, "input complex", TypeError, r"input must be real", input=x * 1j)
    bad(fn, "input strings", TypeError, r"input must be a real numeric", input=x.astype(str))
    bad(fn, "weight_size ndim", ValueError, r"weight_size must have \d dimensions",
        weight_size=size[:-1])
    bad(fn, "weight_size float", TypeError, r"weight_size must be an int",
        weight_size=tuple(float(s) for s in size))
    bad(fn, "weight_size negative", ValueError, r"weight_size must hold non-negative",
        weight_size=(-6,) + size[1:])
    bad(fn, "weight_size empty", ValueError, r"weight_size must not be empty",
        weight_size=(0,) + size[1:], grad_output=gy[:, :0])
    bad(fn, "weight_size None", TypeError, r"weight_size must be a tuple", weight_size=None)
    bad(fn, "channels mismatch", ValueError, r"weight_size has 3 input channels",
        weight_size=(6, 3) + size[2:])
    bad(fn, "groups 0", ValueError, r"groups must be >= 1", groups=0)
    bad(fn, "grad_output wrong shape", ValueError, r"grad_output must have shape",
        grad_output=np.ones(gy.shape[:-1] + (1,)))
    bad(fn, "grad_output complex", TypeError, r"grad_output must be real", grad_output=gy * 1j)
    bad(fn, "stride negative", ValueError, r"stride must be >= 1", stride=-1)
    bad(fn, "dilation float", TypeError, r"dilation must be an int", dilation=1.5)
    bad(fn, "padding bool", TypeError, r"padding must be an int, got bool", padding=False)
    bad(fn, "'same' with stride", ValueError, r"padding='same' needs stride 1", padding="same",
        stride=2)
    bad(fn, "padding_mode unknown", ValueError, r"padding_mode must be", padding_mode="edge")
    bad(fn, "circular padding > size", ValueError, r"padding_mode='circular'",
        padding=x.shape[-1] + 1, padding_mode="circular")
    bad(fn, "kernel larger than input", ValueError, r"output would be empty.*input",
        weight_size=size[:2] + (12,) * nd)
    bad(fn, "huge input (broadcast)", ValueError, r"bytes",
        input=_huge((10**9, 4) + (10**3,) * nd), grad_output=_huge((10**9, 6) + (998,) * nd))
    bad(fn, "huge weight_size", ValueError, r"bytes",
        weight_size=(10**10, 2) + size[2:], grad_output=_huge((2, 10**10) + gy.shape[2:]))

for fn, nd in (("grad.conv1d_bias", 1), ("grad.conv2d_bias", 2)):
    gy = BASE[fn]["grad_output"]
    bad(fn, "grad_output ndim too small", ValueError, r"grad_output must have shape",
        grad_output=gy[0, 0])
    bad(fn, "grad_output ndim too large", ValueError, r"grad_output must have shape",
        grad_output=gy[None, None])
    bad(fn, "grad_output complex", TypeError, r"grad_output must be real", grad_output=gy * 1j)
    bad(fn, "grad_output object", TypeError, r"grad_output must be a real numeric",
        grad_output=gy.astype(object))
    bad(fn, "grad_output string", TypeError, r"grad_output must be a real numeric",
        grad_output="abc")
    bad(fn, "grad_output longdouble", TypeError, r"float32 or float64",
        grad_output=gy.astype(np.longdouble))

# gradients of the pools --------------------------------------------------------------------------
for fn, nd in (("grad.max_pool1d", 1), ("grad.max_pool2d", 2)):
    gy, idx, size = (BASE[fn][k] for k in ("grad_output", "indices", "input_size"))
    bad(fn, "indices float", TypeError, r"indices must be an integer array",
        indices=idx.astype(float))
    bad(fn, "indices bool", TypeError, r"indices must be an integer array",
        indices=idx.astype(bool))
    bad(fn, "indices object", TypeError, r"indices must be an integer array",
        indices=idx.astype(object))
    bad(fn, "indices wrong shape", ValueError, r"indices must have the shape of grad_output",
        indices=idx[..., :1])
    bad(fn, "input_size ndim", ValueError, r"input_size must be a shape", input_size=size[2:])
    bad(fn, "input_size float", TypeError, r"input_size must be an int",
        input_size=tuple(float(s) for s in size))
    bad(fn, "input_size negative", ValueError, r"input_size must hold non-negative",
        input_size=(2, -4) + size[2:])
    bad(fn, "input_size empty spatial", ValueError, r"input_size must have non-empty",
        input_size=size[:2] + (0,) * nd)
    bad(fn, "grad_output ndim", ValueError, r"grad_output must have \d dimensions",
        grad_output=gy[0], indices=idx[0])
    bad(fn, "grad_output channels", ValueError, r"must agree on the batch and channel",
        grad_output=gy[:, :2], indices=idx[:, :2])
    bad(fn, "grad_output complex", TypeError, r"grad_output must be real", grad_output=gy * 1j)
    bad(fn, "grad_output strings", TypeError, r"grad_output must be a real numeric",
        grad_output=gy.astype(str))
    bad(fn, "huge input_size", ValueError, r"bytes",
        input_size=(2, 4) + ((10**10,) if nd == 1 else (10**5, 10**5)))

fn = "grad.avg_pool2d"
gy = BASE[fn]["grad_output"]
bad(fn, "grad_output wrong shape", ValueError, r"grad_output must have shape",
    grad_output=np.ones((2, 4, 3, 4)))
bad(fn, "grad_output complex", TypeError, r"grad_output must be real", grad_output=gy * 1j)
bad(fn, "grad_output object", TypeError, r"grad_output must be a real numeric",
    grad_output=gy.astype(object))
bad(fn, "input_size ndim", ValueError, r"input_size must have shape", input_size=(7, 7))
bad(fn, "input_size float", TypeError, r"input_size must be an int",
    input_size=(2.0, 4, 7, 7))
bad(fn, "input_size empty channels", ValueError, r"input_size must have non-empty",
    input_size=(2, 0, 7, 7), grad_output=np.ones((2, 0, 3, 3)))
for arg in ("kernel_size", "stride", "padding"):
    lo = 0 if arg == "padding" else 1
    bad(fn, f"{arg} below minimum", ValueError, rf"{arg} must be >= {lo}", **{arg: lo - 1})
    bad(fn, f"{arg} float", TypeError, rf"{arg} must be an int", **{arg: 2.0})
    bad(fn, f"{arg} bool", TypeError, rf"{arg} must be an int, got bool", **{arg: True})
bad(fn, "padding over half the kernel", ValueError, r"padding must be at most half",
    padding=2)
bad(fn, "window larger than input", ValueError, r"output would be empty.*input_size",
    kernel_size=8)
bad(fn, "ceil_mode int", TypeError, r"ceil_mode must be a bool", ceil_mode=0)
bad(fn, "count_include_pad str", TypeError, r"count_include_pad must be a bool",
    count_include_pad="yes")
bad(fn, "huge input_size", ValueError, r"bytes", input_size=(10**9, 4, 10**3, 10**3),
    grad_output=_huge((10**9, 4, 500, 500)))


# ---- pool3d (issue 17): max_pool3d, avg_pool1d/3d, their gradients, divisor_override ----
X3 = np.ones((2, 4, 6, 7, 7))
BASE.update({
    "max_pool3d": dict(x=X3, kernel_size=2),
    "avg_pool1d": dict(x=X1, kernel_size=2),
    "avg_pool3d": dict(x=X3, kernel_size=2),
    "grad.max_pool3d": dict(grad_output=np.ones((2, 4, 3, 3, 3)),
                            indices=np.zeros((2, 4, 3, 3, 3), int), input_size=(2, 4, 6, 7, 7)),
    "grad.avg_pool1d": dict(grad_output=np.ones((2, 4, 4)), input_size=(2, 4, 9), kernel_size=2),
    "grad.avg_pool3d": dict(grad_output=np.ones((2, 4, 3, 3, 3)), input_size=(2, 4, 6, 7, 7),
                            kernel_size=2),
})
for fn, nd in (("max_pool3d", 3), ("avg_pool1d", 1), ("avg_pool3d", 3)):
    sp = BASE[fn]["x"].shape[2:]
    args = ["kernel_size", "stride", "padding"] + (["dilation"] if fn.startswith("max") else [])
    bad(fn, "x ndim too small", ValueError, r"\bx\b must have shape", x=np.ones(sp))
    bad(fn, "x ndim too large", ValueError, r"\bx\b must have shape", x=np.ones((1, 2, 4) + sp))
    for arg in args:
        lo = 0 if arg == "padding" else 1
        bad(fn, f"{arg} below minimum", ValueError, rf"{arg} must be >= {lo}", **{arg: lo - 1})
        bad(fn, f"{arg} float", TypeError, rf"{arg} must be an int", **{arg: 2.0})
        bad(fn, f"{arg} bool", TypeError, rf"{arg} must be an int, got bool", **{arg: True})
        bad(fn, f"{arg} wrong length", ValueError, rf"{arg} must be an int or a tuple of {nd}",
            **{arg: (1,) * (nd + 1)})
        bad(fn, f"{arg} >= 2**31", ValueError, rf"{arg} must be < 2\*\*31", **{arg: 2**31})
        if nd == 3:  # torch refuses a 2-tuple for a 3-d pool
            bad(fn, f"{arg} 2-tuple", ValueError, rf"{arg} must be an int or a tuple of 3",
                **{arg: (1, 1)})
    for arg in ("kernel_size", "padding") + (("dilation",) if fn.startswith("max") else ()):
        bad(fn, f"{arg} empty tuple", ValueError, rf"{arg} must be an int or a tuple",
            **{arg: ()})
    bad(fn, "padding over half the kernel", ValueError, r"padding must be at most half",
        kernel_size=3, padding=2)
    bad(fn, "window larger than input", ValueError, r"\bx\b", kernel_size=10)
    bad(fn, "ceil_mode int", TypeError, r"ceil_mode must be a bool", ceil_mode=1)
    bad(fn, "x complex", TypeError, r"\bx\b must be real", x=BASE[fn]["x"] * 1j)
    bad(fn, "x str", TypeError, r"\bx\b must be a real numeric", x="abc")
    bad(fn, "x 0 channels", ValueError, r"\bx\b must have non-empty", x=np.ones((2, 0) + sp))
    bad(fn, "huge x (broadcast)", ValueError, r"bytes", x=_huge((10**6, 4) + (10**3,) * nd))
bad("max_pool3d", "return_indices int", TypeError, r"return_indices must be a bool",
    return_indices=1)
bad("max_pool3d", "dilated window larger than input", ValueError, r"output would be empty",
    kernel_size=3, dilation=5)
bad("avg_pool3d", "input smaller than the kernel (torch)", ValueError,
    r"\bx\b must be at least kernel_size", kernel_size=(2, 2, 2), x=np.ones((2, 4, 1, 7, 7)),
    ceil_mode=True)
bad("avg_pool1d", "divisor_override is not an argument", TypeError, r"divisor_override",
    divisor_override=2)
for fn in ("avg_pool1d", "avg_pool3d"):
    bad(fn, "count_include_pad int", TypeError, r"count_include_pad must be a bool",
        count_include_pad=0)
for fn in ("avg_pool2d", "avg_pool3d", "grad.avg_pool2d", "grad.avg_pool3d"):
    bad(fn, "divisor_override 0", ValueError, r"divisor_override must not be zero",
        divisor_override=0)
    bad(fn, "divisor_override float", TypeError, r"divisor_override must be an int",
        divisor_override=2.0)
    bad(fn, "divisor_override bool", TypeError,
        r"divisor_override must be an int or None, got bool", divisor_override=True)
    bad(fn, "divisor_override huge", ValueError, r"divisor_override must be smaller than 2\*\*31",
        divisor_override=-2**31)
fn = "grad.max_pool3d"
gy, idx, size = (BASE[fn][k] for k in ("grad_output", "indices", "input_size"))
bad(fn, "indices float", TypeError, r"indices must be an integer array", indices=idx * 1.0)
bad(fn, "indices wrong shape", ValueError, r"indices must have the shape of grad_output",
    indices=idx[..., :1])
bad(fn, "input_size ndim", ValueError, r"input_size must be a shape", input_size=size[2:])
bad(fn, "input_size empty spatial", ValueError, r"input_size must have non-empty",
    input_size=size[:2] + (0, 0, 0))
bad(fn, "grad_output ndim", ValueError, r"grad_output must have \d dimensions",
    grad_output=gy[0], indices=idx[0])
bad(fn, "grad_output channels", ValueError, r"must agree on the batch and channel",
    grad_output=gy[:, :2], indices=idx[:, :2])
bad(fn, "huge input_size", ValueError, r"bytes", input_size=(2, 4, 10**4, 10**4, 10**4))
for fn in ("grad.avg_pool1d", "grad.avg_pool3d"):
    gy, size = BASE[fn]["grad_output"], BASE[fn]["input_size"]
    bad(fn, "grad_output wrong shape", ValueError, r"grad_output must have shape",
        grad_output=gy[..., :1])
    bad(fn, "grad_output complex", TypeError, r"grad_output must be real", grad_output=gy * 1j)
    bad(fn, "input_size ndim", ValueError, r"input_size must have shape", input_size=size[2:])
    bad(fn, "kernel_size 0", ValueError, r"kernel_size must be >= 1", kernel_size=0)
    bad(fn, "stride wrong length", ValueError, r"stride must be an int or a tuple",
        stride=(1,) * (len(size) - 1))
    bad(fn, "padding over half the kernel", ValueError, r"padding must be at most half",
        padding=2)
    bad(fn, "ceil_mode int", TypeError, r"ceil_mode must be a bool", ceil_mode=0)
    big = (10**9, 4, 10**3) if fn == "grad.avg_pool1d" else (10**6, 4, 100, 100, 100)
    bad(fn, "huge input_size", ValueError, r"bytes", input_size=big,
        grad_output=_huge(big[:2] + tuple(s // 2 for s in big[2:])))


# ---- fold (issue 17): unfold/fold, max_unpool1d/2d/3d, lp_pool1d/2d and their gradients ----
_XF = np.ones((2, 3, 6, 6))
_CF = np.ones((2, 27, 16))  # 3x3 blocks over a 6x6 plane, 3 channels
_UP = {nd: (np.ones((2, 3) + (2,) * nd), np.zeros((2, 3) + (2,) * nd, int)) for nd in (1, 2, 3)}
BASE.update({
    "unfold": dict(x=_XF, kernel_size=3),
    "fold": dict(x=_CF, output_size=(6, 6), kernel_size=3),
    "grad.unfold": dict(grad_output=_CF, input_size=(2, 3, 6, 6), kernel_size=3),
    "grad.fold": dict(grad_output=_XF, kernel_size=3),
    "lp_pool1d": dict(x=X1, norm_type=2, kernel_size=2),
    "lp_pool2d": dict(x=X2, norm_type=2, kernel_size=2),
    "grad.lp_pool1d": dict(grad_output=np.ones((2, 4, 4)), x=X1, norm_type=2, kernel_size=2),
    "grad.lp_pool2d": dict(grad_output=np.ones((2, 4, 3, 3)), x=X2, norm_type=2,
                           kernel_size=2),
})
for _nd in (1, 2, 3):
    BASE[f"max_unpool{_nd}d"] = dict(x=_UP[_nd][0], indices=_UP[_nd][1], kernel_size=2)
    BASE[f"grad.max_unpool{_nd}d"] = dict(grad_output=np.ones((2, 3) + (4,) * _nd),
                                          indices=_UP[_nd][1])

for fn, xarg in (("unfold", "x"), ("fold", "x"), ("grad.unfold", "grad_output"),
                 ("grad.fold", "grad_output")):
    v = BASE[fn][xarg]
    bad(fn, f"{xarg} complex", TypeError, rf"{xarg} must be real", **{xarg: v * 1j})
    bad(fn, f"{xarg} strings", TypeError, rf"{xarg} must be a real numeric",
        **{xarg: v.astype(str)})
    bad(fn, f"{xarg} ndim too large", ValueError, rf"{xarg}", **{xarg: v[None, None]})
    for arg, lo in (("kernel_size", 1), ("dilation", 1), ("padding", 0), ("stride", 1)):
        bad(fn, f"{arg} below minimum", ValueError, rf"{arg} must be >= {lo}", **{arg: lo - 1})
        bad(fn, f"{arg} float", TypeError, rf"{arg} must be an int", **{arg: 1.5})
        bad(fn, f"{arg} bool", TypeError, rf"{arg} must be an int, got bool", **{arg: True})
        bad(fn, f"{arg} wrong length", ValueError, rf"{arg} must be an int or a tuple of 2",
            **{arg: (1, 1, 1)})
bad("unfold", "no sliding block", ValueError, r"sliding block", kernel_size=7)
bad("unfold", "empty channels", ValueError, r"\bx\b must have non-empty", x=np.ones((2, 0, 6, 6)))
bad("fold", "blocks do not match", ValueError, r"number of sliding blocks", output_size=(6, 7))
bad("fold", "not a multiple of the taps", ValueError, r"multiple of the kernel",
    x=np.ones((2, 26, 16)))
bad("fold", "output_size 0", ValueError, r"output_size must be >= 1", output_size=0)
bad("fold", "output_size wrong length", ValueError, r"output_size", output_size=(6, 6, 6))
bad("grad.unfold", "input_size does not fit", ValueError, r"input_size",
    input_size=(2, 3, 6, 7))
bad("grad.unfold", "input_size ndim", ValueError, r"input_size", input_size=(6, 6))
bad("grad.unfold", "input_size channels", ValueError, r"grad_output|input_size",
    input_size=(2, 2, 6, 6))
for _nd in (1, 2, 3):
    fn = f"max_unpool{_nd}d"
    x, idx = _UP[_nd]
    bad(fn, "x complex", TypeError, r"\bx\b must be real", x=x * 1j)
    bad(fn, "x ndim too large", ValueError, r"\bx\b must have shape", x=x[None, None],
        indices=idx[None, None])
    bad(fn, "indices float", TypeError, r"indices must be an integer array",
        indices=idx.astype(float))
    bad(fn, "indices wrong shape", ValueError, r"indices must have the shape", indices=idx[:1])
    bad(fn, "index negative", ValueError, r"invalid max index -1", indices=idx - 1)
    bad(fn, "index past the plane", ValueError, r"invalid max index", indices=idx + 4 ** _nd)
    bad(fn, "kernel_size 0", ValueError, r"kernel_size must be >= 1", kernel_size=0)
    bad(fn, "stride 0", ValueError, r"stride must be >= 1", stride=0)
    bad(fn, "padding negative", ValueError, r"padding must be >= 0", padding=-1)
    bad(fn, "output_size out of range", ValueError, r"invalid output_size",
        output_size=(9,) * _nd)
    bad(fn, "output_size wrong length", ValueError, r"output_size should be a sequence",
        output_size=(4,) * (_nd + 1))
    bad(fn, "output_size float", TypeError, r"output_size must be an int",
        output_size=(4.0,) * _nd)
    bad(fn, "empty output", ValueError, r"output would be empty", kernel_size=1, padding=1)
    fn = f"grad.max_unpool{_nd}d"
    gy = BASE[fn]["grad_output"]
    bad(fn, "grad_output complex", TypeError, r"grad_output must be real", grad_output=gy * 1j)
    bad(fn, "grad_output ndim", ValueError, r"grad_output must have",
        grad_output=gy[None, None])
    bad(fn, "indices ndim", ValueError, r"indices must have", indices=idx[0, 0])
    bad(fn, "indices float", TypeError, r"indices must be an integer array",
        indices=idx.astype(float))
    bad(fn, "batch mismatch", ValueError, r"batch and channel", indices=idx[:1])
    bad(fn, "index past the plane", ValueError, r"invalid max index", indices=idx + 4 ** _nd)
for _nd in (1, 2):
    for fn in (f"lp_pool{_nd}d", f"grad.lp_pool{_nd}d"):
        bad(fn, "norm_type 0", ValueError, r"norm_type must be non-zero", norm_type=0)
        bad(fn, "norm_type NaN", ValueError, r"norm_type must be non-zero",
            norm_type=float("nan"))
        bad(fn, "norm_type str", TypeError, r"norm_type must be a real number", norm_type="2")
        bad(fn, "norm_type bool", TypeError, r"norm_type must be a real number",
            norm_type=True)
        bad(fn, "kernel_size 0", ValueError, r"kernel_size must be >= 1", kernel_size=0)
        bad(fn, "kernel_size 0 with inf", ValueError, r"kernel_size must be >= 1",
            kernel_size=0, norm_type=float("inf"))
        bad(fn, "stride 0", ValueError, r"stride must be >= 1", stride=0)
        bad(fn, "ceil_mode int", TypeError, r"ceil_mode must be a bool", ceil_mode=1)
        bad(fn, "window larger than input", ValueError, r"output would be empty",
            kernel_size=10)
        bad(fn, "x complex", TypeError, r"\bx\b must be real", x=BASE[fn]["x"] * 1j)
    bad(f"grad.lp_pool{_nd}d", "grad_output wrong shape", ValueError, r"grad_output must have",
        grad_output=np.ones((2, 4) + (5,) * _nd))

# adaptive pools (issue 17) ---------------------------------------------------------------------
for nd in (1, 2, 3):
    for kind in ("avg", "max"):
        fn = f"adaptive_{kind}_pool{nd}d"
        sp = BASE[fn]["x"].shape[2:]
        bad(fn, "x ndim too small", ValueError, r"\bx\b must have shape", x=np.ones(sp))
        bad(fn, "x ndim too large", ValueError, r"\bx\b must have shape",
            x=np.ones((1, 2, 4) + sp))
        bad(fn, "x empty spatial", ValueError, r"\bx\b must have non-empty",
            x=np.ones((2, 4) + (0,) * nd))
        bad(fn, "x empty channels", ValueError, r"\bx\b must have non-empty",
            x=np.ones((2, 0) + sp))
        bad(fn, "x complex", TypeError, r"\bx\b must be real", x=np.ones(sp) * 1j)
        bad(fn, "x strings", TypeError, r"\bx\b must be a real numeric", x=[["a"] * 3])
        bad(fn, "output_size negative", ValueError, r"output_size must be >= 0",
            output_size=-1)
        bad(fn, "output_size negative in a tuple", ValueError, r"output_size must be >= 0",
            output_size=(2,) * (nd - 1) + (-2,))
        bad(fn, "output_size too long", ValueError, rf"output_size must be an int or a tuple "
            rf"of {nd}", output_size=(2,) * (nd + 1))
        bad(fn, "output_size float", TypeError, r"output_size must be an int", output_size=2.0)
        bad(fn, "output_size bool", TypeError, r"output_size must be an int, got bool",
            output_size=True)
        bad(fn, "output_size str", TypeError, r"output_size must be an int", output_size="2")
        bad(fn, "output_size None", TypeError, r"output_size must be an int",
            output_size=None)
        if nd == 1:
            bad(fn, "output_size (None,)", TypeError, r"output_size must be an int",
                output_size=(None,))
        bad(fn, "output_size huge", ValueError, r"output_size must be < 2\*\*31",
            output_size=2**31)
        bad(fn, "output too large", ValueError, r"bytes", output_size=(2**30,) * nd)
        if kind == "max":
            bad(fn, "return_indices int", TypeError, r"return_indices must be a bool",
                return_indices=1)
    size = BASE[f"grad.adaptive_avg_pool{nd}d"]["input_size"]
    for kind in ("avg", "max"):
        fn = f"grad.adaptive_{kind}_pool{nd}d"
        gy = BASE[fn]["grad_output"]
        extra = {} if kind == "avg" else {"indices": np.zeros(gy.shape[1:], int)}
        bad(fn, "grad_output ndim", ValueError, r"grad_output must have \d dimensions",
            grad_output=gy[0], **extra)
        extra = {} if kind == "avg" else {"indices": np.zeros((2, 2) + gy.shape[2:], int)}
        bad(fn, "grad_output channels", ValueError, r"must agree on the batch and channel",
            grad_output=gy[:, :2], **extra)
        bad(fn, "grad_output complex", TypeError, r"grad_output must be real",
            grad_output=gy * 1j)
        bad(fn, "grad_output strings", TypeError, r"grad_output must be a real numeric",
            grad_output=gy.astype(str))
        bad(fn, "input_size ndim", ValueError, r"input_size must have shape",
            input_size=size[2:])
        bad(fn, "input_size float", TypeError, r"input_size must be an int",
            input_size=tuple(float(s) for s in size))
        bad(fn, "input_size negative", ValueError, r"input_size must hold non-negative",
            input_size=(2, -4) + size[2:])
        bad(fn, "input_size empty spatial", ValueError, r"input_size must have non-empty",
            input_size=size[:2] + (0,) * nd)
        bad(fn, "input_size not a shape", TypeError, r"input_size must be a tuple",
            input_size=7)
        bad(fn, "huge input_size", ValueError, r"bytes",
            input_size=size[:2] + (10**15 // 10**(5 * (nd - 1)),) + (10**5,) * (nd - 1))
        if kind == "max":
            bad(fn, "indices float", TypeError, r"indices must be an integer array",
                indices=np.zeros(gy.shape))
            bad(fn, "indices wrong shape", ValueError, r"indices must have the shape",
                indices=np.zeros(gy.shape[:-1], int))
# conv3d (issue 17) -----------------------------------------------------------------------------
bad("conv3d", "x ndim too small", ValueError, r"\bx\b must have shape", x=np.ones((5, 6, 7)))
bad("conv3d", "x ndim too large", ValueError, r"\bx\b must have shape",
    x=np.ones((1, 2, 4, 5, 6, 7)))
bad("conv3d", "weight ndim", ValueError, r"weight must have 5 dimensions",
    weight=np.ones((6, 2, 3, 3)))
bad("conv3d", "channels mismatch", ValueError, r"weight has \d input channels per group",
    weight=np.ones((6, 3, 3, 3, 3)))
bad("conv3d", "groups 0", ValueError, r"groups must be >= 1", groups=0)
bad("conv3d", "bias wrong length", ValueError, r"bias must have shape \(6,\)", bias=np.ones(5))
bad("conv3d", "kernel larger than input", ValueError, r"output would be empty",
    weight=np.ones((6, 2, 6, 3, 3)))
for _arg, _lo in (("stride", 1), ("dilation", 1), ("padding", 0)):
    bad("conv3d", f"{_arg} below minimum", ValueError, rf"{_arg} must be >= {_lo}",
        **{_arg: _lo - 1})
    bad("conv3d", f"{_arg} wrong length", ValueError, rf"{_arg} must be an int or a tuple of 3",
        **{_arg: (1, 1)})
    bad("conv3d", f"{_arg} float", TypeError, rf"{_arg} must be an int", **{_arg: 1.5})
    bad("conv3d", f"{_arg} bool", TypeError, rf"{_arg} must be an int, got bool",
        **{_arg: True})
bad("conv3d", "'same' with stride 2", ValueError, r"padding='same' needs stride 1",
    padding="same", stride=2)
bad("conv3d", "padding_mode unknown", ValueError, r"padding_mode must be one of",
    padding_mode="mirror")
bad("conv3d", "reflect padding == size", ValueError, r"padding_mode='reflect'", padding=5,
    padding_mode="reflect")
bad("conv3d", "x complex", TypeError, r"\bx\b must be real", x=np.ones((2, 4, 5, 6, 7)) * 1j)
bad("conv3d", "x str", TypeError, r"\bx\b must be a real numeric array", x="abc")
bad("conv3d", "huge x (broadcast)", ValueError, r"bytes",
    x=_huge((10**6, 4, 10**3, 10**3, 7)))
bad("conv3d", "out wrong shape", ValueError, r"out must have shape",
    out=np.empty((2, 6, 3, 4, 4)))
for _f3 in ("grad.conv3d_input", "grad.conv3d_weight"):
    bad(_f3, "grad_output wrong shape", ValueError, r"grad_output must have shape",
        grad_output=np.ones((2, 6, 3, 4, 4)))
    bad(_f3, "grad_output complex", TypeError, r"grad_output must be real",
        grad_output=np.ones((2, 6, 3, 4, 5), complex))
    bad(_f3, "stride 0", ValueError, r"stride must be >= 1", stride=0)
    bad(_f3, "groups 4", ValueError, r"groups", groups=4)
    bad(_f3, "padding_mode unknown", ValueError, r"padding_mode must be one of",
        padding_mode="mirror")
    bad(_f3, "'same' with stride 2", ValueError, r"padding='same' needs stride 1",
        padding="same", stride=2)
bad("grad.conv3d_input", "input_size not a shape", TypeError, r"input_size", input_size=3)
bad("grad.conv3d_input", "input_size 3-D", ValueError, r"input_size must have shape",
    input_size=(5, 6, 7))
bad("grad.conv3d_weight", "weight_size 4-D", ValueError, r"weight_size must have 5",
    weight_size=(6, 2, 3, 3))
bad("grad.conv3d_weight", "input str", TypeError, r"input must be a real", input="abc")
bad("grad.conv3d_bias", "grad_output 3-D", ValueError, r"grad_output must have shape",
    grad_output=np.ones((6, 3, 4)))
bad("grad.conv3d_bias", "grad_output 6-D", ValueError, r"grad_output must have shape",
    grad_output=np.ones((1, 2, 6, 3, 4, 5)))
bad("grad.conv3d_bias", "grad_output complex", TypeError, r"grad_output must be real",
    grad_output=np.ones((2, 6, 3, 4, 5), complex))
bad("grad.conv3d_bias", "grad_output str", TypeError, r"grad_output must be a real",
    grad_output="abc")
bad("grad.conv3d_bias", "grad_output object", TypeError, r"grad_output must be a real",
    grad_output=np.ones((2, 6, 3, 4, 5), object))
bad("grad.conv3d_bias", "grad_output longdouble", TypeError, r"float32 or float64",
    grad_output=np.ones((2, 6, 3, 4, 5), np.longdouble))


COUNTS = collections.Counter(r[0] for r in ROWS)


@pytest.fixture
def no_kernel(monkeypatch):
    """Fail if a kernel runs: every check must come first."""
    def run(op, *args, **kwargs):
        raise AssertionError(f"the {op} kernel ran on invalid input")

    monkeypatch.setattr(_dispatch, "run", run)


def _call(fn, kwargs, backend):
    if fn in NO_BACKEND:
        return _fn(fn)(**kwargs)
    return _fn(fn)(**kwargs, backend=backend)


@pytest.mark.parametrize("fn", sorted(BASE))
def test_every_base_call_is_valid(backend, fn):
    """The rows below each break a call that works."""
    _call(fn, BASE[fn], backend)


def test_every_public_function_has_rows():
    public = set(fastconv.functional.__all__) | {f"grad.{n}" for n in fastconv.grad.__all__}
    assert public == set(BASE)
    assert all(COUNTS[fn] >= 6 for fn in BASE), COUNTS


@pytest.mark.parametrize("fn, what, changes, exc, match", ROWS,
                         ids=[f"{r[0]}: {r[1]}" for r in ROWS])
def test_error_input(backend, no_kernel, fn, what, changes, exc, match):
    kwargs = {**BASE[fn], **changes}
    kwargs = {k: v for k, v in kwargs.items() if v is not None or k in changes}
    arrays = [(k, v, np.array(v, copy=True)) for k, v in kwargs.items()
              if isinstance(v, np.ndarray) and v.size < 10**6]
    if fn in NO_BACKEND and backend != BACKENDS[0]:
        pytest.skip("a NumPy sum: no backend")
    with pytest.raises(exc, match=match):
        _call(fn, kwargs, backend)
    for k, v, copy in arrays:  # nothing mutated, not even ``out``
        np.testing.assert_array_equal(v, copy, err_msg=k)


# --------------------------------------------------------------------------------------------
# N == 0: an empty batch is not an error; it gives an empty result, as in torch
# --------------------------------------------------------------------------------------------
def _zero_batch_calls():
    x2, x1 = np.ones((0, 4, 7, 7)), np.ones((0, 4, 9))
    return {
        "conv2d": (lambda **k: fastconv.conv2d(x2, W2, np.ones(6), groups=2, padding=1, **k),
                   (0, 6, 7, 7)),
        "conv2d reflect": (lambda **k: fastconv.conv2d(x2, W2, groups=2, padding=1,
                                                       padding_mode="reflect", **k),
                           (0, 6, 7, 7)),
        "conv2d out=": (lambda **k: fastconv.conv2d(x2, W2, groups=2,
                                                    out=np.empty((0, 6, 5, 5)), **k),
                        (0, 6, 5, 5)),
        "conv1d": (lambda **k: fastconv.conv1d(x1, W1, groups=2, stride=2, **k), (0, 6, 4)),
        "max_pool2d": (lambda **k: fastconv.max_pool2d(x2, 3, 2, 1, **k), (0, 4, 4, 4)),
        "max_pool2d indices": (lambda **k: fastconv.max_pool2d(x2, 2, return_indices=True,
                                                               **k)[1], (0, 4, 3, 3)),
        "max_pool1d": (lambda **k: fastconv.max_pool1d(x1, 2, ceil_mode=True, **k), (0, 4, 5)),
        "avg_pool2d": (lambda **k: fastconv.avg_pool2d(x2, 2, **k), (0, 4, 3, 3)),
        "locally_connected2d": (lambda **k: fastconv.locally_connected2d(
            x2, np.ones((5, 5, 3, 4, 3, 3)), **k), (0, 3, 5, 5)),
        "grad.conv2d_input": (lambda **k: G.conv2d_input(
            (0, 4, 7, 7), W2, np.ones((0, 6, 5, 5)), groups=2, **k), (0, 4, 7, 7)),
        "grad.conv1d_input circular": (lambda **k: G.conv1d_input(
            (0, 4, 9), W1, np.ones((0, 6, 9)), padding=1, groups=2, padding_mode="circular",
            **k), (0, 4, 9)),
        "grad.conv2d_weight": (lambda **k: G.conv2d_weight(
            x2, (6, 2, 3, 3), np.ones((0, 6, 5, 5)), groups=2, **k), (6, 2, 3, 3)),
        "grad.conv1d_weight": (lambda **k: G.conv1d_weight(
            x1, (6, 2, 3), np.ones((0, 6, 7)), groups=2, **k), (6, 2, 3)),
        "grad.max_pool2d": (lambda **k: G.max_pool2d(
            np.ones((0, 4, 3, 3)), np.zeros((0, 4, 3, 3), int), (0, 4, 7, 7), **k),
            (0, 4, 7, 7)),
        "grad.max_pool1d": (lambda **k: G.max_pool1d(
            np.ones((0, 4, 4)), np.zeros((0, 4, 4), int), (0, 4, 9), **k), (0, 4, 9)),
        "grad.avg_pool2d": (lambda **k: G.avg_pool2d(np.ones((0, 4, 3, 3)), (0, 4, 7, 7), 2,
                                                     **k), (0, 4, 7, 7)),
    }


ZERO_BATCH = _zero_batch_calls()


@pytest.mark.parametrize("name", ZERO_BATCH)
def test_zero_batch_gives_an_empty_result(backend, name):
    """Regression: Cython's max/avg pools died with SIGFPE on N == 0, and every backend's
    max-pool gradient (and the reference's max-pool) raised a reshape error."""
    f, shape = ZERO_BATCH[name]
    got = f(backend=backend)
    assert got.shape == shape
    if got.size:  # a weight gradient: a sum over no samples
        np.testing.assert_array_equal(got, 0)


def test_zero_batch_shapes_match_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = torch.ones(0, 4, 7, 7, dtype=torch.float64)
    w = torch.ones(6, 2, 3, 3, dtype=torch.float64)
    assert tuple(F.conv2d(x, w, groups=2, padding=1).shape) == ZERO_BATCH["conv2d"][1]
    assert tuple(F.max_pool2d(x, 3, 2, 1).shape) == ZERO_BATCH["max_pool2d"][1]
    assert tuple(F.avg_pool2d(x, 2).shape) == ZERO_BATCH["avg_pool2d"][1]
    gw = torch.nn.grad.conv2d_weight(x[..., :7, :7], (6, 2, 3, 3),
                                     torch.ones(0, 6, 5, 5, dtype=torch.float64), groups=2)
    assert tuple(gw.shape) == (6, 2, 3, 3) and not gw.any()


def test_empty_max_pool_grad_output_gives_zeros(backend):
    """grad_output with an empty spatial extent (and matching indices): zeros, not garbage."""
    got = G.max_pool2d(np.ones((2, 3, 0, 0)), np.zeros((2, 3, 0, 0), int), (2, 3, 4, 4),
                       backend=backend)
    np.testing.assert_array_equal(got, np.zeros((2, 3, 4, 4)))


# ---- transpose (issue 17) ----
# conv_transpose1d/2d/3d and their gradients keep their base calls and rows in
# tests/test_issue17_transpose.py (run there on every backend with the kernels disabled);
# test_every_public_function_has_rows counts them here.
try:
    from test_issue17_transpose import TRANSPOSE_BASE, TRANSPOSE_ROWS
except pytest.skip.Exception:  # no torch: that file skips, and so do its functions here
    TRANSPOSE_BASE, TRANSPOSE_ROWS = {}, []
    BASE.update({n: None for n in fastconv.functional.__all__
                 if n.startswith("conv_transpose")})
    BASE.update({f"grad.{n}": None for n in G.__all__ if n.startswith("conv_transpose")})
    COUNTS.update({n: 6 for n in BASE if "conv_transpose" in n})
BASE.update(TRANSPOSE_BASE)
COUNTS.update(r[0] for r in TRANSPOSE_ROWS)
