"""Issue 15, item 3: every algorithm keeps the inf/NaN pattern, and none overflows early.

Winograd F(2x2, 3x3) used to turn one inf pixel or weight into NaN over whole tiles and all
filters (inf - inf in its transforms), and to overflow inside its transforms at |x| of about
FLT_MAX / 4 where the direct sum stays finite. Now ``fastconv._cy_conv`` checks the values at
run time (``winograd_safe``) and runs the direct kernel on non-finite or huge data; a layer
picks Winograd from its shapes alone (``algorithm``).

For every algorithm ``auto`` can pick (Cython: Winograd, the register-blocked direct kernel,
the strided row kernel, the one-plane depthwise kernel, im2col + GEMM, pointwise GEMM; Numba:
its GEMM, stride-1 flat and strided direct kernels), with +inf, -inf and NaN in the input, the
weights and the bias, and with values near the dtype's largest, the result has torch's and
the NumPy reference's inf/NaN pattern exactly and their values to rounding.

torch is run with oneDNN off: its float32 oneDNN kernels skip the taps that fall in the zero
padding, so there an inf weight gives inf where torch's own float64 and im2col paths (and
fastconv's contract: padding is zeros that are multiplied) give inf * 0 = NaN.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastconv
from fastconv import _plan, reference

from conftest import BACKENDS, FLOATS, assert_close

try:
    from fastconv import _cy_conv as cy
except ImportError:  # the Cython backend is not built: its own tests skip
    cy = None

COMPILED = [b for b in BACKENDS if b != "numpy"]
needs_cy = pytest.mark.skipif(cy is None, reason="the Cython backend is not built")

# name: ((N, C, H, W, K, groups, (kh, kw), stride, pad, dilation), Cython's algorithm)
# Numba runs GEMM on winograd and pointwise, its stride-1 flat kernel on direct and
# depthwise, and its strided direct kernel on direct-rows and gemm.
LAYERS = {
    "winograd": ((1, 32, 32, 32, 32, 1, (3, 3), 1, 1, 1), "winograd"),  # 256 tiles
    "direct": ((2, 4, 16, 16, 6, 1, (3, 3), 1, 1, 1), "direct"),      # framed, fc_taps_out
    "direct-rows": ((1, 4, 10, 9, 8, 1, (1, 1), 2, 1, 1), "direct"),  # stride > kernel
    "depthwise": ((2, 3, 20, 40, 3, 3, (3, 3), 1, 1, 1), "direct"),   # fc_plane
    "gemm": ((2, 16, 12, 12, 32, 1, (1, 1), 2, 1, 1), "gemm"),
    "pointwise": ((1, 32, 8, 8, 8, 1, (1, 1), 1, 0, 1), "pointwise"),
}
INF, NAN = np.inf, np.nan
# (array, values put at two places of it)
POISONS = [("x", (INF, INF)), ("x", (-INF, -INF)), ("x", (NAN, NAN)), ("x", (INF, -INF)),
           ("w", (INF, INF)), ("w", (-INF, -INF)), ("w", (NAN, NAN)), ("w", (INF, -INF)),
           ("b", (INF, NAN))]


def _geometry(case):
    N, C, H, W, K, g, (kh, kw), s, p, d = case
    Ho = (H + 2 * p - d * (kh - 1) - 1) // s + 1
    Wo = (W + 2 * p - d * (kw - 1) - 1) // s + 1
    return (N, K, Ho, Wo), (s, s), (p, p), (d, d), g


def _data(case, dtype, rng):
    N, C, H, W, K, g, kernel = case[:7]
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C // g) + kernel).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    return x, w, b


def _poison(x, w, b, where, values):
    """Put ``values`` at a corner and in the middle of x, at a corner tap (which meets the
    padding) and a centre tap of w, or at two filters' biases."""
    N, C, H, W = x.shape
    K, Cg, kh, kw = w.shape
    if where == "x":
        x[0, 0, 0, 0], x[N - 1, C - 1, H // 2, W // 3] = values
    elif where == "w":
        w[0, 0, 0, 0], w[K - 1, Cg - 1, kh // 2, kw // 2] = values
    else:
        b[0], b[K - 1] = values


def _torch(x, w, b, stride, pad, dil, g):
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the mkldnn flags warn about TF32 on Intel GPUs
        with torch.backends.mkldnn.flags(enabled=False):
            return torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w),
                                              torch.from_numpy(b), stride, pad, dil,
                                              g).numpy()


def _reference(x, w, b, oshape, stride, pad, dil, g):
    with np.errstate(invalid="ignore", over="ignore"):
        return reference.conv2d(x, w, b, np.empty(oshape, x.dtype), stride, pad, dil, g)


