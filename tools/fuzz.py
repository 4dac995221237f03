"""Fuzz fastconv's public API with hypothesis: random shapes, dtypes, strides, paddings,
dilations, groups, modes and the wrong types for each. Every call must either return the
NumPy reference's result (same shape, dtype and values, NaN where it has NaN) on every
backend, or raise ValueError/TypeError on every backend, as the reference does. Anything else
(another exception, a different result, a crash) is a failure, printed with a reproducer.

    python tools/fuzz.py --seconds 60            # a bounded run (CI: tests/test_fuzz.py)
    python tools/fuzz.py --seconds 3600 --seed 1 # a longer run; vary --seed between runs

Prints the number of calls and their outcomes per function. Exit status 1 on a failure.
"""

from __future__ import annotations

import argparse
import collections
import os
import pickle
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, seed as hseed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import strategies as S  # noqa: E402  (tests/strategies.py: any_int_arg, any_dtype)

import fastconv  # noqa: E402

G = fastconv.grad
BACKENDS = fastconv.backends()
COMPILED = tuple(b for b in BACKENDS if b != "numpy")
OUTCOMES: collections.Counter = collections.Counter()
# FASTCONV_FUZZ_TRACE=path: each case is pickled there before it runs (for crashes and hangs)
TRACE = os.environ.get("FASTCONV_FUZZ_TRACE")
TORCH = False  # --torch

small_int = st.integers(1, 3)
maybe_int = st.one_of(*[small_int] * 12, S.any_int_arg)
padding_arg = st.one_of(*[st.integers(0, 2)] * 10, st.sampled_from(["same", "valid"]),
                        S.any_int_arg)


@st.composite
def arrays(draw, ndim_choices, size=None, clean=False):
    """An array of a drawn ndim (usually a valid one), size and dtype, with some NaN/inf;
    ``clean``: always a valid ndim and a float dtype."""
    valid_nd = st.sampled_from(ndim_choices)
    ndim = draw(valid_nd if clean else st.one_of(*[valid_nd] * 9, st.integers(0, 5)))
    size = st.one_of(*[st.integers(3, 9)] * 18, st.integers(0, 2)) if size is None else size
    if clean:  # no zero-size axis but, sometimes, the batch
        shape = tuple(draw(st.integers(1, 9) if i or ndim < max(ndim_choices) else
                           st.one_of(*[st.integers(1, 3)] * 6, st.just(0)))
                      for i in range(ndim))
    else:
        shape = tuple(draw(size) for _ in range(ndim))
    floats = st.sampled_from([np.float32, np.float64])
    dtype = draw(floats if clean else st.one_of(*[floats] * 9, S.any_dtype))
    seed = draw(st.integers(0, 2**32 - 1))
    vals = np.random.default_rng(seed).standard_normal(shape)
    if vals.size and draw(st.integers(0, 9)) == 0:
        vals.reshape(-1)[seed % vals.size] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = vals.astype(dtype)
    if draw(st.integers(0, 4)) == 0 and arr.ndim:
        arr = arr[..., ::-1]  # a negative-stride view
    return arr


