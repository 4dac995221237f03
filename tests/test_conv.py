"""conv1d / conv2d: every backend against the NumPy reference and against PyTorch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings

import fastconv

import strategies as S
from conftest import BACKENDS, FLOATS, LAYOUTS, Unchanged, assert_close, layout

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

# (N, C, K, groups, kernel, stride, padding, dilation): together they cover batch 1-3,
# channels 1-6, grouped and depthwise, kernels 1-5 square and not, stride 1-3 (and stride
# larger than the kernel), int/pair/'same'/'valid' padding (odd 'same' leftovers included)
# and dilation 1-2.
CONV2D_GRID = [
    (1, 1, 1, 1, (1, 1), 1, 0, 1),
    (2, 3, 4, 1, (3, 3), 1, 1, 1),
    (3, 4, 6, 2, (2, 3), 2, (1, 2), 1),
    (1, 6, 6, 6, (5, 5), 1, "same", 2),
    (2, 6, 3, 3, (4, 1), 3, "valid", (2, 1)),
    (1, 2, 5, 1, (5, 2), (1, 3), 2, 2),
    (2, 5, 5, 5, (2, 4), 1, "same", 1),
    (3, 1, 2, 1, (1, 4), 3, (0, 1), (1, 2)),
    (1, 4, 2, 2, (3, 3), (3, 2), 1, (2, 1)),
    (2, 2, 2, 1, (1, 1), 3, "valid", 1),  # stride > kernel: some inputs are never read
]
# (N, C, K, groups, kernel, stride, padding, dilation) for conv1d
CONV1D_GRID = [
    (1, 1, 1, 1, 1, 1, 0, 1),
    (2, 3, 4, 1, 3, 1, 1, 1),
    (3, 4, 6, 2, 2, 2, 2, 1),
    (1, 6, 6, 6, 5, 1, "same", 2),
    (2, 6, 3, 3, 4, 3, "valid", 2),
    (1, 2, 5, 1, 4, 1, "same", 1),
    (2, 2, 2, 2, 5, 2, (3,), 2),
]
H, W, L = 9, 11, 13


def _ids(grid):
    return [f"g{i}" for i in range(len(grid))]


def _make(rng, x_shape, w_shape, dtype, bias=True):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    return x, w, b


def _terms(w_shape):
    return int(np.prod(w_shape[1:]))


# --------------------------------------------------------------------------------------------
# the grid: every backend against the reference
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("case", CONV2D_GRID, ids=_ids(CONV2D_GRID))
def test_conv2d_grid_matches_reference(backend, case, padding_mode, dtype, rng):
    N, C, K, g, kernel, stride, padding, dilation = case
    x, w, b = _make(rng, (N, C, H, W), (K, C // g) + kernel, dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=g,
              padding_mode=padding_mode)
    keep = Unchanged(x, w, b)
    expected = fastconv.conv2d(x, w, b, backend="numpy", **kw)
    got = fastconv.conv2d(x, w, b, backend=backend, **kw)
    keep.check()
    assert_close(got, expected, terms=_terms(w.shape))
    assert got.dtype == dtype


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("case", CONV1D_GRID, ids=_ids(CONV1D_GRID))
def test_conv1d_grid_matches_reference(backend, case, padding_mode, dtype, rng):
    N, C, K, g, k, stride, padding, dilation = case
    x, w, b = _make(rng, (N, C, L), (K, C // g, k), dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=g,
              padding_mode=padding_mode)
    keep = Unchanged(x, w, b)
    expected = fastconv.conv1d(x, w, b, backend="numpy", **kw)
    got = fastconv.conv1d(x, w, b, backend=backend, **kw)
    keep.check()
    assert_close(got, expected, terms=_terms(w.shape))


@pytest.mark.parametrize("nd", [1, 2])
def test_conv_unbatched_and_no_bias(backend, nd, rng):
    x_shape = (3, L) if nd == 1 else (3, H, W)
    w_shape = (4, 3) + (3,) * nd
    x, w, _ = _make(rng, x_shape, w_shape, np.float64, bias=False)
    f = fastconv.conv1d if nd == 1 else fastconv.conv2d
    got = f(x, w, padding=1, backend=backend)
    batched = f(x[None], w, padding=1, backend="numpy")
    assert_close(got, batched[0], terms=_terms(w_shape))
    # bias=None is a zero bias
    assert_close(got, f(x, w, np.zeros(4), padding=1, backend="numpy"), terms=_terms(w_shape))


# larger shapes: many channels and filters per group (where a backend may switch to im2col +
# GEMM, in one tile or several), and tall images (many blocks of output rows)
# (N, C, K, groups, kernel, stride, padding, dilation, H, W)
CONV2D_LARGE = [
    (2, 4, 8, 1, (3, 3), 1, 1, 1, 9, 11),
    (1, 16, 16, 2, (3, 3), (2, 1), (1, 2), (2, 1), 12, 13),
    (1, 64, 8, 1, (3, 3), 1, 1, 1, 22, 66),
    (2, 32, 16, 1, (1, 1), 1, 0, 1, 10, 10),
    (1, 8, 32, 4, (5, 4), 3, "valid", 1, 23, 17),
    (2, 2, 3, 1, (3, 2), 1, 2, 1, 150, 7),
    (1, 3, 2, 1, (2, 5), 1, "same", 2, 130, 9),
    (1, 2, 2, 2, (3, 3), 2, 1, 1, 140, 150),
    # no padding, stride 1: windows read in place (Numba's flat im2col tiles)
    (2, 16, 16, 2, (3, 3), 1, 0, (2, 1), 30, 40),
    (1, 64, 8, 1, (3, 3), 1, "valid", 1, 6, 600),  # one output row per im2col tile
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", CONV2D_LARGE, ids=_ids(CONV2D_LARGE))
def test_conv2d_larger_shapes_match_reference(backend, case, dtype, rng):
    N, C, K, g, kernel, stride, padding, dilation, h, w_ = case
    x, w, b = _make(rng, (N, C, h, w_), (K, C // g) + kernel, dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=g)
    expected = fastconv.conv2d(x.astype(np.float64), w.astype(np.float64),
                               b.astype(np.float64), backend="numpy", **kw)
    got = fastconv.conv2d(x, w, b, backend=backend, **kw)
    assert_close(got, expected.astype(dtype), terms=_terms(w.shape))


@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_conv2d_input_layouts(backend, kind, dtype, rng):
    """Fortran, strided, negative-stride and read-only inputs give the contiguous result."""
    x, w, b = _make(rng, (2, 4, 7, 8), (6, 2, 3, 2), dtype)
    kw = dict(stride=(1, 2), padding=(1, 0), groups=2)
    expected = fastconv.conv2d(x, w, b, backend="numpy", **kw)
    xl, wl, bl = layout(x, kind), layout(w, kind), layout(b, kind)
    keep = Unchanged(xl, wl, bl)
    got = fastconv.conv2d(xl, wl, bl, backend=backend, **kw)
    keep.check()
    assert_close(got, expected, terms=_terms(w.shape))


@pytest.mark.parametrize("kind", LAYOUTS)
def test_conv1d_input_layouts(backend, kind, rng):
    x, w, b = _make(rng, (2, 3, 10), (2, 3, 4), np.float32)
    expected = fastconv.conv1d(x, w, b, padding=2, padding_mode="reflect", backend="numpy")
    xl, wl, bl = layout(x, kind), layout(w, kind), layout(b, kind)
    keep = Unchanged(xl, wl, bl)
    got = fastconv.conv1d(xl, wl, bl, padding=2, padding_mode="reflect", backend=backend)
    keep.check()
    assert_close(got, expected, terms=_terms(w.shape))


def test_conv2d_size_one_and_kernel_equals_input(backend, rng):
    x, w, b = _make(rng, (1, 1, 1, 1), (1, 1, 1, 1), np.float64)
    assert_close(fastconv.conv2d(x, w, b, backend=backend), x * w[0, 0] + b[0])
    # a kernel covering the whole input: one output, the full dot product
    x, w, b = _make(rng, (2, 3, 4, 5), (2, 3, 4, 5), np.float64)
    got = fastconv.conv2d(x, w, b, backend=backend)
    expected = np.einsum("nchw,kchw->nk", x, w)[:, :, None, None] + b[:, None, None]
    assert_close(got, expected, terms=60)


def test_conv_nan_and_inf_propagate_like_reference(backend, rng):
    x, w, b = _make(rng, (2, 2, 6, 7), (3, 2, 3, 3), np.float64)
    x[0, 0, 2, 3] = np.nan
    x[1, 1, 0, 0] = np.inf
    x[1, 0, 5, 6] = -np.inf
    for kw in (dict(), dict(padding=1), dict(stride=2, dilation=2, padding=2)):
        expected = fastconv.conv2d(x, w, b, backend="numpy", **kw)
        got = fastconv.conv2d(x, w, b, backend=backend, **kw)
        assert np.isnan(expected).any() or "stride" in kw  # strided: the NaN may be skipped
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        assert_close(got, expected, terms=18)


# --------------------------------------------------------------------------------------------
# golden cases, computed by hand
# --------------------------------------------------------------------------------------------
def test_conv1d_golden(backend):
    x = np.array([[[0.0, 3.0, 2.0, 0.0, 0.0]]], np.float32)
    w = np.array([[[1.0, -1.0]]], np.float32)
    got = fastconv.conv1d(x, w, backend=backend)
    assert_close(got, np.array([[[-3.0, 1.0, 2.0, 0.0]]], np.float32))
    # a stride-2, padding-1, dilation-2 window over [1, 2, 3, 4, 5]: taps at i-1, i+1
    x = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    got = fastconv.conv1d(x, np.array([[[10.0, 1.0]]]), np.array([0.5]), stride=2, padding=1,
                          dilation=2, backend=backend)
    # windows start at -1, 1, 3: (0*10 + 2), (2*10 + 4), (4*10 + 0)
    assert_close(got, np.array([[2.5, 24.5, 40.5]]))


def test_conv2d_golden(backend):
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    w = np.ones((2, 1, 3, 3), np.float32)
    got = fastconv.conv2d(x, w, backend=backend)
    assert_close(got[0, 0], np.array([[45.0, 54.0], [81.0, 90.0]], np.float32))
    # 'same' with an even kernel: the odd leftover pad goes to the end (as PyTorch)
    w = np.ones((1, 1, 2, 2), np.float32)
    got = fastconv.conv2d(x, w, padding="same", backend=backend)
    expected = np.array([[10, 14, 18, 10], [26, 30, 34, 18], [42, 46, 50, 26],
                         [25, 27, 29, 15]], np.float32)
    assert_close(got[0, 0], expected)
    # grouped: each output channel sees only its own group's input
    x = np.stack([np.ones((3, 3)), 2 * np.ones((3, 3))])[None]
    w = np.ones((2, 1, 3, 3))
    assert_close(fastconv.conv2d(x, w, groups=2, backend=backend),
                 np.array([[[[9.0]], [[18.0]]]]))


def test_conv2d_padding_modes_golden(backend):
    x = np.array([[[[1.0, 2.0, 3.0]]]])
    w = np.array([[[[1.0, 10.0, 100.0]]]])  # out[j] = p[j] + 10 p[j+1] + 100 p[j+2]
    pads = {"zeros": [0, 1, 2, 3, 0], "reflect": [2, 1, 2, 3, 2],
            "replicate": [1, 1, 2, 3, 3], "circular": [3, 1, 2, 3, 1]}
    for mode, p in pads.items():
        expected = [p[j] + 10 * p[j + 1] + 100 * p[j + 2] for j in range(3)]
        got = fastconv.conv2d(x, w, padding=(0, 1), padding_mode=mode, backend=backend)
        assert_close(got, np.array(expected, float).reshape(1, 1, 1, 3))


# --------------------------------------------------------------------------------------------
# hypothesis: random valid calls, every backend against the reference
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend_name", BACKENDS)
@settings(max_examples=25, deadline=None)
@given(args=S.conv_args(nd=2), dtype=S.dtypes, seed=S.seeds)
def test_conv2d_hypothesis_matches_reference(backend_name, args, dtype, seed):
    x_shape, w_shape, has_bias, kw = args
    x, w, b = _make(np.random.default_rng(seed), x_shape, w_shape, dtype, has_bias)
    keep = Unchanged(x, w, b)
    expected = fastconv.conv2d(x, w, b, backend="numpy", **kw)
    got = fastconv.conv2d(x, w, b, backend=backend_name, **kw)
    keep.check()
    assert_close(got, expected, terms=_terms(w_shape))


@pytest.mark.parametrize("backend_name", BACKENDS)
@settings(max_examples=20, deadline=None)
@given(args=S.conv_args(nd=1), dtype=S.dtypes, seed=S.seeds)
def test_conv1d_hypothesis_matches_reference(backend_name, args, dtype, seed):
    x_shape, w_shape, has_bias, kw = args
    x, w, b = _make(np.random.default_rng(seed), x_shape, w_shape, dtype, has_bias)
    expected = fastconv.conv1d(x, w, b, backend="numpy", **kw)
    got = fastconv.conv1d(x, w, b, backend=backend_name, **kw)
    assert_close(got, expected, terms=_terms(w_shape))


# --------------------------------------------------------------------------------------------
# against PyTorch (torch.nn.Conv{1,2}d semantics, padding modes included)
# --------------------------------------------------------------------------------------------
def _torch_conv(x, w, b, nd, stride, padding, dilation, groups, padding_mode):
    """torch.nn.functional.conv{nd}d, the non-zero padding modes applied with F.pad first,
    exactly as torch.nn.Conv{nd}d(padding_mode=...) does."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    conv = F.conv1d if nd == 1 else F.conv2d
    tx, tw = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(w))
    tb = None if b is None else torch.from_numpy(np.ascontiguousarray(b))
    unbatched = x.ndim == nd + 1
    if unbatched:
        tx = tx[None]
    if padding_mode != "zeros":
        ks = w.shape[2:]
        dil = (dilation,) * nd if isinstance(dilation, int) else tuple(dilation)
        if padding == "same":
            pairs = [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(ks, dil)]
        elif padding == "valid":
            pairs = [(0, 0)] * nd
        else:
            pads = (padding,) * nd if isinstance(padding, int) else tuple(padding)
            pairs = [(p, p) for p in pads]
        flat = [v for pair in reversed(pairs) for v in pair]  # F.pad: last axis first
        tx = F.pad(tx, flat, mode=padding_mode)
        padding = 0
    with warnings.catch_warnings():  # torch warns about 'same' with even kernels
        warnings.simplefilter("ignore")
        res = conv(tx, tw, tb, stride=stride, padding=padding, dilation=dilation,
                   groups=groups)
    if unbatched:
        res = res[0]
    return res.numpy()


