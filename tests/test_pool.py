"""max_pool1d / max_pool2d / avg_pool2d: every backend against the reference and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from numpy.lib.stride_tricks import sliding_window_view

import fastconv

import strategies as S
from conftest import BACKENDS, FLOATS, LAYOUTS, Unchanged, assert_close, layout

# (kernel, stride, padding, dilation, ceil_mode) for max_pool2d: square and not, stride
# default/1-3 (stride > kernel too), padding up to half the kernel, dilation 1-2, ceil_mode
# with a last window that starts in the padding (dropped) or not.
MAX2D_GRID = [
    (1, None, 0, 1, False),
    (2, None, 0, 1, False),
    (2, None, 1, 1, True),
    (3, 2, 1, 1, False),
    (3, 2, 1, 1, True),
    ((2, 3), (1, 2), (1, 0), 1, True),
    ((3, 1), 3, (1, 0), (2, 1), False),
    (3, 1, 1, 2, True),
    (4, 3, 2, 1, True),
    (2, 3, 0, 2, True),
    ((1, 4), (2, 1), (0, 2), (1, 2), False),
]
MAX1D_GRID = [
    (1, None, 0, 1, False),
    (2, None, 0, 1, True),
    (3, 2, 1, 1, True),
    (3, 1, 1, 2, False),
    (4, 3, 2, 2, True),
    (2, 3, 1, 1, True),
]
# (kernel, stride, padding, ceil_mode) for avg_pool2d
AVG2D_GRID = [
    (1, None, 0, False),
    (2, None, 1, True),
    (3, 2, 1, False),
    (3, 2, 1, True),
    ((2, 3), (1, 2), (1, 1), True),
    (4, 3, 2, True),
    ((3, 1), 3, (1, 0), False),
    (2, 3, 0, True),
]
SHAPE2D = (2, 3, 7, 8)
SHAPE1D = (2, 3, 11)


def _ids(grid):
    return [f"g{i}" for i in range(len(grid))]


def _input(rng, shape, dtype, special=False):
    """Random values; with ``special``, NaN, +-inf and many ties sprinkled in."""
    x = rng.standard_normal(shape)
    if special:
        x = np.round(x)  # ties
        r = rng.random(shape)
        x[r < 0.08] = np.nan
        x[(r >= 0.08) & (r < 0.12)] = np.inf
        x[(r >= 0.12) & (r < 0.2)] = -np.inf
    return x.astype(dtype)


def _max_kw(case):
    k, s, p, d, c = case
    return dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=c)


def _avg_kw(case, cip):
    k, s, p, c = case
    return dict(kernel_size=k, stride=s, padding=p, ceil_mode=c, count_include_pad=cip)


def _check_max(got, expected):
    """Values (NaN where expected, exact otherwise) and int64 indices, both equal."""
    (gv, gi), (ev, ei) = got, expected
    assert_close(gv, ev)
    np.testing.assert_array_equal(gv, ev)
    assert gi.dtype == np.int64 and gi.flags.c_contiguous
    np.testing.assert_array_equal(gi, ei)


# --------------------------------------------------------------------------------------------
# the grid: every backend against the reference
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("special", [False, True], ids=["finite", "nan-inf-ties"])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", MAX2D_GRID, ids=_ids(MAX2D_GRID))
def test_max_pool2d_grid_matches_reference(backend, case, dtype, special, rng):
    x = _input(rng, SHAPE2D, dtype, special)
    kw = _max_kw(case)
    keep = Unchanged(x)
    expected = fastconv.max_pool2d(x, return_indices=True, backend="numpy", **kw)
    got = fastconv.max_pool2d(x, return_indices=True, backend=backend, **kw)
    _check_max(got, expected)
    # without indices: the same values
    alone = fastconv.max_pool2d(x, backend=backend, **kw)
    assert_close(alone, expected[0])
    keep.check()


@pytest.mark.parametrize("special", [False, True], ids=["finite", "nan-inf-ties"])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", MAX1D_GRID, ids=_ids(MAX1D_GRID))
def test_max_pool1d_grid_matches_reference(backend, case, dtype, special, rng):
    x = _input(rng, SHAPE1D, dtype, special)
    kw = _max_kw(case)
    keep = Unchanged(x)
    expected = fastconv.max_pool1d(x, return_indices=True, backend="numpy", **kw)
    got = fastconv.max_pool1d(x, return_indices=True, backend=backend, **kw)
    _check_max(got, expected)
    assert_close(fastconv.max_pool1d(x, backend=backend, **kw), expected[0])
    keep.check()


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", AVG2D_GRID, ids=_ids(AVG2D_GRID))
def test_avg_pool2d_grid_matches_reference(backend, case, dtype, count_include_pad, rng):
    x = _input(rng, SHAPE2D, dtype)
    kw = _avg_kw(case, count_include_pad)
    keep = Unchanged(x)
    expected = fastconv.avg_pool2d(x, backend="numpy", **kw)
    got = fastconv.avg_pool2d(x, backend=backend, **kw)
    keep.check()
    assert_close(got, expected, terms=16)


@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_pool_input_layouts(backend, kind, dtype, rng):
    x = _input(rng, SHAPE2D, dtype, special=True)
    xl = layout(x, kind)
    keep = Unchanged(xl)
    kw = dict(kernel_size=(3, 2), stride=(2, 1), padding=1, ceil_mode=True)
    _check_max(fastconv.max_pool2d(xl, return_indices=True, backend=backend, **kw),
               fastconv.max_pool2d(x, return_indices=True, backend="numpy", **kw))
    _check_max(fastconv.max_pool1d(xl[0], 3, 2, 1, return_indices=True, backend=backend),
               fastconv.max_pool1d(x[0], 3, 2, 1, return_indices=True, backend="numpy"))
    xf = _input(rng, SHAPE2D, dtype)
    xfl = layout(xf, kind)
    assert_close(fastconv.avg_pool2d(xfl, backend=backend, **kw),
                 fastconv.avg_pool2d(xf, backend="numpy", **kw), terms=6)
    keep.check()


def test_pool_unbatched(backend, rng):
    x = _input(rng, SHAPE2D, np.float64)
    v, i = fastconv.max_pool2d(x[0], 3, 2, 1, return_indices=True, backend=backend)
    ev, ei = fastconv.max_pool2d(x, 3, 2, 1, return_indices=True, backend="numpy")
    _check_max((v, i), (ev[0], ei[0]))
    assert_close(fastconv.avg_pool2d(x[0], 3, 2, 1, backend=backend),
                 fastconv.avg_pool2d(x, 3, 2, 1, backend="numpy")[0], terms=9)
    v, i = fastconv.max_pool1d(x[0, 0], 2, return_indices=True, backend=backend)
    ev, ei = fastconv.max_pool1d(x[:1, 0], 2, return_indices=True, backend="numpy")
    _check_max((v, i), (ev[0], ei[0]))


# --------------------------------------------------------------------------------------------
# golden cases: NaN, ties, -inf, ceil_mode
# --------------------------------------------------------------------------------------------
def test_max_pool_golden_nan_and_ties(backend):
    nan = np.nan
    # ties keep the first position; a NaN wins, and the LAST NaN of a window gives the index
    x = np.array([[5.0, 5.0, 1.0, nan, 2.0, nan, nan, 7.0, 3.0, 3.0]])
    v, i = fastconv.max_pool1d(x, 2, return_indices=True, backend=backend)
    np.testing.assert_array_equal(v, [[5.0, nan, nan, nan, 3.0]])
    np.testing.assert_array_equal(i, [[0, 3, 5, 6, 8]])
    v, i = fastconv.max_pool1d(x, 5, return_indices=True, backend=backend)
    np.testing.assert_array_equal(v, [[nan, nan]])
    np.testing.assert_array_equal(i, [[3, 6]])
    # 2-D: flat index h * W + w of the plane
    x = np.array([[[1.0, 9.0, 9.0], [nan, 0.0, 9.0], [2.0, nan, 4.0]]])
    v, i = fastconv.max_pool2d(x, 2, stride=1, return_indices=True, backend=backend)
    np.testing.assert_array_equal(v, [[[nan, 9.0], [nan, nan]]])
    np.testing.assert_array_equal(i, [[[3, 1], [7, 7]]])


def test_max_pool_golden_infinities_and_padding(backend):
    inf = np.inf
    x = np.array([[-inf, -inf, 3.0, -inf]])
    # padding is -inf too, but the index stays inside the input: first -inf of the window
    v, i = fastconv.max_pool1d(x, 3, stride=3, padding=1, return_indices=True,
                               backend=backend)
    np.testing.assert_array_equal(v, [[-inf, 3.0]])
    np.testing.assert_array_equal(i, [[0, 2]])
    v, i = fastconv.max_pool1d(np.array([[1.0, inf, inf]]), 3, return_indices=True,
                               backend=backend)
    np.testing.assert_array_equal(v, [[inf]])
    np.testing.assert_array_equal(i, [[1]])


def test_pool_golden_ceil_mode(backend):
    x = np.arange(5.0)[None, None]  # (1, 1, 5)
    # floor: windows [0,1], [2,3]; ceil: also [4] (runs past the end)
    assert_close(fastconv.max_pool1d(x, 2, backend=backend), np.array([[[1.0, 3.0]]]))
    assert_close(fastconv.max_pool1d(x, 2, ceil_mode=True, backend=backend),
                 np.array([[[1.0, 3.0, 4.0]]]))
    # with padding 1 and stride 2: [-1,0], [1,2], [3,4]; a 4th window would start in the
    # right padding (at 5) and is dropped
    assert_close(fastconv.max_pool1d(x, 2, padding=1, ceil_mode=True, backend=backend),
                 np.array([[[0.0, 2.0, 4.0]]]))
    x2 = np.arange(25.0).reshape(1, 1, 5, 5)
    got = fastconv.avg_pool2d(x2, 2, ceil_mode=True, backend=backend)
    # the clipped last row/column of windows: divisor counts only the clipped window
    expected = np.array([[3, 5, 6.5], [13, 15, 16.5], [20.5, 22.5, 24]])
    assert_close(got[0, 0], expected)


def test_avg_pool2d_golden_count_include_pad(backend):
    x = np.ones((1, 1, 2, 2))
    with_pad = fastconv.avg_pool2d(x, 3, stride=1, padding=1, backend=backend)
    assert_close(with_pad[0, 0], np.full((2, 2), 4 / 9))
    without = fastconv.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False,
                                  backend=backend)
    assert_close(without[0, 0], np.ones((2, 2)))


# --------------------------------------------------------------------------------------------
# identities
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
def test_max_pool2d_is_sliding_window_max(backend, dtype, rng):
    x = _input(rng, (2, 2, 9, 10), dtype)
    for k, s, d in [((3, 3), (1, 1), (1, 1)), ((2, 4), (2, 3), (1, 1)), ((2, 2), (1, 2), (3, 2))]:
        span = tuple(dd * (kk - 1) + 1 for kk, dd in zip(k, d))
        win = sliding_window_view(x, span, axis=(2, 3))[:, :, ::s[0], ::s[1], ::d[0], ::d[1]]
        expected = win.max(axis=(-2, -1))
        got = fastconv.max_pool2d(x, k, s, dilation=d, backend=backend)
        assert_close(got, expected)


@pytest.mark.parametrize("dtype", FLOATS)
def test_avg_pool2d_is_a_depthwise_conv(backend, dtype, rng):
    x = _input(rng, (2, 3, 8, 9), dtype)
    for k, s in [((3, 3), 1), ((2, 4), (2, 3))]:
        w = np.full((3, 1) + k, 1.0 / np.prod(k), dtype)
        expected = fastconv.conv2d(x, w, stride=s, groups=3, backend="numpy")
        assert_close(fastconv.avg_pool2d(x, k, s, backend=backend), expected, terms=12)


def test_pool_results_independent_of_thread_count(backend, threads, rng):
    x = _input(rng, (3, 4, 21, 17), np.float32, special=True)
    runs = []
    for n in (1, 2):
        fastconv.set_num_threads(n)
        runs.append((
            *fastconv.max_pool2d(x, 3, 2, 1, return_indices=True, backend=backend),
            fastconv.avg_pool2d(np.nan_to_num(x, posinf=0, neginf=0), 3, 2, 1, True, False,
                                backend=backend),
        ))
    (v1, i1, a1), (v2, i2, a2) = runs
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(i1, i2)
    assert_close(a1, a2, terms=9)


# --------------------------------------------------------------------------------------------
# hypothesis: random valid calls against the reference
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend_name", BACKENDS)
@settings(max_examples=25, deadline=None)
@given(args=S.pool_args(nd=2, op="max"), dtype=S.dtypes, seed=S.seeds)
def test_max_pool2d_hypothesis_matches_reference(backend_name, args, dtype, seed):
    shape, kw = args
    x = _input(np.random.default_rng(seed), shape, dtype, special=seed % 2 == 0)
    _check_max(fastconv.max_pool2d(x, return_indices=True, backend=backend_name, **kw),
               fastconv.max_pool2d(x, return_indices=True, backend="numpy", **kw))


@pytest.mark.parametrize("backend_name", BACKENDS)
@settings(max_examples=20, deadline=None)
@given(args=S.pool_args(nd=1, op="max"), dtype=S.dtypes, seed=S.seeds)
def test_max_pool1d_hypothesis_matches_reference(backend_name, args, dtype, seed):
    shape, kw = args
    x = _input(np.random.default_rng(seed), shape, dtype, special=seed % 2 == 0)
    _check_max(fastconv.max_pool1d(x, return_indices=True, backend=backend_name, **kw),
               fastconv.max_pool1d(x, return_indices=True, backend="numpy", **kw))


@pytest.mark.parametrize("backend_name", BACKENDS)
@settings(max_examples=25, deadline=None)
@given(args=S.pool_args(nd=2, op="avg"), dtype=S.dtypes, seed=S.seeds)
def test_avg_pool2d_hypothesis_matches_reference(backend_name, args, dtype, seed):
    shape, kw = args
    x = _input(np.random.default_rng(seed), shape, dtype)
    assert_close(fastconv.avg_pool2d(x, backend=backend_name, **kw),
                 fastconv.avg_pool2d(x, backend="numpy", **kw), terms=16)


# --------------------------------------------------------------------------------------------
# against PyTorch
# --------------------------------------------------------------------------------------------
def _torch_max(x, nd, **kw):
    torch = pytest.importorskip("torch")
    f = torch.nn.functional.max_pool1d if nd == 1 else torch.nn.functional.max_pool2d
    v, i = f(torch.from_numpy(np.ascontiguousarray(x)), return_indices=True, **kw)
    return v.numpy(), i.numpy()


def _torch_avg(x, **kw):
    torch = pytest.importorskip("torch")
    return torch.nn.functional.avg_pool2d(torch.from_numpy(np.ascontiguousarray(x)),
                                          **kw).numpy()


@pytest.mark.parametrize("special", [False, True], ids=["finite", "nan-inf-ties"])
@pytest.mark.parametrize("case", MAX2D_GRID, ids=_ids(MAX2D_GRID))
def test_max_pool2d_matches_torch(backend, case, special, rng):
    x = _input(rng, SHAPE2D, np.float32, special)
    kw = _max_kw(case)
    _check_max(fastconv.max_pool2d(x, return_indices=True, backend=backend, **kw),
               _torch_max(x, 2, **kw))


@pytest.mark.parametrize("special", [False, True], ids=["finite", "nan-inf-ties"])
@pytest.mark.parametrize("case", MAX1D_GRID, ids=_ids(MAX1D_GRID))
def test_max_pool1d_matches_torch(backend, case, special, rng):
    x = _input(rng, SHAPE1D, np.float64, special)
    kw = _max_kw(case)
    _check_max(fastconv.max_pool1d(x, return_indices=True, backend=backend, **kw),
               _torch_max(x, 1, **kw))


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", AVG2D_GRID, ids=_ids(AVG2D_GRID))
def test_avg_pool2d_matches_torch(backend, case, count_include_pad, rng):
    x = _input(rng, SHAPE2D, np.float64)
    kw = _avg_kw(case, count_include_pad)
    assert_close(fastconv.avg_pool2d(x, backend=backend, **kw), _torch_avg(x, **kw), terms=16)


@settings(max_examples=30, deadline=None)
@given(args=S.pool_args(nd=2, op="max"), seed=S.seeds)
def test_max_pool2d_hypothesis_matches_torch(args, seed):
    pytest.importorskip("torch")
    shape, kw = args
    x = _input(np.random.default_rng(seed), shape, np.float64, special=seed % 2 == 0)
    expected = _torch_max(x, 2, **kw)
    for backend in BACKENDS:
        _check_max(fastconv.max_pool2d(x, return_indices=True, backend=backend, **kw),
                   expected)


@settings(max_examples=20, deadline=None)
@given(args=S.pool_args(nd=1, op="max"), seed=S.seeds)
def test_max_pool1d_hypothesis_matches_torch(args, seed):
    pytest.importorskip("torch")
    shape, kw = args
    x = _input(np.random.default_rng(seed), shape, np.float32, special=seed % 2 == 0)
    expected = _torch_max(x, 1, **kw)
    for backend in BACKENDS:
        _check_max(fastconv.max_pool1d(x, return_indices=True, backend=backend, **kw),
                   expected)


@settings(max_examples=30, deadline=None)
@given(args=S.pool_args(nd=2, op="avg"), seed=S.seeds)
def test_avg_pool2d_hypothesis_matches_torch(args, seed):
    pytest.importorskip("torch")
    shape, kw = args
    x = _input(np.random.default_rng(seed), shape, np.float64)
    expected = _torch_avg(x, **kw)
    for backend in BACKENDS:
        assert_close(fastconv.avg_pool2d(x, backend=backend, **kw), expected, terms=16)


# --------------------------------------------------------------------------------------------
# issue 15: the reference's max-pool indices are computed tile by tile (blocks of output
# columns of one image, or ranges of whole images) past fastconv._tiling.LIMIT bytes of
# gathered windows. Forced here on small inputs: the same maxima and indices, bitwise,
# with NaN, -inf and windows partly or wholly in the padding.
@pytest.mark.parametrize("whole_images", [False, True])
@pytest.mark.parametrize("case", MAX2D_GRID)
def test_issue15_tiled_max_pool_indices_match_untiled(case, whole_images, monkeypatch):
    from fastconv import _tiling

    k, s, p, d, ceil = case
    rng = np.random.default_rng(15)
    x = rng.standard_normal((2, 3, 7, 300)).astype(np.float32)
    x[0, 1, 2, ::7] = np.nan
    x[1, 0, :, 40:90] = -np.inf
    kw = dict(stride=s, padding=p, dilation=d, ceil_mode=ceil, return_indices=True,
              backend="numpy")
    out, idx = fastconv.max_pool2d(x, k, **kw)
    calls = []
    tiles = _tiling.tiles
    monkeypatch.setattr(_tiling, "LIMIT", 0)
    monkeypatch.setattr(_tiling, "TILE_BYTES", 1 << 40 if whole_images else 0)
    monkeypatch.setattr(_tiling, "tiles", lambda *a: calls.append(tiles(*a)) or calls[-1])
    out_t, idx_t = fastconv.max_pool2d(x, k, **kw)
    assert calls and (whole_images or len(calls[0]) > 1), "tiled"
    np.testing.assert_array_equal(out_t, out)
    np.testing.assert_array_equal(idx_t, idx)
    for b in BACKENDS:
        if b != "numpy":
            ob, ib = fastconv.max_pool2d(x, k, **dict(kw, backend=b))
            np.testing.assert_array_equal(ob, out)
            np.testing.assert_array_equal(ib, idx)
