"""Issue 18: ``fastconv.signal`` against scipy.signal, and complex numbers in the top-level
``convolve``/``correlate``/``convolve2d``/``correlate2d``.

Random cases (a fixed seed per test) over modes, boundaries, fill values, dtypes (bool,
integers, float16/32/64, complex64/128), memory layouts and 1-4 dimensions, on every backend,
against SciPy (results AND dtypes) and, for real inputs, torch's conv1d/2d/3d; the top-level
functions against NumPy/SciPy with fastconv's dtype rule; a table of bad arguments; the
thread count; the inputs left unchanged; the extra memory of the bench target's call.
scipy's own tests run in test_issue18_scipy_signal.py, the FFT paths in
test_issue18_signal_fft.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.signal as ss

import fastconv
from fastconv import signal as fs
from conftest import BACKENDS, LAYOUTS, Unchanged, layout
from test_memory import _PREAMBLE, MIB, pytestmark as linux_only

SCIPY_ND = {"convolve": ss.convolve, "correlate": ss.correlate}
SCIPY_2D = {"convolve2d": ss.convolve2d, "correlate2d": ss.correlate2d}
REAL = ("float64", "float32", "int32", "int8", "uint8", "int64")
CPLX = ("complex128", "complex64")


def make(rng, shape, dtype):
    dt = np.dtype(dtype)
    if dt.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dt)
    if dt.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dt.kind in "iu":
        lo = 0 if dt.kind == "u" else -9
        return rng.integers(lo, 10, shape).astype(dt)
    return rng.standard_normal(shape).astype(dt)


def check(got, want, terms):
    """``got`` equals scipy's ``want``: same dtype and shape; exact for integers and bool,
    else within a tolerance of the dtype grown with the number of terms."""
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.flags.c_contiguous
    if want.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want)
        return
    eps = {2: 1e-3, 4: 2e-6, 8: 1e-14}[np.finfo(want.dtype).bits // 8]
    scale = max(1.0, float(np.sqrt(terms)))
    np.testing.assert_allclose(got, want, rtol=20 * eps * scale, atol=20 * eps * scale)


def shapes_for(rng, nd, mode):
    s1 = tuple(int(v) for v in rng.integers(1, 7 if nd < 4 else 5, nd))
    s2 = tuple(int(v) for v in rng.integers(1, 5 if nd < 4 else 3, nd))
    if mode == "valid":
        if rng.random() < 0.5:
            s2 = tuple(min(a, b) for a, b in zip(s1, s2))
        else:  # in2 the larger one: scipy swaps
            s1, s2 = tuple(min(a, b) for a, b in zip(s1, s2)), s1
    return s1, s2


# --------------------------------------------------------------------------------------------
# fastconv.signal vs scipy.signal
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("nd", [1, 2, 3, 4])
@pytest.mark.parametrize("func", sorted(SCIPY_ND))
def test_nd_matches_scipy(func, nd, backend, rng):
    """convolve/correlate, method='direct' and 'auto', every mode, dtype pairs (real,
    complex, mixed), every layout of in1: result and dtype as scipy's."""
    n_cases = 12 if nd < 4 else 5
    pairs = [(a, b) for a in REAL + CPLX for b in REAL + CPLX]
    for i in range(n_cases):
        d1, d2 = pairs[rng.integers(len(pairs))]
        mode = ("full", "same", "valid")[i % 3]
        s1, s2 = shapes_for(rng, nd, mode)
        a, b = make(rng, s1, d1), make(rng, s2, d2)
        # scipy casts the uninitialized output it makes (np.empty) to the compute type
        # before writing it: heap garbage there can raise "invalid value encountered in
        # cast", scipy's warning (seen once in CI), not about the values compared below
        with np.errstate(invalid="ignore"):
            want = SCIPY_ND[func](a, b, mode, method="direct")
        kind = LAYOUTS[i % len(LAYOUTS)]
        for method in ("direct", "auto"):
            got = getattr(fs, func)(layout(a, kind), b, mode, method=method, backend=backend)
            check(got, want, np.prod(s2))


