"""Issue 17: adaptive_avg_pool1d/2d/3d and adaptive_max_pool1d/2d/3d, their gradients and
nn.AdaptiveAvgPool2d, against torch and the NumPy reference on every backend.

The bad-argument table of these functions is in tests/test_error_table.py (its rows named
"adaptive"), which runs every row with the kernels disabled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv import _spec as S
from fastconv import nn

from conftest import BACKENDS, assert_close, layouts

torch = pytest.importorskip("torch")
F = torch.nn.functional

COMPILED = [b for b in BACKENDS if b != "numpy"]
KINDS = ("avg", "max")

# (input shape without N, C; output_size): Out < In, Out > In, Out == In, Out == 1, None
CASES = {
    1: [((11,), 4), ((5,), 8), ((7,), (7,)), ((9,), 1), ((13,), 5), ((3,), 3)],
    2: [((13, 9), (7, None)), ((5, 4), (8, 3)), ((7, 7), 1), ((6, 10), (4, 4)),
        ((3, 17), (None, 5)), ((1, 1), 3), ((8, 8), (8, 1))],
    3: [((5, 6, 7), (2, 4, 3)), ((3, 4, 2), (5, None, 1)), ((4, 4, 4), 1),
        ((2, 9, 3), (None, 4, 2)), ((1, 3, 5), (2, 2, 2))],
}
PARAMS = [(nd, i) for nd, cases in CASES.items() for i in range(len(cases))]


def _fc(kind, nd):
    return getattr(fastconv, f"adaptive_{kind}_pool{nd}d")


def _th(kind, nd):
    return getattr(F, f"adaptive_{kind}_pool{nd}d")


def _torch_forward(kind, nd, x, output_size):
    xt = torch.from_numpy(np.ascontiguousarray(x))
    if kind == "avg":
        return _th(kind, nd)(xt, output_size).numpy(), None
    y, i = _th(kind, nd)(xt, output_size, return_indices=True)
    return y.numpy(), i.numpy()


def _call(kind, nd, x, output_size, backend):
    if kind == "avg":
        return _fc(kind, nd)(x, output_size, backend=backend), None
    return _fc(kind, nd)(x, output_size, return_indices=True, backend=backend)


def _input(rng, shape, dtype, kind):
    x = rng.standard_normal(shape).astype(dtype)
    if kind == "max":  # ties and infinities: the first maximum, as torch
        x[rng.random(shape) < 0.2] = 1.5
        x[rng.random(shape) < 0.05] = -np.inf
    return x


# --------------------------------------------------------------------------------------------
# forward: torch, the reference, every backend, dtypes
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("nd, case", PARAMS)
def test_issue17_adaptive_matches_torch(backend, rng, nd, case, kind, dtype):
    spatial, output_size = CASES[nd][case]
    x = _input(rng, (2, 3) + spatial, dtype, kind)
    want, want_idx = _torch_forward(kind, nd, x, output_size)
    got, idx = _call(kind, nd, x, output_size, backend)
    assert_close(got, want, terms=x[0, 0].size)
    ref, ref_idx = _call(kind, nd, x, output_size, "numpy")
    assert_close(got, ref, terms=x[0, 0].size)
    if kind == "max":
        np.testing.assert_array_equal(got, want)  # a maximum is exact
        assert idx.dtype == np.int64
        np.testing.assert_array_equal(idx, want_idx)
        np.testing.assert_array_equal(ref_idx, want_idx)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_issue17_adaptive_int_input_gives_float64(backend, rng, nd, kind):
    """The dtype rule: an int64 input gives float64 (torch has no integer adaptive avg: it
    is compared on the float64 copy)."""
    spatial, output_size = CASES[nd][0]
    x = rng.integers(-9, 9, (2, 3) + spatial)
    got, idx = _call(kind, nd, x, output_size, backend)
    assert got.dtype == np.float64
    want, want_idx = _torch_forward(kind, nd, x.astype(np.float64), output_size)
    assert_close(got, want, terms=x[0, 0].size)
    if kind == "max":
        np.testing.assert_array_equal(idx, want_idx)
    small, _ = _call(kind, nd, x.astype(np.int16), output_size, backend)
    assert small.dtype == np.float32


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_issue17_adaptive_nan_and_ties_as_torch(backend, nd, kind):
    """NaN wins (the last one, as torch's CPU kernel), ties keep the first position, and a
    window of -inf keeps its first position; the mean of a window with NaN is NaN."""
    rng = np.random.default_rng(17 + nd)
    for trial in range(12):
        shape = (2, 3) + tuple(int(s) for s in rng.integers(1, 7, nd))
        x = rng.standard_normal(shape).astype(np.float32)
        x[rng.random(shape) < 0.25] = np.nan
        x[rng.random(shape) < 0.2] = -np.inf
        x[rng.random(shape) < 0.2] = 1.0
        if trial == 0:
            x[...] = -np.inf
        output_size = tuple(int(v) for v in rng.integers(1, 8, nd))
        want, want_idx = _torch_forward(kind, nd, x, output_size)
        got, idx = _call(kind, nd, x, output_size, backend)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, equal_nan=True)
        if kind == "max":
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(idx, want_idx)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_issue17_adaptive_layouts_unbatched_and_empty(backend, rng, nd, kind):
    spatial, output_size = CASES[nd][0]
    x = _input(rng, (2, 3) + spatial, np.float32, kind)
    want, want_idx = _call(kind, nd, x, output_size, backend)  # every layout: bitwise alike
    for name, v in layouts(x):
        got, idx = _call(kind, nd, v, output_size, backend)
        np.testing.assert_array_equal(got, want, err_msg=name)
        if kind == "max":
            np.testing.assert_array_equal(idx, want_idx, err_msg=name)
    # unbatched: (C, ...) as torch
    got, idx = _call(kind, nd, x[1], output_size, backend)
    twant, twant_idx = _torch_forward(kind, nd, x[1], output_size)
    assert got.shape == twant.shape
    assert_close(got, twant, terms=x[0, 0].size)
    if kind == "max":
        np.testing.assert_array_equal(idx, twant_idx)
    # an empty batch gives an empty result, as torch
    got, idx = _call(kind, nd, x[:0], output_size, backend)
    assert got.shape == _torch_forward(kind, nd, x[:0], output_size)[0].shape
    assert got.dtype == np.float32
    if kind == "max":
        assert idx.shape == got.shape and idx.dtype == np.int64
    # an output size of 0, as torch
    got, _ = _call(kind, nd, x, 0, backend)
    assert got.shape == (2, 3) + (0,) * nd
    # the inputs are never written
    ro = np.array(x)
    ro.flags.writeable = False
    _call(kind, nd, ro, output_size, backend)
    np.testing.assert_array_equal(ro, x)


@pytest.mark.parametrize("kind", KINDS)
def test_issue17_adaptive_return_indices_off_gives_one_array(backend, rng, kind):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    y = _fc(kind, 2)(x, 4, backend=backend)
    assert isinstance(y, np.ndarray) and y.shape == (2, 3, 4, 4)


@pytest.mark.parametrize("kind", KINDS)
def test_issue17_adaptive_threads_do_not_change_results(rng, threads, kind):
    """Bitwise the same on 1 and 2 threads: many small planes (blocks of planes), and few
    planes (blocks of rows)."""
    for shape, output_size in (((64, 32, 7, 9), (3, 4)), ((1, 3, 37, 41), (13, 6)),
                               ((1, 2, 300, 300), 1), ((1, 2, 5, 40, 50), (2, 7, 9))):
        x = _input(rng, shape, np.float32, kind)
        nd = len(shape) - 2
        for b in COMPILED:
            res = []
            for n in (1, 2):
                fastconv.set_num_threads(n)
                res.append(_call(kind, nd, x, output_size, b))
            np.testing.assert_array_equal(res[0][0], res[1][0])
            if kind == "max":
                np.testing.assert_array_equal(res[0][1], res[1][1])
            assert_close(res[0][0], _call(kind, nd, x, output_size, "numpy")[0],
                         terms=x[0, 0].size)


def test_issue17_adaptive_global_average_long_plane(backend, rng):
    """A global average of long planes (the kernels' eight running sums) agrees with a
    float64 mean."""
    x = rng.standard_normal((3, 2, 1001, 37)).astype(np.float32)
    got = fastconv.adaptive_avg_pool2d(x, 1, backend=backend)
    want = x.astype(np.float64).mean(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------------------------
# gradients
# --------------------------------------------------------------------------------------------
def _torch_grads(kind, nd, x, output_size, g):
    xt = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_()
    _th(kind, nd)(xt, output_size).backward(torch.from_numpy(np.ascontiguousarray(g)))
    return xt.grad.numpy()


def _grad(kind, nd, g, x, output_size, backend):
    if kind == "avg":
        return getattr(fastconv.grad, f"adaptive_avg_pool{nd}d")(g, x.shape, backend=backend)
    _, idx = _fc(kind, nd)(x, output_size, return_indices=True, backend=backend)
    return getattr(fastconv.grad, f"adaptive_max_pool{nd}d")(g, idx, x.shape,
                                                             backend=backend)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("nd, case", PARAMS)
def test_issue17_adaptive_grad_matches_autograd(backend, rng, nd, case, kind, dtype):
    spatial, output_size = CASES[nd][case]
    x = rng.standard_normal((2, 3) + spatial).astype(dtype)  # distinct values: one argmax
    y = _fc(kind, nd)(x, output_size, backend="numpy")
    g = rng.standard_normal(y.shape).astype(dtype)
    want = _torch_grads(kind, nd, x, output_size, g)
    got = _grad(kind, nd, g, x, output_size, backend)
    assert_close(got, want, terms=4)
    assert_close(got, _grad(kind, nd, g, x, output_size, "numpy"), terms=4)
    # unbatched, and an empty batch
    got1 = _grad(kind, nd, g[1], x[1], output_size, backend)
    assert_close(got1, want[1], terms=4)
    got0 = _grad(kind, nd, g[:0], x[:0], output_size, backend)
    assert got0.shape == x[:0].shape and got0.dtype == dtype


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_issue17_adaptive_avg_adjoint_identity(backend, rng, nd):
    """<A x, y> == <x, A^T y>: the gradient is the adjoint of the pooling."""
    for spatial, output_size in CASES[nd]:
        x = rng.standard_normal((2, 3) + spatial)
        ax = fastconv.adaptive_avg_pool3d if nd == 3 else _fc("avg", nd)
        ax = ax(x, output_size, backend=backend)
        y = rng.standard_normal(ax.shape)
        aty = getattr(fastconv.grad, f"adaptive_avg_pool{nd}d")(y, x.shape, backend=backend)
        np.testing.assert_allclose(np.vdot(ax, y), np.vdot(x, aty), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_issue17_adaptive_grad_finite_differences(backend, nd, kind):
    rng = np.random.default_rng(nd)
    spatial, output_size = CASES[nd][0]
    x = rng.permutation(np.prod((1, 2) + spatial)).reshape((1, 2) + spatial) * 0.1
    y = _fc(kind, nd)(x, output_size, backend=backend)
    g = rng.standard_normal(y.shape)
    got = _grad(kind, nd, g, x, output_size, backend)
    eps = 1e-6
    fd = np.empty_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        fd[i] = (np.vdot(_fc(kind, nd)(xp, output_size, backend=backend), g)
                 - np.vdot(_fc(kind, nd)(xm, output_size, backend=backend), g)) / (2 * eps)
    np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-7)


def test_issue17_adaptive_max_grad_ignores_indices_outside_the_volume(backend):
    g = np.ones((1, 1, 2, 2, 2))
    idx = np.array([0, 7, -1, 8, 3, 100, 7, 2]).reshape(g.shape)
    got = fastconv.grad.adaptive_max_pool3d(g, idx, (1, 1, 2, 2, 2), backend=backend)
    want = np.zeros(8)
    np.add.at(want, [0, 7, 3, 7, 2], 1.0)
    np.testing.assert_array_equal(got.ravel(), want)


# --------------------------------------------------------------------------------------------
# nn.AdaptiveAvgPool2d
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("output_size", [1, (3, None), (5, 2)])
def test_issue17_nn_adaptive_avg_pool2d_matches_torch_module(backend, rng, output_size):
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    layer = nn.AdaptiveAvgPool2d(output_size, backend=backend)
    ref = torch.nn.AdaptiveAvgPool2d(output_size)
    assert repr(layer) == repr(ref)
    assert layer.parameters() == []
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones((2, 3, 1, 1), np.float32))
    xt = torch.from_numpy(x).requires_grad_()
    yt = ref(xt)
    y = layer(x)
    assert_close(y, yt.detach().numpy(), terms=42)
    g = rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.from_numpy(g))
    assert_close(layer.backward(g), xt.grad.numpy(), terms=4)


def test_issue17_nn_adaptive_avg_pool2d_in_a_model(rng):
    """A classifier head: conv -> adaptive average to 1x1 -> flatten -> linear trains (the
    loss falls) and its input gradient matches torch's for the same weights."""
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=0), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3, rng=1))
    tmodel = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                                 torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                 torch.nn.Linear(4, 3))
    with torch.no_grad():
        tmodel[0].weight.copy_(torch.from_numpy(model.layers[0].weight.data))
        tmodel[0].bias.copy_(torch.from_numpy(model.layers[0].bias.data))
        tmodel[4].weight.copy_(torch.from_numpy(model.layers[4].weight.data))
        tmodel[4].bias.copy_(torch.from_numpy(model.layers[4].bias.data))
    x = rng.standard_normal((5, 1, 9, 8)).astype(np.float32)
    g = rng.standard_normal((5, 3)).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    yt = tmodel(xt)
    y = model(x)
    assert_close(y, yt.detach().numpy(), terms=100)
    yt.backward(torch.from_numpy(g))
    gx = model.backward(g)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------------------------
