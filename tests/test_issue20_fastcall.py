"""The per-call fast path of conv1d/conv2d (fastconv._fastcall): a repeated call runs its
planned kernel directly, with the full path's results (bitwise), and every call the plan
does not cover takes the full path, with its checks and errors."""

import numpy as np
import pytest

import fastconv
from fastconv import _fastcall

from conftest import BACKENDS

COMPILED = [b for b in BACKENDS if b in ("cython", "numba")] + ["auto"]

# (x shape, weight shape, kwargs): conv2d unless x is 3-D with a 3-D weight (conv1d)
CASES = [
    ((1, 1, 8, 8), (1, 1, 3, 3), {}),
    ((2, 3, 9, 7), (4, 3, 3, 2), {"stride": 2, "padding": 1}),
    ((2, 4, 10, 11), (6, 2, 3, 3), {"groups": 2, "dilation": (2, 1), "padding": (1, 2)}),
    ((1, 2, 6, 6), (3, 2, 2, 2), {"padding": "same"}),
    ((3, 5, 5), (2, 3, 3, 3), {"padding": "valid"}),  # an unbatched conv2d input
    ((2, 3, 17), (4, 3, 5), {"stride": 3, "padding": 2}),
    ((1, 2, 40), (2, 1, 4), {"groups": 2, "padding": "same", "dilation": 2}),
]


def _fn(xs, ws):
    return fastconv.conv1d if len(ws) == 3 else fastconv.conv2d


def _full(fn, *args, **kw):
    """The call through the full path (no plan)."""
    _fastcall.clear()
    got = fn(*args, **kw)
    _fastcall.clear()
    return got


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("with_bias", [False, True])
def test_planned_calls_give_the_full_paths_bits(backend, dtype, case, with_bias):
    xs, ws, kw = CASES[case]
    fn = _fn(xs, ws)
    rng = np.random.default_rng(case)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype) if with_bias else None
    x1, x2 = (rng.standard_normal(xs).astype(dtype) for _ in range(2))
    first = fn(x1, w, b, backend=backend, **kw)  # the full path, which plans the call
    assert len(_plans()) == 1
    second = fn(x2, w, b, backend=backend, **kw)  # planned: new values, same shapes
    again = fn(x1, w, b, backend=backend, **kw)
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(second, _full(fn, x2, w, b, backend=backend, **kw))
    ref = fn(x2, w, b, backend="numpy", **kw)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(second, ref, rtol=tol, atol=tol)
    assert second.dtype == dtype and second.shape == ref.shape
    if b is not None:
        assert b.flags.writeable  # the plan never touches the caller's arrays


def test_the_kernel_runs_once_per_planned_call(monkeypatch):
    """A planned call goes straight to the kernel: the full path's functions never run."""
    x = np.ones((1, 1, 8, 8), np.float32)
    w = np.ones((1, 1, 3, 3), np.float32)
    fastconv.conv2d(x, w, backend="cython")
    from fastconv import _spec

    def boom(*a, **k):
        raise AssertionError("the full path ran")

    monkeypatch.setattr(_spec, "conv_spec", boom)
    np.testing.assert_array_equal(fastconv.conv2d(x, w, backend="cython"), 9)


def _plans():
    """The plans in the cache (keys kept as never plannable are not plans)."""
    return [v for v in _fastcall._CACHE.values() if v]


def _planned(fn, *args, **kw):
    _fastcall.clear()
    fn(*args, **kw)
    return len(_plans()) == 1