@pytest.mark.parametrize("func", sorted(SCIPY_2D))
def test_2d_matches_scipy(func, backend, rng):
    """convolve2d/correlate2d: every mode x boundary (and its aliases), fill values (zero,
    int, float, complex), dtype pairs, layouts of both inputs, kernels larger than the
    plane (symm/wrap extended more than once)."""
    pairs = [(a, b) for a in REAL + CPLX for b in REAL + CPLX]
    fills = (0, 3, -1.5, 2 - 1j)
    i = 0
    for mode in ("full", "same", "valid"):
        for boundary in ("fill", "wrap", "symm", "circular", "symmetric", "pad"):
            d1, d2 = pairs[rng.integers(len(pairs))]
            s1, s2 = shapes_for(rng, 2, mode)
            if i % 5 == 4 and mode != "valid":
                s2 = (int(rng.integers(5, 9)), int(rng.integers(5, 9)))  # larger than in1
            a, b = make(rng, s1, d1), make(rng, s2, d2)
            fill = fills[i % len(fills)]
            if np.iscomplexobj(fill) and not (np.iscomplexobj(a) or np.iscomplexobj(b)):
                fill = 2.0
            want = SCIPY_2D[func](a, b, mode, boundary, fill)
            got = getattr(fs, func)(layout(a, LAYOUTS[i % 5]), layout(b, LAYOUTS[(i + 2) % 5]),
                                    mode, boundary, fill, backend=backend)
            check(got, want, np.prod(s2))
            i += 1


def test_dtypes_match_scipy():
    """The result dtype is scipy's ``result_type(in1, in2)`` for every pair of these
    dtypes (integers stay integers, float32 and complex64 stay), bool included in n-D."""
    rng = np.random.default_rng(0)
    dts = ("bool", "int8", "uint8", "int16", "uint32", "int64", "uint64", "float16",
           "float32", "float64", "complex64", "complex128")
    for d1 in dts:
        for d2 in dts:
            a, b = make(rng, (6,), d1), make(rng, (3,), d2)
            for func in ("convolve", "correlate"):
                with np.errstate(invalid="ignore"):  # as in test_nd_matches_scipy
                    want = SCIPY_ND[func](a, b, method="direct")
                check(getattr(fs, func)(a, b, method="direct"), want, 3)


def test_integer_overflow_wraps_as_scipy(backend):
    """Integer results wrap at their width exactly as scipy's integer arithmetic does."""
    a = np.full((4, 5), 100, np.int8)
    k = np.ones((2, 3), np.int8)
    for mode in ("full", "same", "valid"):
        np.testing.assert_array_equal(fs.convolve2d(a, k, mode, backend=backend),
                                      ss.convolve2d(a, k, mode))
        np.testing.assert_array_equal(fs.convolve(a, k, mode, backend=backend),
                                      ss.convolve(a, k, mode))
    u = np.array([250, 7, 255], np.uint8)
    np.testing.assert_array_equal(fs.correlate(u, u, backend=backend), ss.correlate(u, u))


def test_zero_rank_and_aliases(backend):
    assert fs.convolve(3, 4j, backend=backend) == 12j
    assert fs.correlate(np.array(3), np.array(4j), backend=backend) == -12j
    img = np.arange(12.0).reshape(3, 4)
    k = np.array([[1.0, 2.0], [3.0, 5.0]])
    for alias, name in (("pad", "fill"), ("circular", "wrap"), ("symmetric", "symm")):
        np.testing.assert_array_equal(fs.correlate2d(img, k, "same", alias, backend=backend),
                                      fs.correlate2d(img, k, "same", name, backend=backend))


def test_scipy_docstring_example_scharr(backend):
    """scipy.signal.convolve2d's own docstring example: a complex Scharr kernel on an
    integer image, boundary 'symm' (this raised TypeError in fastconv before issue 18)."""
    rng = np.random.default_rng(1)
    ascent = rng.integers(0, 256, (40, 50))
    scharr = np.array([[-3 - 3j, 0 - 10j, +3 - 3j],
                       [-10 + 0j, 0 + 0j, +10 + 0j],
                       [-3 + 3j, 0 + 10j, +3 + 3j]])
    want = ss.convolve2d(ascent, scharr, boundary="symm", mode="same")
    check(fs.convolve2d(ascent, scharr, boundary="symm", mode="same", backend=backend), want, 9)
    got = fastconv.convolve2d(ascent, scharr, boundary="symm", mode="same", backend=backend)
    check(got, want, 9)