# arguments
# --------------------------------------------------------------------------------------------
def test_issue17_adaptive_output_size_forms():
    x = np.ones((1, 2, 6, 5, 4))
    assert fastconv.adaptive_avg_pool1d(x[0, :, 0, 0], (3,)).shape == (2, 3)
    assert fastconv.adaptive_avg_pool1d(x[0, :, 0, 0], np.array([3])).shape == (2, 3)
    assert fastconv.adaptive_max_pool2d(x[0, :, 0], [None, 2]).shape == (2, 5, 2)
    assert fastconv.adaptive_avg_pool3d(x, (None, None, None)).shape == x.shape
    assert fastconv.adaptive_avg_pool3d(x, np.int64(2)).shape == (1, 2, 2, 2, 2)
    with pytest.raises(ValueError, match="output_size must be an int or a tuple of 2"):
        fastconv.adaptive_avg_pool2d(x[0], (3,))
    with pytest.raises(TypeError, match="output_size must be an int"):
        fastconv.adaptive_avg_pool1d(x[0, :, 0, 0], (None,))
    with pytest.raises(ValueError, match="backend"):
        fastconv.adaptive_avg_pool2d(x[0], 2, backend="cuda")
    with pytest.raises(TypeError):
        fastconv.adaptive_avg_pool2d(x[0], 2, "numpy")  # backend is keyword-only