def _check_torch(nd, backend, x, w, b, kw):
    expected = _torch_conv(x, w, b, nd, **kw)
    f = fastconv.conv1d if nd == 1 else fastconv.conv2d
    got = f(x, w, b, backend=backend, **kw)
    assert_close(got, expected, terms=_terms(w.shape))


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("case", CONV2D_GRID, ids=_ids(CONV2D_GRID))
def test_conv2d_matches_torch(backend, case, padding_mode, rng):
    N, C, K, g, kernel, stride, padding, dilation = case
    x, w, b = _make(rng, (N, C, H, W), (K, C // g) + kernel, np.float64)
    _check_torch(2, backend, x, w, b, dict(stride=stride, padding=padding, dilation=dilation,
                                           groups=g, padding_mode=padding_mode))


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("case", CONV1D_GRID, ids=_ids(CONV1D_GRID))
def test_conv1d_matches_torch(backend, case, padding_mode, rng):
    N, C, K, g, k, stride, padding, dilation = case
    x, w, b = _make(rng, (N, C, L), (K, C // g, k), np.float32)
    _check_torch(1, backend, x, w, b, dict(stride=stride, padding=padding, dilation=dilation,
                                           groups=g, padding_mode=padding_mode))


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_conv2d_matches_torch_module(backend, padding_mode, rng):
    """Against torch.nn.Conv2d itself, the definition of padding_mode= ('same' included)."""
    torch = pytest.importorskip("torch")
    for kernel, padding, dilation in [((3, 2), "same", 1), ((3, 3), (2, 1), (1, 2)),
                                      ((2, 5), "same", 2)]:
        x, w, b = _make(rng, (2, 4, 8, 9), (6, 2) + kernel, np.float64)
        m = torch.nn.Conv2d(4, 6, kernel, padding=padding, dilation=dilation, groups=2,
                            padding_mode=padding_mode).double()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.weight.copy_(torch.from_numpy(w))
            m.bias.copy_(torch.from_numpy(b))
            expected = m(torch.from_numpy(x)).numpy()
        got = fastconv.conv2d(x, w, b, padding=padding, dilation=dilation, groups=2,
                              padding_mode=padding_mode, backend=backend)
        assert_close(got, expected, terms=_terms(w.shape))


@settings(max_examples=25, deadline=None)
@given(args=S.conv_args(nd=2), seed=S.seeds)
def test_conv2d_hypothesis_matches_torch(args, seed):
    pytest.importorskip("torch")
    x_shape, w_shape, has_bias, kw = args
    x, w, b = _make(np.random.default_rng(seed), x_shape, w_shape, np.float64, has_bias)
    for backend in BACKENDS:
        _check_torch(2, backend, x, w, b, kw)


@settings(max_examples=20, deadline=None)
@given(args=S.conv_args(nd=1), seed=S.seeds)
def test_conv1d_hypothesis_matches_torch(args, seed):
    pytest.importorskip("torch")
    x_shape, w_shape, has_bias, kw = args
    x, w, b = _make(np.random.default_rng(seed), x_shape, w_shape, np.float32, has_bias)
    for backend in BACKENDS:
        _check_torch(1, backend, x, w, b, kw)


# --------------------------------------------------------------------------------------------
# out=
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
def test_conv2d_out_is_filled_and_returned(backend, dtype, rng):
    x, w, b = _make(rng, (2, 3, 6, 5), (4, 3, 3, 3), dtype)
    expected = fastconv.conv2d(x, w, b, padding=1, backend="numpy")
    out = np.full(expected.shape, np.nan, dtype)
    keep = Unchanged(x, w, b)
    res = fastconv.conv2d(x, w, b, padding=1, backend=backend, out=out)
    keep.check()
    assert res is out
    assert_close(out, expected, terms=27)


def test_conv1d_out_is_filled_and_returned_unbatched(backend, rng):
    x, w, b = _make(rng, (3, 9), (2, 3, 4), np.float32)
    expected = fastconv.conv1d(x, w, b, stride=2, backend="numpy")
    out = np.zeros(expected.shape, np.float32)
    res = fastconv.conv1d(x, w, b, stride=2, backend=backend, out=out)
    assert res is out
    assert_close(out, expected, terms=12)


def test_conv_results_are_new_arrays(backend, rng):
    """A result never aliases an input, even when the conv is an identity."""
    x = rng.standard_normal((1, 1, 4, 4))
    w = np.ones((1, 1, 1, 1))
    res = fastconv.conv2d(x, w, backend=backend)
    assert not np.shares_memory(res, x) and not np.shares_memory(res, w)
    assert res.flags.c_contiguous and res.flags.writeable
    np.testing.assert_array_equal(res, x)


# --------------------------------------------------------------------------------------------
# identities
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel", [(3, 3), (2, 4), (5, 1)])
@pytest.mark.parametrize("dtype", FLOATS)
def test_conv2d_circular_same_is_translation_equivariant(backend, kernel, dtype, rng):
    x, w, b = _make(rng, (2, 3, 7, 8), (4, 3) + kernel, dtype)
    kw = dict(padding="same", padding_mode="circular", backend=backend)
    y = fastconv.conv2d(x, w, b, **kw)
    for shift in [(1, 0), (0, 3), (2, -5), (7, 8)]:
        ys = fastconv.conv2d(np.roll(x, shift, axis=(2, 3)), w, b, **kw)
        assert_close(ys, np.roll(y, shift, axis=(2, 3)), terms=_terms(w.shape))


def test_conv1d_circular_same_is_translation_equivariant(backend, rng):
    x, w, b = _make(rng, (2, 3, 11), (2, 3, 4), np.float64)
    kw = dict(padding="same", padding_mode="circular", dilation=2, backend=backend)
    y = fastconv.conv1d(x, w, b, **kw)
    for shift in (1, 4, -3):
        assert_close(fastconv.conv1d(np.roll(x, shift, axis=-1), w, b, **kw),
                     np.roll(y, shift, axis=-1), terms=12)


def test_conv2d_is_linear_in_x_and_weight(backend, rng):
    x1, w1, _ = _make(rng, (2, 2, 6, 6), (3, 2, 3, 3), np.float64, bias=False)
    x2, w2, _ = _make(rng, (2, 2, 6, 6), (3, 2, 3, 3), np.float64, bias=False)
    f = lambda x, w: fastconv.conv2d(x, w, stride=2, padding=1, backend=backend)  # noqa: E731
    assert_close(f(x1 + 2 * x2, w1), f(x1, w1) + 2 * f(x2, w1), terms=18, scale=3)
    assert_close(f(x1, w1 - w2), f(x1, w1) - f(x1, w2), terms=18, scale=3)


@pytest.mark.parametrize("dtype", FLOATS)
def test_conv_results_independent_of_thread_count(backend, dtype, threads, rng):
    x, w, b = _make(rng, (3, 4, 17, 19), (8, 4, 3, 3), dtype)
    x1, w1, b1 = _make(rng, (3, 4, 40), (6, 2, 5), dtype)
    results = []
    for n in (1, 2):
        fastconv.set_num_threads(n)
        results.append((
            fastconv.conv2d(x, w, b, padding=1, backend=backend),
            fastconv.conv2d(x, w, b, stride=2, dilation=2, backend=backend),
            fastconv.conv1d(x1, w1, b1, groups=2, padding="same", backend=backend),
        ))
    assert fastconv.get_num_threads() == 2
    for a, c in zip(*results):
        assert_close(a, c, terms=36)


def test_argument_spellings_are_equivalent(backend, rng):
    """An int, a tuple, a list, a 1-D integer array and NumPy ints mean the same thing."""
    x, w, b = _make(rng, (1, 2, 9, 9), (2, 2, 3, 3), np.float64)
    expected = fastconv.conv2d(x, w, b, stride=(2, 2), padding=(1, 1), dilation=(2, 2),
                               backend="numpy")
    for s, p, d in [(2, 1, 2), ([2, 2], [1, 1], [2, 2]), (np.int64(2), np.int32(1), np.uint8(2)),
                    (np.array([2, 2]), np.array([1, 1]), np.array([2, 2]))]:
        got = fastconv.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=np.int64(1),
                              backend=backend)
        assert_close(got, expected, terms=18)
    # lists for the arrays themselves
    assert_close(fastconv.conv2d(x.tolist(), w.tolist(), b.tolist(), stride=2, padding=1,
                                 dilation=2, backend=backend), expected, terms=18)


# --------------------------------------------------------------------------------------------
# issue 15: long rows run tile by tile (fastconv._tiling). Forced here on small inputs (every
# call tiles, in blocks of 64 output columns or ranges of whole images): a direct kernel
# gives bitwise the untiled result; im2col + GEMM and the reference's einsum agree to
# rounding.
TILED = [  # (x shape, w shape, stride, padding, dilation, groups)
    ((2, 3, 2, 300), (4, 3, 2, 3), (1, 1), (1, 2), (1, 1), 1),    # stride 1, padded
    ((2, 2, 1, 500), (3, 2, 1, 4), (1, 1), (0, 0), (1, 3), 1),    # in place, dilated
    ((2, 4, 5, 333), (4, 2, 3, 3), (2, 2), (1, 1), (1, 1), 2),    # stride phases, groups
    ((1, 1, 1, 700), (1, 1, 1, 7), (1, 7), (0, 0), (1, 1), 1),    # 7 taps, stride 7
    ((1, 3, 2, 400), (2, 3, 1, 2), (1, 3), (0, 1), (1, 1), 1),    # stride > kernel: rows
    ((1, 8, 1, 600), (16, 8, 1, 4), (1, 5), (0, 0), (1, 1), 1),   # im2col + GEMM
    ((1, 16, 1, 300), (16, 16, 1, 3), (1, 1), (0, 1), (1, 1), 1),  # GEMM (Numba), direct
    ((1, 2, 3, 200), (2, 2, 3, 3), (1, 1), (1, 40), (1, 1), 1),   # wide padding
    ((3, 2, 1, 100), (2, 2, 1, 3), (1, 1), (0, 300), (1, 1), 1),  # a block in the padding
    ((1, 2, 1, 900), (2, 2, 1, 5), (1, 1), (0, 3), (1, 2), 1),    # 1-D, few planes: rows
]
_GEMM = {5, 6}  # the cases some backend runs as im2col + GEMM
# kernels without a workspace (per output row): never tiled. 1-D layers with few planes
# (_plan.conv_row: case 9) run the row kernels (Cython's fc_row, Numba's _conv2d_row), whose
# scratch holds one block whatever the row's length.
_NO_WORK = {"cython": {4, 9}, "numba": {2, 3, 4, 9}}


@pytest.mark.parametrize("whole_images", [False, True])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", range(len(TILED)))
def test_issue15_tiled_conv_matches_untiled(backend, case, dtype, whole_images, rng,
                                            monkeypatch):
    from fastconv import _tiling

    xs, ws, stride, padding, dilation, groups = TILED[case]
    x, w, b = _make(rng, xs, ws, dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
              backend=backend)
    untiled = fastconv.conv2d(x, w, b, **kw)
    calls = []
    tiles = _tiling.tiles
    monkeypatch.setattr(_tiling, "LIMIT", 0)
    monkeypatch.setattr(_tiling, "TILE_BYTES", 1 << 40 if whole_images else 0)
    monkeypatch.setattr(_tiling, "tiles", lambda *a: calls.append(tiles(*a)) or calls[-1])
    tiled = fastconv.conv2d(x, w, b, **kw)
    assert bool(calls) != (case in _NO_WORK.get(backend, ())), "tiled or not as expected"
    assert tiled.dtype == dtype
    if backend == "numpy" or (case in _GEMM and not whole_images):  # einsum, GEMM
        assert_close(tiled, untiled, terms=_terms(ws))
    else:
        np.testing.assert_array_equal(tiled, untiled)
    assert_close(tiled, fastconv.conv2d(x, w, b, **dict(kw, backend="numpy")),
                 terms=_terms(ws))


# --------------------------------------------------------------------------------------------
# 1-D layers with few output planes: the row kernels (Cython's fc_row: ranges of the row;
# Numba's _conv2d_row: blocks of it; both over the threads)
# --------------------------------------------------------------------------------------------
ROW_BACKENDS = [b for b in ("cython", "numba") if b in BACKENDS]


def _row_cases():
    """(x shape, w shape, padding, dilation, groups) of 1-D layers that _plan.conv_row sends
    to the row kernels: rows across fc_row's block (64 float32 / 32 float64 outputs) and
    range (ROW_CHUNK_MACS / (C kw) outputs) boundaries and across _conv2d_row's blocks
    (NUMBA_ROW_BLOCK bytes: 2048 float32 / 1024 float64 outputs), padding up to past the
    kernel's reach, dilation (up to far past a block), one filter per group, long kernels;
    a fixed seed."""
    rng = np.random.default_rng(1234)
    cases = [((1, 1, 1000), (1, 1, 11), 5, 1, 1), ((1, 64, 1000), (1, 64, 64), 0, 1, 1),
             ((2, 3, 5), (2, 3, 2), 4, 1, 1), ((1, 1, 130), (1, 1, 300), 299, 1, 1),
             ((1, 4, 777), (4, 1, 7), 3, 2, 4), ((3, 6, 400), (3, 2, 5), 2, 1, 3),
             # dilated past a block: edge blocks copy each tap's values, not the span
             ((1, 2, 300), (1, 2, 5), 200, 100, 1), ((1, 1, 1000), (2, 1, 3), 700, 600, 1),
             # several of Numba's blocks, some inside the row, a kernel longer than a block
             ((1, 1, 9000), (1, 1, 31), 15, 1, 1), ((1, 2, 5000), (1, 2, 2500), 2000, 1, 1),
             ((1, 1, 6000), (2, 1, 4), 3000, 700, 1)]
    while len(cases) < 43:
        N, K = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        C = int(rng.integers(1, 5))
        k, d = int(rng.integers(1, 41)), int(rng.integers(1, 4))
        L = int(rng.integers(1, 700))
        p = int(rng.integers(0, (k - 1) * d + 40))
        if L + 2 * p >= (k - 1) * d + 1:
            cases.append(((N, C, L), (K, C, k), p, d, 1))
    return cases


@pytest.mark.parametrize("backend", ROW_BACKENDS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", range(43))
def test_row_path_matches_reference_for_any_thread_count(case, dtype, backend, rng):
    """The row kernels against the NumPy reference, and bitwise the same on 1 and 2
    threads."""
    from fastconv import _plan

    xs, ws, p, d, g = _row_cases()[case]
    x, w, b = _make(rng, xs, ws, dtype)
    Lo = xs[2] + 2 * p - d * (ws[2] - 1)
    assert _plan.conv_row(xs[:2] + (1, xs[2]), ws[:2] + (1, ws[2]), (xs[0], ws[0], 1, Lo),
                          (1, 1), (0, p), g)
    kw = dict(padding=p, dilation=d, groups=g)
    expected = fastconv.conv1d(x, w, b, backend="numpy", **kw)
    got, before = {}, fastconv.get_num_threads()
    try:
        for nt in (1, 2):
            fastconv.set_num_threads(nt)
            got[nt] = fastconv.conv1d(x, w, b, backend=backend, **kw)
    finally:
        fastconv.set_num_threads(before)
    np.testing.assert_array_equal(got[1], got[2])
    assert_close(got[2], expected, terms=_terms(ws))


@pytest.mark.parametrize("backend", ROW_BACKENDS)
def test_row_path_non_finite_weights_meet_the_padding(backend):
    """An inf weight times the zero padding gives NaN in the row kernels too, as in the
    reference."""
    x = np.arange(1.0, 3001.0)[None, None]
    w = np.array([[[1.0, np.inf, 2.0, -1.0]]])
    for p in (0, 3, 70, 1500):
        expected = fastconv.conv1d(x, w, padding=p, backend="numpy")
        got = fastconv.conv1d(x, w, padding=p, backend=backend)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("stride", [(1, 1), (2, 1), (1, 2)])
def test_one_row_layer_per_image_does_not_depend_on_the_batch(backend, stride, rng):
    """An image's output is bitwise the same alone or in a batch (the Ctrl-C pieces cut
    batches and rely on it), also where the batch size moves a 1-D layer across
    _plan.conv_row's limit of planes."""
    x, w, b = _make(rng, (2, 3, 1, 3000), (3, 3, 1, 7), np.float32)
    kw = dict(stride=stride, padding=(0, 3), backend=backend)
    whole = fastconv.conv2d(x, w, b, **kw)
    for n in range(2):
        np.testing.assert_array_equal(fastconv.conv2d(x[n:n + 1], w, b, **kw), whole[n:n + 1])