def test_large_plane_matches_scipy(backend):
    """A plane big enough for the kernels' multithreaded tiles (the bench target's shape,
    cut to 200x300), every boundary, float32 and complex64."""
    rng = np.random.default_rng(2)
    for dt in ("float32", "complex64", "float64"):
        a, k = make(rng, (200, 300), dt), make(rng, (5, 5), dt)
        for boundary in ("fill", "wrap", "symm"):
            want = ss.correlate2d(a, k, "same", boundary)
            check(fs.correlate2d(a, k, "same", boundary, backend=backend), want, 25)


def test_results_do_not_depend_on_threads(threads):
    rng = np.random.default_rng(3)
    a, k = make(rng, (130, 97), "complex128"), make(rng, (5, 4), "complex128")
    v, w = make(rng, (9, 10, 11), "float32"), make(rng, (3, 2, 4), "float32")
    res = []
    for n in (1, 2):
        fastconv.set_num_threads(n)
        res.append((fs.correlate2d(a, k, "same", "symm", backend="cython"),
                    fs.convolve(v, w, backend="cython"),
                    fs.convolve(v, w, backend="numba")))
    for r1, r2 in zip(*res):
        np.testing.assert_allclose(r1, r2, rtol=1e-5, atol=1e-5)


def test_inputs_unchanged(backend):
    rng = np.random.default_rng(4)
    a, k = make(rng, (7, 6), "complex64"), make(rng, (3, 3), "float64")
    a.flags.writeable = False
    keep = Unchanged(a, k)
    fs.correlate2d(a, k, "full", "symm", backend=backend)
    fs.convolve(a, k, "same", backend=backend)
    fastconv.correlate2d(a, k, backend=backend)
    keep.check()


def test_torch_agrees_on_real_inputs(backend):
    """For real float inputs, scipy's correlations are torch's conv1d/2d/3d (a cross-
    correlation) with padding: fastconv.signal's direct path gives torch's numbers too."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(5)
    for nd, conv in ((1, F.conv1d), (2, F.conv2d), (3, F.conv3d)):
        a = make(rng, (7, 8, 6)[:nd], "float64")
        k = make(rng, (3, 2, 4)[:nd], "float64")
        pad = tuple(s - 1 for s in k.shape)
        want = conv(torch.from_numpy(a)[None, None], torch.from_numpy(k)[None, None],
                    padding=pad)[0, 0].numpy()
        check(fs.correlate(a, k, "full", method="direct", backend=backend), want, k.size)
        want = conv(torch.from_numpy(a)[None, None], torch.from_numpy(k)[None, None])[0, 0]
        check(fs.correlate(a, k, "valid", method="direct", backend=backend), want.numpy(),
              k.size)


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128", "int32"])
def test_sepfir2d_matches_scipy(dtype, backend, rng):
    """sepfir2d where scipy's is defined (half a filter at most half the plane); longer
    filters keep mirroring, as numpy.pad's 'symmetric' (checked against a 2-D convolution)."""
    for H, W, kr, kc in ((5, 6, 3, 5), (7, 3, 1, 1), (40, 50, 7, 7), (8, 9, 9, 1)):
        x = make(rng, (H, W), dtype)
        hdt = "float64" if dtype == "int32" else dtype
        hr, hc = make(rng, (kr,), hdt), make(rng, (kc,), hdt)
        check(fs.sepfir2d(x, hr, hc, backend=backend), ss.sepfir2d(x, hr, hc), kr * kc)
    x, hr, hc = make(rng, (3, 4), "float64"), make(rng, (9,), "float64"), make(rng, (7,), "float64")
    want = ss.convolve2d(np.pad(x, ((3, 3), (4, 4)), mode="symmetric"), np.outer(hc, hr), "valid")
    check(fs.sepfir2d(x, hr, hc, backend=backend), want, 63)