def test_issue17_adaptive_windows_are_torchs():
    for n in range(1, 30):
        for m in range(1, 30):
            s, e = S.adaptive_windows(n, m)
            i = np.arange(m)
            np.testing.assert_array_equal(s, np.floor(i * n / m).astype(int))
            np.testing.assert_array_equal(e, np.ceil((i + 1) * n / m).astype(int))
            assert (e > s).all() and s[0] == 0 and e[-1] == n


# --------------------------------------------------------------------------------------------
# speed targets: the callables the paired bench runs, and their extra memory
# --------------------------------------------------------------------------------------------
def test_issue17_adaptive_bench_targets_are_consistent():
    from fastconv.bench.targets import FAMILY_TARGETS
    from fastconv.bench.targets_adaptive import PAIRED

    assert len(PAIRED) == 2
    assert set(PAIRED) <= {group for _, group, _ in FAMILY_TARGETS}
    for group, t in PAIRED.items():
        assert group.startswith("adaptive_avg_pool2d-") and group.endswith("-float32")
        assert t["bound"] == 1.0 and t["what"]
        ref = t["reference"]()
        assert ref.dtype == np.float32
        for impl in ("auto", "torch") + tuple(COMPILED):
            res = t["make"](impl)()
            res = res.numpy() if hasattr(res, "numpy") else res
            np.testing.assert_allclose(res, ref, rtol=1e-5, atol=1e-6, err_msg=impl)


