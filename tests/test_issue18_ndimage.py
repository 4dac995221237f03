"""fastconv.ndimage's linear filters (issue 18) against scipy.ndimage, on every backend:
random cases over modes, origins, axes, dtypes (int, float32/64, complex), layouts and
1-4 dimensions; output= arrays and dtypes; the _ndspec rules; bad arguments; memory."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import BACKENDS, LAYOUTS, Unchanged, layout

from fastconv import _ndspec, ndimage

sndi = pytest.importorskip("scipy.ndimage")

MODES = tuple(_ndspec.MODES)


def _tol(dtype):
    return dict(rtol=2e-5, atol=2e-5) if np.dtype(dtype) in (np.float32, np.complex64) \
        else dict(rtol=1e-11, atol=1e-11)


def _check(actual, expected, exact=False):
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    if exact or expected.dtype.kind in "iub":
        # integer outputs truncate: a sum a rounding away from an integer may land on
        # either side of it, so allow one unit where the float sums disagree that much
        diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
        assert diff.max(initial=0) <= (0 if exact else 1)
        assert np.mean(diff != 0) <= 0.02
    else:
        np.testing.assert_allclose(actual, expected, **_tol(expected.dtype))


def _check_pass(call, backend, expected):
    """A correlation pass (correlate1d, gaussian_filter...) on ``backend`` (``call(b)``
    runs it on backend b) against scipy's result ``expected``: scipy's to the bit for
    float64 data; float32 data sums in float32, so the reference's to the bit (every
    backend sums alike) and scipy's within float32 rounding."""
    actual = call(backend)
    if actual.dtype == np.float32:
        _check(actual, call("numpy"), exact=True)
        _check(actual, expected)
    else:
        _check(actual, expected, exact=True)


def _input(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0, 50, size=shape).astype(dtype)
    x = rng.standard_normal(shape)
    if dtype.kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


# --------------------------------------------------------------------------------------
# _ndspec
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_pad_matches_scipy_extension(mode, n):
    """_ndspec.pad extends a line as scipy's filters do, pads longer than the line
    included: a correlation with a one-hot kernel reads one extended element."""
    x = np.arange(1.0, n + 1)
    for k in (1, 3, 2 * n + 3, 4 * n + 5):
        before = k // 2
        ext = _ndspec.pad(x, (before,), (k - 1 - before,), (_ndspec.MODES[mode],), -9.0)
        for j in range(k):
            w = np.zeros(k)
            w[j] = 1
            ref = sndi.correlate1d(x, w, mode=mode, cval=-9.0)
            np.testing.assert_array_equal(ext[j:j + n], ref)


def test_ndspec_rules():
    assert _ndspec.modes("grid-wrap", 2) == ("wrap", "wrap")
    assert _ndspec.modes(["mirror", "grid-constant"], 2) == ("mirror", "constant")
    assert _ndspec.axes(None, 3) == (0, 1, 2)
    assert _ndspec.axes(-1, 3) == (2,)
    assert _ndspec.axes([0, -1], 3) == (0, 2)
    assert _ndspec.sequence(3, 2, "size") == (3, 3)
    assert _ndspec.sequence("ab", 2, "mode") == ("ab", "ab")
    assert _ndspec.origins([-1, 1], (3, 4)) == (-1, 1)
    x = np.zeros((2, 3), np.int16)
    assert _ndspec.output(None, x).dtype == np.int16
    assert _ndspec.output(np.float32, x).dtype == np.float32
    assert _ndspec.output("f8", x).dtype == np.float64
    assert _ndspec.output(None, x, complex_output=True).dtype == np.complex64
    o = np.empty((2, 3))
    assert _ndspec.output(o, x) is o
    # store truncates toward zero into integers, as scipy's C cast
    out = np.zeros(4, np.int32)
    _ndspec.store(np.array([1.9, -1.9, 2.0, 0.49]), out)
    np.testing.assert_array_equal(out, [1, -1, 2, 0])