# --------------------------------------------------------------------------------------------
# top-level functions with complex inputs (fastconv's dtype rule)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("func", ["convolve", "correlate"])
def test_top_level_1d_complex_matches_numpy(func, backend, rng):
    """fastconv.convolve/correlate of complex sequences: numpy's result (correlate
    conjugates ``v``; 'same' follows the longer input), fastconv's dtype rule."""
    np_func = getattr(np, func)
    for na in (1, 5, 8):
        for nv in (1, 6, 9):
            for mode in ("full", "same", "valid"):
                d1, d2 = [("complex128", "complex64"), ("complex64", "float32"),
                          ("float64", "complex64"), ("int32", "complex64")][(na + nv) % 4]
                a, v = make(rng, (na,), d1), make(rng, (nv,), d2)
                want = np_func(a, v, mode).astype(np.result_type(a, v, np.float32))
                got = getattr(fastconv, func)(layout(a, LAYOUTS[nv % 5]), v, mode,
                                              backend=backend)
                check(got, want, nv)


@pytest.mark.parametrize("func", sorted(SCIPY_2D))
def test_top_level_2d_complex_matches_scipy(func, backend, rng):
    for mode in ("full", "same", "valid"):
        for boundary, fill in (("fill", 0), ("fill", 1 + 2j), ("wrap", 0), ("symm", 0)):
            s1, s2 = shapes_for(rng, 2, mode)
            a, b = make(rng, s1, "complex64"), make(rng, s2, "float32")
            if mode == "same":
                a, b = b, a  # real in1, complex in2
            want = SCIPY_2D[func](a, b, mode, boundary, fill)
            got = getattr(fastconv, func)(a, b, mode, boundary, fill, backend=backend)
            check(got, want, b.size)


def test_top_level_complex_dtype_rule():
    """complex64 stays complex64 (even with bool/int8/float32 partners), int64 or float64
    with complex64 gives complex128: ``result_type(..., float32)``."""
    c64 = np.ones(4, np.complex64)
    for other, want in ((np.ones(3, np.float32), np.complex64), (np.ones(3, np.int8),
                        np.complex64), (np.ones(3, bool), np.complex64),
                        (np.ones(3, np.int64), np.complex128),
                        (np.ones(3, np.float64), np.complex128)):
        assert fastconv.convolve(c64, other).dtype == want
        assert fastconv.correlate(other, c64).dtype == want
        assert fastconv.convolve2d(c64[None], other[None]).dtype == want
        assert fastconv.correlate2d(other[None], c64[None]).dtype == want
    # the real path keeps its rule: int32 in, float64 out
    assert fastconv.convolve(np.ones(3, np.int32), np.ones(2, np.int32)).dtype == np.float64