_MEMORY_CHILD = r"""
backend, shapes, dtype = sys.argv[1], json.loads(sys.argv[2]), np.dtype(sys.argv[3])
fastconv.set_num_threads(2)
rng = np.random.default_rng(0)
res = {}
for name, (shape, output_size, kind) in shapes.items():
    f = getattr(fastconv, f"adaptive_{kind}_pool{len(shape) - 2}d")
    f(np.ones((1, 1) + tuple(shape[2:]), dtype), output_size, backend=backend)  # compile
    x = rng.standard_normal(shape).astype(dtype)
    y = f(x, output_size, backend=backend)
    gy = np.ones_like(y)
    grad = getattr(fastconv.grad, f"adaptive_{kind}_pool{len(shape) - 2}d")
    grad(gy[:1], (1,) + x.shape[1:], backend=backend)  # compile
    before, reset = reset_peak(backend)
    y = f(x, output_size, backend=backend)
    fwd = status("VmHWM") - before
    before, reset2 = reset_peak(backend)
    gx = grad(gy, x.shape, backend=backend)
    bwd = status("VmHWM") - before
    # the result itself is new memory: count the call's own work memory beyond it
    res[name] = {"forward": fwd - y.nbytes, "backward": bwd - gx.nbytes,
                 "in_out": x.nbytes + y.nbytes, "reset": max(reset, reset2)}
    del x, y, gy, gx
print(json.dumps(res))
"""

