"""Issue 17 (transpose speed): the weight gradient of conv_transpose1d/2d by the sub-pixel
decomposition in reverse (fastconv._transpose.run_weight: one stride-1 conv2d_weight of x and
grad_output's phases), taken on the Cython backend when the forward's sub-pixel plan
(fastconv._transpose.plan) takes the call, by either route: the fused GEMM kernel that
reads grad_output's phases itself (_cy_grad.conv2d_weight_phased), in one call or in
blocks of images, or conv2d_weight on a stacked copy. Checked against torch autograd and
the NumPy reference, that the path is really taken (or declined), over strides, paddings,
output_paddings, groups, dtypes, layouts, unbatched input, image blocks and thread counts,
plus the adjoint identity. The extra memory on the speed-target shapes is measured by
tests/test_issue17_transpose_memory.py (its backward cases run this path)."""

from __future__ import annotations

import numpy as np
import pytest

import fastconv
from fastconv import _transpose
from fastconv import grad as G
from conftest import layouts

torch = pytest.importorskip("torch")
F = torch.nn.functional

GW = {1: G.conv_transpose1d_weight, 2: G.conv_transpose2d_weight}
FWD = {1: fastconv.conv_transpose1d, 2: fastconv.conv_transpose2d}
TFWD = {1: F.conv_transpose1d, 2: F.conv_transpose2d}

# (x shape, weight shape, kwargs): every one has a stride that divides the kernel, dilation
# 1 and a padding the plan takes, so the Cython backend runs the sub-pixel weight gradient
TAKEN = [
    ((2, 4, 5, 6), (4, 3, 4, 4), dict(stride=2, padding=1)),
    ((2, 4, 5, 6), (4, 3, 4, 4), dict(stride=2, padding=1, output_padding=1)),
    ((3, 6, 5, 4), (6, 2, 4, 6), dict(stride=(2, 3), padding=(1, 2), groups=3,
                                      output_padding=(1, 2))),
    ((2, 4, 5, 7), (4, 5, 2, 4), dict(stride=(1, 2), padding=(1, 0))),
    ((2, 4, 3, 3), (4, 2, 2, 2), dict(stride=2)),
    ((1, 2, 4, 4), (2, 3, 6, 6), dict(stride=3, padding=2, output_padding=2)),
    ((2, 8, 4, 5), (8, 2, 4, 4), dict(stride=2, padding=1, groups=4)),
    ((3, 4, 7), (4, 5, 6), dict(stride=3, padding=2)),
    ((2, 4, 9), (4, 3, 4), dict(stride=2, padding=1, output_padding=1)),
    ((2, 6, 5), (6, 2, 8), dict(stride=4, padding=3, groups=3)),
]
# declined: the stride does not divide the kernel, dilation, or stride 1
DECLINED = [
    ((2, 4, 5, 6), (4, 3, 3, 3), dict(stride=2, padding=1)),
    ((2, 4, 5, 6), (4, 3, 4, 4), dict(stride=2, padding=1, dilation=2)),
    ((2, 4, 5, 6), (4, 3, 3, 3), dict(stride=1, padding=1)),
    ((2, 4, 9), (4, 3, 5), dict(stride=2)),
]


@pytest.fixture
def spy(monkeypatch):
    """Counts the calls of the sub-pixel weight gradient."""
    calls = []
    real = _transpose.run_weight

    def counted(*a, **k):
        calls.append(a[-1])
        return real(*a, **k)

    monkeypatch.setattr(_transpose, "run_weight", counted)
    return calls


# how run_weight computes the stacked gradient: the plan's choice, or forced
ROUTES = {
    "plan": None,
    "fused": lambda x, *a: x.shape[0],
    "fused_blocks": lambda x, *a: 1,  # one image a call, the calls' results added
    "stacked": lambda x, *a: 0,
}


@pytest.fixture(params=list(ROUTES))
def route(request, monkeypatch):
    if ROUTES[request.param] is not None:
        monkeypatch.setattr(_transpose, "_fused_images", ROUTES[request.param])
    return request.param


def _arrays(xs, ws, kw, rng, dtype):
    nd = len(ws) - 2
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    y = FWD[nd](x, w, **kw, backend="numpy")
    return nd, x, w, rng.standard_normal(y.shape).astype(dtype)


def _torch_weight_grad(nd, x, w, gy, kw):
    tw = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    y = TFWD[nd](torch.tensor(x, dtype=torch.float64), tw, **kw)
    y.backward(torch.tensor(gy, dtype=torch.float64))
    return tw.grad.numpy()