# --------------------------------------------------------------------------------------------
# bad arguments
# --------------------------------------------------------------------------------------------
V = np.ones(4)
P = np.ones((3, 3))
BAD = [
    # (function, args, kwargs, exception, text in the message)
    (fs.convolve, (V, V), dict(mode="spam"), ValueError, "mode"),
    (fs.correlate, (V, V), dict(method="bacon"), ValueError, "method"),
    (fs.convolve, (V, P), {}, ValueError, "dimensionality"),
    (fs.convolve, (np.ones((2, 3)), np.ones((3, 2))), dict(mode="valid"), ValueError,
     "valid"),
    (fs.convolve, (np.ones(0), V), {}, ValueError, "in1"),
    (fs.correlate, (V, np.ones(0)), {}, ValueError, "in2"),
    (fs.convolve, ("abc", V), {}, TypeError, "in1"),
    (fs.convolve, (V, np.array(["a"])), {}, TypeError, "in2"),
    (fs.convolve, (V.astype(object), V), {}, TypeError, "in1"),
    (fs.correlate, (V, V.astype(np.longdouble)), {}, TypeError, "in2"),
    (fs.convolve, ([[1, 2], [3]], V), {}, TypeError, "in1"),
    (fs.convolve, (V, V), dict(backend="torch"), ValueError, "backend"),
    (fs.choose_conv_method, (V, V), dict(measure="yes"), TypeError, "measure"),
    (fs.choose_conv_method, (V, V), dict(mode="x"), ValueError, "mode"),
    (fs.convolve2d, (V, P), {}, ValueError, "in1"),
    (fs.correlate2d, (P, np.ones((1, 1, 1))), {}, ValueError, "in2"),
    (fs.correlate2d, (np.ones((0, 3)), P), {}, ValueError, "in1"),
    (fs.convolve2d, (P, P), dict(boundary="reflect"), ValueError, "boundary"),
    (fs.convolve2d, (P, P), dict(mode="ham"), ValueError, "mode"),
    (fs.convolve2d, (P, P), dict(fillvalue=[1, 2]), ValueError, "fillvalue"),
    (fs.convolve2d, (P, P), dict(fillvalue=[]), ValueError, "fillvalue"),
    (fs.convolve2d, (P, P), dict(fillvalue=1j), ValueError, "fillvalue"),
    (fs.convolve2d, (P, P), dict(fillvalue="a"), TypeError, "fillvalue"),
    (fs.convolve2d, (np.ones((2, 3)), np.ones((3, 2))), dict(mode="valid"), ValueError,
     "valid"),
    (fs.sepfir2d, (V, V, V), {}, ValueError, "input"),
    (fs.sepfir2d, (P, P, V), {}, ValueError, "hrow"),
    (fs.sepfir2d, (P, V[:3], np.ones(4)), {}, ValueError, "hcol"),
    (fs.sepfir2d, (P, V[:3] * 1j, V[:3]), {}, TypeError, "hrow"),
    (fs.sepfir2d, (P.astype(object), V[:3], V[:3]), {}, TypeError, "input"),
    (fastconv.convolve, (V * 1j, P), {}, ValueError, "v"),
    (fastconv.correlate, (np.ones(0, complex), V), {}, ValueError, "a"),
    (fastconv.correlate, (V * 1j, V), dict(mode="spam"), ValueError, "mode"),
    (fastconv.convolve2d, (P * 1j, P), dict(boundary="x"), ValueError, "boundary"),
    (fastconv.correlate2d, (P * 1j, V), {}, ValueError, "in2"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_arguments(case):
    func, args, kwargs, exc, text = BAD[case]
    with pytest.raises(exc, match=text):
        func(*args, **kwargs)


# --------------------------------------------------------------------------------------------
# memory of the bench target's call
# --------------------------------------------------------------------------------------------
MEM_CHILD = _PREAMBLE + r"""
from fastconv import signal
backend = sys.argv[1]
fastconv.set_num_threads(2)
rng = np.random.default_rng(0)
res = {}
for dt in ("float32", "float64", "complex128"):
    a = rng.standard_normal((512, 512)).astype(dt)
    k = rng.standard_normal((5, 5)).astype(dt)
    signal.correlate2d(a[:8, :8], k, "same", "symm", backend=backend)  # warm up (Numba)
    before, reset = reset_peak(backend)
    out = signal.correlate2d(a, k, "same", "symm", backend=backend)
    res[dt] = {"extra": status("VmHWM") - before, "in_out": a.nbytes + out.nbytes,
               "reset": reset}
print(json.dumps(res))
"""


@linux_only
@pytest.mark.parametrize("backend_name", [b for b in ("cython", "numba") if b in BACKENDS])
def test_extra_memory_is_bounded(backend_name):
    """signal.correlate2d (mode same, symm, 5x5 on 512x512): extra peak memory below
    max(64 MiB, input + output) (tests/test_memory.py's measure)."""
    proc = subprocess.run([sys.executable, "-c", MEM_CHILD, backend_name],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for dt, r in json.loads(proc.stdout.splitlines()[-1]).items():
        assert r["reset"] < MIB
        assert r["extra"] < max(64 * MIB, r["in_out"]), (dt, r)


def test_docstring_examples():
    """fastconv.signal's doctested Examples (the suite's doctest run covers
    fastconv.functional only)."""
    import doctest

    res = doctest.testmod(fs, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted >= 8 and res.failed == 0, res