@st.composite
def calls_v1(draw):
    """(name, function, args, kwargs) for the functions before issue 17."""
    name = draw(st.sampled_from([
        "conv1d", "conv2d", "max_pool1d", "max_pool2d", "avg_pool2d", "convolve", "correlate",
        "convolve2d", "correlate2d", "locally_connected2d", "grad.conv2d_input",
        "grad.conv2d_weight", "grad.conv1d_input", "grad.conv1d_weight", "grad.max_pool2d",
        "grad.avg_pool2d", "grad.conv2d_bias"]))
    nd = 1 if "1d" in name or name in ("convolve", "correlate") else 2
    if name in ("conv1d", "conv2d"):
        x = draw(arrays([nd + 2, nd + 1]))
        C = x.shape[1] if x.ndim == nd + 2 else (x.shape[0] if x.ndim else 1)
        groups = draw(st.one_of(*[st.sampled_from([1, 1, 2, C or 1])] * 4, S.any_int_arg))
        g = groups if isinstance(groups, int) and not isinstance(groups, bool) and 0 < groups < 9 \
            else 1
        K = g * draw(st.sampled_from([1, 1, 2, 0]))
        w = draw(st.one_of(
            st.builds(lambda k, d: np.ones((K, max(C, 1) // g) + k, d),
                      st.tuples(*[st.integers(1, 3)] * nd), st.sampled_from([np.float32,
                                                                             np.float64])),
            st.builds(lambda k, d: np.ones((K, max(C, 1) // g) + k, d),
                      st.tuples(*[st.integers(0, 4)] * nd), st.sampled_from([np.float32,
                                                                             np.float64])),
            arrays([nd + 2])))
        bias = draw(st.one_of(st.none(), st.just(np.ones(K)), arrays([1])))
        kw = dict(stride=draw(maybe_int), padding=draw(padding_arg), dilation=draw(maybe_int),
                  groups=groups, padding_mode=draw(st.sampled_from(
                      ["zeros"] * 4 + ["reflect", "replicate", "circular", "mirror"])))
        return name, getattr(fastconv, name), (x, w, bias), kw
    if name in ("max_pool1d", "max_pool2d", "avg_pool2d"):
        x = draw(arrays([nd + 2, nd + 1]))
        kw = dict(kernel_size=draw(maybe_int),
                  stride=draw(st.one_of(st.none(), maybe_int)),
                  padding=draw(st.one_of(*[st.integers(0, 1)] * 5, S.any_int_arg)),
                  ceil_mode=draw(st.sampled_from([False, True] * 4 + [1])))
        if name.startswith("max"):
            kw["dilation"] = draw(maybe_int)
            kw["return_indices"] = draw(st.booleans())
        else:
            kw["count_include_pad"] = draw(st.sampled_from([True, False] * 4 + [None]))
        return name, getattr(fastconv, name), (x,), kw
    if name in ("convolve", "correlate"):
        a, v = draw(arrays([1], st.integers(0, 9))), draw(arrays([1], st.integers(0, 9)))
        return name, getattr(fastconv, name), (a, v), dict(
            mode=draw(st.sampled_from(["full", "same", "valid", "circular"])))
    if name in ("convolve2d", "correlate2d"):
        a, v = draw(arrays([2])), draw(arrays([2]))
        return name, getattr(fastconv, name), (a, v), dict(
            mode=draw(st.sampled_from(["full", "same", "valid"])),
            boundary=draw(st.sampled_from(["fill", "wrap", "symm", "reflect"])),
            fillvalue=draw(st.sampled_from([0, 1.5, -2, 1j, None])))
    if name == "locally_connected2d":
        x = draw(arrays([4, 3]))
        C = x.shape[-3] if x.ndim >= 3 else 1
        kh, kw_, s, p = (draw(st.integers(1, 3)) for _ in range(4))
        H, W = (x.shape[-2], x.shape[-1]) if x.ndim >= 2 else (1, 1)
        Ho, Wo = (H + 2 * p - kh) // s + 1, (W + 2 * p - kw_) // s + 1
        w = draw(st.one_of(
            st.just(np.ones((max(Ho, 0), max(Wo, 0), 2, C, kh, kw_))), arrays([6], st.integers(0, 3))))
        return name, fastconv.locally_connected2d, (x, w), dict(
            bias=draw(st.one_of(st.none(), st.just(np.ones(2)))),
            stride=draw(st.one_of(st.just(s), maybe_int)), padding=draw(st.one_of(st.just(p),
                                                                                  maybe_int)))
    if name in ("grad.conv2d_input", "grad.conv1d_input", "grad.conv2d_weight",
                "grad.conv1d_weight"):
        x = draw(arrays([nd + 2]))
        C = x.shape[1] if x.ndim >= 2 else 1
        w = np.ones((2, max(C, 1)) + tuple(draw(st.integers(1, 3)) for _ in range(nd)))
        kw = dict(stride=draw(maybe_int), padding=draw(padding_arg), dilation=draw(maybe_int),
                  padding_mode=draw(st.sampled_from(["zeros", "reflect", "circular"])))
        try:  # a grad_output of the right shape, most of the time
            y = fastconv.conv2d(x, w, **kw, backend="numpy") if nd == 2 else \
                fastconv.conv1d(x, w, **kw, backend="numpy")
            gy = draw(st.one_of(st.just(np.ones_like(y)), arrays([nd + 2])))
        except (ValueError, TypeError):
            gy = draw(arrays([nd + 2]))
        f = getattr(G, name.split(".")[1])
        if "input" in name:
            return name, f, (draw(st.one_of(st.just(x.shape), S.any_shape)), w, gy), kw
        return name, f, (x, draw(st.one_of(st.just(w.shape), S.any_shape)), gy), kw
    if name == "grad.max_pool2d":
        x = draw(arrays([4, 3]))
        try:
            y, idx = fastconv.max_pool2d(x, 2, return_indices=True, backend="numpy")
            idx = draw(st.one_of(st.just(idx), st.just(idx + 1), st.just(idx.astype(float))))
        except (ValueError, TypeError):
            y, idx = draw(arrays([4])), draw(arrays([4]))
        return name, G.max_pool2d, (y, idx, draw(st.one_of(st.just(x.shape), S.any_shape))), {}
    if name == "grad.avg_pool2d":
        x = draw(arrays([4, 3]))
        k = draw(maybe_int)
        try:
            y = fastconv.avg_pool2d(x, k, backend="numpy")
        except (ValueError, TypeError):
            y = draw(arrays([4, 3]))
        return name, G.avg_pool2d, (y, draw(st.one_of(st.just(x.shape), S.any_shape)), k), {}
    return name, G.conv2d_bias, (draw(arrays([4, 3])),), {}


# --------------------------------------------------------------------------------------------
# issue 17: conv3d, the transposed convolutions, unfold/fold, the 3-D/1-D/adaptive/lp pools,
# max_unpool and their gradients
# --------------------------------------------------------------------------------------------
NAMES17 = [
    "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "unfold", "fold",
    "max_pool3d", "avg_pool1d", "avg_pool2d_div", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "max_unpool1d", "max_unpool2d", "max_unpool3d", "lp_pool1d", "lp_pool2d",
    "grad.conv3d_input", "grad.conv3d_weight", "grad.conv3d_bias",
    "grad.conv_transpose1d_input", "grad.conv_transpose2d_input",
    "grad.conv_transpose3d_input", "grad.conv_transpose1d_weight",
    "grad.conv_transpose2d_weight", "grad.conv_transpose3d_weight",
    "grad.conv_transpose2d_bias", "grad.max_pool3d", "grad.avg_pool1d", "grad.avg_pool3d",
    "grad.unfold", "grad.fold", "grad.max_unpool1d", "grad.max_unpool2d", "grad.max_unpool3d",
    "grad.lp_pool1d", "grad.lp_pool2d", "grad.adaptive_avg_pool1d",
    "grad.adaptive_avg_pool2d", "grad.adaptive_avg_pool3d", "grad.adaptive_max_pool1d",
    "grad.adaptive_max_pool2d", "grad.adaptive_max_pool3d",
]
NO_BACKEND = {"grad.conv2d_bias", "grad.conv3d_bias", "grad.conv_transpose2d_bias"}


def _nd(name: str) -> int:
    return 3 if "3d" in name else (1 if "1d" in name else 2)


def _fn(name: str):
    if name.startswith("grad."):
        return getattr(G, name[5:])
    return getattr(fastconv, name.replace("_div", ""))


def per_axis(nd, lo=0, hi=3):
    """An int, or a tuple of ``nd`` ints (sometimes of the wrong length), or a bad value;
    in a clean case (:data:`CLEAN`) only an int or a tuple of ``nd`` ints in ``[lo, hi]``."""
    one = st.integers(lo, hi)
    good = st.one_of(one, st.tuples(*[one] * nd))
    def ok(v):
        if not CLEAN[0]:
            return True
        if type(v) is int:
            return lo <= v <= hi
        return type(v) is tuple and (v == () or len(v) == nd and all(
            type(e) is int and lo <= e <= hi for e in v))
    return st.one_of(*[good] * 10, st.lists(one, max_size=4), S.any_int_arg).filter(ok)


def ANY_SHAPE():  # noqa: N802 - a bad input_size, except in a clean case
    return st.nothing() if CLEAN[0] else S.any_shape


def ANY_INT():  # noqa: N802 - a bad int argument, except in a clean case
    return st.nothing() if CLEAN[0] else S.any_int_arg


# whether the current issue-17 case draws only well-formed arguments (set per case)
CLEAN = [False]


@st.composite
def broadcast_views(draw, nd):
    """A huge-but-cheap input: a zero-stride view of a small array, one long axis."""
    long_axis = draw(st.integers(0, nd - 1))
    n = draw(st.sampled_from([2**16 + 3, 2**20, 3 * 2**19 + 1]))
    spatial = tuple(n if i == long_axis else 1 for i in range(nd))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    base = np.asarray(draw(st.sampled_from([1.0, -2.5, 0.0])), dtype)
    return np.broadcast_to(base, (1, draw(st.integers(1, 2))) + spatial)


def spatial_input(nd):
    """Mostly an ordinary (N, C, *spatial) / (C, *spatial) array; sometimes a broadcast view,
    a Fortran-ordered or read-only copy, or the wrong ndim."""
    def fortran(a):
        return np.asfortranarray(a)

    def readonly(a):
        a = a.copy()
        a.flags.writeable = False
        return a
    base = arrays([nd + 2, nd + 1], clean=CLEAN[0])
    return st.one_of(*[base] * 12, base.map(fortran), base.map(readonly),
                     base.map(lambda a: a[..., ::2] if a.ndim else a), broadcast_views(nd))


def _try(f, *a, **k):
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return f(*a, **k)
    except (ValueError, TypeError):
        return None


def _grad_output(draw, y, nd):
    """``ones_like(y)`` (or random values in its shape) when ``y`` exists, else an array."""
    if isinstance(y, np.ndarray):
        rnd = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).standard_normal(y.shape)
        return draw(st.one_of(*[st.just(rnd.astype(y.dtype))] * 4, st.just(np.ones_like(y)),
                              arrays([nd + 2, nd + 1])))
    return draw(arrays([nd + 2, nd + 1]))


@st.composite
def calls17(draw):
    """(name, function, args, kwargs) for one of issue 17's functions."""
    name = draw(st.sampled_from(NAMES17))
    CLEAN[0] = draw(st.booleans())
    nd = _nd(name)
    f = _fn(name)
    base = name[5:] if name.startswith("grad.") else name
    if base in ("conv3d", "conv3d_input", "conv3d_weight", "conv3d_bias") or \
            base.startswith("conv_transpose"):
        transpose = base.startswith("conv_transpose")
        x = draw(spatial_input(nd) if not name.startswith("grad.") else arrays(clean=CLEAN[0], ndim_choices=[nd + 2]))
        C = x.shape[1] if x.ndim == nd + 2 else (x.shape[0] if x.ndim else 1)
        groups = draw(st.one_of(*[st.sampled_from([1, 1, 2, C or 1])] * 4, ANY_INT()))
        g = groups if isinstance(groups, int) and not isinstance(groups, bool) and \
            0 < groups < 9 else 1
        K = g * draw(st.sampled_from([1, 1, 2] + [0] * (not CLEAN[0])))
        ks = st.tuples(*[st.integers(1, 3)] * nd)
        fl = st.sampled_from([np.float32, np.float64])
        if transpose:  # weight (C_in, C_out // groups, *k)
            good_w = st.builds(lambda k, d: np.random.default_rng(len(k)).standard_normal(
                (max(C, 1), max(K, 1) // g) + k).astype(d), ks, fl)
        else:          # weight (K, C // groups, *k)
            good_w = st.builds(lambda k, d: np.random.default_rng(len(k)).standard_normal(
                (K, max(C, 1) // g) + k).astype(d), ks, fl)
        w = draw(good_w if CLEAN[0] else st.one_of(*[good_w] * 4, arrays([nd + 2])))
        nb = w.shape[1] * g if transpose and w.ndim == nd + 2 else K
        bias = draw(st.one_of(st.none(), st.just(np.ones(max(nb, 0))),
                              st.nothing() if CLEAN[0] else arrays([1])))
        kw = dict(stride=draw(per_axis(nd, 1, 3)), padding=draw(per_axis(nd, 0, 2)),
                  dilation=draw(per_axis(nd, 1, 2)), groups=groups)
        if transpose:
            st_ = kw["stride"]
            kw["output_padding"] = draw(per_axis(nd, 0, 2)) if not CLEAN[0] else \
                draw(st.integers(0, st_ - 1)) if type(st_) is int else 0
            fwd = getattr(fastconv, f"conv_transpose{nd}d")
        else:
            kw["padding"] = draw(st.one_of(st.just(kw["padding"]),
                                           st.sampled_from(["same", "valid"])))
            kw["padding_mode"] = draw(st.sampled_from(
                ["zeros"] * 4 + ["reflect", "replicate", "circular", "mirror"]))
            fwd = fastconv.conv3d
        if not name.startswith("grad."):
            return name, f, (x, w, bias), kw
        y = _try(fwd, x, w, **kw, backend="numpy")
        gy = _grad_output(draw, y, nd)
        if base.endswith("_bias"):
            return name, f, (gy,), {}
        if base.endswith("_input"):
            return name, f, (draw(st.one_of(*[st.just(x.shape)] * 4, ANY_SHAPE())), w, gy), kw
        return name, f, (x, draw(st.one_of(*[st.just(w.shape)] * 4, ANY_SHAPE())), gy), kw
    if base in ("unfold", "fold"):
        kw = dict(kernel_size=draw(per_axis(2, 1, 3)), dilation=draw(per_axis(2, 1, 2)),
                  padding=draw(per_axis(2, 0, 2)), stride=draw(per_axis(2, 1, 3)))
        x = draw(spatial_input(2))
        if name == "unfold":
            return name, f, (x,), kw
        cols = _try(fastconv.unfold, x, **kw, backend="numpy")
        size = x.shape[-2:] if x.ndim >= 2 else (1, 1)
        out_size = draw(st.one_of(*[st.just(tuple(size))] * 6, per_axis(2, 0, 9),
                                  st.sampled_from([(2**31, 1), (2**40, 2**40), (-1, 3)])))
        if name == "fold":
            c = cols if cols is not None else draw(arrays(clean=CLEAN[0], ndim_choices=[3, 2]))
            return name, f, (c, out_size), kw
        if name == "grad.unfold":
            gy = _grad_output(draw, cols, 1)
            return name, f, (gy, draw(st.one_of(*[st.just(x.shape)] * 4, ANY_SHAPE()))), kw
        return name, f, (x,), kw  # grad.fold: unfold of grad_output
    if base in ("max_pool3d", "avg_pool1d", "avg_pool2d_div", "avg_pool3d", "lp_pool1d",
                "lp_pool2d"):
        x = draw(spatial_input(nd))
        kw = dict(kernel_size=draw(per_axis(nd, 1, 3)),
                  stride=draw(st.one_of(st.none(), st.just(()), per_axis(nd, 1, 3))),
                  ceil_mode=draw(st.sampled_from([False, True] * 4 + [1])))
        if base.startswith("lp"):
            p = draw(st.sampled_from([1, 2, 2, 3, 1.5, 0.5, -1, float("inf"), float("-inf"),
                                      0, float("nan"), "2", None, True, 10**400, 1e308,
                                      np.float32(2), np.array(2.0), 2j]))
            args = (x, p)
            fwd = getattr(fastconv, base)
            if name.startswith("grad."):
                y = _try(fwd, x, p, **kw, backend="numpy")
                return name, f, (_grad_output(draw, y, nd), x, p), kw
            return name, f, args, kw
        kw["padding"] = draw(per_axis(nd, 0, 1))
        if base == "max_pool3d":
            kw["dilation"] = draw(per_axis(nd, 1, 2))
            if name.startswith("grad."):
                r = _try(fastconv.max_pool3d, x, **kw, return_indices=True, backend="numpy")
                if r is None:
                    return name, f, (draw(arrays(clean=CLEAN[0], ndim_choices=[5])), draw(arrays(clean=CLEAN[0], ndim_choices=[5])), x.shape), {}
                y, idx = r
                idx = draw(st.one_of(*[st.just(idx)] * 4, st.just(idx + 1),
                                     st.just(idx * 1000), st.just(-idx - 1),
                                     st.just(idx.astype(float))))
                return name, f, (_grad_output(draw, y, nd), idx,
                                 draw(st.one_of(*[st.just(x.shape)] * 4, ANY_SHAPE()))), {}
            kw["return_indices"] = draw(st.booleans())
            return name, f, (x,), kw
        kw["count_include_pad"] = draw(st.sampled_from([True, False] * 4 + [None]))
        if base != "avg_pool1d":
            kw["divisor_override"] = draw(st.one_of(
                *[st.none()] * 3, st.sampled_from([1, 2, 3, -2, 7, 0, 2**40, 1.5, True])))
        if not name.startswith("grad."):
            return name, f, (x,), kw
        fwd = getattr(fastconv, base.replace("_div", ""))
        y = _try(fwd, x, **kw, backend="numpy")
        return name, f, (_grad_output(draw, y, nd),
                         draw(st.one_of(*[st.just(x.shape)] * 4, ANY_SHAPE()))), kw
    if base.startswith("adaptive"):
        x = draw(spatial_input(nd))
        osz = st.one_of(*[st.integers(1, 4)] * 6, st.integers(0, 12), st.none(),
                        st.sampled_from([2**31, 2**40, -1, 1.5, True, "1"]))
        out_size = draw(st.one_of(*[osz] * 3, st.tuples(*[osz] * nd), st.lists(osz, max_size=4)))
        is_max = "max" in base
        fwd = getattr(fastconv, base)
        if not name.startswith("grad."):
            kw = {"return_indices": draw(st.booleans())} if is_max else {}
            return name, f, (x, out_size), kw
        insize = draw(st.one_of(*[st.just(x.shape)] * 4, ANY_SHAPE()))
        if is_max:
            r = _try(fwd, x, out_size, True, backend="numpy")
            if r is None:
                return name, f, (draw(arrays(clean=CLEAN[0], ndim_choices=[nd + 2])), draw(arrays(clean=CLEAN[0], ndim_choices=[nd + 2])), insize), {}
            y, idx = r
            idx = draw(st.one_of(*[st.just(idx)] * 4, st.just(idx + 1), st.just(idx * 1000),
                                 st.just(-idx - 1), st.just(idx.astype(float))))
            return name, f, (_grad_output(draw, y, nd), idx, insize), {}
        y = _try(fwd, x, out_size, backend="numpy")
        return name, f, (_grad_output(draw, y, nd), insize), {}
    # max_unpool and its gradient
    x = draw(arrays(clean=CLEAN[0], ndim_choices=[nd + 2, nd + 1]))
    k = draw(per_axis(nd, 1, 3))
    s = draw(st.one_of(st.none(), st.just(()), per_axis(nd, 1, 3)))
    p = draw(st.one_of(*[st.just(0)] * 3, per_axis(nd, 0, 1)))
    pool = getattr(fastconv, f"max_pool{nd}d")
    r = _try(pool, x, k, s, p, return_indices=True, backend="numpy")
    if r is None:
        y, idx = draw(arrays(clean=CLEAN[0], ndim_choices=[nd + 2, nd + 1])), draw(arrays(clean=CLEAN[0], ndim_choices=[nd + 2, nd + 1]))
        idx = draw(st.one_of(st.just(idx), st.just(np.zeros(idx.shape, np.int64))))
    else:
        y, idx = r
        idx = draw(st.one_of(*[st.just(idx)] * 6, st.just(idx + 1), st.just(idx * 1000),
                             st.just(-idx - 1), st.just(idx.astype(float)),
                             st.just(idx.astype(np.int32)), st.just(np.zeros_like(idx)),
                             st.just(idx[..., :1])))
    if name.startswith("grad."):
        up = _try(getattr(fastconv, base), y, idx, k, s, p, backend="numpy")
        gy = _grad_output(draw, up, nd)
        return name, f, (gy, idx), {}
    in_sp = x.shape[-nd:] if x.ndim >= nd else ()
    if CLEAN[0]:
        return name, f, (y, idx, k, s, p), dict(output_size=None)
    out_size = draw(st.one_of(*[st.none()] * 4, st.just(tuple(in_sp)),
                              st.just(tuple(x.shape)), per_axis(nd, 0, 12),
                              st.sampled_from([(2**31,) * nd, (2**40,) * nd])))
    return name, f, (y, idx, k, s, p), dict(output_size=out_size)


def calls():
    """(name, function, args, kwargs), with a ``backend`` keyword where the function has one:
    the functions before issue 17 and issue 17's, about half of the calls each."""
    return st.one_of(calls_v1(), calls17())


def _outcome(f, args, kwargs):
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return f(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        return exc


# --------------------------------------------------------------------------------------------
# --torch: cross-check the reference against torch.nn.functional where torch defines the call
# --------------------------------------------------------------------------------------------
TORCH_SEEN: collections.Counter = collections.Counter()
TORCH_DIFFS: list = []


def _torch_call(name, args, kwargs, dtype):
    """torch.nn.functional's result for a forward call, as NumPy arrays (None: no such call)."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)  # torch's max_unpool keeps a thread-dependent repeated index
    base = name.replace("_div", "")
    if name.startswith("grad.") or not hasattr(F, base) or \
            kwargs.get("padding_mode", "zeros") != "zeros":
        return None
    kw = {k: v for k, v in kwargs.items() if k not in ("padding_mode",)}
    if "stride" in kw and isinstance(kw["stride"], tuple) and kw["stride"] == ():
        kw["stride"] = None

    def conv(a):
        if isinstance(a, np.ndarray) and a.dtype.kind == "f" or (
                isinstance(a, np.ndarray) and a.dtype.kind in "biu" and base not in (
                    "max_unpool1d", "max_unpool2d", "max_unpool3d")):
            return torch.from_numpy(np.array(a, dtype=dtype))
        if isinstance(a, np.ndarray):  # indices
            return torch.from_numpy(np.array(a, dtype=np.int64))
        return a
    targs = [conv(a) for a in args]
    if base.startswith("max_unpool"):
        targs[1] = torch.from_numpy(np.array(args[1], dtype=np.int64))
    r = getattr(F, base)(*targs, **kw)
    return tuple(t.numpy() for t in (r if isinstance(r, tuple) else (r,)))


def _torch_grad(name, args, kwargs, dtype):
    """torch autograd's answer for one of fastconv.grad's calls (None: not cross-checked)."""
    import torch
    import torch.nn.functional as F

    base = name[5:]
    if kwargs.get("padding_mode", "zeros") != "zeros" or isinstance(kwargs.get("padding"), str):
        return None
    kw = {k: v for k, v in kwargs.items() if k != "padding_mode"}
    if kw.get("stride") == ():
        kw["stride"] = None

    def t(a):
        return torch.from_numpy(np.array(a, dtype=dtype))

    def vjp(fn, shape, gy):  # the gradient of fn at zeros(shape), fn linear in its input
        v = torch.zeros(tuple(shape), dtype=getattr(torch, np.dtype(dtype).name),
                        requires_grad=True)
        fn(v).backward(t(gy))
        return v.grad
    if base.endswith("_bias"):
        gy, nd = t(args[0]), _nd(base)
        if gy.ndim == nd + 1:  # unbatched
            return gy.sum(dim=list(range(1, gy.ndim)))
        return gy.sum(dim=[0] + list(range(2, gy.ndim))) if gy.ndim == nd + 2 else None
    if base.startswith(("conv3d", "conv_transpose")):
        fwd = F.conv3d if base.startswith("conv3d") else getattr(F, base.rsplit("_", 1)[0])
        a0, a1, gy = args
        if base.endswith("_input"):
            return vjp(lambda v: fwd(v, t(a1), **kw), a0, gy)
        return vjp(lambda v: fwd(t(a0), v, **kw), a1, gy)
    if base in ("avg_pool1d", "avg_pool3d"):
        gy, insize = args
        return vjp(lambda v: getattr(F, base)(v, **kw), insize, gy)
    if base.startswith("adaptive_avg"):
        gy, insize = args
        return vjp(lambda v: getattr(F, base)(v, tuple(gy.shape[-int(base[-2]):])), insize, gy)
    if base == "unfold":
        gy, insize = args
        return vjp(lambda v: F.unfold(v, **kw), insize, gy)
    if base == "fold":
        return F.unfold(t(args[0]), **kw)
    if base.startswith("lp_pool"):
        gy, x, p = args
        xv = t(x).requires_grad_(True)
        getattr(F, base)(xv, p, **kw).backward(t(gy))
        return xv.grad
    return None


def torch_check(name, args, kwargs, ref):
    """Compare the reference's outcome with torch's; record any difference (not a failure:
    torch refuses some calls fastconv defines, and the other way round)."""
    if any(isinstance(a, np.ndarray) and (a.dtype.kind not in "biuf" or a.dtype.itemsize > 8)
           for a in args):
        return  # fastconv refuses these dtypes by design (torch takes some of them)
    dtype = ref[0].dtype if isinstance(ref, tuple) else getattr(ref, "dtype", np.float64)
    if isinstance(ref, Exception):
        dtype = np.float64
        if "memory" in str(ref) or "2**31" in str(ref):
            return  # refused as too large: torch would try (and could exhaust the machine)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if name.startswith("grad."):
                got = None if isinstance(ref, Exception) else _torch_grad(name, args, kwargs,
                                                                          dtype)
                got = None if got is None else (got.detach().numpy(),)
            else:
                got = _torch_call(name, args, kwargs, dtype)
    except Exception as exc:  # noqa: BLE001 - torch's refusals come as RuntimeError too
        got = exc
    if got is None:
        return
    TORCH_SEEN[name] += 1
    if isinstance(ref, Exception) or isinstance(got, Exception):
        if isinstance(ref, Exception) != isinstance(got, Exception):
            TORCH_DIFFS.append((name, "refusal", repr(ref)[:200], repr(got)[:200],
                                _describe(args, kwargs)))
        return
    for g, e in zip(got, _tuple(ref)):
        ok = g.shape == e.shape and (
            np.array_equal(g, e) if e.dtype.kind != "f" else np.allclose(
                g, e, rtol=1e-3 if e.dtype == np.float32 else 1e-9,
                atol=1e-3 * (1 + float(np.abs(e[np.isfinite(e)]).max(initial=0))),
                equal_nan=True))
        if not ok:
            TORCH_DIFFS.append((name, "values", e.shape, g.shape, _describe(args, kwargs)))
            return


def _describe(args, kwargs):
    def d(a):
        if isinstance(a, np.ndarray):
            return f"array{a.shape}:{a.dtype}:strides{a.strides}"
        return repr(a)
    return "(" + ", ".join(d(a) for a in args) + ")" + repr(kwargs)


def _tuple(r):
    return r if isinstance(r, tuple) else (r,)


def check(name, f, args, kwargs):
    """One fuzz case: every backend agrees with the reference (values or ValueError/TypeError)."""
    no_backend = name in NO_BACKEND
    if TRACE:  # the case on disk before any call: a reproducer if the process dies
        with open(TRACE, "wb") as fh:
            pickle.dump((name, args, kwargs), fh)
    ref = _outcome(f, args, kwargs if no_backend else {**kwargs, "backend": "numpy"})
    if isinstance(ref, Exception):
        OUTCOMES[name, type(ref).__name__] += 1
    else:
        OUTCOMES[name, "result"] += 1
    if TORCH:
        torch_check(name, args, kwargs, ref)
    if no_backend:
        return
    for b in COMPILED:
        got = _outcome(f, args, {**kwargs, "backend": b})
        where = f"{name} backend={b}"
        if isinstance(ref, Exception):
            assert isinstance(got, type(ref)), (where, ref, got)
            continue
        assert not isinstance(got, Exception), (where, got)
        for g, e in zip(_tuple(got), _tuple(ref)):
            assert isinstance(g, np.ndarray) and g.shape == e.shape and g.dtype == e.dtype, \
                (where, getattr(g, "shape", g), e.shape)
            if e.dtype.kind in "fc":  # complex results: the same tolerance per component
                tol = 1e-3 if e.dtype in (np.float32, np.complex64) else 1e-9
                scale = 1.0 + float(np.abs(e[np.isfinite(e)]).max(initial=0.0))
                np.testing.assert_allclose(g, e, rtol=tol, atol=tol * scale, equal_nan=True,
                                           err_msg=where)
            else:
                np.testing.assert_array_equal(g, e, err_msg=where)


@settings(max_examples=200, deadline=None, database=None, derandomize=False,
          suppress_health_check=list(HealthCheck))
@given(calls())
def fuzz_one(case):
    check(*case)


def run(seconds: float, seed: int | None = None, out=sys.stdout) -> collections.Counter:
    """Fuzz for about ``seconds`` (in rounds of 200 cases); return the outcome counts."""
    OUTCOMES.clear()
    end = time.monotonic() + seconds
    rnd = 0
    while time.monotonic() < end:
        test = fuzz_one if seed is None else hseed(seed * 100_003 + rnd)(fuzz_one)
        test()
        rnd += 1
    total = sum(OUTCOMES.values())
    print(f"fastconv fuzz: {total} calls ({len(COMPILED) + 1} backends each), {rnd} rounds, "
          f"{seconds:.0f} s budget, backends {BACKENDS}", file=out)
    per = collections.defaultdict(dict)
    for (name, what), n in OUTCOMES.items():
        per[name][what] = n
    for name in sorted(per):
        print(f"  {name:22s} " + ", ".join(f"{k} {v}" for k, v in sorted(per[name].items())),
              file=out)
    return OUTCOMES


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=None, help="reproducible rounds")
    p.add_argument("--torch", action="store_true",
                   help="also compare the reference with torch.nn.functional (a report)")
    a = p.parse_args(argv)
    global TORCH
    TORCH = a.torch
    try:
        run(a.seconds, a.seed)
    except Exception:  # hypothesis has printed the shrunk failing case
        import traceback

        traceback.print_exc()
        return 1
    finally:
        if TORCH:
            print(f"torch cross-check: {sum(TORCH_SEEN.values())} calls, "
                  f"{len(TORCH_DIFFS)} differences")
            for diff in TORCH_DIFFS[:int(os.environ.get("FASTCONV_FUZZ_SHOW", "40"))]:
                print("  ", *diff)
    return 0


if __name__ == "__main__":
    sys.exit(main())