MEMORY_SHAPES = {
    "target 32x512x7x7 to 1x1": ((32, 512, 7, 7), 1, "avg"),
    "target 8x256x13x13 to 7x7": ((8, 256, 13, 13), 7, "avg"),
    "large 4x64x256x256 to 7x7": ((4, 64, 256, 256), 7, "avg"),
}


@pytest.mark.skipif(not sys.platform.startswith("linux")
                    or not os.access("/proc/self/clear_refs", os.W_OK),
                    reason="needs Linux's /proc/self/clear_refs to reset the peak")
@pytest.mark.parametrize("backend_", COMPILED)
def test_issue17_adaptive_extra_memory_is_bounded(backend_):
    """The extra peak resident set of a call (beyond its result) stays below max(64 MiB,
    input + output) on the target shapes and a large one, forward and backward (the
    measuring code is tests/test_memory.py's)."""
    from test_memory import _PREAMBLE, MIB

    proc = subprocess.run([sys.executable, "-c", _PREAMBLE + _MEMORY_CHILD, backend_,
                           json.dumps(MEMORY_SHAPES), "float32"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.splitlines()[-1])
    for name, r in res.items():
        assert r["reset"] < MIB
        bound = max(64 * MIB, r["in_out"])
        for side in ("forward", "backward"):
            assert r[side] < bound, (name, side, r[side] / MIB)


@pytest.mark.skipif(not fastconv._threads.flush_denormal_supported(),
                    reason="FTZ/DAZ needs x86-64")
@pytest.mark.parametrize("shape, output_size", [((2, 3, 7, 7), 1), ((2, 3, 13, 13), 7)])
def test_issue17_adaptive_avg_flushes_subnormals(shape, output_size):
    """With fastconv.set_flush_denormal(True) the compiled kernels read subnormals as zero
    (as torch does under torch.set_flush_denormal(True)); with it off they are kept."""
    x = np.full(shape, 0.5 * np.finfo(np.float32).tiny, np.float32)
    g = np.ones((2, 3, output_size, output_size), np.float32) * x.flat[0]
    for b in COMPILED:
        kept = fastconv.adaptive_avg_pool2d(x, output_size, backend=b)
        assert (kept > 0).all()
        assert (fastconv.grad.adaptive_avg_pool2d(g, shape, backend=b) > 0).any()
        try:
            fastconv.set_flush_denormal(True)
            assert (fastconv.adaptive_avg_pool2d(x, output_size, backend=b) == 0).all()
            assert (fastconv.grad.adaptive_avg_pool2d(g, shape, backend=b) == 0).all()
        finally:
            fastconv.set_flush_denormal(False)


def test_issue17_adaptive_window_arithmetic_cannot_overflow(monkeypatch):
    """An output size whose window arithmetic would overflow int64 is refused (the limit
    is lowered here: a real case needs terabytes)."""
    monkeypatch.setattr(S, "_INDEX_LIMIT", 1000)
    with pytest.raises(ValueError, match="output_size 100 is too large"):
        fastconv.adaptive_avg_pool1d(np.ones((1, 20)), 100)
    with pytest.raises(ValueError, match="grad_output's spatial size 100 is too large"):
        fastconv.grad.adaptive_avg_pool1d(np.ones((1, 100)), (1, 20))
    assert fastconv.adaptive_avg_pool1d(np.ones((1, 20)), 30).shape == (1, 30)


def test_issue17_adaptive_calls_cut_into_plane_pieces_give_the_uncut_result(backend,
                                                                           monkeypatch):
    """Ctrl-C pieces (fastconv._chunks): a long adaptive pool, or its average's gradient, is
    cut along its planes, and the pieces give the uncut result bitwise."""
    from test_issue17_pool3d import assert_cut_calls_give_the_uncut_result

    x = np.random.default_rng(19).standard_normal((3, 4, 5, 6, 7)).astype(np.float32)
    calls = {
        "adaptive_avg_pool3d": lambda: fastconv.adaptive_avg_pool3d(x, (2, 4, 3),
                                                                    backend=backend),
        "adaptive_max_pool3d": lambda: fastconv.adaptive_max_pool3d(x, (4, 2, 5), True,
                                                                    backend=backend),
        "adaptive_avg_pool3d_backward": lambda: fastconv.grad.adaptive_avg_pool3d(
            np.ones((3, 4, 2, 4, 3), np.float32), x.shape, backend=backend),
    }
    assert_cut_calls_give_the_uncut_result(calls, monkeypatch)