@pytest.mark.parametrize("call, match", [
    (lambda: _ndspec.modes("bogus", 1), "mode"),
    (lambda: _ndspec.modes(["reflect"], 2), "mode"),
    (lambda: _ndspec.axes([0, 0], 2), "axes"),
    (lambda: _ndspec.axes([0, -2], 2), "axes"),
    (lambda: _ndspec.axes(2, 2), "axes"),
    (lambda: _ndspec.origins(2, (3,)), "origin"),
    (lambda: _ndspec.origins(-2, (3,)), "origin"),
    (lambda: _ndspec.origins(2, (4,)), "origin"),
    (lambda: _ndspec.sequence([1, 2, 3], 2, "size"), "size"),
    (lambda: _ndspec.output(np.zeros(3), np.zeros(4)), "output"),
    (lambda: _ndspec.output(np.zeros(3), np.zeros(3), complex_output=True), "output"),
])
def test_ndspec_errors(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert isinstance(info.value, RuntimeError)  # what scipy raises for some of them


# --------------------------------------------------------------------------------------
# random cases against scipy
# --------------------------------------------------------------------------------------
DTYPES = (np.float64, np.float32, np.int32, np.uint8, np.complex128, np.complex64)


def _case(rng):
    ndim = int(rng.integers(1, 5))
    shape = tuple(int(s) for s in rng.integers(1, {1: 40, 2: 14, 3: 7, 4: 5}[ndim],
                                                size=ndim))
    dtype = DTYPES[int(rng.integers(len(DTYPES)))]
    mode = MODES[int(rng.integers(len(MODES)))]
    return shape, np.dtype(dtype), mode


N_CASES = 16


@pytest.mark.parametrize("seed", range(N_CASES))
def test_random_1d_filters(backend, seed):
    rng = np.random.default_rng(1000 + seed)
    shape, dtype, mode = _case(rng)
    x = _input(rng, shape, dtype)
    axis = int(rng.integers(-len(shape), len(shape)))
    k = int(rng.integers(1, 8))
    w = rng.standard_normal(k) if dtype.kind != "iu" else rng.integers(-3, 4, k)
    origin = int(rng.integers(-(k // 2), (k - 1) // 2 + 1))
    cval = float(rng.standard_normal())
    kind = LAYOUTS[seed % len(LAYOUTS)]
    xl = layout(x, kind)
    keep = Unchanged(xl)
    kw = dict(axis=axis, mode=mode, cval=cval, origin=origin)
    for f in ("correlate1d", "convolve1d"):
        _check(getattr(ndimage, f)(xl, w, **kw, backend=backend),
               getattr(sndi, f)(x, w, **kw))
    _check(ndimage.uniform_filter1d(xl, k, **kw, backend=backend),
           sndi.uniform_filter1d(x, k, **kw))
    sigma = float(rng.uniform(0.3, 2.0))
    order = int(rng.integers(0, 4))
    kw.pop("origin")
    _check(ndimage.gaussian_filter1d(xl, sigma, order=order, **kw, backend=backend),
           sndi.gaussian_filter1d(x, sigma, order=order, **kw))
    keep.check()


@pytest.mark.parametrize("seed", range(N_CASES))
def test_random_nd_filters(backend, seed):
    rng = np.random.default_rng(2000 + seed)
    shape, dtype, mode = _case(rng)
    ndim = len(shape)
    x = _input(rng, shape, dtype)
    nax = int(rng.integers(1, ndim + 1))
    axes = tuple(int(a) for a in rng.permutation(ndim)[:nax]) if seed % 2 else None
    n = ndim if axes is None else len(axes)
    kind = LAYOUTS[seed % len(LAYOUTS)]
    xl = layout(x, kind)
    keep = Unchanged(xl)
    cval = float(rng.standard_normal())
    # correlate / convolve with a full kernel
    wshape = tuple(int(s) for s in rng.integers(1, 5, size=n))
    w = rng.standard_normal(wshape)
    if seed % 5 == 0:
        w = w + 1j * rng.standard_normal(wshape)
    # scipy: the weights' axes are the filtered ones in ascending order, origin[i] is for
    # axes[i] (in array order when all axes are filtered)
    osize = wshape if axes is None or len(axes) == ndim else \
        [wshape[sorted(axes).index(a)] for a in axes]
    origin = [int(rng.integers(-(s // 2), (s - 1) // 2 + 1)) for s in osize]
    kw = dict(mode=mode, cval=cval, origin=origin, axes=axes)
    for f in ("correlate", "convolve"):
        if f == "convolve":
            # convolve mirrors the origin (one less on an even axis): keep it in range
            kw["origin"] = [int(rng.integers(-((s - 1) // 2) - 1 + s % 2, s // 2 + s % 2))
                            for s in osize]
        _check(getattr(ndimage, f)(xl, w, **kw, backend=backend),
               getattr(sndi, f)(x, w, **kw))
    # separable filters: a size / sigma per axis, a mode per axis
    sizes = [int(s) for s in rng.integers(1, 6, size=n)]
    modes = [MODES[int(i)] for i in rng.integers(len(MODES), size=n)]
    origins = [int(rng.integers(-(s // 2), (s - 1) // 2 + 1)) for s in sizes]
    _check(ndimage.uniform_filter(xl, sizes, mode=modes, cval=cval, origin=origins,
                                  axes=axes, backend=backend),
           sndi.uniform_filter(x, sizes, mode=modes, cval=cval, origin=origins, axes=axes))
    sig = [float(s) for s in rng.uniform(0.3, 1.5, size=n)]
    order = [int(o) for o in rng.integers(0, 3, size=n)]
    _check(ndimage.gaussian_filter(xl, sig, order=order, mode=modes, cval=cval, axes=axes,
                                   backend=backend),
           sndi.gaussian_filter(x, sig, order=order, mode=modes, cval=cval, axes=axes))
    keep.check()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_paths(backend, dtype):
    """The compiled paths at sizes with several column blocks and lines per thread: every
    axis of a 3-D array, each mode."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 67, 301)).astype(dtype)
    w = rng.standard_normal(9)
    for axis in range(3):
        for mode in ("reflect", "constant", "wrap", "mirror", "nearest"):
            _check(ndimage.correlate1d(x, w, axis=axis, mode=mode, cval=0.5, origin=-2,
                                       backend=backend),
                   sndi.correlate1d(x, w, axis=axis, mode=mode, cval=0.5, origin=-2))
    _check(ndimage.gaussian_filter(x, 2.5, backend=backend), sndi.gaussian_filter(x, 2.5))
    tall = rng.standard_normal((600, 33)).astype(dtype)  # several row chunks along axis 0
    for mode in ("reflect", "constant", "wrap"):
        _check(ndimage.correlate1d(tall, w, axis=0, mode=mode, cval=-1.0, backend=backend),
               sndi.correlate1d(tall, w, axis=0, mode=mode, cval=-1.0))
        _check(ndimage.uniform_filter1d(tall, 6, axis=0, mode=mode, backend=backend),
               sndi.uniform_filter1d(tall, 6, axis=0, mode=mode))
    w2 = rng.standard_normal((5, 5))
    _check(ndimage.correlate(x[0], w2, backend=backend), sndi.correlate(x[0], w2))


def test_large_correlate_nd(backend):
    rng = np.random.default_rng(3)
    for shape, wshape in [((40, 50), (5, 5)), ((9, 10, 11), (3, 3, 3)),
                          ((4, 5, 6, 7), (2, 3, 1, 3)), ((3, 4, 5, 6), (2, 2, 2, 2))]:
        x = rng.standard_normal(shape)
        w = rng.standard_normal(wshape)
        for mode in ("reflect", "wrap"):
            _check(ndimage.correlate(x, w, mode=mode, backend=backend),
                   sndi.correlate(x, w, mode=mode))
            _check(ndimage.convolve(x.astype(np.float32), w, mode=mode, backend=backend),
                   sndi.convolve(x.astype(np.float32), w, mode=mode))


def test_thread_count_does_not_change_results(threads):
    import fastconv
    rng = np.random.default_rng(5)
    x = rng.standard_normal((33, 47, 29))
    res = []
    for nt in (1, 2):
        fastconv.set_num_threads(nt)
        res.append([ndimage.gaussian_filter(x, 1.5, backend=b) for b in BACKENDS])
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------------------
# output=, dtypes, in place
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("out_dtype", [np.float32, np.float64, np.int16, np.uint8,
                                       np.bool_])
def test_output_dtype_and_array(backend, out_dtype):
    rng = np.random.default_rng(11)
    x = rng.integers(0, 200, size=(17, 23)).astype(np.int32)
    w = np.array([0.25, 0.5, 0.25])
    for f, args in [("correlate1d", (w,)), ("uniform_filter", (4,)),
                    ("gaussian_filter", (1.3,)), ("correlate", (np.outer(w, w),))]:
        expected = getattr(sndi, f)(x, *args, output=out_dtype)
        _check(getattr(ndimage, f)(x, *args, output=out_dtype, backend=backend), expected)
        out = np.zeros(x.shape, out_dtype)
        res = getattr(ndimage, f)(x, *args, output=out, backend=backend)
        assert res is out
        _check(out, expected)


def test_output_strided_and_in_place(backend):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((20, 30))
    big = np.zeros((20, 60))
    res = ndimage.uniform_filter(x, 5, output=big[:, ::2], backend=backend)
    np.testing.assert_allclose(big[:, ::2], sndi.uniform_filter(x, 5), rtol=1e-12)
    assert res.base is big
    y = x.copy()
    ndimage.gaussian_filter(y, 2.0, output=y, backend=backend)  # output is the input
    np.testing.assert_allclose(y, sndi.gaussian_filter(x, 2.0), rtol=1e-12)
    y = x.copy()
    ndimage.correlate(y, np.ones((3, 3)), output=y, backend=backend)
    np.testing.assert_allclose(y, sndi.correlate(x, np.ones((3, 3))), rtol=1e-12)


# --------------------------------------------------------------------------------------
# correlate/convolve on a large input: read in place, the border computed apart
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(12))
def test_inplace_read_is_bitwise_the_padded_path(backend, seed, monkeypatch):
    """A large input is not padded into a copy (ndimage._corr_inplace): the result is the
    padded path's to the bit, over modes, origins, cval, dtypes, layouts, 2-4 dimensions,
    axes, output= (another dtype, the input itself) and convolve; and scipy's."""
    rng = np.random.default_rng(100 + seed)
    nd = int(rng.integers(2, 5))
    # sizes whose border is at most a quarter of the outputs (what the path takes)
    lo, kmax = {2: (24, 4), 3: (24, 3), 4: (16, 2)}[nd]
    shape = tuple(int(v) for v in rng.integers(lo, lo + 7, nd))
    axes = None if rng.random() < 0.7 else tuple(sorted(rng.choice(nd, 2, replace=False)))
    kn = nd if axes is None else len(axes)
    w = rng.standard_normal(tuple(int(v) for v in rng.integers(1, kmax + 1, kn)))
    if w.size > 1:
        w.flat[int(rng.integers(w.size))] = 0  # a left-out tap
    dtype = [np.float32, np.float64, np.int16][seed % 3]
    x = layout(_input(rng, shape, dtype), LAYOUTS[seed % len(LAYOUTS)])
    mode = list(MODES)[seed % len(MODES)]
    origin = [int(rng.integers(-(k // 2), (k - 1) // 2 + 1)) for k in w.shape]
    name = "convolve" if seed % 4 == 3 else "correlate"
    kw = dict(mode=mode, cval=1.5, origin=origin, axes=axes)
    out_dtype = np.float64 if seed % 5 == 4 else None

    def run(inplace):
        monkeypatch.setattr(ndimage, "_INPLACE_BYTES", 0 if inplace else 1 << 62)
        taken = []
        real = ndimage._corr_inplace
        monkeypatch.setattr(ndimage, "_corr_inplace",
                            lambda *a: taken.append(1) or real(*a))
        res = getattr(ndimage, name)(x, w, output=out_dtype, backend=backend, **kw)
        return res, bool(taken)

    fast, taken = run(True)
    padded, not_taken = run(False)
    assert taken and not not_taken
    np.testing.assert_array_equal(fast, padded)
    assert fast.dtype == padded.dtype
    _check(fast, getattr(sndi, name)(x, w, output=out_dtype, **kw))
    if x.dtype == np.float64 and x.flags.writeable:  # output is the input
        y = x.copy()
        monkeypatch.setattr(ndimage, "_INPLACE_BYTES", 0)
        getattr(ndimage, name)(y, w, output=y, backend=backend, **kw)
        np.testing.assert_array_equal(y, padded)


def test_inplace_read_with_infinities_at_the_row_ends(backend, monkeypatch):
    """The in-place pass first computes the border outputs from the neighbouring rows
    (then overwritten): +inf ending one row and -inf starting the next meet there, and
    must neither warn (the suite turns warnings into errors) nor leak into the result."""
    x = np.random.default_rng(2).standard_normal((40, 50))
    x[3, -1], x[4, 0] = np.inf, -np.inf
    res = []
    for limit in (0, 1 << 62):
        monkeypatch.setattr(ndimage, "_INPLACE_BYTES", limit)
        res.append(ndimage.correlate(x, np.ones((3, 3)), backend=backend))
    np.testing.assert_array_equal(res[0], res[1])
    assert not np.isnan(res[0]).any()
    np.testing.assert_array_equal(res[0], sndi.correlate(x, np.ones((3, 3))))


def test_inplace_read_at_its_real_threshold(backend):
    """At the default threshold (a 2 MiB input), with no patching; and an input whose
    border is too large a part of it stays on the padded path."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((512, 512))
    assert ndimage._inplace_pays(x.shape, 8, (5, 5))
    assert not ndimage._inplace_pays((8, 32768), 8, (5, 5))  # (5 - 1) / 8 of it border
    assert not ndimage._inplace_pays((256, 256), 8, (5, 5))  # 0.5 MiB
    w = rng.standard_normal((5, 5))
    for mode in ("reflect", "wrap", "constant"):
        _check(ndimage.correlate(x, w, mode=mode, origin=(1, -2), backend=backend),
               sndi.correlate(x, w, mode=mode, origin=(1, -2)), exact=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_passes_are_scipys_to_the_bit_for_any_line_count(backend, dtype):
    """The pass along the last axis runs lines four at a time (fc_ndboxline4) and one at a
    time for the rest; a pass along another axis splits its rows among the threads by
    the problem's size. Every line count 1-9, every mode: scipy's results, bit for bit
    (a cval exact in float32: a float32 pass rounds cval to float32, scipy does not; a
    float32 correlation sums in float32: see _check_pass)."""
    rng = np.random.default_rng(21)
    for outer in range(1, 10):
        x = rng.standard_normal((outer, 37)).astype(dtype)
        for mode in ("reflect", "constant", "wrap", "mirror", "nearest"):
            kw = dict(mode=mode, cval=0.5)
            _check(ndimage.uniform_filter1d(x, 6, axis=-1, backend=backend, **kw),
                   sndi.uniform_filter1d(x, 6, axis=-1, **kw), exact=True)
            _check_pass(lambda b: ndimage.correlate1d(x, [1, 2, 3.5, 2, 1], axis=-1,
                                                      backend=b, **kw),
                        backend, sndi.correlate1d(x, [1, 2, 3.5, 2, 1], axis=-1, **kw))
            y = np.ascontiguousarray(x.T)
            _check_pass(lambda b: ndimage.gaussian_filter1d(y, 1.7, axis=0, backend=b, **kw),
                        backend, sndi.gaussian_filter1d(y, 1.7, axis=0, **kw))
    tall = rng.standard_normal((700, 3, 40)).astype(dtype)  # rows split among threads
    _check_pass(lambda b: ndimage.gaussian_filter1d(tall, 4.0, axis=0, backend=b),
                backend, sndi.gaussian_filter1d(tall, 4.0, axis=0))
    _check(ndimage.uniform_filter(tall, (3, 1, 9), backend=backend),
           sndi.uniform_filter(tall, (3, 1, 9)), exact=True)


# --------------------------------------------------------------------------------------
# the fused last two passes of a separable correlation (nd_sepcorr)
# --------------------------------------------------------------------------------------
def _sep_case(rng, dtype, tall=False):
    """Arguments of nd_sepcorr: random shapes (``tall``: 600-900 rows, several strips of
    rows per plane), weights (symmetric, antisymmetric or neither, odd or even), modes,
    origins, and a run of rows of the output (idx0 a slice of the whole pass's indices, as
    a piece of a cut call has)."""
    outer, nx, inner = (int(s) for s in rng.integers(1, 30, 3))
    if tall:
        nx = int(rng.integers(600, 900))
    ws = []
    for _ in range(2):
        k = int(rng.integers(1, 12))
        w = rng.standard_normal(k)
        kind = int(rng.integers(3))
        if kind == 1:
            w = (w + w[::-1]) / 2
        elif kind == 2:
            w = (w - w[::-1]) / 2
        ws.append(w)
    modes = [MODES[int(i)] for i in rng.integers(len(MODES), size=2)]
    (w0, w1), canon = ws, [_ndspec.MODES[m] for m in modes]
    idx0 = _ndspec.line_index(nx, len(w0), int(rng.integers(-(len(w0) // 2),
                                                            (len(w0) - 1) // 2 + 1)), canon[0])
    idx1 = _ndspec.line_index(inner, len(w1), int(rng.integers(-(len(w1) // 2),
                                                               (len(w1) - 1) // 2 + 1)),
                              canon[1])
    a = 0 if tall else int(rng.integers(0, nx))
    b = nx if tall else int(rng.integers(a + 1, nx + 1))
    x = rng.standard_normal((outer, nx, inner)).astype(dtype)
    x[rng.random(x.shape) < 0.02] = np.inf  # non-finite values reach both passes alike
    return x, w0, idx0[a:b + len(w0) - 1], w1, idx1, float(rng.standard_normal()), b - a


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_passes_are_the_two_passes_to_the_bit(backend, dtype):
    """nd_sepcorr, on every backend and thread count, is two nd_correlate1d passes of the
    reference (the first one's result stored in the input's dtype) to the bit: random
    shapes, weights, modes, origins and runs of output rows; and planes of more rows than a
    strip (the ring refilled at a strip that starts within a plane)."""
    from fastconv import _dispatch, reference
    _, fn = _dispatch.kernel("nd_sepcorr", backend)
    rng = np.random.default_rng(31)
    with np.errstate(invalid="ignore", over="ignore"):
        for t in range(27):
            x, w0, idx0, w1, idx1, cval, n = _sep_case(rng, dtype, tall=t >= 25)
            mid = np.empty((x.shape[0], n, x.shape[2]), dtype)
            reference.nd_correlate1d(x, w0, idx0, cval, mid)
            expected = np.empty_like(mid)
            reference.nd_correlate1d(mid.reshape(-1, x.shape[2], 1), w1, idx1, cval,
                                     expected.reshape(-1, x.shape[2], 1))
            for nt in (1, 2, 3):
                out = np.full(expected.shape, 7.0, dtype)
                fn(x, w0, idx0, w1, idx1, cval, out, nt)
                np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_box_passes_are_the_two_passes_to_the_bit(backend, dtype):
    """nd_sepbox, on every backend and thread count, is two nd_uniform1d passes of the
    reference to the bit: random shapes (one plane or a few, whose threads share a plane's
    bands of rows; many, each thread its own planes; rows and bands of any count), sizes,
    modes and origins."""
    from fastconv import _dispatch, reference
    _, fn = _dispatch.kernel("nd_sepbox", backend)
    rng = np.random.default_rng(33)
    with np.errstate(invalid="ignore", over="ignore"):
        for t in range(24):
            outer = int(rng.integers(1, 4) if t % 2 else rng.integers(4, 12))
            n, inner = (int(s) for s in rng.integers(1, 200, 2))
            x = rng.standard_normal((outer, n, inner)).astype(dtype)
            x[rng.random(x.shape) < 0.01] = np.inf
            size0, size1 = (int(s) for s in rng.integers(1, 12, 2))
            modes = [MODES[int(i)] for i in rng.integers(len(MODES), size=2)]
            idx0, idx1 = (_ndspec.line_index(m, s, int(rng.integers(-(s // 2),
                                                                    (s - 1) // 2 + 1)),
                                             _ndspec.MODES[md])
                          for m, s, md in ((n, size0, modes[0]), (inner, size1, modes[1])))
            cval = float(rng.standard_normal())
            mid = np.empty(x.shape, dtype)
            reference.nd_uniform1d(x, size0, idx0, cval, mid)
            expected = np.empty_like(x)
            reference.nd_uniform1d(mid.reshape(-1, inner, 1), size1, idx1, cval,
                                   expected.reshape(-1, inner, 1))
            for nt in (1, 2, 3):
                out = np.full(x.shape, 7.0, dtype)
                fn(x, size0, idx0, size1, idx1, cval, out, nt)
                np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("shape, dtype", [((1, 700, 1100), np.float64),
                                          ((3, 301, 513), np.float32)])
def test_fused_box_shared_plane_bands_carry_the_sums(backend, shape, dtype):
    """nd_sepbox on planes the threads share (fewer than two per thread), of many bands of
    rows and several blocks of columns: the first pass's sums carried from band to band,
    and the barriers between the halves of a band, give two reference passes' bits at 1, 2
    and 3 threads."""
    from fastconv import _dispatch, reference
    _, fn = _dispatch.kernel("nd_sepbox", backend)
    rng = np.random.default_rng(34)
    x = rng.standard_normal(shape).astype(dtype)
    idx0 = _ndspec.line_index(shape[1], 9, 1, "reflect")
    idx1 = _ndspec.line_index(shape[2], 6, -2, "constant")
    mid = np.empty(shape, dtype)
    reference.nd_uniform1d(x, 9, idx0, 0.5, mid)
    expected = np.empty_like(x)
    reference.nd_uniform1d(mid.reshape(-1, shape[2], 1), 6, idx1, 0.5,
                           expected.reshape(-1, shape[2], 1))
    for nt in (1, 2, 3):
        out = np.full(shape, 7.0, dtype)
        fn(x, 9, idx0, 6, idx1, 0.5, out, nt)
        np.testing.assert_array_equal(out, expected)


def test_which_pairs_of_passes_fuse(monkeypatch):
    """_fuses: the last two axes in order, two correlations or two box means, the rows a
    thread keeps within _FUSED_RING_BYTES, and box means on planes of at most
    _FUSED_BOX_PLANE elements (their pieces for Ctrl-C are whole planes), at least two per
    thread (threads sharing a plane meet at barriers)."""
    import fastconv
    import fastconv.ndimage as nd
    w = np.ones(17)
    assert nd._fuses((3, 40, 50), (1, w, "reflect", 0), (2, w, "reflect", 0))
    nt = fastconv.get_num_threads()
    assert nd._fuses((2 * nt, 40, 50), (1, 5, "reflect", 0), (2, 5, "reflect", 0))
    assert not nd._fuses((2 * nt - 1, 40, 50), (1, 5, "reflect", 0), (2, 5, "reflect", 0))
    assert not nd._fuses((40, 50), (0, 5, "reflect", 0), (1, 5, "reflect", 0))
    assert not nd._fuses((40, 50), (1, w, "reflect", 0), (0, w, "reflect", 0))
    assert not nd._fuses((3, 40, 50), (0, w, "reflect", 0), (2, w, "reflect", 0))
    assert not nd._fuses((40, 50), (0, w, "reflect", 0), (1, 5, "reflect", 0))
    assert not nd._fuses((50,), (0, w, "reflect", 0), (0, w, "reflect", 0))
    big = nd._FUSED_BOX_PLANE // 1024 + 1
    assert not nd._fuses((2 * nt, big, 1024), (1, 5, "reflect", 0), (2, 5, "reflect", 0))
    assert nd._fuses((big, 1024), (0, w, "reflect", 0), (1, w, "reflect", 0))
    # a correlation's ring: k0 + 3 rows of doubles, 16 apart (four output rows a step)
    edge = nd._FUSED_RING_BYTES // (8 * (17 + 3)) - 16
    assert nd._fuses((40, edge), (0, w, "reflect", 0), (1, w, "reflect", 0))
    assert not nd._fuses((40, edge + 1), (0, w, "reflect", 0), (1, w, "reflect", 0))
    assert nd._fuses((40, edge + 1), (0, w[:3], "reflect", 0), (1, w, "reflect", 0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_passes_along_a_non_last_axis_in_steps_of_rows_are_scipys(backend, dtype):
    """A pass along a non-last axis, and the fused pair, compute four output rows a step
    (fc_ndrows, from a ring of k + 3 rows): every row count from 1 to 11 (whole steps and
    the 1-3 rows left), every kernel length from 1 to 9, are scipy's to the bit (float32:
    the reference's, see _check_pass)."""
    rng = np.random.default_rng(36)
    for n in range(1, 12):
        x = rng.standard_normal((2, n, 21)).astype(dtype)
        for k in range(1, 10):
            w = rng.standard_normal(k)
            for mode in ("reflect", "constant"):
                for axis in (0, 1):
                    _check_pass(lambda b: ndimage.correlate1d(x, w, axis=axis, mode=mode,
                                                              cval=0.25, backend=b),
                                backend, sndi.correlate1d(x, w, axis=axis, mode=mode,
                                                          cval=0.25))
        for sigma in (0.3, 1.0, 2.0):  # 3, 9 and 17 taps; the last two passes fused
            _check_pass(lambda b: ndimage.gaussian_filter(x[0], sigma, backend=b),
                        backend, sndi.gaussian_filter(x[0], sigma))


@pytest.mark.parametrize("in_dtype", [np.float64, np.int32])
def test_float32_output_of_wider_sums_stores_each_pass(backend, in_dtype):
    """A float32 output of a float64 (or integer) input: scipy stores each pass's result
    in the output, so the next pass reads float32 values; the same bits here."""
    rng = np.random.default_rng(35)
    x = (rng.standard_normal((40, 50, 3)) * 50).astype(in_dtype)
    for f, args in (("gaussian_filter", (1.5,)), ("uniform_filter", (3,))):
        expected = getattr(sndi, f)(x, *args, output=np.float32)
        _check(getattr(ndimage, f)(x, *args, output=np.float32, backend=backend), expected,
               exact=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_separable_fused_or_not_is_scipys_to_the_bit(backend, dtype, monkeypatch):
    """gaussian_filter and uniform_filter run their last two passes as one call
    (nd_sepcorr, nd_sepbox) when the rows a thread keeps are few (_fuses), else as two: the
    same bits either way, and scipy's (float32 gaussians: the reference's, see _check_pass),
    on 2-D and 3-D arrays, with a row count that splits among the threads."""
    import fastconv
    import fastconv.ndimage as nd
    rng = np.random.default_rng(32)
    cases = [((300, 41), 2.0, "reflect"), ((6, 70, 33), (1.0, 2.5, 0.7), "wrap"),
             ((40, 3), 1.2, "constant"), ((3, 500), (0.6, 3.0), "mirror")]
    for shape, sigma, mode in cases:
        x = rng.standard_normal(shape).astype(dtype)
        size = [int(2 * s) + 1 for s in np.broadcast_to(sigma, (x.ndim,))]
        kw = dict(mode=mode, cval=0.5)
        expected = (sndi.gaussian_filter(x, sigma, **kw), sndi.uniform_filter(x, size, **kw))
        planes = int(np.prod(x.shape[:-2]))
        for w in (np.ones(5), 5):
            passes = [(a, w, "reflect", 0) for a in range(x.ndim)]
            # box means fuse with two planes per thread (6 planes: up to 3 threads)
            assert nd._fuses(x.shape, *passes[-2:]) == (
                not isinstance(w, int) or planes >= 2 * fastconv.get_num_threads())
        for limit in (None, 0):
            with monkeypatch.context() as m:
                if limit is not None:
                    m.setattr(nd, "_FUSED_RING_BYTES", limit)
                    assert not nd._fuses(x.shape, *passes[-2:])
                _check_pass(lambda b: ndimage.gaussian_filter(x, sigma, backend=b, **kw),
                            backend, expected[0])
                _check(ndimage.uniform_filter(x, size, backend=backend, **kw), expected[1],
                       exact=True)


@pytest.mark.parametrize("k", [1, 4, 9, 17, 33])
def test_float32_pass_is_within_its_bound_of_the_exact_sum(backend, k):
    """A float32 correlation pass sums in float32 with its weights rounded to float32: each
    output is within (k + 2) * 2**-24 * sum_j |w[j] e[j]| of the exact sum (float64, of
    the float32 data and the float64 weights: scipy's to within its own rounding), over
    values spread across twelve orders of magnitude, symmetric weights (the folded sum)
    and others, along the last axis and another."""
    rng = np.random.default_rng(40 + k)
    x = (rng.standard_normal((60, 70)) * 10.0 ** rng.uniform(-6, 6, (60, 70))).astype(
        np.float32)
    w = rng.standard_normal(k)
    for weights in (w, (w + w[::-1]) / 2, (w - w[::-1]) / 2):
        for axis in (0, 1):
            got = ndimage.correlate1d(x, weights, axis=axis, backend=backend)
            assert got.dtype == np.float32
            x64 = x.astype(np.float64)
            exact = sndi.correlate1d(x64, weights, axis=axis)
            scale = sndi.correlate1d(np.abs(x64), np.abs(weights), axis=axis)
            err = np.abs(got.astype(np.float64) - exact)
            assert np.all(err <= (k + 2) * 2.0 ** -24 * scale), (axis, err.max())


@pytest.mark.parametrize("name", [b for b in ("cython", "numba") if b in BACKENDS])
def test_correlate1d_kernel_rejects_empty_weights(name):
    """The compiled nd_correlate1d kernels read w[k - 1]: no weights (idx n - 1 long) is a
    ValueError, not a read before the array."""
    from fastconv import _dispatch
    _, fn = _dispatch.kernel("nd_correlate1d", name)
    x, out = np.ones((2, 5, 3)), np.empty((2, 5, 3))
    with pytest.raises(ValueError, match="shapes"):
        fn(x, np.ones(0), np.arange(4, dtype=np.int64), 0.0, out, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_weight_pair_keeps_the_symmetric_order(backend, dtype):
    """scipy's symmetry test (a pair differs by more than DBL_EPSILON) is false for a NaN
    pair, so weights symmetric but for NaN take the folded order: the same on every
    backend (the reference's test said "not symmetric" and summed in the other order)."""
    from fastconv import reference
    w = np.array([1.0, 2.0, np.nan])
    assert reference.nd_symmetry(w) == 1
    x = np.arange(12.0, dtype=dtype).reshape(3, 4)
    with np.errstate(invalid="ignore"):
        got = ndimage.correlate1d(x, w, backend=backend)
        np.testing.assert_array_equal(got, ndimage.correlate1d(x, w, backend="numpy"))
        assert got.dtype == dtype and np.isfinite(got).all()  # the NaN tap is never read
        if dtype == np.float64:
            np.testing.assert_array_equal(got, sndi.correlate1d(x, w))


@pytest.mark.parametrize("name", [b for b in ("cython", "numba") if b in BACKENDS])
@pytest.mark.parametrize("op", ["nd_sepcorr", "nd_sepbox"])
def test_fused_kernel_rejects_inconsistent_arguments(name, op):
    """The compiled nd_sepcorr and nd_sepbox kernels, which index unchecked, check their
    arguments."""
    from fastconv import _dispatch
    _, fn = _dispatch.kernel(op, name)
    x = np.ones((2, 5, 4))
    w, none = (3, 0) if op == "nd_sepbox" else (np.ones(3), np.ones(0))
    i0 = np.clip(np.arange(-1, 6), 0, 4).astype(np.int64)
    i1 = np.clip(np.arange(-1, 5), 0, 3).astype(np.int64)
    out = np.empty((2, 5, 4))
    fn(x, w, i0, w, i1, 0.0, out, 2)
    for args, match in [((x, w, i0[:-1], w, i1, 0.0, out), "shapes"),
                        ((x, w, i0, w, i1[1:], 0.0, out), "shapes"),
                        ((x, w, i0, w, i1, 0.0, np.empty((2, 5, 3))), "shapes"),
                        ((x, w, i0, w, i1, 0.0, np.empty((3, 5, 4))), "shapes"),
                        ((x, w, i0 + 5, w, i1, 0.0, out), "out of range"),
                        ((x, w, i0, w, i1 - 2, 0.0, out), "out of range"),
                        ((x, none, i0[:4], w, i1, 0.0, out), "shapes")]:
        with pytest.raises(ValueError, match=match):
            fn(*args, 2)


_OOM_CHILD = """
import resource, sys
import numpy as np
from fastconv import _cy_ndfilt as cy, _cy_rank, _ndrank
n = 1 << 21
x = np.ones((3, n, 1))
out = np.full(x.shape, 7.0)
idx = np.clip(np.arange(-2, n + 2), 0, n - 1).astype(np.int64)
xb = np.ones(n).view(np.uint8)
ob = np.zeros(8 * n, np.uint8)
# the OpenMP team of 16 threads made first (their stacks need address space too)
cy.nd_uniform1d(np.ones((64, 8, 1)), 3, np.clip(np.arange(-1, 9), 0, 7).astype(np.int64),
                0.0, np.empty((64, 8, 1)), 16)
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
# room for what is mapped now and 100 MB more: 16 threads' scratch of 16 MB or more each
# is not
used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (used + (100 << 20), hard))
calls = {
    "nd_correlate1d": lambda: cy.nd_correlate1d(x, np.ones(5), idx, 0.0, out, 16),
    "nd_uniform1d": lambda: cy.nd_uniform1d(x, 5, idx, 0.0, out, 16),
    "nd_sepbox": lambda: cy.nd_sepbox(x.reshape(3, 1, n), 1, np.zeros(1, np.int64), 5, idx, 0.0,
                                      out.reshape(3, 1, n), 16),
    "nd_sepcorr": lambda: cy.nd_sepcorr(x.reshape(3, 1, n), np.ones(1), np.zeros(1, np.int64),
                                        np.ones(5), idx, 0.0, out.reshape(3, 1, n), 16),
    "nd_correlate": lambda: cy.nd_correlate(np.ones(n + 10), np.zeros(2, np.int64),
                                            np.arange(1 << 21, dtype=np.int64) % 8,
                                            np.ones(1 << 21), np.full((2, 8), 7.0), 16),
    "footprint": lambda: _cy_rank.footprint(_ndrank._TYPE_CODES[np.dtype(np.float64)], xb,
                                            ob, np.zeros(1, np.intp), 16,
                                            np.arange(1 << 21, dtype=np.intp) % 8, 2, 2, 8,
                                            16),
}
for name, call in calls.items():
    try:
        call()
    except MemoryError as e:
        assert name in str(e), e
    else:
        sys.exit(name + ": no MemoryError")
assert (out == 7).all()
print("ok")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc")
def test_kernels_raise_memoryerror_when_their_scratch_cannot_be_had():
    """The ndimage and rank kernels take each thread's scratch before their parallel
    region: an allocation that fails (a child process whose address space is capped)
    raises MemoryError naming the kernel, with nothing written, instead of a thread
    skipping its share of the outputs (or writing through NULL)."""
    pytest.importorskip("fastconv._cy_ndfilt")
    proc = subprocess.run([sys.executable, "-c", _OOM_CHILD], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


def test_pad_region_is_the_padded_arrays_part():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((6, 7, 5))
    before, after = (3, 1, 4), (2, 5, 9)
    for m in ("reflect", "constant", "nearest", "mirror", "wrap"):
        modes = (m, "wrap", "constant")
        full = _ndspec.pad(x, before, after, modes, -2.0)
        for _ in range(10):
            region = [tuple(sorted(rng.integers(0, s + 1, 2))) for s in full.shape]
            part = _ndspec.pad_region(x, region, before, after, modes, -2.0)
            np.testing.assert_array_equal(part, full[tuple(slice(*r) for r in region)])
            assert part.flags.c_contiguous and not np.may_share_memory(part, x)


def test_integer_gaussian_stores_each_pass(backend):
    """scipy stores each pass of a separable filter in the output's dtype (an integer
    output truncates between the passes): fastconv does the same."""
    x = np.arange(64, dtype=np.int64).reshape(8, 8) * 7 % 23
    np.testing.assert_array_equal(ndimage.gaussian_filter(x, 1.0, backend=backend),
                                  sndi.gaussian_filter(x, 1.0))
    np.testing.assert_array_equal(ndimage.uniform_filter(x, 3, backend=backend),
                                  sndi.uniform_filter(x, 3))


def test_empty_and_scalar_cases(backend):
    for f in ("correlate", "convolve"):  # a 0-d input and kernel: one product, as scipy
        for a, k in [(np.array(2.0), np.array(3.0)), (np.array(7), np.array(0.5))]:
            _check(getattr(ndimage, f)(a, k, backend=backend), getattr(sndi, f)(a, k),
                   exact=True)
    x = np.zeros((0, 5))
    assert ndimage.gaussian_filter(x, 1.0, backend=backend).shape == (0, 5)
    assert ndimage.correlate(x, np.ones((3, 3)), backend=backend).shape == (0, 5)
    assert ndimage.correlate1d(x, [1, 2], axis=1, backend=backend).shape == (0, 5)
    y = np.arange(5.0)
    np.testing.assert_array_equal(ndimage.uniform_filter(y, 1, backend=backend), y)
    np.testing.assert_array_equal(ndimage.gaussian_filter(y, 0, backend=backend), y)


def test_docstring_example_complex_weights(backend):
    """scipy's complex weights: correlate conjugates them, convolve does not."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((12, 13)) + 1j * rng.standard_normal((12, 13))
    w = np.array([[-3 - 3j, 0 - 10j, +3 - 3j], [-10 + 0j, 0 + 0j, +10 + 0j],
                  [-3 + 3j, 0 + 10j, +3 + 3j]])
    for f in ("correlate", "convolve"):
        _check(getattr(ndimage, f)(x, w, backend=backend), getattr(sndi, f)(x, w))
        _check(getattr(ndimage, f)(x.real, w, backend=backend), getattr(sndi, f)(x.real, w))
    _check(ndimage.correlate1d(x, w[0], backend=backend), sndi.correlate1d(x, w[0]))
    _check(ndimage.convolve1d(x.real, w[0], backend=backend), sndi.convolve1d(x.real, w[0]))


# --------------------------------------------------------------------------------------
# bad arguments: named, before any kernel runs
# --------------------------------------------------------------------------------------
_X = np.zeros((4, 5))
BAD = [
    ("mode", lambda: ndimage.correlate1d(_X, [1, 2], mode="bogus")),
    ("mode", lambda: ndimage.uniform_filter(_X, 3, mode="Reflect")),
    ("mode", lambda: ndimage.gaussian_filter(_X, 1, mode=["reflect"])),
    ("mode", lambda: ndimage.correlate(_X, np.ones((2, 2)), mode=None)),
    ("origin", lambda: ndimage.correlate1d(_X, [1, 2, 3], origin=2)),
    ("origin", lambda: ndimage.convolve1d(_X, [1, 2], origin=1)),
    ("origin", lambda: ndimage.uniform_filter1d(_X, 3, origin=-2)),
    ("origin", lambda: ndimage.uniform_filter(_X, 3, origin=(0, 5))),
    ("origin", lambda: ndimage.correlate(_X, np.ones((3, 3)), origin=(0, 2))),
    ("origin", lambda: ndimage.convolve(_X, np.ones((2, 2)), origin=1)),
    ("axes", lambda: ndimage.uniform_filter(_X, 3, axes=(0, 0))),
    ("axes", lambda: ndimage.gaussian_filter(_X, 1, axes=(1, -1))),
    ("axes", lambda: ndimage.correlate(_X, np.ones(3), axes=(2,))),
    ("weights", lambda: ndimage.correlate1d(_X, [])),
    ("weights", lambda: ndimage.correlate1d(_X, np.ones((2, 2)))),
    ("weights", lambda: ndimage.correlate(_X, np.ones(3))),
    ("size", lambda: ndimage.uniform_filter1d(_X, 0)),
    ("size", lambda: ndimage.uniform_filter(_X, (2, 2, 2))),
    ("size", lambda: ndimage.uniform_filter(_X, (3, 3, 3))),
    ("sigma", lambda: ndimage.gaussian_filter(_X, (1, 1, 1))),
    ("order", lambda: ndimage.gaussian_filter1d(_X, 1, order=-1)),
    ("radius", lambda: ndimage.gaussian_filter1d(_X, 1, radius=-1)),
    ("output", lambda: ndimage.correlate1d(_X, [1], output=np.zeros((3, 3)))),
    ("output", lambda: ndimage.uniform_filter(_X + 1j, 3, output=np.zeros((4, 5)))),
    ("backend", lambda: ndimage.correlate1d(_X, [1], backend="bogus")),
]


@pytest.mark.parametrize("name, call", BAD, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD)])
def test_bad_arguments(name, call):
    with pytest.raises(ValueError, match=name):
        call()


def test_bad_types():
    with pytest.raises(TypeError, match="axes"):
        _ndspec.axes(1.5, 2)
    with pytest.raises(TypeError):
        ndimage.correlate1d(np.array(["a", "b"]), [1])
    with pytest.raises(TypeError):
        ndimage.uniform_filter1d(_X, "3")
    with pytest.raises(TypeError):
        ndimage.correlate1d(_X, [1], cval="x")


# --------------------------------------------------------------------------------------
# memory on the speed-target shapes (tests/test_memory.py's measuring preamble)
# --------------------------------------------------------------------------------------
_MEM_CHILD = r"""
backend = sys.argv[1]
fastconv.set_num_threads(2)
from fastconv import ndimage
rng = np.random.default_rng(0)
res = {}
cases = {
    "correlate-5x5-2048": ((2048, 2048), lambda x, o: ndimage.correlate(
        x, np.ones((5, 5)), output=o, backend=backend)),
    "correlate-5x5x5-128": ((128, 128, 128), lambda x, o: ndimage.correlate(
        x, np.ones((5, 5, 5)), output=o, backend=backend)),
    "gaussian-s2-2048": ((2048, 2048), lambda x, o: ndimage.gaussian_filter(
        x, 2, output=o, backend=backend)),
    "uniform-15-2048": ((2048, 2048), lambda x, o: ndimage.uniform_filter(
        x, 15, output=o, backend=backend)),
}
for name, (shape, f) in cases.items():
    for dtype in ("float32", "float64"):
        f(np.ones((8,) * len(shape), dtype), None)  # warm up (Numba compiles)
        x = rng.standard_normal(shape).astype(dtype)
        out = np.empty_like(x)
        out[...] = 0
        before, reset = reset_peak(backend)
        f(x, out)
        res[f"{name}-{dtype}"] = {"extra": status("VmHWM") - before,
                                  "in_out": x.nbytes + out.nbytes, "reset": reset}
        del x, out
print(json.dumps(res))
"""


@pytest.mark.parametrize("backend_name", [b for b in ("cython", "numba") if b in BACKENDS])
def test_extra_memory_is_bounded(backend_name):
    """Each target call's extra peak resident memory stays below max(64 MiB, input +
    output bytes)."""
    import json
    import subprocess
    import sys

    from test_memory import _PREAMBLE, MIB, pytestmark as _linux_only

    if _linux_only.args[0]:  # not Linux / no clear_refs
        pytest.skip(_linux_only.kwargs["reason"])
    proc = subprocess.run([sys.executable, "-c", _PREAMBLE + _MEM_CHILD, backend_name],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.splitlines()[-1])
    for name, r in res.items():
        assert r["reset"] < MIB
        bound = max(64 * MIB, r["in_out"])
        assert r["extra"] < bound, (f"{backend_name} {name}: {r['extra'] / MIB:.1f} MiB "
                                    f"extra, bound {bound / MIB:.0f} MiB")


def test_doctests(backend):
    """fastconv.ndimage's docstring examples pass on every backend."""
    import doctest
    import io

    import fastconv

    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(ndimage, "fastconv.ndimage") if t.examples]
    assert len(tests) >= 8
    out = io.StringIO()
    with fastconv.use_backend(backend):
        for t in tests:
            runner.run(t, out=out.write)
    assert runner.summarize(verbose=False).failed == 0, out.getvalue()
