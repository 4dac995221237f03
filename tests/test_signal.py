"""convolve / correlate (numpy) and convolve2d / correlate2d (scipy.signal), every backend."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import fastconv

import strategies as S
from conftest import BACKENDS, LAYOUTS, Unchanged, assert_close, layout

MODES = ("full", "same", "valid")
BOUNDARIES = ("fill", "wrap", "symm")
# fillvalue matters only with boundary='fill'
BOUNDARY_FILL = [("fill", 0), ("fill", 1.5), ("fill", -2), ("wrap", 0), ("symm", 0)]

# (len(a), len(v)): v shorter, equal, longer (numpy swaps them), length 1, even and odd
LENGTHS_1D = [(1, 1), (7, 1), (1, 6), (8, 3), (9, 4), (5, 5), (4, 6), (3, 8), (2, 7), (10, 10)]
# (in1.shape, in2.shape): odd and even kernels, non-square, kernel larger than in1 (full and
# same modes), in2 larger than in1 in every dimension (scipy swaps them in 'valid' mode),
# and shapes where neither dominates ('valid' raises, in scipy as here)
SHAPES_2D = [
    ((1, 1), (1, 1)),
    ((5, 6), (3, 3)),
    ((5, 6), (2, 2)),
    ((6, 5), (2, 3)),
    ((4, 7), (1, 4)),
    ((3, 3), (3, 3)),
    ((2, 3), (4, 5)),   # in2 larger everywhere
    ((3, 2), (7, 6)),   # much larger (wrap and symm pad more than once around in1)
    ((4, 4), (2, 6)),   # neither dominates
    ((6, 2), (3, 3)),   # neither dominates
]


def _ids(grid):
    return [f"{a}-{b}" for a, b in grid]


def _vec(rng, n, dtype):
    if np.dtype(dtype).kind in "iub":
        return rng.integers(-4, 5, n).astype(dtype)
    return rng.standard_normal(n).astype(dtype)


def _run(f):
    """``f()``, or the exception it raised."""
    try:
        return f()
    except Exception as exc:  # noqa: BLE001 - the comparison needs any exception
        return exc


def _same_outcome(got, expected, *, dtype, terms):
    """Both raised (fastconv with ValueError/TypeError), or both returned equal arrays."""
    if isinstance(expected, Exception):
        assert isinstance(got, (ValueError, TypeError)), (
            f"the peer raised {expected!r}, fastconv gave {got!r}")
        return
    if isinstance(got, Exception):
        raise AssertionError(f"the peer returned, fastconv raised {got!r}") from got
    assert_close(got, expected, dtype=dtype, terms=terms)


# --------------------------------------------------------------------------------------------
# numpy.convolve / numpy.correlate
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("lengths", LENGTHS_1D, ids=_ids(LENGTHS_1D))
@pytest.mark.parametrize("op", ["convolve", "correlate"])
def test_1d_matches_numpy(backend, op, lengths, mode, dtype, rng):
    a, v = _vec(rng, lengths[0], dtype), _vec(rng, lengths[1], dtype)
    rdt = np.result_type(a, v, np.float32)
    keep = Unchanged(a, v)
    expected = getattr(np, op)(a.astype(rdt), v.astype(rdt), mode)
    got = getattr(fastconv, op)(a, v, mode, backend=backend)
    keep.check()
    assert_close(got, expected, dtype=rdt, terms=min(lengths))


@pytest.mark.parametrize("op", ["convolve", "correlate"])
def test_1d_default_mode_and_lists(backend, op):
    a, v = [1, 2, 3, 4], [1.0, 0.5]
    assert_close(getattr(fastconv, op)(a, v, backend=backend), getattr(np, op)(a, v))


@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("op", ["convolve", "correlate"])
def test_1d_input_layouts(backend, op, kind, rng):
    a, v = _vec(rng, 9, np.float32), _vec(rng, 4, np.float32)
    al, vl = layout(a, kind), layout(v, kind)
    keep = Unchanged(al, vl)
    for mode in MODES:
        got = getattr(fastconv, op)(al, vl, mode, backend=backend)
        assert_close(got, getattr(np, op)(a, v, mode), terms=4)
    keep.check()


def test_1d_golden(backend):
    assert_close(fastconv.convolve([1, 2, 3], [0, 1, 0.5], backend=backend),
                 np.array([0.0, 1.0, 2.5, 4.0, 1.5]))
    assert_close(fastconv.correlate([1, 2, 3], [0, 1, 0.5], backend=backend), np.array([3.5]))
    # correlate with v longer than a: numpy reverses the roles and the result
    assert_close(fastconv.correlate([1.0, 2.0], [1.0, 10.0, 100.0], "full", backend=backend),
                 np.array([100.0, 210.0, 21.0, 2.0]))


@pytest.mark.parametrize("backend_name", BACKENDS)
@settings(max_examples=30, deadline=None)
@given(args=S.signal1d_args(), dtype=S.dtypes, seed=S.seeds)
def test_1d_hypothesis_matches_numpy(backend_name, args, dtype, seed):
    la, lv, mode = args
    rng = np.random.default_rng(seed)
    a, v = _vec(rng, la, dtype), _vec(rng, lv, dtype)
    for op in ("convolve", "correlate"):
        assert_close(getattr(fastconv, op)(a, v, mode, backend=backend_name),
                     getattr(np, op)(a, v, mode), terms=min(la, lv))


# numpy's 'same' follows the longer input: with v longer, the identity needs another centre
FLIP_1D = [(lengths, mode) for lengths in LENGTHS_1D for mode in MODES
           if mode != "same" or lengths[0] >= lengths[1]]


@pytest.mark.parametrize("lengths, mode", FLIP_1D, ids=[f"{a}-{b}-{m}" for (a, b), m in FLIP_1D])
def test_convolve_is_correlate_with_flipped_kernel(backend, lengths, mode, rng):
    la, lv = lengths
    a, v = _vec(rng, la, np.float64), _vec(rng, lv, np.float64)
    assert_close(fastconv.convolve(a, v, mode, backend=backend),
                 fastconv.correlate(a, v[::-1], mode, backend=backend), terms=lv)


# --------------------------------------------------------------------------------------------
# scipy.signal.convolve2d / correlate2d
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("boundary, fillvalue", BOUNDARY_FILL)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shapes", SHAPES_2D, ids=_ids(SHAPES_2D))
@pytest.mark.parametrize("op", ["convolve2d", "correlate2d"])
def test_2d_matches_scipy(backend, op, shapes, mode, boundary, fillvalue, rng):
    signal = pytest.importorskip("scipy.signal")
    in1 = rng.standard_normal(shapes[0])
    in2 = rng.standard_normal(shapes[1])
    keep = Unchanged(in1, in2)
    expected = _run(lambda: getattr(signal, op)(in1, in2, mode, boundary, fillvalue))
    got = _run(lambda: getattr(fastconv, op)(in1, in2, mode, boundary, fillvalue,
                                             backend=backend))
    keep.check()
    _same_outcome(got, expected, dtype=np.float64, terms=in2.size)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_])
@pytest.mark.parametrize("op", ["convolve2d", "correlate2d"])
def test_2d_dtypes_match_scipy(backend, op, dtype, rng):
    signal = pytest.importorskip("scipy.signal")
    in1 = (rng.standard_normal((5, 6)) * 3).astype(dtype)
    in2 = (rng.standard_normal((2, 3)) * 3).astype(dtype)
    rdt = np.result_type(in1, in2, np.float32)
    for mode in MODES:
        expected = getattr(signal, op)(in1.astype(rdt), in2.astype(rdt), mode, "symm")
        got = getattr(fastconv, op)(in1, in2, mode, "symm", backend=backend)
        assert_close(got, expected, dtype=rdt, terms=6, scale=10)


@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("op", ["convolve2d", "correlate2d"])
def test_2d_input_layouts(backend, op, kind, rng):
    signal = pytest.importorskip("scipy.signal")
    in1, in2 = rng.standard_normal((6, 5)), rng.standard_normal((3, 2))
    l1, l2 = layout(in1, kind), layout(in2, kind)
    keep = Unchanged(l1, l2)
    for mode, boundary in [("full", "fill"), ("same", "wrap"), ("valid", "symm")]:
        assert_close(getattr(fastconv, op)(l1, l2, mode, boundary, 0.5, backend=backend),
                     getattr(signal, op)(in1, in2, mode, boundary, 0.5), terms=6)
    keep.check()


def test_2d_golden(backend):
    assert_close(fastconv.convolve2d(np.eye(3), [[1, 2]], mode="same", backend=backend),
                 np.array([[1.0, 2, 0], [0, 1, 2], [0, 0, 1]]))
    assert_close(fastconv.correlate2d(np.eye(3), [[1, 2]], mode="valid", backend=backend),
                 np.array([[1.0, 0], [2, 1], [0, 2]]))
    # fill with a value: a 1x1 input, 2x2 kernel of ones, full mode: every output sees
    # the one input and three fill values
    got = fastconv.correlate2d([[1.0]], np.ones((2, 2)), fillvalue=10, backend=backend)
    assert_close(got, np.full((2, 2), 31.0))


@pytest.mark.parametrize("backend_name", BACKENDS)
@settings(max_examples=30, deadline=None)
@given(args=S.signal2d_args(), dtype=S.dtypes, seed=S.seeds)
def test_2d_hypothesis_matches_scipy(backend_name, args, dtype, seed):
    signal = pytest.importorskip("scipy.signal")
    s1, s2, mode, boundary, fillvalue = args
    rng = np.random.default_rng(seed)
    in1 = rng.standard_normal(s1).astype(dtype)
    in2 = rng.standard_normal(s2).astype(dtype)
    for op in ("convolve2d", "correlate2d"):
        expected = getattr(signal, op)(in1, in2, mode, boundary, fillvalue)
        got = getattr(fastconv, op)(in1, in2, mode, boundary, fillvalue, backend=backend_name)
        # scipy computes float32 in float32 too
        assert_close(got, expected.astype(dtype), terms=in2.size, scale=max(1, abs(fillvalue)))


# 'same' centres an even kernel differently for the two (as scipy does): odd kernels only
FLIP_CASES = [(shapes, mode) for shapes in SHAPES_2D[:8] for mode in MODES
              if mode != "same" or all(k % 2 for k in shapes[1])]


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("shapes, mode", FLIP_CASES,
                         ids=[f"{a}-{b}-{m}" for (a, b), m in FLIP_CASES])
def test_convolve2d_is_correlate2d_with_flipped_kernel(backend, shapes, mode, boundary, rng):
    in1, in2 = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    assert_close(fastconv.convolve2d(in1, in2, mode, boundary, 2.0, backend=backend),
                 fastconv.correlate2d(in1, in2[::-1, ::-1], mode, boundary, 2.0,
                                      backend=backend), terms=in2.size, scale=2)


def test_signal_results_independent_of_thread_count(backend, threads, rng):
    in1, in2 = rng.standard_normal((40, 33)), rng.standard_normal((5, 4))
    a, v = rng.standard_normal(300), rng.standard_normal(17)
    runs = []
    for n in (1, 2):
        fastconv.set_num_threads(n)
        runs.append((fastconv.convolve2d(in1, in2, "same", "wrap", backend=backend),
                     fastconv.correlate(a, v, "full", backend=backend)))
    for x, y in zip(*runs):
        assert_close(x, y, terms=20)


# --------------------------------------------------------------------------------------------
# errors: where the peer raises, fastconv raises ValueError or TypeError
# --------------------------------------------------------------------------------------------
BAD_1D = [
    ("empty a", [], [1.0], "full"),
    ("empty v", [1.0, 2.0], [], "valid"),
    ("both empty", [], [], "same"),
    ("2-D a", [[1.0, 2.0], [3.0, 4.0]], [1.0], "full"),
    ("2-D v", [1.0, 2.0], [[1.0]], "full"),
    ("bad mode", [1.0, 2.0], [1.0], "nope"),
    ("complex a", [1j, 2.0], [1.0], "full"),
    ("string a", "abc", [1.0], "full"),
]


@pytest.mark.parametrize("case", BAD_1D, ids=[c[0] for c in BAD_1D])
@pytest.mark.parametrize("op", ["convolve", "correlate"])
def test_1d_raises_where_numpy_raises(backend, op, case):
    _, a, v, mode = case
    expected = _run(lambda: getattr(np, op)(a, v, mode))
    got = _run(lambda: getattr(fastconv, op)(a, v, mode, backend=backend))
    if case[0].startswith("complex"):
        # issue 18: complex inputs are computed, as numpy computes them
        np.testing.assert_allclose(got, expected)
        assert got.dtype == np.complex128
        return
    assert isinstance(expected, Exception), f"numpy accepted {case[0]}"
    _same_outcome(got, expected, dtype=None, terms=1)


BAD_2D = [
    ("valid, neither dominates", np.ones((4, 4)), np.ones((2, 6)), "valid", "fill"),
    ("1-D in1", np.ones(4), np.ones((2, 2)), "full", "fill"),
    ("3-D in2", np.ones((4, 4)), np.ones((2, 2, 1)), "full", "fill"),
    ("bad mode", np.ones((4, 4)), np.ones((2, 2)), "nope", "fill"),
    ("bad boundary", np.ones((4, 4)), np.ones((2, 2)), "full", "reflect"),
]


@pytest.mark.parametrize("case", BAD_2D, ids=[c[0] for c in BAD_2D])
@pytest.mark.parametrize("op", ["convolve2d", "correlate2d"])
def test_2d_raises_where_scipy_raises(backend, op, case):
    signal = pytest.importorskip("scipy.signal")
    _, in1, in2, mode, boundary = case
    expected = _run(lambda: getattr(signal, op)(in1, in2, mode, boundary))
    assert isinstance(expected, Exception), f"scipy accepted {case[0]}"
    got = _run(lambda: getattr(fastconv, op)(in1, in2, mode, boundary, backend=backend))
    _same_outcome(got, expected, dtype=None, terms=1)
