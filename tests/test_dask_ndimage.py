"""fastconv.dask's scipy.ndimage filters against the in-memory fastconv.ndimage results.

Every mode (with the grid-* aliases and per-axis mode sequences where scipy takes them),
origins, axes, dtypes (integer, float, complex) and 1-4 dimensions, over random chunkings:
uneven chunks, one-element chunks, and halos wider than a chunk or than the whole array
(where 'wrap' and the reflections read the chunks at the other side, the case dask-image's
ndfilters once got wrong). The rank filters are exact; the linear filters agree up to the
rounding of a sum. A few cases check scipy itself too.
"""

from __future__ import annotations

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
pytest.importorskip("distributed")
scipy_ndimage = pytest.importorskip("scipy.ndimage")

from conftest import assert_close, tol
from test_dask import _chunks, _same, _threaded

import fastconv
import fastconv.dask as fd
from fastconv import ndimage

MODES = ("reflect", "constant", "nearest", "mirror", "wrap", "grid-wrap", "grid-mirror",
         "grid-constant")
LINEAR = ("correlate", "convolve", "correlate1d", "convolve1d", "uniform_filter",
          "uniform_filter1d", "gaussian_filter", "gaussian_filter1d")
RANK = ("maximum_filter", "minimum_filter", "maximum_filter1d", "minimum_filter1d",
        "median_filter", "rank_filter", "percentile_filter")
FOOTPRINTED = ("median_filter", "maximum_filter", "minimum_filter", "rank_filter",
               "percentile_filter")
# the filters whose window is one array (pairing with the sorted axes), sizes included
BOXED = ("median_filter", "rank_filter", "percentile_filter")
SEPARABLE = ("uniform_filter", "gaussian_filter", "maximum_filter", "minimum_filter")