@pytest.mark.parametrize("backend", COMPILED)
def test_what_is_not_planned(backend):
    x = np.ones((2, 2, 9, 9), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    assert _planned(fastconv.conv2d, x, w, backend=backend)
    # a copy or a conversion in the full path: no plan
    assert not _planned(fastconv.conv2d, x.astype(np.float64), w, backend=backend)
    assert not _planned(fastconv.conv2d, np.asfortranarray(x), w, backend=backend)
    assert not _planned(fastconv.conv2d, x[:, :, ::2], w, backend=backend)
    assert not _planned(fastconv.conv2d, x.astype(">f4"), w.astype(">f4"), backend=backend)
    assert not _planned(fastconv.conv2d, x, w, padding=1, padding_mode="reflect",
                        backend=backend)
    assert not _planned(fastconv.conv2d, x.tolist(), w, backend=backend)
    assert not _planned(fastconv.conv2d, x, w, stride=np.int64(1), backend=backend)
    assert not _planned(fastconv.conv2d, x, w, stride=[1, 1], backend=backend)
    # an empty batch (the postcondition writes nothing), the reference backend
    assert not _planned(fastconv.conv2d, x[:0], w, backend=backend)
    assert not _planned(fastconv.conv2d, x, w, backend="numpy")
    # a large kernel: the FFT layer path's choice reads the weight's values
    big = np.ones((1, 1, 64, 64), np.float32)
    assert not _planned(fastconv.conv2d, big, np.ones((1, 1, 31, 31), np.float32),
                        backend=backend)


def test_checks_still_run_on_planned_shapes():
    """A call whose key was planned, with arrays the plan does not take, takes the full
    path: its results, and its errors."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 8, 8)).astype(np.float32)
    w = rng.standard_normal((2, 2, 1, 1)).astype(np.float32)
    want = fastconv.conv2d(x, w, backend="cython")
    assert len(_plans()) == 1
    # not C-contiguous, same shape and dtype
    xt = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    np.testing.assert_array_equal(fastconv.conv2d(xt, w, backend="cython"), want)
    # out=: filled and returned; one that overlaps an input is refused as before
    out = np.empty_like(want)
    assert fastconv.conv2d(x, w, backend="cython", out=out) is out
    np.testing.assert_array_equal(out, want)
    with pytest.raises(ValueError, match="overlap"):
        fastconv.conv2d(x, w, backend="cython", out=x)
    with pytest.raises(TypeError, match="dtype"):
        fastconv.conv2d(x, w, backend="cython", out=np.empty(want.shape, np.float64))
    with pytest.raises(ValueError, match="shape"):
        fastconv.conv2d(x, w, backend="cython", out=np.empty((1, 2, 8, 7), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        fastconv.conv2d(x, w, backend="cython",
                        out=np.empty((1, 2, 8, 16), np.float32)[..., ::2])
    ro = np.empty_like(want)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        fastconv.conv2d(x, w, backend="cython", out=ro)
    # a bool is not an int, even where 1 was planned
    fastconv.conv2d(x, w, stride=1, backend="cython")
    with pytest.raises(TypeError, match="stride"):
        fastconv.conv2d(x, w, stride=True, backend="cython")


def test_the_key_follows_backend_and_threads():
    x = np.ones((1, 1, 8, 8), np.float32)
    w = np.ones((1, 1, 3, 3), np.float32)
    threads = fastconv.get_num_threads()
    try:
        fastconv.conv2d(x, w)
        fastconv.set_num_threads(1 if threads > 1 else 2)
        fastconv.conv2d(x, w)
        assert len(_plans()) == 2
    finally:
        fastconv.set_num_threads(threads)
    with fastconv.use_backend("numpy"):
        fastconv.conv2d(x, w)  # the reference: no plan, and not the planned kernel
    assert len(_plans()) == 2
    with fastconv.use_backend("numba" if "numba" in BACKENDS else "cython"):
        fastconv.conv2d(x, w)
    assert len(_plans()) == 3


class _ChangesOnLookup(dict):
    """A cache whose first lookup runs ``change()``: another thread's call of set_backend or
    set_num_threads between the key and the full path's own reads of those settings."""

    def __init__(self, change):
        super().__init__()
        self.change = change

    def get(self, k, default=None):
        if self.change is not None:
            self.change, change = None, self.change
            change()
        return super().get(k, default)


def test_a_setting_changed_during_the_call_is_not_planned_under_the_old_key(monkeypatch):
    x = np.ones((1, 1, 8, 8), np.float32)
    w = np.ones((1, 1, 3, 3), np.float32)
    fastconv.set_backend("numpy")
    cache = _ChangesOnLookup(lambda: fastconv.set_backend("cython"))
    monkeypatch.setattr(_fastcall, "_CACHE", cache)
    fastconv.conv2d(x, w)  # keyed under "numpy", run on "cython"
    assert not [v for v in cache.values() if v]
    fastconv.set_backend("numpy")
    np.testing.assert_array_equal(fastconv.conv2d(x, w), 9)


@pytest.mark.real_grains
def test_the_plans_thread_count_is_the_keys(monkeypatch):
    """The plan's threads come from the key's thread count, not from the setting when the
    call ends."""
    from fastconv import _threads

    x = np.ones((1, 16, 64, 64), np.float32)
    w = np.ones((4, 16, 3, 3), np.float32)  # about 4.4 MFLOP: two threads at the real grain
    threads = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(2)
        cache = _ChangesOnLookup(lambda: fastconv.set_num_threads(1))
        monkeypatch.setattr(_fastcall, "_CACHE", cache)
        fastconv.conv2d(x, w, backend="cython")
        (k, plan), = cache.items()
        assert k[12] == 2 and plan  # planned (the direct algorithm), on the key's two threads
        assert plan[-1] == _threads.threads_for(2 * 4 * 16 * 9 * 62 * 62, _threads.GRAIN_FLOPS,
                                                2) == 2
    finally:
        fastconv.set_num_threads(threads)


def test_a_key_never_planned_is_kept_as_such():
    """A BLAS layer (pointwise) is never planned: its key is kept, so later calls neither
    try a plan nor plan again; they give the full path's results."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 128, 28, 28)).astype(np.float32)  # one image: GEMM
    w = rng.standard_normal((256, 128, 1, 1)).astype(np.float32)
    first = fastconv.conv2d(x, w, backend="cython")
    assert list(_fastcall._CACHE.values()) == [_fastcall.NO_PLAN]
    np.testing.assert_array_equal(fastconv.conv2d(x, w, backend="cython"), first)


def test_the_cache_is_bounded():
    w = np.ones((1, 1, 2, 2), np.float32)
    for n in range(_fastcall._CACHE_SIZE + 5):
        fastconv.conv2d(np.ones((1, 1, 2, 2 + n), np.float32), w, backend="cython")
    assert len(_fastcall._CACHE) <= _fastcall._CACHE_SIZE


# ---- the gradients (fastconv.grad's conv1d/conv2d_input and _weight) ----------------------
# (x shape, weight shape, kwargs): conv2d's unless the weight is 3-D (conv1d's)
GRAD_CASES = [
    ((2, 3, 9, 9), (4, 3, 3, 3), {"padding": 1}),                 # forward route, direct
    ((2, 3, 9, 7), (4, 3, 3, 2), {"stride": 2, "padding": 1}),
    ((2, 4, 10, 11), (6, 2, 3, 3), {"groups": 2, "dilation": (2, 1), "padding": (1, 2)}),
    ((4, 16, 13, 13), (16, 16, 3, 3), {}),                        # GEMMs: the BLAS hold
    ((3, 5, 5), (2, 3, 3, 3), {"padding": "valid"}),              # unbatched
    ((2, 3, 17), (4, 3, 5), {"stride": 3, "padding": 2}),         # conv1d
]


def _grad_call(op, x, w, gy, backend, kw):
    if op == "input":
        fn = fastconv.grad.conv1d_input if w.ndim == 3 else fastconv.grad.conv2d_input
        return fn(x.shape, w, gy, backend=backend, **kw)
    fn = fastconv.grad.conv1d_weight if w.ndim == 3 else fastconv.grad.conv2d_weight
    return fn(x, w.shape, gy, backend=backend, **kw)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(GRAD_CASES)))
@pytest.mark.parametrize("op", ["input", "weight"])
def test_planned_gradients_give_the_full_paths_bits(backend, dtype, case, op):
    xs, ws, kw = GRAD_CASES[case]
    rng = np.random.default_rng(case)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    fwd = fastconv.conv1d if len(ws) == 3 else fastconv.conv2d
    ys = fwd(x, w, backend="numpy", **kw).shape
    gy1, gy2 = (rng.standard_normal(ys).astype(dtype) for _ in range(2))
    first = _grad_call(op, x, w, gy1, backend, kw)  # the full path, which plans the call
    assert len(_plans()) == 1
    second = _grad_call(op, x, w, gy2, backend, kw)  # planned: new values, same shapes
    np.testing.assert_array_equal(_grad_call(op, x, w, gy1, backend, kw), first)
    _fastcall.clear()
    np.testing.assert_array_equal(second, _grad_call(op, x, w, gy2, backend, kw))
    ref = _grad_call(op, x, w, gy2, "numpy", kw)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(second, ref, rtol=tol, atol=tol)
    assert second.dtype == dtype and second.shape == ref.shape


def test_a_planned_gradient_runs_only_the_kernel(monkeypatch):
    from fastconv import _spec

    x = np.ones((1, 1, 8, 8), np.float32)
    w = np.ones((1, 1, 3, 3), np.float32)
    gy = np.ones((1, 1, 6, 6), np.float32)
    gx = fastconv.grad.conv2d_input(x.shape, w, gy, backend="cython")
    gw = fastconv.grad.conv2d_weight(x, w.shape, gy, backend="cython")
    assert len(_plans()) == 2

    def boom(*a, **k):
        raise AssertionError("the full path ran")

    monkeypatch.setattr(_spec, "conv_input_grad_spec", boom)
    monkeypatch.setattr(_spec, "conv_weight_grad_spec", boom)
    np.testing.assert_array_equal(fastconv.grad.conv2d_input(x.shape, w, gy,
                                                             backend="cython"), gx)
    np.testing.assert_array_equal(fastconv.grad.conv2d_weight(x, w.shape, gy,
                                                              backend="cython"), gw)


@pytest.mark.parametrize("backend", COMPILED)
def test_gradients_not_planned(backend):
    x = np.ones((2, 2, 9, 9), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    gy = np.ones((2, 3, 7, 7), np.float32)
    G = fastconv.grad
    assert _planned(G.conv2d_weight, x, w.shape, gy, backend=backend)
    assert _planned(G.conv2d_input, x.shape, w, gy, backend=backend)
    # copies or conversions in the full path, other padding modes, the reference
    assert not _planned(G.conv2d_weight, x.astype(np.float64), w.shape, gy, backend=backend)
    assert not _planned(G.conv2d_input, x.shape, np.asfortranarray(w), gy, backend=backend)
    assert not _planned(G.conv2d_weight, x, w.shape, gy.astype(">f4"), backend=backend)
    assert not _planned(G.conv2d_weight, x, w.shape, np.ones((2, 3, 9, 9), np.float32),
                        padding=1, padding_mode="reflect", backend=backend)
    assert not _planned(G.conv2d_input, list(x.shape), w, gy, backend=backend)
    assert not _planned(G.conv2d_weight, x[:0], w.shape, gy[:0], backend=backend)
    assert not _planned(G.conv2d_input, x.shape, w, gy, backend="numpy")
    # windows that miss the input (padding 3 with a 3x3 kernel): the postcondition scans
    # grad_output for non-finite values there, so the weight gradient is not planned
    assert not _planned(G.conv2d_weight, x, w.shape, np.ones((2, 3, 13, 13), np.float32),
                        padding=3, backend=backend)


@pytest.mark.parametrize("backend", COMPILED)
def test_planned_weight_gradient_meets_the_padding_as_the_full_path(backend):
    """A non-finite grad_output value meeting the zero padding gives NaN (inf * 0), as in
    torch and the reference, when the call was planned on finite values first."""
    x = np.ones((1, 1, 6, 6), np.float32)
    gy = np.ones((1, 1, 6, 6), np.float32)
    kw = dict(padding=1, backend=backend)
    fastconv.grad.conv2d_weight(x, (1, 1, 3, 3), gy, **kw)
    assert len(_plans()) == 1
    gy[0, 0, 0, 0] = np.inf
    got = fastconv.grad.conv2d_weight(x, (1, 1, 3, 3), gy, **kw)
    want = fastconv.grad.conv2d_weight(x, (1, 1, 3, 3), gy, padding=1, backend="numpy")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(got).any()
    np.testing.assert_array_equal(got[np.isfinite(want)], want[np.isfinite(want)])


def test_planned_gradient_errors_stay():
    """A planned key with arrays the plan does not take goes through the full path and its
    checks."""
    x = np.ones((1, 2, 8, 8), np.float32)
    w = np.ones((2, 2, 3, 3), np.float32)
    gy = np.ones((1, 2, 6, 6), np.float32)
    want = fastconv.grad.conv2d_input(x.shape, w, gy, backend="cython")
    assert len(_plans()) == 1
    wt = np.ascontiguousarray(w.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    np.testing.assert_array_equal(
        fastconv.grad.conv2d_input(x.shape, wt, gy, backend="cython"), want)
    with pytest.raises(ValueError, match="grad_output"):
        fastconv.grad.conv2d_input(x.shape, w, gy[:, :, :5], backend="cython")
    with pytest.raises(TypeError, match="stride"):
        fastconv.grad.conv2d_input(x.shape, w, gy, stride=True, backend="cython")
