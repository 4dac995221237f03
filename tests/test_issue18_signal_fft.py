"""Issue 18 x issue 19: ``fastconv.signal``'s ``method='fft'`` and the FFT branch of
``method='auto'``/``choose_conv_method``, through :mod:`fastconv._fft` (issue 19's
``fftconvolve(in1, in2, mode, axes)`` and ``choose_method(in1, in2, mode, axes)``).
"""

import numpy as np
import pytest

import scipy.signal as ss

from fastconv import _fft
from fastconv import signal as fs

DTYPES = ("float32", "float64", "complex64", "complex128")


def make(rng, shape, dtype):
    dt = np.dtype(dtype)
    if dt.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dt)
    if dt.kind in "iu":
        return rng.integers(-50, 50, shape).astype(dt)
    return rng.standard_normal(shape).astype(dt)


def bound(a, b, dtype):
    """The FFT's error allowance: a multiple of eps * sum|a| * sum|b| (issue 19's form)."""
    eps = np.finfo(np.dtype(dtype)).eps
    return 64 * eps * np.abs(a).sum() * np.abs(b).sum() + 1e-30


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("func", ["convolve", "correlate"])
def test_fft_matches_direct_and_scipy(func, nd):
    rng = np.random.default_rng(nd)
    for i, dt in enumerate(DTYPES * 2):
        mode = ("full", "same", "valid")[i % 3]
        s1 = tuple(int(v) for v in rng.integers(3, 12, nd))
        s2 = tuple(int(v) for v in rng.integers(1, 4, nd))
        if i % 4 == 3 and mode == "valid":
            s1, s2 = s2, s1  # in2 the larger: swapped as scipy
        a, b = make(rng, s1, dt), make(rng, s2, dt)
        f = getattr(fs, func)
        got = f(a, b, mode, method="fft")
        direct = f(a, b, mode, method="direct")
        want = getattr(ss, func)(a, b, mode, method="fft")
        assert got.dtype == want.dtype == direct.dtype
        assert got.shape == want.shape == direct.shape
        assert np.abs(got - direct).max() <= bound(a, b, dt)


def test_fft_integer_inputs_are_rounded_exactly():
    rng = np.random.default_rng(0)
    for dt in ("int8", "int32", "int64", "uint8"):
        a, b = make(rng, (40,), dt), make(rng, (7,), dt)
        if dt == "uint8":
            a, b = np.abs(a).astype(dt), np.abs(b).astype(dt)
        got = fs.convolve(a, b, method="fft")
        assert got.dtype == np.dtype(dt)
        np.testing.assert_array_equal(got, fs.convolve(a, b, method="direct"))
        np.testing.assert_array_equal(got, ss.convolve(a, b, method="direct"))


def test_auto_takes_the_fft_when_choose_method_says_so(monkeypatch):
    rng = np.random.default_rng(1)
    a, b = make(rng, (30, 20), "float64"), make(rng, (5, 4), "float64")
    calls = []
    real = _fft.fftconvolve

    def spy(*args, **kwargs):
        calls.append(args[2] if len(args) > 2 else kwargs.get("mode"))
        return real(*args, **kwargs)

    monkeypatch.setattr(_fft, "fftconvolve", spy)
    monkeypatch.setattr(_fft, "choose_method", lambda *a, **k: "fft")
    r_fft = fs.correlate(a, b, "same")
    assert calls == ["same"]
    assert fs.choose_conv_method(a, b, "same") == "fft"
    monkeypatch.setattr(_fft, "choose_method", lambda *a, **k: "direct")
    r_dir = fs.correlate(a, b, "same")
    assert calls == ["same"]  # no second FFT
    assert fs.choose_conv_method(a, b, "same") == "direct"
    np.testing.assert_allclose(r_fft, r_dir, atol=bound(a, b, "float64"))


def test_auto_stays_direct_for_integers(monkeypatch):
    monkeypatch.setattr(_fft, "choose_method", lambda *a, **k: "fft")
    monkeypatch.setattr(_fft, "fftconvolve", lambda *a, **k: pytest.fail("FFT on ints"))
    a = np.arange(1000, dtype=np.int64) ** 3
    assert fs.choose_conv_method(a, a) == "direct"
    np.testing.assert_array_equal(fs.convolve(a, a[:50]), ss.convolve(a, a[:50], "full",
                                                                      method="direct"))


def test_choose_conv_method_measure():
    rng = np.random.default_rng(2)
    a, b = make(rng, (64, 64), "float32"), make(rng, (9, 9), "float32")
    method, times = fs.choose_conv_method(a, b, "same", measure=True)
    assert method in ("fft", "direct")
    assert set(times) == {"fft", "direct"} and all(t > 0 for t in times.values())
    assert method == min(times, key=times.get)
