"""Issue 18: fastconv's rank filters (maximum/minimum/median/rank/percentile, the 1-D forms) against
scipy.ndimage, on every backend: random cases over modes, origins, axes, footprints,
dtypes (int, bool, float), layouts and 1-4 dimensions; output=; bad arguments."""

import numpy as np
import pytest

from fastconv import _ndrank as R
from fastconv import _ndspec

nd = pytest.importorskip("scipy.ndimage")

BACKENDS = ("cython", "numba", "numpy")
MODES = ("reflect", "constant", "nearest", "mirror", "wrap", "grid-wrap", "grid-mirror",
         "grid-constant")
OPS = ("maximum_filter", "minimum_filter", "median_filter")


def _case(rng):
    ndim = int(rng.integers(1, 5))
    shape = tuple(int(s) for s in rng.integers(1, 7 if ndim < 4 else 4, ndim))
    dt = str(rng.choice(["f4", "f8", "i2", "u1", "i8", "?", "u4"]))
    x = (rng.standard_normal(shape) * 20).astype(dt)
    nax = int(rng.integers(1, ndim + 1))
    axes = tuple(int(a) for a in rng.permutation(ndim)[:nax])
    # scipy's median misbehaves when the window exceeds the array (its 1-D rank path, and
    # reflect far beyond the border): keep each window within the axis
    # (sorted: so the window fits whichever way scipy pairs sizes with axes)
    size = tuple(int(rng.integers(1, min(shape[a] for a in axes) + 1)) for a in axes)
    origin = tuple(int(rng.integers(-(s // 2), (s - 1) // 2 + 1)) for s in size)
    fp = None
    if rng.random() < 0.5:
        fp = rng.random(size) < 0.6
        fp.flat[int(rng.integers(fp.size))] = True
    mode = str(rng.choice(MODES))
    cval = float(rng.choice([-5, 0, 3, 2.5]))
    return x, axes, size, origin, fp, mode, cval


def _scipy(op, x, *args, **kw):
    if op in ("median_filter", "rank_filter", "percentile_filter") and x.ndim == 1 \
            and kw.get("footprint") is not None:
        # scipy's 1-D rank path ignores the footprint's holes: compare through 2-D
        kw = dict(kw, footprint=kw["footprint"][None], origin=(0,) + tuple(kw["origin"]),
                  axes=None)
        return getattr(nd, op)(x[None], *args, **kw)[0]
    return getattr(nd, op)(x, *args, **kw)


def _cases(seed, n=25):
    """n random cases: (x, the keyword arguments, the window's tap count)."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        x, axes, size, origin, fp, mode, cval = _case(rng)
        kw = dict(mode=mode, cval=cval, origin=origin, axes=axes)
        if fp is None:
            kw["size"] = size
        else:
            kw["footprint"] = fp
        yield rng, x, kw, int(np.prod(size)) if fp is None else int(fp.sum())


@pytest.mark.parametrize("seed", range(6))
def test_random_cases_match_scipy(seed):
    for _, x, kw, _ in _cases(seed):
        for op in OPS:
            try:
                ref = _scipy(op, x, **kw)
            except ValueError:      # an origin out of range under scipy's axis pairing
                for b in BACKENDS:
                    with pytest.raises(ValueError, match="origin"):
                        getattr(R, op)(x, backend=b, **kw)
                continue
            for b in BACKENDS:
                got = getattr(R, op)(x, backend=b, **kw)
                assert got.dtype == ref.dtype, (op, b)
                np.testing.assert_array_equal(got, ref, err_msg=f"{op} {b} {kw} {x.dtype}")


@pytest.mark.parametrize("seed", range(6))
def test_rank_and_percentile_random_cases_match_scipy(seed):
    for rng, x, kw, count in _cases(100 + seed):
        for op, arg in [("rank_filter", int(rng.integers(-count, count))),
                        ("percentile_filter", float(rng.choice([0, 12.5, 50, 99, 100, -30])))]:
            try:
                ref = _scipy(op, x, arg, **kw)
            except ValueError:      # an origin out of range under scipy's axis pairing
                for b in BACKENDS:
                    with pytest.raises(ValueError, match="origin"):
                        getattr(R, op)(x, arg, backend=b, **kw)
                continue
            for b in BACKENDS:
                got = getattr(R, op)(x, arg, backend=b, **kw)
                assert got.dtype == ref.dtype, (op, b)
                np.testing.assert_array_equal(got, ref, err_msg=f"{op} {arg} {b} {kw}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rank", [0, 1, 3, 4, 7, 8, -1, -5])
def test_rank_filter_every_rank_of_a_3x3_box(backend, rank):
    # the 3x3 and 5x5 box medians have networks of their own: other ranks must not take them
    x = np.random.default_rng(7).standard_normal((23, 19)).astype(np.float32)
    for mode in ("constant", "reflect"):
        np.testing.assert_array_equal(R.rank_filter(x, rank, 3, mode=mode, cval=0.5,
                                                    backend=backend),
                                      nd.rank_filter(x, rank, 3, mode=mode, cval=0.5))


@pytest.mark.parametrize("call, exc, word", [
    (lambda x: R.rank_filter(x, 9, size=3), ValueError, "rank"),
    (lambda x: R.rank_filter(x, -10, size=3), RuntimeError, "rank"),
    (lambda x: R.rank_filter(x, 1.5, size=3), TypeError, "rank"),
    (lambda x: R.rank_filter(x, True, size=3), TypeError, "rank"),
    (lambda x: R.percentile_filter(x, 101, size=3), ValueError, "percentile"),
    (lambda x: R.percentile_filter(x, "a", size=3), TypeError, "percentile"),
])
def test_rank_and_percentile_bad_arguments(call, exc, word):
    with pytest.raises(exc, match=word):
        call(np.ones((5, 6)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", [3, 5, 9, 12, 21])
@pytest.mark.parametrize("mode", ["reflect", "constant", "mirror", "wrap", "nearest"])
def test_1d_filters_and_wide_windows(backend, size, mode):
    """van Herk (windows > 8) and the direct passes, along the contiguous and strided axes."""
    rng = np.random.default_rng(size)
    x = rng.standard_normal((23, 30)).astype(np.float32)
    for axis in (0, 1, -1):
        for name in ("maximum_filter1d", "minimum_filter1d"):
            ref = getattr(nd, name)(x, size, axis=axis, mode=mode, cval=0.5)
            got = getattr(R, name)(x, size, axis=axis, mode=mode, cval=0.5, backend=backend)
            np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", [(5, 5), (3, 21), (8, 9), (12, 4), (1, 7, 3)])
@pytest.mark.parametrize("mode", ["reflect", "constant", "wrap"])
def test_box_2d_fused_and_passes(backend, size, mode):
    """The fused 2-D box (rows direct or van Herk), the strided passes, an output array."""
    rng = np.random.default_rng(len(size) + size[-1])
    x = rng.standard_normal((2, 19, 33) if len(size) == 3 else (37, 45)).astype(np.float32)
    for op in ("maximum_filter", "minimum_filter"):
        ref = getattr(nd, op)(x, size, mode=mode, cval=-0.25)
        out = np.empty_like(x)
        got = getattr(R, op)(x, size, mode=mode, cval=-0.25, output=out, backend=backend)
        assert got is out
        np.testing.assert_array_equal(got, ref)
        x2 = np.asfortranarray(x)
        np.testing.assert_array_equal(getattr(R, op)(x2, size, mode=mode, cval=-0.25,
                                                     backend=backend), ref)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["f4", "f8", "u1", "i2", "u2", "i4"])
@pytest.mark.parametrize("size", [3, 5, (3, 5), 4])
def test_median_networks_and_selection(backend, dtype, size):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((37, 41)) * 50).astype(dtype)
    np.testing.assert_array_equal(R.median_filter(x, size, backend=backend),
                                  nd.median_filter(x, size))


@pytest.mark.parametrize("backend", BACKENDS)
def test_layouts(backend):
    rng = np.random.default_rng(5)
    base = rng.standard_normal((12, 14, 3))
    ro = base.copy()
    ro.flags.writeable = False
    for x in (np.asfortranarray(base), base[::2, ::-1], base[:, :, 1], ro):
        for op in OPS:
            np.testing.assert_array_equal(getattr(R, op)(x, 3, backend=backend),
                                          getattr(nd, op)(x, 3))


@pytest.mark.parametrize("backend", BACKENDS)
def test_output_argument(backend):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((9, 8)) * 10
    # (negative floats into an unsigned output are a C cast with no defined result: not tested)
    for out_dt in (np.int32, np.float32, "int16"):
        for op in OPS:
            ref = getattr(nd, op)(x, 3, output=out_dt)
            got = getattr(R, op)(x, 3, output=out_dt, backend=backend)
            assert got.dtype == ref.dtype
            np.testing.assert_array_equal(got, ref)
    out = np.empty((9, 8), np.float32)
    r = R.maximum_filter(x, 3, output=out, backend=backend)
    assert r is out
    np.testing.assert_array_equal(out, nd.maximum_filter(x, 3).astype(np.float32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_int64_exact_and_empty(backend):
    x = np.array([2**62 + 1, 2**62, 2**62 + 3, 5], dtype=np.int64)
    assert R.maximum_filter(x, 2, backend=backend)[2] == 2**62 + 3
    assert R.median_filter(x, 3, backend=backend)[1] == 2**62 + 1
    e = np.zeros((0, 5), np.float32)
    assert R.median_filter(e, 3, backend=backend).shape == (0, 5)


def test_index_map_matches_ndspec_pad():
    x = np.arange(5.0)
    for mode in ("reflect", "mirror", "nearest", "wrap", "constant"):
        for s, o in ((3, 0), (11, -5), (12, 5), (4, -2)):
            idx = R._index_map(5, s, o, mode)
            xe = np.where(idx >= 0, x[idx], -1.0)
            b = s // 2 + o
            want = _ndspec.pad(x, (b,), (s - 1 - b,), (mode,), -1.0)
            np.testing.assert_array_equal(xe, want)


BAD = [
    (dict(size=3, mode="foo"), ValueError, "mode"),
    (dict(size=3, origin=2), ValueError, "origin"),
    (dict(size=3, axes=(0, 0)), ValueError, "axes"),
    (dict(size=3, axes=(5,)), ValueError, "axes"),
    (dict(size=(3, 3, 3)), ValueError, "size"),
    (dict(size=0), ValueError, "size"),
    (dict(), RuntimeError, "footprint"),
    (dict(footprint=np.zeros((3, 3), bool)), ValueError, "footprint"),
    (dict(footprint=np.ones(3, bool)), ValueError, "footprint"),
    (dict(size=3, output=np.empty((2, 2))), ValueError, "output"),
    (dict(size=3, backend="gpu"), ValueError, "backend"),
    (dict(size=3, cval="a"), TypeError, "cval"),
]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("kw,exc,word", BAD)
def test_bad_arguments(op, kw, exc, word):
    x = np.ones((5, 6))
    with pytest.raises(exc, match=word):
        getattr(R, op)(x, **kw)


def test_bad_input_types():
    with pytest.raises(TypeError, match="complex"):
        R.median_filter(np.ones(4, complex), 3)
    with pytest.raises(ValueError, match="axis"):
        R.maximum_filter1d(np.ones(4), 3, axis=2)
    with pytest.raises(ValueError, match="size"):
        R.minimum_filter1d(np.ones(4), 0)


@pytest.mark.parametrize("op", OPS)
def test_threads_do_not_change_results(op):
    import fastconv

    rng = np.random.default_rng(9)
    x = rng.standard_normal((70, 90)).astype(np.float32)
    fp = rng.random((4, 3)) < 0.7
    old = fastconv.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 3):
            fastconv.set_num_threads(n)
            outs.append([getattr(R, op)(x, 5), getattr(R, op)(x, footprint=fp),
                         getattr(R, op)(x, (1, 11))])
    finally:
        fastconv.set_num_threads(old)
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            np.testing.assert_array_equal(a, b)


_MEMORY_CHILD = r"""
backend = sys.argv[1]
fastconv.set_num_threads(2)
from fastconv import _ndrank
rng = np.random.default_rng(0)
res = {}
for name, shape, dtype, call in [
        ("max5", (2048, 2048), "float32", lambda x, o: _ndrank.maximum_filter(x, 5, output=o, backend=backend)),
        ("max_fp", (1024, 1024), "float32",
         lambda x, o: _ndrank.maximum_filter(x, footprint=np.eye(5, dtype=bool), output=o, backend=backend)),
        ("median5", (1024, 1024), "float32", lambda x, o: _ndrank.median_filter(x, 5, output=o, backend=backend)),
        ("median5_u8", (1024, 1024), "uint8", lambda x, o: _ndrank.median_filter(x, 5, output=o, backend=backend)),
        ("median_3d", (64, 128, 128), "float32",
         lambda x, o: _ndrank.median_filter(x, 3, output=o, backend=backend))]:
    x = (rng.standard_normal(shape) * 40 + 100).astype(dtype)
    out = np.empty_like(x)
    call(x[:8, :8].copy(), np.empty((8, 8) if x.ndim == 2 else (8, 8, 128), x.dtype)) \
        if x.ndim == 2 else call(x[:2].copy(), np.empty_like(x[:2]))
    out[...] = 0
    before, reset = reset_peak(backend)
    call(x, out)
    res[name] = {"extra": status("VmHWM") - before, "in_out": x.nbytes + out.nbytes}
print(json.dumps(res))
"""


@pytest.mark.parametrize("backend", ["cython", "numba"])
def test_extra_memory_is_bounded(backend):
    """Extra peak RSS of a call on the target shapes (and a 3-D median) stays below
    max(64 MiB, input + output bytes), measured as tests/test_memory.py measures it."""
    import json
    import os
    import subprocess
    import sys

    if not sys.platform.startswith("linux") or not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux's /proc/self/clear_refs")
    from test_memory import _PREAMBLE

    proc = subprocess.run([sys.executable, "-c", _PREAMBLE + _MEMORY_CHILD, backend],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for name, r in json.loads(proc.stdout).items():
        assert r["extra"] <= max(64 << 20, r["in_out"]), (name, r)


@pytest.mark.parametrize("rank", [0, -1])
@pytest.mark.parametrize("op", ["rank_filter", "percentile_filter"])
def test_rank_ends_pair_mode_sequences_with_axes_as_given(op, rank):
    # rank 0 and the last run scipy's separable min/max: the sizes pair with the sorted axes
    # (the footprint's), the modes with ``axes`` as given, even when every axis is filtered
    x = np.random.default_rng(8).random((12, 10))
    arg = rank if op == "rank_filter" else (0.0 if rank == 0 else 100.0)
    for axes, mode in [((1, 0), ("wrap", "reflect")), ((1, 0), ("constant", "mirror")),
                       ((0, 1), ("nearest", "wrap"))]:
        kw = dict(size=(3, 5), axes=axes, mode=mode, cval=0.25)
        for b in BACKENDS:
            np.testing.assert_array_equal(getattr(R, op)(x, arg, backend=b, **kw),
                                          getattr(nd, op)(x, arg, **kw))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", OPS)
def test_output_that_is_the_input_through_the_ctrl_c_slabs(backend, op, monkeypatch):
    # the slabs read rows that earlier slabs have written when the output is the input
    x = np.random.default_rng(9).random((60, 40))
    want = getattr(nd, op)(x, size=4)
    monkeypatch.setattr(R, "SLAB_SECONDS", -1.0)
    monkeypatch.setattr(R, "FIRST_SLAB_TAPS", 1)
    y = x.copy()
    assert getattr(R, op)(y, size=4, output=y, backend=backend) is y
    np.testing.assert_array_equal(y, want)