def _origin(rng, k):
    return int(rng.integers(-(k // 2), (k - 1) // 2 + 1))


def _case(name, seed):
    """(input, kwargs) of a random call of ``ndimage.<name>``."""
    rng = np.random.default_rng([18, seed, len(name)])
    nd = int(rng.integers(1, 5))
    shape = tuple(int(v) for v in rng.integers(1, {1: 40, 2: 14, 3: 8, 4: 5}[nd] + 1, nd))
    kinds = ["float64", "float32", "int32", "uint8"]
    if name in LINEAR:
        kinds += ["complex128", "complex64"]
    dtype = np.dtype(kinds[int(rng.integers(len(kinds)))])
    x = rng.standard_normal(shape) * 20
    if dtype.kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    x = x.astype(dtype) if dtype.kind != "u" else np.abs(x).astype(dtype)
    kw = {"cval": float(rng.choice([0.0, 1.5, -2.25]))}
    one_d = name.endswith("1d")
    if one_d:
        kw["axis"] = int(rng.integers(-nd, nd))
        n_f = 1
    else:
        if rng.random() < 0.4 and nd > 1:
            n_f = int(rng.integers(1, nd))
            axes = tuple(int(a) for a in rng.permutation(nd)[:n_f])
            kw["axes"] = axes if rng.random() < 0.7 else tuple(a - nd for a in axes)
        else:
            n_f = nd
    mode = [str(m) for m in rng.choice(MODES, n_f)]
    kw["mode"] = mode if (name in SEPARABLE and n_f > 1 and rng.random() < 0.4) else mode[0]
    # filter lengths up to beyond the array (halo wider than a chunk, or the array)
    ks = [int(v) for v in rng.integers(1, 8, n_f)]
    # an array's axes (weights, footprint, median's box) pair with the filtered axes in
    # increasing order; origins with ``axes`` as given
    given = [a % nd for a in kw.get("axes", range(nd))] if not one_d else [0]
    by_sorted = [ks[sorted(given).index(a)] for a in given]
    if name in ("correlate", "convolve"):
        kw["weights"] = rng.standard_normal(ks)
        kw["origin"] = [_origin(rng, k) for k in by_sorted]
    elif name in ("correlate1d", "convolve1d"):
        kw["weights"] = rng.standard_normal(ks[0])
        kw["origin"] = _origin(rng, ks[0])
    elif name in ("gaussian_filter", "gaussian_filter1d"):
        sig = [float(v) for v in rng.uniform(0.3, 2.5, n_f)]
        kw["sigma"] = sig[0] if one_d else sig
        kw["order"] = int(rng.integers(0, 4)) if one_d else [int(v) for v in
                                                              rng.integers(0, 3, n_f)]
        if rng.random() < 0.3:
            kw["radius"] = ks[0] if one_d else ks
        else:
            kw["truncate"] = float(rng.choice([2.0, 4.0]))
    elif name in FOOTPRINTED and rng.random() < 0.4:
        kw["footprint"] = rng.random(ks) < 0.6
        kw["footprint"].flat[0] = True
        kw["origin"] = [_origin(rng, k) for k in by_sorted]
        kw["mode"] = mode[0]
    else:
        kw["size"] = ks[0] if one_d else ks
        pair = by_sorted if name in BOXED else ks
        kw["origin"] = _origin(rng, ks[0]) if one_d else [_origin(rng, k) for k in pair]
    if name in LINEAR and dtype.kind in "iu" and rng.random() < 0.5:
        kw["output"] = np.float64
    if name in BOXED and isinstance(kw["mode"], list):
        kw["mode"] = mode[0]
    count = int(np.sum(kw["footprint"])) if "footprint" in kw else int(np.prod(ks))
    if name == "rank_filter":
        kw["rank"] = int(rng.integers(-count, count))
    elif name == "percentile_filter":
        kw["percentile"] = float(rng.choice([0, 20, 50, 75.5, 100, -40]))
    return x, kw


def _compare(name, got, exp, kw):
    if name in RANK:
        _same(got, exp)
    elif exp.dtype.kind in "iu":  # a sum's rounding may move a value across .5
        assert got.dtype == exp.dtype
        np.testing.assert_allclose(got.astype(np.float64), exp, atol=1, rtol=0)
    else:  # complex: the tolerance of its components
        assert got.dtype == exp.dtype, (got.dtype, exp.dtype)
        terms = int(np.size(kw.get("weights", 1))) + 64
        np.testing.assert_allclose(got, exp, **tol(np.finfo(exp.dtype).dtype, terms, 30.0))


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("name", LINEAR + RANK)
def test_random_cases_match_the_in_memory_filter(name, seed):
    x, kw = _case(name, seed)
    rng = np.random.default_rng(seed)
    chunks = tuple(_chunks(rng, n, small=rng.random() < 0.3) for n in x.shape)
    exp = getattr(ndimage, name)(x, **kw)
    got = _threaded(getattr(fd, name)(da.from_array(x, chunks=chunks), **kw))
    _compare(name, got, exp, kw)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["correlate", "gaussian_filter", "median_filter",
                                  "maximum_filter1d"])
def test_every_mode_with_halo_wider_than_chunks_and_array_matches_scipy(name, mode):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((9, 6))
    kw = {"correlate": {"weights": rng.standard_normal((7, 11))},
          "gaussian_filter": {"sigma": (2.0, 3.0)},
          "median_filter": {"size": (5, 9)},
          "maximum_filter1d": {"size": 13, "axis": 1}}[name]
    exp = getattr(scipy_ndimage, name)(x, mode=mode, cval=0.75, **kw)
    for chunks in [(1, 1), (2, 5), (9, 6), ((4, 1, 4), (1, 5))]:
        got = _threaded(getattr(fd, name)(x, mode=mode, cval=0.75, chunks=chunks, **kw))
        np.testing.assert_allclose(got, exp, rtol=1e-12, atol=1e-12)


def test_constant_mode_pads_with_cval_not_rounded_to_an_integer_input():
    x = np.arange(60, dtype=np.int16).reshape(6, 10)
    got = _threaded(fd.uniform_filter(x, 3, output=np.float64, mode="constant", cval=0.5,
                                      chunks=(2, 3)))
    exp = scipy_ndimage.uniform_filter(x, 3, output=np.float64, mode="constant", cval=0.5)
    np.testing.assert_allclose(got, exp)
    assert got[0, 0] != scipy_ndimage.uniform_filter(x, 3, output=np.float64,
                                                     mode="constant", cval=0)[0, 0]


@pytest.mark.parametrize("backend", fastconv.backends())
def test_backend_reaches_the_tasks(backend, monkeypatch):
    x = np.random.default_rng(1).standard_normal((13, 12)).astype(np.float32)
    got = _threaded(fd.gaussian_filter(x, 1.5, mode="wrap", backend=backend, chunks=5))
    assert_close(got, ndimage.gaussian_filter(x, 1.5, mode="wrap"), terms=32)


def test_blocks_follow_the_input_chunks_and_the_input_is_not_computed():
    x = da.random.default_rng(0).random((100, 80), chunks=(30, 40))
    y = fd.median_filter(x, size=5, mode="mirror")
    assert y.shape == x.shape and y.dtype == x.dtype
    assert len(y.chunks[0]) == len(x.chunks[0]) and len(y.chunks[1]) == len(x.chunks[1])
    assert sum(y.chunks[0]) == 100


def test_empty_input():
    x = np.zeros((0, 5), np.float32)
    _same(_threaded(fd.uniform_filter(x, 3)), ndimage.uniform_filter(x, 3))


@pytest.mark.parametrize("call, exc, word", [
    (lambda x: fd.correlate(x, np.ones((3, 3)), mode="bogus"), ValueError, "mode"),
    (lambda x: fd.uniform_filter(x, 3, origin=2), ValueError, "origin"),
    (lambda x: fd.gaussian_filter(x, 1.0, axes=(0, 0)), ValueError, "axes"),
    (lambda x: fd.median_filter(x, size=3, output=np.empty((8, 8))), TypeError, "output"),
    (lambda x: fd.maximum_filter1d(x, 0), ValueError, "size"),
    (lambda x: fd.convolve(x, np.ones((3, 3, 3))), (ValueError, RuntimeError), "weights"),
])
def test_errors_raise_eagerly_naming_the_argument(call, exc, word):
    x = da.ones((8, 8), chunks=4)
    with pytest.raises(exc, match=word):
        call(x)


@pytest.mark.parametrize("name", ["maximum_filter", "minimum_filter"])
def test_all_true_footprint_is_a_box_paired_with_axes_as_given(name):
    # scipy's min/max turn an all-True footprint into sizes, paired with ``axes`` as given
    # (a footprint with holes pairs with the sorted axes): the halos must follow
    x = np.random.default_rng(10).random((40, 40))
    for fp in (np.ones((3, 9), bool), np.eye(3, 9, dtype=bool)):
        want = getattr(scipy_ndimage, name)(x, footprint=fp, axes=(1, 0))
        got = _threaded(getattr(fd, name)(x, footprint=fp, axes=(1, 0), chunks=5))
        np.testing.assert_array_equal(got, want)