def _close(a, ref, dtype):
    scale = max(1.0, float(np.abs(ref).max()))
    tol = 2e-4 if np.dtype(dtype) == np.float32 else 1e-10
    np.testing.assert_allclose(a, ref, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ci", range(len(TAKEN)))
def test_subpixel_weight_grad_matches_torch_and_reference(spy, route, dtype, ci, rng):
    xs, ws, kw = TAKEN[ci]
    nd, x, w, gy = _arrays(xs, ws, kw, rng, dtype)
    got = GW[nd](x, ws, gy, **kw, backend="cython")
    assert spy == ["cython"], "the sub-pixel weight gradient did not run"
    assert got.dtype == dtype and got.shape == ws
    _close(got, _torch_weight_grad(nd, x, w, gy, kw), dtype)
    _close(got, GW[nd](x, ws, gy, **kw, backend="numpy"), dtype)


@pytest.mark.parametrize("ci", range(len(DECLINED)))
def test_plan_declines_and_other_backends_do_not_take_it(spy, backend, ci, rng):
    xs, ws, kw = DECLINED[ci]
    nd, x, w, gy = _arrays(xs, ws, kw, rng, np.float64)
    got = GW[nd](x, ws, gy, **kw, backend=backend)
    assert spy == []
    _close(got, _torch_weight_grad(nd, x, w, gy, kw), np.float64)
    xs, ws, kw = TAKEN[0]
    nd, x, w, gy = _arrays(xs, ws, kw, rng, np.float64)
    GW[nd](x, ws, gy, **kw, backend=backend)
    assert spy == (["cython"] if backend == "cython" else [])


def test_int_input_and_dtype_rule(spy, rng):
    # int8 with float32 stays float32 (_spec.result_dtype, numpy's promotion); int32 does not
    x = rng.integers(-3, 4, (2, 4, 5, 6)).astype(np.int8)
    gy32 = rng.standard_normal((2, 3, 10, 12)).astype(np.float32)
    got = G.conv_transpose2d_weight(x, (4, 3, 4, 4), gy32, 2, 1, backend="cython")
    assert got.dtype == np.float32 and spy == ["cython"]
    ref = G.conv_transpose2d_weight(x.astype(np.float64), (4, 3, 4, 4),
                                    gy32.astype(np.float64), 2, 1, backend="numpy")
    _close(got, ref, np.float32)
    gyi = rng.integers(-3, 4, (2, 3, 10, 12)).astype(np.int64)
    got = G.conv_transpose2d_weight(x, (4, 3, 4, 4), gyi, 2, 1, backend="cython")
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, G.conv_transpose2d_weight(x, (4, 3, 4, 4), gyi, 2, 1,
                                                              backend="numpy"))


def test_layouts_and_unbatched(spy, route, rng):
    xs, ws, kw = TAKEN[2]
    nd, x, w, gy = _arrays(xs, ws, kw, rng, np.float64)
    ref = GW[nd](x, ws, gy, **kw, backend="numpy")
    for kind, xv in layouts(x):
        for kind2, gv in layouts(gy):
            _close(GW[nd](xv, ws, gv, **kw, backend="cython"), ref, np.float64)
    assert len(spy) == len(list(layouts(x))) ** 2
    one = GW[nd](x[1], ws, gy[1], **kw, backend="cython")
    _close(one, GW[nd](x[1:2], ws, gy[1:2], **kw, backend="numpy"), np.float64)
    # an empty batch: zeros, as the reference (the plan declines N = 0)
    zero = GW[nd](x[:0], ws, gy[:0], **kw, backend="cython")
    np.testing.assert_array_equal(zero, np.zeros(ws))


def test_image_blocks(spy, monkeypatch, rng):
    """On the stacked route, past BLOCK_BYTES of stacked grad_output the images go in
    blocks whose gradients are added in order: the same result to rounding."""
    monkeypatch.setattr(_transpose, "_fused_images", ROUTES["stacked"])
    xs, ws, kw = (7, 4, 5, 6), (4, 3, 4, 4), dict(stride=2, padding=1)
    nd, x, w, gy = _arrays(xs, ws, kw, rng, np.float64)
    whole = GW[nd](x, ws, gy, **kw, backend="cython")
    monkeypatch.setattr(_transpose, "BLOCK_BYTES", 3 * 12 * 6 * 7 * 8)  # 3 images a block
    blocks = GW[nd](x, ws, gy, **kw, backend="cython")
    assert len(spy) == 2
    _close(blocks, whole, np.float64)
    _close(blocks, _torch_weight_grad(nd, x, w, gy, kw), np.float64)


def test_fused_route_on_the_bench_shape():
    """The plan's route for the issue's backward target (8x64x28x28 -> 32, k4 s2 p1): the
    fused kernel, all eight images in one call."""
    x = np.zeros((8, 64, 28, 28), np.float32)
    assert _transpose._fused_images(x, (128, 64, 2, 2), 29, 29, 1, (1, 1)) == 8


