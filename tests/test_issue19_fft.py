"""Issue 19: the FFT / overlap-save path (fastconv._fft), the top-level functions' ``method=``,
the direct-or-FFT choice, the FFT error bound, and the 1-D row split across threads.

References: scipy.signal.fftconvolve / oaconvolve (same shapes, dtypes and errors), a float64
direct convolution (numpy.convolve / scipy.signal.convolve(method="direct")) for the error
bound, numpy.convolve / numpy.correlate and scipy.signal.convolve2d / correlate2d for the
top-level functions, torch's conv1d for the row split.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.signal as ss

import fastconv
from fastconv import _fft
from fastconv._fft import choose_method, error_bound, fftconvolve, oaconvolve
from conftest import BACKENDS, layouts

FUNCS = [fftconvolve, oaconvolve]
SCIPY = {fftconvolve: ss.fftconvolve, oaconvolve: ss.oaconvolve}
MODES = ("full", "same", "valid")


def _cases(seed, count):
    """Random (in1, in2, axes) over 1-3 dimensions, broadcast axes, swapped sizes, dtypes."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        nd = int(rng.integers(1, 4))
        s1 = [int(v) for v in rng.integers(1, 24, nd)]
        s2 = [int(v) for v in rng.integers(1, 9, nd)]
        axes = None
        if nd > 1 and rng.random() < 0.5:
            axes = sorted(rng.choice(nd, int(rng.integers(1, nd + 1)), replace=False).tolist())
            s2 = [s2[i] if i in axes else int(rng.choice([1, s1[i]])) for i in range(nd)]
        if rng.random() < 0.25:
            s1, s2 = s2, s1
        dt = [np.float32, np.float64, np.complex64, np.complex128, np.int32][len(out) % 5]
        a = rng.standard_normal(s1) * 3
        b = rng.standard_normal(s2) * 3
        if np.dtype(dt).kind == "c":
            a = a + 1j * rng.standard_normal(s1)
            b = b + 1j * rng.standard_normal(s2)
        out.append((a.astype(dt), b.astype(dt), axes))
    return out


def _bound_check(got, want, a, b, axes=None, dtype=None):
    """|got - want| <= error_bound * sum|a| * sum|b| on every output."""
    eb = error_bound(a, b, axes=axes, dtype=dtype)
    scale = np.abs(a).astype(np.float64).sum() * np.abs(b).astype(np.float64).sum()
    err = np.abs(got.astype(np.complex128) - want).max() if got.size else 0.0
    assert err <= eb * scale, (err, eb * scale)
    return err / scale if scale else 0.0


@pytest.mark.parametrize("func", FUNCS, ids=lambda f: f.__name__)
def test_matches_scipy_random(func):
    for a, b, axes in _cases(19, 60):
        for mode in MODES:
            try:
                want = SCIPY[func](a, b, mode, axes=axes)
            except ValueError:
                with pytest.raises(ValueError):
                    func(a, b, mode, axes=axes)
                continue
            got = func(a, b, mode, axes=axes)
            assert got.shape == want.shape and got.dtype == want.dtype, (a.shape, b.shape, mode)
            assert got.flags.c_contiguous
            _bound_check(got, want, a, b, axes=None if axes is None else axes,
                         dtype=got.dtype if got.dtype.kind in "fc" else None)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64])
def test_blocked_plans_match_direct_within_bound(dtype):
    """Sizes whose plan has many blocks per axis (overlap-save) and one block (whole FFT),
    against a float64 / complex128 direct reference."""
    rng = np.random.default_rng(7)
    cases = [((20000,), (301,)), ((3000,), (2900,)), ((150, 130), (31, 23)),
             ((30, 20, 24), (5, 9, 3))]
    for s1, s2 in cases:
        a = rng.standard_normal(s1)
        b = rng.standard_normal(s2)
        if np.dtype(dtype).kind == "c":
            a = a + 1j * rng.standard_normal(s1)
            b = b + 1j * rng.standard_normal(s2)
        a, b = a.astype(dtype), b.astype(dtype)
        nblocks = [-(-n // B) for n, (L, B) in zip(
            [x + y - 1 for x, y in zip(s1, s2)], _fft._plan_blocks(
                [x + y - 1 for x, y in zip(s1, s2)], list(s2), np.dtype(dtype).kind != "c"))]
        ref64 = np.complex128 if np.dtype(dtype).kind == "c" else np.float64
        for mode in MODES:
            want = ss.convolve(a.astype(ref64), b.astype(ref64), mode, method="direct")
            for f in FUNCS:
                got = f(a, b, mode)
                assert got.dtype == dtype
                _bound_check(got, want, a, b)
        if s1 == (20000,):
            assert nblocks[0] > 1  # the overlap-save path is exercised


