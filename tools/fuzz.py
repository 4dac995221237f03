"""Fuzz fastconv's public API with hypothesis: random shapes, dtypes, strides, paddings,
dilations, groups, modes and the wrong types for each. Every call must either return the
NumPy reference's result (same shape, dtype and values, NaN where it has NaN) on every
backend, or raise ValueError/TypeError on every backend, as the reference does. Anything else
(another exception, a different result, a crash) is a failure, printed with a reproducer.

    python tools/fuzz.py --seconds 60            # the bounded CI run (tests/test_fuzz.py)
    python tools/fuzz.py --seconds 3600 --seed 1 # a longer run; vary --seed between runs

Prints the number of calls and their outcomes per function. Exit status 1 on a failure.
"""

from __future__ import annotations

import argparse
import collections
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

small_int = st.integers(1, 3)
maybe_int = st.one_of(*[small_int] * 12, S.any_int_arg)
padding_arg = st.one_of(*[st.integers(0, 2)] * 10, st.sampled_from(["same", "valid"]),
                        S.any_int_arg)


@st.composite
def arrays(draw, ndim_choices, size=None):
    """An array of a drawn ndim (usually a valid one), size and dtype, with some NaN/inf."""
    valid_nd = st.sampled_from(ndim_choices)
    ndim = draw(st.one_of(*[valid_nd] * 9, st.integers(0, 5)))
    size = st.one_of(*[st.integers(3, 9)] * 18, st.integers(0, 2)) if size is None else size
    shape = tuple(draw(size) for _ in range(ndim))
    floats = st.sampled_from([np.float32, np.float64])
    dtype = draw(st.one_of(*[floats] * 9, S.any_dtype))
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
def calls(draw):
    """(name, function, args, kwargs), with a ``backend`` keyword where the function has one."""
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


def _outcome(f, args, kwargs):
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return f(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        return exc


def _tuple(r):
    return r if isinstance(r, tuple) else (r,)


def check(name, f, args, kwargs):
    """One fuzz case: every backend agrees with the reference (values or ValueError/TypeError)."""
    no_backend = name == "grad.conv2d_bias"
    ref = _outcome(f, args, kwargs if no_backend else {**kwargs, "backend": "numpy"})
    if isinstance(ref, Exception):
        OUTCOMES[name, type(ref).__name__] += 1
    else:
        OUTCOMES[name, "result"] += 1
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
            if e.dtype.kind == "f":
                tol = 1e-3 if e.dtype == np.float32 else 1e-9
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
    a = p.parse_args(argv)
    try:
        run(a.seconds, a.seed)
    except Exception:  # hypothesis has printed the shrunk failing case
        import traceback

        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