@pytest.mark.parametrize("forced", ["plan", "fused_blocks", "stacked"])
def test_threads_do_not_change_the_result(threads, monkeypatch, forced, rng):
    if ROUTES[forced] is not None:
        monkeypatch.setattr(_transpose, "_fused_images", ROUTES[forced])
    xs, ws, kw = (8, 16, 9, 9), (16, 8, 4, 4), dict(stride=2, padding=1)
    _, x, _, gy = _arrays(xs, ws, kw, rng, np.float32)
    res = []
    for n in (1, 2, 3):
        fastconv.set_num_threads(n)
        res.append(G.conv_transpose2d_weight(x, ws, gy, **kw, backend="cython"))
    for r in res[1:]:
        np.testing.assert_array_equal(r, res[0])


@pytest.mark.parametrize("ci", [0, 2, 7])
def test_adjoint_identity(ci, rng):
    """<T(x, w), g> == <w, T_weight^*(x, g)>: the transposed convolution is linear in w."""
    xs, ws, kw = TAKEN[ci]
    nd, x, w, g = _arrays(xs, ws, kw, rng, np.float64)
    lhs = np.vdot(FWD[nd](x, w, **kw, backend="cython"), g)
    np.testing.assert_allclose(np.vdot(w, GW[nd](x, ws, g, **kw, backend="cython")), lhs,
                               rtol=1e-10)


def test_finite_differences(rng):
    xs, ws, kw = (1, 2, 3, 3), (2, 2, 4, 4), dict(stride=2, padding=1, output_padding=1)
    nd, x, w, g = _arrays(xs, ws, kw, rng, np.float64)
    gw = GW[nd](x, ws, g, **kw, backend="cython")
    eps = 1e-6
    for idx in [(0, 0, 0, 0), (1, 1, 3, 2), (0, 1, 2, 3), (1, 0, 1, 1)]:
        d = np.zeros(ws)
        d[idx] = eps
        num = (np.vdot(FWD[nd](x, w + d, **kw, backend="cython"), g)
               - np.vdot(FWD[nd](x, w - d, **kw, backend="cython"), g)) / (2 * eps)
        np.testing.assert_allclose(gw[idx], num, rtol=1e-6, atol=1e-8)


def test_fused_kernel_rejects_phases_that_do_not_fit():
    """The compiled kernel checks its phase tables against the planes before it reads
    grad_output through them (ValueError, no out-of-bounds read)."""
    from fastconv import _cy_grad

    x = np.zeros((2, 4, 5, 6))
    gy = np.zeros((2, 3, 10, 12))
    gw = np.zeros((12, 4, 2, 2))
    ok = ([(1, 5), (0, 5)], [(1, 6), (0, 6)])
    _cy_grad.conv2d_weight_phased(x, gy, gw, (1, 1), *ok, 1, 1)
    for phh, phw in [([(1, 6), (0, 5)], ok[1]),  # past the stacked layer's rows
                     ([(1, 5), (0, 5)], [(1, 6), (0, 7)]),  # past grad_output's columns
                     ([(-1, 5), (0, 5)], ok[1]), ([(1, 5)] * 33, ok[1]),
                     (ok[0], [(10**9, -10**9), (0, 6)])]:  # a negative count
        with pytest.raises(ValueError, match="conv2d_weight_phased"):
            _cy_grad.conv2d_weight_phased(x, gy, gw, (1, 1), phh, phw, 1, 1)
    with pytest.raises(ValueError, match="conv2d_weight_phased"):
        _cy_grad.conv2d_weight_phased(x, np.zeros((2, 2, 10, 12)), gw, (1, 1), *ok, 1, 1)


def test_strides_past_the_phase_tables_decline(spy, rng):
    """A stride above _transpose.MAX_PHASES (the compiled kernels' phase tables) takes the
    general paths: the forward and the weight gradient match the reference."""
    x = rng.standard_normal((2, 8, 3, 4))
    w = rng.standard_normal((8, 4, 33, 33))
    kw = dict(stride=33)
    y = fastconv.conv_transpose2d(x, w, **kw, backend="cython")
    _close(y, fastconv.conv_transpose2d(x, w, **kw, backend="numpy"), np.float64)
    gy = rng.standard_normal(y.shape)
    got = G.conv_transpose2d_weight(x, w.shape, gy, **kw, backend="cython")
    assert spy == []
    _close(got, G.conv_transpose2d_weight(x, w.shape, gy, **kw, backend="numpy"), np.float64)
    w32 = rng.standard_normal((8, 4, 32, 32))
    y32 = fastconv.conv_transpose2d(x, w32, stride=32, backend="cython")  # 32: taken
    assert _transpose.plan("cython", x.shape, w32.shape, y32.shape, (32, 32), (0, 0),
                           (1, 1)) is not None
    _close(y32, fastconv.conv_transpose2d(x, w32, stride=32, backend="numpy"), np.float64)