def test_blocks_never_read_unwritten_memory(monkeypatch):
    """The engine zeroes only its blocks' margins past the input and writes the output a
    slab of rows at a time: with every fresh numpy.empty array full of NaN, blocked plans
    (several blocks per axis, a clipped last block; batch axes; the conv layers' summed
    path) give the same results, and no NaN."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 700, 650)).astype(np.float32)
    h = rng.standard_normal((37, 29)).astype(np.float32)
    xl = rng.standard_normal((1, 2, 300, 350)).astype(np.float32)
    wl = rng.standard_normal((3, 2, 31, 31)).astype(np.float32)
    n_blocks = [-(-n // B) for n, (L, B) in zip((736, 678), _fft._plan_blocks(
        (736, 678), (37, 29), True, 4, 2))]
    assert min(n_blocks) > 1 and 736 % _fft._plan_blocks((736, 678), (37, 29), True, 4, 2)[
        0][1]  # several blocks per axis, the last one clipped

    def calls():
        got = [fftconvolve(x, h[None], mode, axes=(1, 2)) for mode in MODES]
        y = np.empty((1, 3, 300, 350), np.float32)
        _fft.conv_layer(xl, wl, (15, 15), (1, 1), 1, y)
        return got + [y]

    want = calls()
    empty = np.empty

    def nan_empty(shape, dtype=float, *args, **kwargs):
        a = empty(shape, dtype, *args, **kwargs)
        if np.dtype(dtype).kind in "fc":
            a.fill(np.nan)
        return a

    monkeypatch.setattr(np, "empty", nan_empty)
    for g, w in zip(calls(), want):
        assert not np.isnan(g).any()
        np.testing.assert_array_equal(g, w)


def test_error_bound_is_tight_enough_to_fail():
    """The bound is not vacuous: on one-hot inputs (the worst case for an error relative to
    sum|x| * sum|w|) the float32 FFT error reaches a hundredth of it, and float32's bound
    is far below 1."""
    rng = np.random.default_rng(3)
    a = np.zeros(50000, np.float32)
    a[rng.integers(0, 50000)] = 1
    a += (rng.standard_normal(50000) * 1e-6).astype(np.float32)
    b = np.zeros(1001, np.float32)
    b[rng.integers(0, 1001)] = 1
    b += (rng.standard_normal(1001) * 1e-6).astype(np.float32)
    want = np.convolve(a.astype(np.float64), b.astype(np.float64))
    rel = _bound_check(fftconvolve(a, b), want, a, b)
    assert rel > error_bound(a, b) / 100
    assert error_bound(a, b) < 1e-4
    assert error_bound((10,), (3,), dtype="float64") < 1e-13


def test_scalars_empty_and_dtypes_as_scipy():
    assert fftconvolve(np.float32(2), np.float32(3)) == 6
    assert fftconvolve(np.ones(0), np.ones(3)).shape == ss.fftconvolve(np.ones(0), np.ones(3)).shape
    for da, db in [(np.float32, np.float32), (np.float32, np.float64), (np.int16, np.float32),
                   (np.int64, np.int64), (np.float16, np.float16), (np.complex64, np.float32),
                   (np.float32, np.complex128), (bool, np.float32)]:
        a = np.arange(1, 7).astype(da)
        b = np.array([1, 0, 1]).astype(db)
        want = ss.fftconvolve(a, b)
        got = fftconvolve(a, b)
        assert got.dtype == want.dtype, (da, db, got.dtype, want.dtype)
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
    # all axes of length 1: the plain product, in the inputs' dtype (scipy)
    a = np.arange(3, dtype=np.int64).reshape(3, 1)
    b = np.array([[2]], dtype=np.int64)
    assert fftconvolve(a, b, axes=1).dtype == ss.fftconvolve(a, b, axes=1).dtype


def test_layouts():
    rng = np.random.default_rng(5)
    a0 = rng.standard_normal((33, 40)).astype(np.float32)
    b0 = rng.standard_normal((9, 7)).astype(np.float32)
    want = ss.fftconvolve(a0, b0, "same")
    for kind, a in layouts(a0):
        for kind2, b in layouts(b0):
            got = fftconvolve(a, b, "same")
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=kind + kind2)
    assert fftconvolve([1, 2, 3], [1, 1]).tolist() == pytest.approx([1, 3, 5, 3])


BAD = [
    (dict(mode="middle"), ValueError),
    (dict(mode=None), ValueError),
    (dict(in2=np.ones((2, 2))), ValueError),              # ndim mismatch
    (dict(axes=[0, 0]), ValueError),                      # repeated
    (dict(axes=[5]), ValueError),                         # out of range
    (dict(axes=[]), ValueError),                          # empty
    (dict(axes=[0.5]), ValueError),                       # not an integer
    (dict(in1=np.ones((4, 3)), in2=np.ones((2, 5)), mode="valid"), ValueError),
    (dict(in1=np.ones((4, 3)), in2=np.ones((2, 5)), axes=[0]), ValueError),  # incompatible
]


@pytest.mark.parametrize("func", FUNCS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("kw,exc", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_arguments(func, kw, exc):
    args = dict(in1=np.ones(5), in2=np.ones(3), mode="full", axes=None)
    if "in1" in kw or "in2" in kw:
        args["in1"] = kw.get("in1", args["in1"])
        args["in2"] = kw.get("in2", args["in2"])
        if args["in1"].ndim != args["in2"].ndim and "in1" not in kw:
            args["in1"] = np.ones((5,))
    args.update(kw)
    with pytest.raises(exc):
        func(args["in1"], args["in2"], args["mode"], args["axes"])


# --------------------------------------------------------------------------------------------
# the choice
# --------------------------------------------------------------------------------------------
def test_choose_method():
    f32 = np.float32
    assert choose_method(np.ones(10**6, f32), np.ones(3, f32)) == "direct"
    assert choose_method(np.ones(10**6, f32), np.ones(1001, f32)) == "fft"
    assert choose_method(np.ones((2048, 2048), f32), np.ones((63, 63), f32), "same") == "fft"
    assert choose_method(np.ones((2048, 2048), f32), np.ones((3, 3), f32), "same") == "direct"
    # integers and bools stay direct (exact), however large
    assert choose_method(np.ones(10**6, np.int64), np.ones(1001, np.int64)) == "direct"
    assert choose_method(np.ones(10**6, bool), np.ones(1001, bool)) == "direct"
    assert choose_method(np.ones(10**5, np.complex64), np.ones(1001, np.complex64)) == "fft"
    with pytest.raises(ValueError, match="mode"):
        choose_method(np.ones(4), np.ones(2), mode="bad")


def test_choose_method_reads_shapes_only():
    """Any object with shape and dtype will do: no data is read."""
    class Shape:
        def __init__(self, shape, dtype):
            self.shape, self.dtype, self.ndim = shape, np.dtype(dtype), len(shape)
            self.size = int(np.prod(shape))
    assert choose_method(Shape((4096, 4096), "f4"), Shape((127, 127), "f4")) == "fft"
    assert choose_method(Shape((64,), "f8"), Shape((3,), "f8")) == "direct"


# --------------------------------------------------------------------------------------------
# the top-level functions' method=
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["auto", "direct", "fft"])
def test_top_level_methods(backend, method):
    rng = np.random.default_rng(11)
    for mode in MODES:
        for n, k in ((50, 7), (7, 50), (1500, 301)):
            for dt in (np.float32, np.float64):
                a = rng.standard_normal(n).astype(dt)
                v = rng.standard_normal(k).astype(dt)
                for f, g in ((fastconv.convolve, np.convolve), (fastconv.correlate, np.correlate)):
                    want = g(a.astype(np.float64), v.astype(np.float64), mode)
                    got = f(a, v, mode, backend=backend, method=method)
                    assert got.dtype == dt and got.shape == want.shape
                    _bound_check(got, want, a, v, dtype=dt)
        for s1, s2 in (((30, 40), (5, 7)), ((5, 7), (30, 40)), ((60, 50), (21, 23))):
            for boundary, fill in (("fill", 0), ("fill", 1.5), ("wrap", 0), ("symm", 0)):
                if mode == "valid" and s1[0] < s2[0] and boundary != "fill":
                    continue
                a = rng.standard_normal(s1)
                v = rng.standard_normal(s2)
                for f, g in ((fastconv.convolve2d, ss.convolve2d),
                             (fastconv.correlate2d, ss.correlate2d)):
                    want = g(a, v, mode, boundary, fill)
                    got = f(a, v, mode, boundary, fill, backend=backend, method=method)
                    assert got.shape == want.shape and got.dtype == np.float64
                    np.testing.assert_allclose(got, want, atol=1e-9 * np.abs(want).max() + 1e-9)


def test_top_level_bad_method():
    for f in (fastconv.convolve, fastconv.correlate):
        with pytest.raises(ValueError, match="method"):
            f([1., 2.], [1.], method="fast")
    for f in (fastconv.convolve2d, fastconv.correlate2d):
        with pytest.raises(ValueError, match="method"):
            f(np.ones((2, 2)), np.ones((1, 1)), method=None)


def test_auto_takes_fft_for_large_kernels_and_direct_for_integers(monkeypatch):
    calls = []
    real = _fft._conv_window
    monkeypatch.setattr(_fft, "_conv_window", lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(2)
    a = rng.standard_normal(50000)
    v = rng.standard_normal(2001)
    fastconv.convolve(a, v, backend="cython" if "cython" in BACKENDS else None)
    assert calls, "auto took the direct path for a 2001-tap kernel"
    calls.clear()
    # integer inputs: direct, exact (an FFT would round these large sums)
    ai = rng.integers(-2**20, 2**20, 8000)
    vi = rng.integers(-2**20, 2**20, 1001)
    got = fastconv.convolve(ai, vi)
    assert not calls
    np.testing.assert_array_equal(got, np.convolve(ai, vi).astype(np.float64))
    # backend="numpy" stays the plain reference
    fastconv.convolve(a, v, backend="numpy")
    assert not calls


# --------------------------------------------------------------------------------------------
# the 1-D row split
# --------------------------------------------------------------------------------------------
def test_long_rows_are_split_and_match(backend, threads, monkeypatch):
    """A one-row 1-D call on 2 threads spreads over the threads with the same results as
    one thread: at stride 1 the direct kernels by themselves (Cython's fc_row: ranges of
    the row; Numba's _conv2d_row: blocks of it; bitwise the same for any thread count),
    strided ones as row segments stacked as rows."""
    from fastconv import _dispatch
    seen = []
    real = _dispatch.run
    monkeypatch.setattr(_dispatch, "run",
                        lambda op, b, spec, out: seen.append(spec.out_shape) or real(op, b, spec, out))
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2, 70001)).astype(np.float32)
    w = rng.standard_normal((1, 2, 101)).astype(np.float32)
    cases = [dict(), dict(stride=2, padding=7, dilation=2), dict(padding="same")]
    res, split = {}, {}
    for nt in (1, 2):
        fastconv.set_num_threads(nt)
        res[nt] = []
        for kw in cases:
            del seen[:]
            res[nt].append(fastconv.conv1d(x, w, backend=backend, **kw))
            split[nt, len(res[nt])] = any(s[2] > 1 for s in seen)
        res[nt].append(fastconv.correlate(x[0, 0], w[0, 0], "same", backend=backend,
                                          method="direct"))
    if backend in ("cython", "numba"):
        # stride 1: no segments, the kernels' blocks read in place, bitwise the same
        assert not split[2, 1] and not split[2, 3]
        for r1, r2 in zip(res[1], res[2]):
            np.testing.assert_array_equal(r1, r2)
        assert split[2, 2] and not split[1, 2]  # strided: segments, on 2 threads only
    for r1, r2 in zip(res[1], res[2]):
        np.testing.assert_allclose(r1, r2, rtol=1e-5, atol=1e-4)
    torch = pytest.importorskip("torch")
    for kw, r in zip(cases, res[2]):
        want = torch.nn.functional.conv1d(torch.from_numpy(x), torch.from_numpy(w), **kw).numpy()
        np.testing.assert_allclose(r, want, rtol=1e-4, atol=1e-3)
    want = np.correlate(x[0, 0].astype(np.float64), w[0, 0].astype(np.float64), "same")
    np.testing.assert_allclose(res[2][-1], want, rtol=1e-4, atol=1e-3)


# --------------------------------------------------------------------------------------------
# memory on the bench targets' shapes
# --------------------------------------------------------------------------------------------
def test_extra_memory_on_target_shapes():
    if not sys.platform.startswith("linux"):
        pytest.skip("needs Linux's /proc/self/clear_refs")
    from test_memory import _PREAMBLE, MIB
    child = _PREAMBLE + r"""
from fastconv._fft import fftconvolve
fastconv.set_num_threads(2)
rng = np.random.default_rng(0)
res = {}
for name, s1, s2, mode in [("2d63", (2048, 2048), (63, 63), "same"),
                           ("1d10001", (10**6,), (10001,), "full")]:
    a = rng.standard_normal(s1).astype(np.float32)
    b = rng.standard_normal(s2).astype(np.float32)
    fftconvolve(a, b, mode)  # warm up: the pool's threads, scipy.fft's plans
    before, reset = reset_peak("numpy")
    out = fftconvolve(a, b, mode)
    res[name] = {"extra": status("VmHWM") - before - out.nbytes,
                 "in_out": a.nbytes + out.nbytes}
    del a, out
x = rng.standard_normal((1, 1, 1024, 1024)).astype(np.float32)
w = rng.standard_normal((8, 1, 31, 31)).astype(np.float32)
out = np.zeros((1, 8, 1024, 1024), np.float32)
fastconv.conv2d(x, w, padding="same", out=out)  # warm up: the pool's threads, FFT plans
before, reset = reset_peak("numpy")
fastconv.conv2d(x, w, padding="same", out=out)
res["conv2d-8x31x31"] = {"extra": status("VmHWM") - before, "in_out": x.nbytes + out.nbytes}
print(json.dumps(res))
"""
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.splitlines()[-1])
    assert len(got) == 3
    for name, r in got.items():
        assert r["extra"] <= max(64 * MIB, r["in_out"]), (name, r)


# --------------------------------------------------------------------------------------------
# conv1d / conv2d large kernels by FFT (backend="auto")
# --------------------------------------------------------------------------------------------
LAYERS = [
    ((1, 1, 160, 150), (8, 1, 31, 31), dict(padding="same")),
    ((2, 3, 60, 50), (5, 3, 9, 11), dict(padding=(3, 5))),
    ((2, 4, 40, 45), (6, 2, 7, 7), dict(padding=2, groups=2, dilation=2)),
    ((2, 2, 40, 40), (4, 2, 9, 9), dict(padding=4, padding_mode="reflect")),
    ((1, 2, 5000), (3, 2, 301), dict(padding=100)),
    ((2, 1, 3000), (4, 1, 129), dict(padding="same", dilation=3)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_layers_fft_path_matches_torch(dtype, monkeypatch):
    torch = pytest.importorskip("torch")
    calls = []
    real = _fft.conv_layer
    monkeypatch.setattr(_fft, "conv_layer", lambda *a: calls.append(1) or real(*a))
    # these layers are small: make the direct kernels look slow so the plan takes the FFT
    # wherever its structural conditions hold (stride 1, >= FFT_MIN_TAPS taps, padding)
    from fastconv import _plan
    monkeypatch.setattr(_fft, "_LAYER_FFT_OVERHEAD", 0.0)
    for b in ("cython", "numba"):
        monkeypatch.setitem(_plan.MAC_RATE[b], "conv2d", 1e3)
    rng = np.random.default_rng(8)
    for xs, ws, kw in LAYERS:
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
        b = rng.standard_normal(ws[0]).astype(dtype)
        f, tf = ((fastconv.conv2d, torch.nn.functional.conv2d) if len(xs) == 4 else
                 (fastconv.conv1d, torch.nn.functional.conv1d))
        calls.clear()
        got = f(x, w, b, backend="auto", **kw)
        assert calls, (xs, ws, kw)  # the FFT path ran
        tkw = dict(kw)
        mode = tkw.pop("padding_mode", "zeros")
        xt = torch.from_numpy(x)
        if mode != "zeros":
            p = tkw.pop("padding")
            xt = torch.nn.functional.pad(xt, (p,) * (2 * (len(xs) - 2)), mode=mode)
        want = tf(xt, torch.from_numpy(w), torch.from_numpy(b), **tkw).numpy()
        assert got.shape == want.shape and got.dtype == dtype
        scale = np.abs(x).max() * np.abs(w).sum(axis=tuple(range(1, w.ndim))).max()
        err = np.abs(got - want).max() / scale
        assert err <= error_bound(x.shape[2:], w.shape[2:], dtype=dtype) * 4, (xs, ws, err)
        # the other backends keep their kernels and agree
        ref = f(x, w, b, backend="numpy", **kw)
        np.testing.assert_allclose(got, ref, rtol=0, atol=scale * 1e-3 if dtype == np.float32
                                   else scale * 1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_layer_filter_chunks_change_nothing(dtype, monkeypatch):
    """A 2-D conv layer's task sums, inverse transforms and copies out its filters a few at a
    time (``_FILTER_BYTES``): one filter per chunk, chunks that leave a shorter last one, and
    all filters at once give the same bits (each filter's spectral sum is the same), with
    batches, channels, groups, several blocks per axis, a clipped last block; a 1-D layer
    takes all its filters at once whatever the setting."""
    rng = np.random.default_rng(12)
    cases = [((2, 3, 300, 340), (7, 3, 31, 31), (15, 15), 1),
             ((1, 4, 200, 150), (6, 2, 25, 17), (12, 8), 2),
             ((2, 2, 1, 5000), (5, 2, 1, 301), (0, 150), 1)]
    for xs, ws, pad, groups in cases:
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
        out_shape = (xs[0], ws[0], xs[2] + 2 * pad[0] - ws[2] + 1,
                     xs[3] + 2 * pad[1] - ws[3] + 1)
        got = []
        for nbytes in (1, 2 * 288 * 145 * np.dtype(dtype).itemsize * 2, 1 << 40):
            monkeypatch.setattr(_fft, "_FILTER_BYTES", nbytes)
            y = np.empty(out_shape, dtype)
            _fft.conv_layer(x, w, pad, (1, 1), groups, y)
            got.append(y)
        for y in got[1:]:
            np.testing.assert_array_equal(y, got[0])
        ref = fastconv.conv2d(x, w, padding=pad, groups=groups, backend="numpy")
        scale = np.abs(x).max() * np.abs(w).sum(axis=(1, 2, 3)).max()
        assert np.abs(got[0] - ref).max() <= scale * (1e-4 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("workers", [1, 2])
def test_kernel_spectrum_skips_the_zeros_and_is_the_whole_transform(dtype, workers):
    """The kernel's spectrum transforms only the lines that are not all zeros, in
    pocketfft's order of axes: bitwise the whole zero-extended transform, for layers'
    filter stacks (split between threads), single kernels, 2-D and 3-D, flipped views; a
    kernel that fills most of the block takes the whole transform."""
    rng = np.random.default_rng(13)
    cases = [((8, 1, 31, 31), (288, 288)), ((31, 31), (288, 288)), ((5, 9, 9), (64, 64)),
             ((3, 2, 5, 7, 9), (40, 48, 30)), ((3, 4, 5, 6), (16, 18, 20)),
             ((2, 10, 3), (18, 16)), ((1, 5, 5), (32, 32))]
    real = np.dtype(dtype).kind == "f"
    for hs, Ls in cases:
        h = rng.standard_normal(hs).astype(dtype)
        if not real:
            h = h + 1j * rng.standard_normal(hs).astype(dtype)
        h = h[..., ::-1, ::-1]
        want = _fft._transform(h, Ls, real, False, 2)
        got = _fft._kernel_spectrum(h, Ls, real, workers)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_conv_layers_small_kernels_and_nonfinite_keep_their_kernels(monkeypatch):
    calls = []
    monkeypatch.setattr(_fft, "conv_layer", lambda *a: calls.append(1))
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 8, 64, 64)).astype(np.float32)
    fastconv.conv2d(x, rng.standard_normal((8, 8, 5, 5)).astype(np.float32), padding=2)
    fastconv.conv2d(x, rng.standard_normal((8, 8, 15, 15)).astype(np.float32), stride=2)
    w = rng.standard_normal((8, 8, 15, 15)).astype(np.float32)
    w[0, 0, 0, 0] = np.nan
    y = fastconv.conv2d(x, w, padding=7)
    assert not calls
    assert np.isnan(y[:, 0]).any() and not np.isnan(y[:, 1:]).any()
    from fastconv import _plan
    assert not _plan.conv2d_fft("cython", (8, 64, 56, 56), (64, 64, 3, 3), (8, 64, 56, 56),
                                (1, 1), (1, 1), (1, 1), 1)


def test_doctests():
    import doctest
    import importlib
    for name in ("fastconv._fft",):
        res = doctest.testmod(importlib.import_module(name),
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        assert res.attempted and not res.failed


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_fft_pool_after_fork():
    """A child forked after the pool started makes its own (the parent's threads are gone):
    it computes instead of hanging. In a fresh process, so that the fork's warnings stay
    there."""
    script = r"""
import os, sys, warnings
import numpy as np
import fastconv
from fastconv._fft import fftconvolve
warnings.simplefilter("ignore")
fastconv.set_num_threads(2)
a = np.random.default_rng(0).standard_normal(200000)
b = np.ones(2001)
want = fftconvolve(a, b)  # starts the pool here
pid = os.fork()
if pid == 0:
    ok = np.allclose(fftconvolve(a, b), want)
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "0", proc.stdout


def test_run_tasks_runs_each_item_once_and_raises():
    seen = []
    _fft._run_tasks(lambda i, stop: seen.append(i), list(range(50)), 3)
    assert sorted(seen) == list(range(50))

    def bad(i, stop):
        if i == 3:
            raise ZeroDivisionError("item 3")
    with pytest.raises(ZeroDivisionError, match="item 3"):
        _fft._run_tasks(bad, list(range(8)), 2)


def test_run_tasks_stops_the_other_items_after_an_error():
    """After one item fails, an item in another thread stops at its next piece (stop()),
    the caller gets the first error (never _Cancelled), and only once no item runs."""
    import threading
    import time
    failed = threading.Event()
    pieces = []

    def item(i, stop):
        if i == 0:
            time.sleep(0.05)
            failed.set()
            raise ZeroDivisionError("item 0")
        failed.wait(5)
        for sl in _fft._slabs((1000, 1 << 20), stop, cut=0):  # 1000 slabs: ~forever
            pieces.append(sl)
            time.sleep(0.001)

    with pytest.raises(ZeroDivisionError, match="item 0"):
        _fft._run_tasks(item, [0, 1], 2)
    n = len(pieces)
    assert n < 1000
    time.sleep(0.05)
    assert len(pieces) == n  # nothing ran on after the caller got the error


@pytest.mark.parametrize("real", [True, False])
@pytest.mark.parametrize("shape, Ls", [((3, 40, 50), (64, 60)), ((5, 700), (800,)),
                                       ((2, 3, 20, 30, 10), (32, 32, 12)),
                                       ((4, 30, 33), (30, 33))])
def test_cut_transforms_are_the_whole_ones(real, shape, Ls, monkeypatch):
    """A transform cut into slabs (one axis at a time; for Ctrl-C) is scipy.fft's n-D one,
    forward (zero-extended) and inverse, in both precisions."""
    import scipy.fft as sf
    monkeypatch.setattr(_fft, "_CUT_FROM", 1000)
    monkeypatch.setattr(_fft, "_CUT_ELEMS", 300)
    rng = np.random.default_rng(7)
    d = len(Ls)
    axes = tuple(range(-d, 0))
    for dt in (np.float32, np.float64):
        a = rng.standard_normal(shape).astype(dt)
        if not real:
            a = a + 1j * rng.standard_normal(shape).astype(dt)
        want = (sf.rfftn if real else sf.fftn)(a, Ls, axes=axes)
        got = _fft._transform(a, Ls, real, False, 2)
        assert got.dtype == want.dtype
        tol = 1e-4 if dt == np.float32 else 1e-12
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
        back = _fft._transform(want.copy(), Ls, real, True, 2)
        wantb = (sf.irfftn if real else sf.ifftn)(want, Ls, axes=axes)
        assert back.dtype == wantb.dtype
        np.testing.assert_allclose(back, wantb, rtol=tol, atol=tol * np.abs(wantb).max())


@pytest.mark.parametrize("cut", [False, True])
@pytest.mark.parametrize("shape, Ls, keep", [
    ((3, 40, 31), (40, 60), (slice(9, 40), slice(4, 50))),
    ((2, 16, 12, 7), (16, 12, 12), (slice(3, 16), slice(0, 12), slice(11, 12))),
])
def test_pruned_real_inverse_is_the_kept_window_of_the_whole_one(cut, shape, Ls, keep,
                                                                 monkeypatch):
    """The engine's real inverse in 2-D and up (``keep``: the last axis's real transforms
    on the kept lines only, unnormalized) is the window ``keep`` of scipy.fft's irfftn
    times prod(Ls), whole or cut into slabs, in both precisions: scaled back (as the
    engine does), bitwise irfftn's window."""
    import scipy.fft as sf
    if cut:
        monkeypatch.setattr(_fft, "_CUT_FROM", 1000)
        monkeypatch.setattr(_fft, "_CUT_ELEMS", 300)
    rng = np.random.default_rng(8)
    d = len(Ls)
    for dt in (np.complex64, np.complex128):
        spec = sf.rfftn(rng.standard_normal(shape[:-d] + Ls), axes=tuple(range(-d, 0)))
        spec = spec.astype(dt)
        want = sf.irfftn(spec, Ls, axes=tuple(range(-d, 0)))[(Ellipsis,) + keep]
        got = _fft._transform(spec.copy(), Ls, True, True, 2, keep=keep)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got * got.dtype.type(1.0 / np.prod(Ls)), want)
        tol = 1e-4 if dt == np.complex64 else 1e-12
        want = want * np.prod(Ls)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_engine_with_cut_transforms_and_slabs_matches(mode, monkeypatch):
    """The engine with every transform cut and every copy and product in small slabs (as a
    large call runs, for Ctrl-C) gives the uncut engine's results, real and complex, 1-D
    to 3-D, broadcast batch axes included."""
    rng = np.random.default_rng(11)
    cases = [((300, 200), (31, 17)), ((4, 1000), (1, 77)), ((20, 30, 40), (5, 6, 7)),
             ((1, 90, 80), (3, 9, 9))]
    for s1, s2 in cases:
        for cplx in (False, True):
            a = rng.standard_normal(s1)
            b = rng.standard_normal(s2)
            if cplx:
                a = a + 1j * rng.standard_normal(s1)
            whole = fftconvolve(a, b, mode)
            with monkeypatch.context() as m:
                m.setattr(_fft, "_CUT_FROM", 1000)
                m.setattr(_fft, "_CUT_ELEMS", 500)
                cut = fftconvolve(a, b, mode)
            tol = 1e-12 * np.abs(whole).max()
            np.testing.assert_allclose(cut, whole, rtol=1e-12, atol=tol)


def test_joint_plan_covers_every_window_and_balances_the_documented_case():
    """The 2-D plan's blocks cover the window with transforms long enough for no
    wrap-around (L >= B + k - 1), for any shape and dtype; the documented example takes 16
    blocks of 576 (two threads share them evenly) where the per-axis plan took 9 of 750."""
    rng = np.random.default_rng(5)
    for _ in range(300):
        d = int(rng.integers(2, 4))
        ns = tuple(int(v) for v in rng.integers(1, 3000, d))
        ks = tuple(int(v) for v in rng.integers(1, 300, d))
        for item in (4, 8):
            real, batch = bool(rng.integers(2)), int(rng.integers(1, 4))
            plan = _fft._plan_blocks(ns, ks, real, item, batch)
            for (L, B), n, k in zip(plan, ns, ks):
                assert 1 <= B <= n and L >= B + k - 1 and -(-n // B) * B >= n
    assert _fft._plan_blocks((2048, 2048), (63, 63), True, 4) == [(576, 514)] * 2
    assert _fft._axis_plan(2048, 63, True, 2)[0] == 576  # the factor-5 penalty alone
    nbs = (4, 4)
    assert len(_fft._task_ranges(nbs, (576, 576), 4)) == 16


def test_a_long_1d_transform_with_no_other_axis_stays_one_call(monkeypatch):
    """A 1-D transform with no other axis longer than 1 cannot be cut: it is one scipy.fft
    call, not a slab loop with extra copies."""
    import scipy.fft as sf
    monkeypatch.setattr(_fft, "_CUT_FROM", 100)

    def no_slabs(*a, **k):
        raise AssertionError("cut")
    monkeypatch.setattr(_fft, "_slabs", no_slabs)
    a = np.random.default_rng(3).standard_normal((1, 1, 1000))
    np.testing.assert_array_equal(_fft._transform(a, (1024,), True, False, 1),
                                  sf.rfft(a, 1024, axis=-1))
    with pytest.raises(AssertionError, match="cut"):  # with another axis: cut
        _fft._transform(np.zeros((2, 1000)), (1024,), True, False, 1)