def _check(got, expected, terms, scale=1.0):
    """The same NaN, +inf and -inf positions exactly, the finite values to rounding."""
    for where in (np.isnan, np.isposinf, np.isneginf):
        bad = where(got) != where(expected)
        assert not bad.any(), (f"{where.__name__} differs at {bad.sum()} of {bad.size} "
                               f"outputs, first at {np.argwhere(bad)[0]}")
    assert_close(got, expected.astype(got.dtype), terms=terms, scale=scale)


def test_issue15_layers_reach_every_algorithm():
    """The layers above are the ones each algorithm runs (so the tests below cover all)."""
    if cy is not None:
        for case, algo in LAYERS.values():
            N, C, H, W, K, g, kernel = case[:7]
            oshape, stride, pad, dil, g = _geometry(case)
            assert _plan.conv2d("cython", (N, C, H, W), (K, C // g) + kernel, oshape, stride,
                                pad, dil, g) == algo, case
        assert {a for _, a in LAYERS.values()} == {"winograd", "direct", "gemm", "pointwise"}
    if "numba" in COMPILED:
        paths = {("gemm" if _plan.conv2d("numba", (c[0], c[1], c[2], c[3]),
                                          (c[4], c[1] // c[5]) + c[6], _geometry(c)[0],
                                          *_geometry(c)[1:]) == "gemm" else
                  "flat" if c[7] == 1 else "strided") for c, _ in LAYERS.values()}
        assert paths == {"gemm", "flat", "strided"}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("poison", POISONS, ids=[f"{p[0]}{p[1]}" for p in POISONS])
@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("backend", COMPILED)
def test_issue15_nonfinite_pattern_matches_torch_and_reference(backend, layer, poison, dtype,
                                                               rng):
    case = LAYERS[layer][0]
    oshape, stride, pad, dil, g = _geometry(case)
    x, w, b = _data(case, dtype, rng)
    _poison(x, w, b, *poison)
    got = fastconv.conv2d(x, w, b, stride, pad, dil, g, backend=backend)
    terms = int(np.prod(w.shape[1:]))
    _check(got, _torch(x, w, b, stride, pad, dil, g), terms)
    _check(got, _reference(x, w, b, oshape, stride, pad, dil, g), terms)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("backend", COMPILED)
def test_issue15_near_max_values_stay_finite(backend, layer, dtype, rng):
    """|x| up to 0.3 of the dtype's largest value, weights small enough that every output
    (every partial sum of the direct kernel) stays below a quarter of it: all finite, as in
    torch and the reference. Winograd's input transform alone would reach 1.2x the largest
    value (4 inputs per transformed value)."""
    case = LAYERS[layer][0]
    oshape, stride, pad, dil, g = _geometry(case)
    big = float(np.finfo(dtype).max)
    x, w, b = _data(case, dtype, rng)
    terms = int(np.prod(w.shape[1:]))
    X, Wm = 0.3 * big, 0.25 / (terms * 0.3)
    x = (rng.uniform(-1, 1, x.shape) * X).astype(dtype)
    w = (rng.uniform(-1, 1, w.shape) * Wm).astype(dtype)
    got = fastconv.conv2d(x, w, b, stride, pad, dil, g, backend=backend)
    assert np.isfinite(got).all()
    _check(got, _torch(x, w, b, stride, pad, dil, g), terms, scale=X * Wm)
    _check(got, _reference(x, w, b, oshape, stride, pad, dil, g), terms, scale=X * Wm)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("backend", COMPILED)
def test_issue15_overflowing_sums_are_inf(backend, layer, dtype, rng):
    """Positive inputs near the largest value and weights that make any two products
    overflow: every output whose window sees the input is +inf (no NaN: all terms are
    positive, so no inf - inf in any order), the others are the bias."""
    case = LAYERS[layer][0]
    oshape, stride, pad, dil, g = _geometry(case)
    big = float(np.finfo(dtype).max)
    x, w, b = _data(case, dtype, rng)
    x = (rng.uniform(0.5, 1, x.shape) * big / 2).astype(dtype)
    w = rng.uniform(2, 4, w.shape).astype(dtype)
    got = fastconv.conv2d(x, w, b, stride, pad, dil, g, backend=backend)
    expected = _torch(x, w, b, stride, pad, dil, g)
    assert np.isposinf(expected).any()
    terms = int(np.prod(w.shape[1:]))
    _check(got, expected, terms)
    _check(got, _reference(x, w, b, oshape, stride, pad, dil, g), terms)


@needs_cy
@pytest.mark.parametrize("dtype", FLOATS)
def test_issue15_winograd_safe_bound(dtype, rng):
    """winograd_safe: True on ordinary data and up to its bound
    max(4 X, 2.25 Wm, 81 C X Wm + Bm) <= max / 2, where the forced Winograd kernel then
    really runs and stays finite and accurate; False beyond the bound and on any inf/NaN."""
    case = LAYERS["winograd"][0]
    oshape, stride, pad, dil, g = _geometry(case)
    x, w, b = _data(case, dtype, rng)
    C = x.shape[1]
    half = float(np.finfo(dtype).max) / 2
    assert cy.winograd_safe(x, w, b)
    # at 0.9 of the bound, with inputs and weights of the largest magnitude everywhere
    X = 0.25 * half
    Wm = 0.9 / (81 * C * 0.25)
    xs = (np.sign(rng.standard_normal(x.shape)) * X).astype(dtype)
    ws = (np.sign(rng.standard_normal(w.shape)) * Wm).astype(dtype)
    bs = np.zeros_like(b)
    assert cy.winograd_safe(xs, ws, bs, 2)
    got = cy.conv2d(xs, ws, bs, np.empty(oshape, dtype), stride, pad, dil, g, "winograd", 2)
    assert np.isfinite(got).all()
    expected = _reference(xs.astype(np.float64), ws.astype(np.float64),
                          bs.astype(np.float64), oshape, stride, pad, dil, g)
    assert_close(got, expected.astype(dtype), terms=9 * C, scale=X * Wm)
    # inputs near the largest value with tiny weights: 81 C X alone would overflow float64
    assert cy.winograd_safe((x * 0 + 0.2 * half).astype(dtype), (w * 1e-6).astype(dtype), b)
    # beyond it: the products (by 1.2x), the inputs alone (4 X), the weights alone, the bias
    assert not cy.winograd_safe(xs, (ws * 1.2).astype(dtype), bs, 2)
    assert not cy.winograd_safe((x * 0 + 0.6 * half).astype(dtype), w * 0, b)
    assert not cy.winograd_safe(x * 0, (w * 0 + half / 2).astype(dtype), b)
    assert not cy.winograd_safe(x, w, (b * 0 + 1.01 * half).astype(dtype))
    for where in ("x", "w", "b"):
        for v in (INF, -INF, NAN):
            xp, wp, bp = x.copy(), w.copy(), b.copy()
            {"x": xp, "w": wp, "b": bp}[where].flat[-1] = v
            assert not cy.winograd_safe(xp, wp, bp, 2), (where, v)


@needs_cy
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("poison", POISONS[:3] + POISONS[4:7] + ["huge"])
def test_issue15_forced_winograd_runs_the_direct_kernel(poison, dtype, rng):
    """conv2d forced to "winograd" on data winograd_safe refuses is the direct kernel, bit
    for bit, on any number of threads."""
    case = LAYERS["winograd"][0]
    oshape, stride, pad, dil, g = _geometry(case)
    x, w, b = _data(case, dtype, rng)
    if poison == "huge":
        x *= dtype(0.2 * float(np.finfo(dtype).max))  # 4 |x| would overflow
    else:
        _poison(x, w, b, *poison)
    assert not cy.winograd_safe(x, w, b)
    direct = cy.conv2d(x, w, b, np.empty(oshape, dtype), stride, pad, dil, g, "direct", 2)
    for nthreads in (1, 2, 3):
        with fastconv._threads.blas_single_threaded():
            got = cy.conv2d(x, w, b, np.empty(oshape, dtype), stride, pad, dil, g,
                            "winograd", nthreads)
        np.testing.assert_array_equal(got, direct)


@pytest.mark.parametrize("backend", COMPILED)
def test_issue15_input_gradient_keeps_nonfinite(backend, rng):
    """The stride-1 input gradient is a forward convolution (Cython runs it through conv2d,
    which picks Winograd on this layer): an inf in grad_output gives torch's pattern."""
    torch = pytest.importorskip("torch")
    x, w, b = _data(LAYERS["winograd"][0], np.float32, rng)
    gy = rng.standard_normal(x.shape[:1] + w.shape[:1] + x.shape[2:]).astype(np.float32)
    gy[0, 3, 5, 7] = INF
    gy[0, 9, 20, 20] = NAN
    got = fastconv.grad.conv2d_input(x.shape, w, gy, padding=1, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.backends.mkldnn.flags(enabled=False):
            expected = torch.nn.grad.conv2d_input(x.shape, torch.from_numpy(w),
                                                  torch.from_numpy(gy), padding=1).numpy()
    _check(got, expected, terms=9 * w.shape[0])
