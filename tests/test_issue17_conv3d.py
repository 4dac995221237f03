"""conv3d, its gradients and the Conv1d/Conv3d layers (issue 17): every backend against
PyTorch and the NumPy reference, over shapes, strides, paddings (modes included),
dilations, groups, dtypes and layouts; gradients against autograd, finite differences and
the adjoint identity; the plan's rule, Ctrl-C pieces, thread-count independence, a table
of bad arguments, and the extra memory of the bench-target shapes."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv
import fastconv.grad as G
from fastconv import _chunks, _dispatch, _plan, nn

import strategies as S
from conftest import BACKENDS, LAYOUTS, Unchanged, assert_close, layout

COMPILED = [b for b in BACKENDS if b != "numpy"]


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def _torch_conv3d(torch, x, w, b, kw):
    """Forward, input, weight and bias gradients from torch autograd through nn.Conv3d
    (which applies padding_mode), in float64, for grad_output ``g`` set later."""
    kw = dict(kw)
    mode = kw.pop("padding_mode", "zeros")
    m = torch.nn.Conv3d(x.shape[-4], w.shape[0], w.shape[2:], bias=b is not None,
                        padding_mode=mode, dtype=torch.float64, **kw)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(w.astype(np.float64)))
        if b is not None:
            m.bias.copy_(torch.from_numpy(b.astype(np.float64)))
    tx = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = m(tx)
    return m, tx, y


def _make(rng, x_shape, w_shape, dtype, bias=True):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    return x, w, b


def _terms(w_shape):
    return int(np.prod(w_shape[1:]))


# (x_shape, w_shape, kwargs): batch 1-3 and unbatched, channels 1-6, grouped and depthwise,
# kernels 1-4 (cubic and not), stride 1-3 (larger than the kernel too), int/tuple/'same'/
# 'valid' padding (odd 'same' leftovers), dilation 1-2, every padding mode, and shapes that
# take each algorithm of the compiled kernels (few channels: direct; many: GEMM)
GRID = [
    ((1, 1, 5, 6, 7), (2, 1, 1, 1, 1), dict()),
    ((2, 3, 5, 6, 7), (4, 3, 3, 3, 3), dict(padding=1)),
    ((3, 4, 6, 5, 7), (6, 2, 2, 3, 1), dict(stride=(1, 2, 2), padding=(1, 0, 2), groups=2)),
    ((1, 6, 5, 7, 6), (6, 1, 3, 3, 3), dict(padding="same", dilation=2, groups=6)),
    ((2, 6, 7, 6, 9), (3, 2, 2, 1, 4), dict(stride=3, padding="valid", dilation=(2, 1, 1),
                                            groups=3)),
    ((2, 16, 5, 6, 9), (16, 16, 3, 3, 3), dict(padding=1)),              # GEMM, flat
    ((2, 16, 6, 7, 8), (16, 8, 3, 2, 3), dict(stride=(2, 1, 2), padding=(1, 1, 0),
                                              groups=2)),                # GEMM, strided
    ((1, 8, 6, 6, 10), (16, 8, 2, 3, 4), dict(padding="same", dilation=(1, 2, 2))),
    ((2, 8, 5, 6, 7), (8, 8, 3, 3, 3), dict(padding=(1, 2, 1), padding_mode="reflect")),
    ((2, 8, 5, 6, 7), (8, 4, 3, 3, 3), dict(padding=2, groups=2, padding_mode="circular",
                                            stride=2)),
    ((1, 4, 6, 5, 7), (4, 4, 3, 2, 3), dict(padding=(2, 1, 3), padding_mode="replicate")),
    ((4, 5, 6, 7), (3, 4, 3, 3, 3), dict(padding=1)),                    # unbatched
    ((2, 2, 3, 4, 5), (2, 2, 1, 1, 1), dict(stride=(3, 4, 5))),          # stride > kernel
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(GRID)), ids=lambda i: f"g{i}")
def test_conv3d_matches_torch_and_reference(torch, rng, backend, case, dtype):
    x_shape, w_shape, kw = GRID[case]
    x, w, b = _make(rng, x_shape, w_shape, dtype)
    _, _, y = _torch_conv3d(torch, x, w, b, kw)
    res = fastconv.conv3d(x, w, b, backend=backend, **kw)
    assert_close(res, y.detach().numpy(), terms=_terms(w_shape), dtype=dtype)
    ref = fastconv.conv3d(x, w, b, backend="numpy", **kw)
    assert_close(res, ref, terms=_terms(w_shape), dtype=dtype)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=S.conv_args(nd=3), seed=S.seeds, dtype=S.dtypes)
def test_conv3d_hypothesis_matches_torch(torch, backend, args, seed, dtype):
    x_shape, w_shape, has_bias, kw = args
    x, w, b = _make(np.random.default_rng(seed), x_shape, w_shape, dtype, has_bias)
    _, _, y = _torch_conv3d(torch, x, w, b, kw)
    res = fastconv.conv3d(x, w, b, backend=backend, **kw)
    assert_close(res, y.detach().numpy(), terms=_terms(w_shape), dtype=dtype)


@pytest.mark.parametrize("kind", LAYOUTS)
def test_conv3d_layouts(rng, backend, kind):
    x, w, b = _make(rng, (2, 4, 5, 6, 7), (8, 4, 3, 3, 3), np.float32)
    want = fastconv.conv3d(x, w, b, padding=1, backend="numpy")
    xs, ws, bs = layout(x, kind), layout(w, kind), layout(b, kind)
    keep = Unchanged(xs, ws, bs)
    res = fastconv.conv3d(xs, ws, bs, padding=1, backend=backend)
    keep.check()
    assert_close(res, want, terms=108)


def test_conv3d_dtypes(rng, backend):
    x = rng.integers(-5, 5, (2, 3, 4, 5, 6)).astype(np.int32)
    w = rng.integers(-3, 3, (2, 3, 2, 2, 2)).astype(np.int64)
    res = fastconv.conv3d(x, w, backend=backend)
    assert res.dtype == np.float64
    want = fastconv.conv3d(x.astype(np.float64), w.astype(np.float64), backend="numpy")
    np.testing.assert_array_equal(res, want)  # small integers: exact
    assert fastconv.conv3d(x.astype(np.int8), w.astype(np.float32), backend=backend).dtype \
        == np.float32
    assert fastconv.conv3d(x.astype(np.float32), w.astype(np.float32),
                           backend=backend).dtype == np.float32


def test_conv3d_unbatched_empty_batch_and_out(rng, backend, torch):
    x, w, b = _make(rng, (3, 4, 5, 6), (2, 3, 3, 3, 3), np.float32)
    res = fastconv.conv3d(x, w, b, padding=1, backend=backend)
    assert res.shape == (2, 4, 5, 6)
    assert_close(res, fastconv.conv3d(x[None], w, b, padding=1, backend=backend)[0])
    empty = fastconv.conv3d(np.zeros((0, 3, 4, 5, 6), np.float32), w, b, padding=1,
                            backend=backend)
    want = torch.nn.functional.conv3d(torch.zeros(0, 3, 4, 5, 6), torch.from_numpy(w),
                                      torch.from_numpy(b), padding=1)
    assert empty.shape == tuple(want.shape) and empty.dtype == np.float32
    out = np.full((1, 2, 4, 5, 6), np.nan, np.float32)
    got = fastconv.conv3d(x[None], w, b, padding=1, backend=backend, out=out)
    assert got is out
    assert_close(out, res[None])
    with pytest.raises(ValueError, match="out must have shape"):
        fastconv.conv3d(x[None], w, b, backend=backend, out=out)
    with pytest.raises(TypeError, match="out must have dtype"):
        fastconv.conv3d(x[None], w, b, padding=1, backend=backend,
                        out=np.empty((1, 2, 4, 5, 6)))


def test_conv3d_nonfinite_meets_padding(torch, backend):
    """inf * 0 is NaN where an inf weight meets the zero padding, as in torch; an inf of
    grad_output that meets the padding gives NaN in the weight gradient."""
    x = np.ones((1, 2, 3, 4, 5))
    w = np.ones((2, 2, 3, 3, 3))
    w[0, 0, 0, 0, 0] = np.inf
    want = torch.nn.functional.conv3d(torch.from_numpy(x), torch.from_numpy(w),
                                      padding=1).numpy()
    res = fastconv.conv3d(x, w, padding=1, backend=backend)
    np.testing.assert_array_equal(np.isnan(res), np.isnan(want))
    gy = np.ones((1, 2, 3, 4, 5))
    gy[0, 1, 0, 0, 0] = np.inf  # its window reaches the front, top and left padding
    tx = torch.from_numpy(x).requires_grad_(True)
    tw = torch.from_numpy(np.ones((2, 2, 3, 3, 3))).requires_grad_(True)
    torch.nn.functional.conv3d(tx, tw, padding=1).backward(torch.from_numpy(gy))
    gw = G.conv3d_weight(x, (2, 2, 3, 3, 3), gy, padding=1, backend=backend)
    np.testing.assert_array_equal(np.isnan(gw), np.isnan(tw.grad.numpy()))
    assert np.isnan(gw).any()


# --------------------------------------------------------------------------------------------
# gradients
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(GRID)), ids=lambda i: f"g{i}")
def test_conv3d_grads_match_torch(torch, rng, backend, case, dtype):
    x_shape, w_shape, kw = GRID[case]
    x, w, b = _make(rng, x_shape, w_shape, dtype)
    m, tx, y = _torch_conv3d(torch, x, w, b, kw)
    g = rng.standard_normal(tuple(y.shape)).astype(dtype)
    y.backward(torch.from_numpy(g.astype(np.float64)))
    gx = G.conv3d_input(x.shape, w, g, backend=backend, **kw)
    gw = G.conv3d_weight(x, w.shape, g, backend=backend, **kw)
    gb = G.conv3d_bias(g)
    terms = g.size // g.shape[-4]
    assert_close(gx, tx.grad.numpy(), terms=_terms(w_shape) * 8, dtype=dtype)
    assert_close(gw, m.weight.grad.numpy(), terms=terms, dtype=dtype)
    assert_close(gb, m.bias.grad.numpy(), terms=terms, dtype=dtype)
    assert_close(gx, G.conv3d_input(x.shape, w, g, backend="numpy", **kw),
                 terms=_terms(w_shape) * 8, dtype=dtype)
    assert_close(gw, G.conv3d_weight(x, w.shape, g, backend="numpy", **kw), terms=terms,
                 dtype=dtype)


def test_conv3d_matches_torch_nn_grad(torch, backend, rng):
    """The torch.nn.grad functions themselves (zero padding, a stride leaving a remainder)."""
    x, w, _ = _make(rng, (2, 3, 7, 6, 8), (4, 3, 2, 3, 2), np.float64, False)
    kw = dict(stride=(2, 1, 3), padding=(1, 0, 1), dilation=(1, 2, 1))
    y = fastconv.conv3d(x, w, backend="numpy", **kw)
    g = rng.standard_normal(y.shape)
    tg = torch.from_numpy(g)
    want_x = torch.nn.grad.conv3d_input(x.shape, torch.from_numpy(w), tg, **kw).numpy()
    want_w = torch.nn.grad.conv3d_weight(torch.from_numpy(x), w.shape, tg, **kw).numpy()
    assert_close(G.conv3d_input(x.shape, w, g, backend=backend, **kw), want_x, terms=24)
    assert_close(G.conv3d_weight(x, w.shape, g, backend=backend, **kw), want_w, terms=200)


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=S.conv_args(nd=3), seed=S.seeds)
def test_conv3d_adjoint_identity(backend, args, seed):
    """<conv3d(x, w), y> == <x, conv3d_input(y)> == <w, conv3d_weight(x, y)> (no bias; any
    padding mode: its fold is the adjoint of the padding)."""
    x_shape, w_shape, _, kw = args
    r = np.random.default_rng(seed)
    x, w, _ = _make(r, x_shape, w_shape, np.float64, False)
    y = fastconv.conv3d(x, w, backend=backend, **kw)
    g = r.standard_normal(y.shape)
    lhs = float(np.vdot(y, g))
    gx = G.conv3d_input(x.shape, w, g, backend=backend, **kw)
    gw = G.conv3d_weight(x, w.shape, g, backend=backend, **kw)
    scale = np.sqrt(x.size * w.size) + abs(lhs)
    assert abs(lhs - float(np.vdot(x, gx))) <= 1e-10 * scale
    assert abs(lhs - float(np.vdot(w, gw))) <= 1e-10 * scale


def test_conv3d_grads_finite_differences(backend):
    r = np.random.default_rng(7)
    kw = dict(stride=(1, 2, 1), padding=(1, 1, 2), dilation=(1, 1, 2), groups=2,
              padding_mode="reflect")
    x, w, b = _make(r, (1, 4, 4, 5, 6), (2, 2, 2, 3, 2), np.float64)
    y = fastconv.conv3d(x, w, b, **kw, backend="numpy")
    g = r.standard_normal(y.shape)

    def loss(xx, ww, bb):
        return float(np.vdot(fastconv.conv3d(xx, ww, bb, **kw, backend="numpy"), g))

    gx = G.conv3d_input(x.shape, w, g, backend=backend, **kw)
    gw = G.conv3d_weight(x, w.shape, g, backend=backend, **kw)
    gb = G.conv3d_bias(g)
    eps = 1e-6
    for arr, grad_, which in ((x, gx, 0), (w, gw, 1), (b, gb, 2)):
        for idx in r.choice(arr.size, size=min(8, arr.size), replace=False):
            idx = np.unravel_index(idx, arr.shape)
            args = [x.copy(), w.copy(), b.copy()]
            args[which][idx] += eps
            up = loss(*args)
            args[which][idx] -= 2 * eps
            fd = (up - loss(*args)) / (2 * eps)
            assert abs(fd - grad_[idx]) <= 1e-6 * (1 + abs(fd)), (which, idx)


def test_conv3d_grads_layouts_unbatched_and_empty(rng, backend):
    x, w, _ = _make(rng, (3, 4, 5, 6), (4, 3, 3, 3, 3), np.float32, False)
    g = rng.standard_normal((4, 4, 5, 6)).astype(np.float32)
    want_x = G.conv3d_input(x.shape, w, g, padding=1, backend="numpy")
    want_w = G.conv3d_weight(x, w.shape, g, padding=1, backend="numpy")
    for kind in LAYOUTS:
        gx = G.conv3d_input(x.shape, layout(w, kind), layout(g, kind), padding=1,
                            backend=backend)
        gw = G.conv3d_weight(layout(x, kind), w.shape, layout(g, kind), padding=1,
                             backend=backend)
        assert_close(gx, want_x, terms=400)
        assert_close(gw, want_w, terms=400)
    e = np.zeros((0, 3, 4, 5, 6), np.float32)
    ge = np.zeros((0, 4, 4, 5, 6), np.float32)
    assert G.conv3d_input(e.shape, w, ge, padding=1, backend=backend).shape == e.shape
    gw0 = G.conv3d_weight(e, w.shape, ge, padding=1, backend=backend)
    np.testing.assert_array_equal(gw0, np.zeros(w.shape, np.float32))
    np.testing.assert_array_equal(G.conv3d_bias(ge), np.zeros(4, np.float32))


# --------------------------------------------------------------------------------------------
# algorithms, threads, pieces
# --------------------------------------------------------------------------------------------
def test_conv3d_plan_rule():
    big = ((2, 16, 16, 64, 64), (32, 16, 3, 3, 3), (2, 32, 16, 64, 64))
    one = ((8, 1, 16, 32, 32), (8, 1, 3, 3, 3), (8, 8, 14, 30, 30))
    s, d = (1, 1, 1), (1, 1, 1)
    # stride 1: the direct kernel up to R = DIRECT_MAX_R; strided with many channels: GEMM
    assert _plan.conv3d("cython", *big, s, (1, 1, 1), d, 1) == _plan.DIRECT
    assert _plan.conv3d("cython", *one, s, (0, 0, 0), d, 1) == _plan.DIRECT
    assert _plan.conv3d("cython", big[0], big[1], (2, 32, 8, 32, 32), (2, 2, 2), (1, 1, 1),
                        d, 1) == _plan.GEMM
    assert _plan.conv3d("cython", (1, 256, 4, 8, 8), (32, 256, 3, 3, 3), (1, 32, 2, 6, 6),
                        s, (0, 0, 0), d, 1) == _plan.GEMM  # R = 6912 > DIRECT_MAX_R
    assert _plan.conv3d("cython", big[0], (32, 1, 3, 3, 3), (2, 32, 8, 32, 32), (2, 2, 2),
                        (1, 1, 1), d, 16) == _plan.DIRECT  # R = 27: few channels
    # few filters per group: direct whatever R
    assert _plan.conv3d("cython", (1, 64, 4, 4, 4), (4, 64, 3, 3, 3), (1, 4, 2, 2, 2), s,
                        (0, 0, 0), d, 1) == _plan.DIRECT
    assert _plan.conv3d("numba", *big, s, (1, 1, 1), d, 1) == _plan.GEMM
    assert _plan.conv3d("numba", *one, s, (0, 0, 0), d, 1) == _plan.DIRECT
    gy, w, gx = np.empty(big[2], np.float32), np.empty(big[1], np.float32), np.empty(big[0],
                                                                                    np.float32)
    # stride 1: the forward conv3d (its direct kernel); strided: col2vol + GEMM
    assert _plan.algorithm("conv3d_input", "cython", (gy, w, gx, s, (1, 1, 1), d, 1)) \
        == _plan.FORWARD
    gy2 = np.empty((2, 32, 8, 32, 32), np.float32)
    assert _plan.algorithm("conv3d_input", "cython", (gy2, w, gx, (2, 2, 2), (1, 1, 1), d, 1)) \
        == _plan.GEMM
    # stride 1 whose forward layer would run GEMM (R' = 256 * 27 > DIRECT_MAX_R): col2vol
    wb = np.empty((256, 32, 3, 3, 3), np.float32)
    assert _plan.algorithm("conv3d_input", "cython",
                           (np.empty((1, 256, 4, 6, 6), np.float32), wb,
                            np.empty((1, 32, 6, 8, 8), np.float32), s, (0, 0, 0), d, 1)) \
        == _plan.GEMM
    # few filters: the forward conv3d of grad_output (direct for so few channels)
    w1, gy1, gx1 = np.empty((4, 1, 3, 3, 3)), np.empty((8, 4, 14, 30, 30)), np.empty(one[0])
    assert _plan.algorithm("conv3d_input", "cython", (gy1, w1, gx1, s, (0, 0, 0), d, 1)) \
        == _plan.FORWARD
    assert _plan.algorithm("conv3d_input", "cython",
                           (gy1[:, :, ::2].copy(), w1, gx1, (2, 1, 1), (0, 0, 0), d, 1)) \
        == _plan.GEMM
    assert _plan.algorithm("conv3d_weight", "numba", (gx, gy, w, s, (1, 1, 1), d, 1)) \
        == _plan.DIRECT
    assert _plan.algorithm("conv3d", "numpy", ()) is None


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("kw", [dict(padding=1), dict(stride=(1, 2, 2), padding=(0, 1, 2)),
                                dict(padding="same", dilation=(2, 1, 2), groups=2)],
                         ids=["flat", "strided", "dilated"])
def test_conv3d_every_algorithm_agrees(rng, backend, kw):
    """Each algorithm the compiled kernels take, forced, gives the reference's result."""
    x, w, b = _make(rng, (2, 8, 5, 6, 7), (16, 8 // kw.get("groups", 1), 3, 3, 3),
                    np.float64)
    spec = fastconv._spec.conv_spec(x, w, b, kw.get("stride", 1), kw.get("padding", 0),
                                    kw.get("dilation", 1), kw.get("groups", 1), "zeros", 3)
    want = fastconv.conv3d(x, w, b, backend="numpy", **kw)
    _, fn = _dispatch.kernel("conv3d", backend)
    for algo in _plan.ALGORITHMS[backend, "conv3d"]:
        out = np.empty(spec.out_shape)
        fn(*spec.kernel_args(out), algo, 2)
        assert_close(out, want, terms=216)
    g = rng.standard_normal(want.shape)
    gs = fastconv._spec.conv_input_grad_spec(x.shape, w, g, kw.get("stride", 1),
                                             kw.get("padding", 0), kw.get("dilation", 1),
                                             kw.get("groups", 1), "zeros", 3)
    want_x = G.conv3d_input(x.shape, w, g, backend="numpy", **kw)
    _, fn = _dispatch.kernel("conv3d_input", backend)
    for algo in _plan.ALGORITHMS[backend, "conv3d_input"]:
        if algo == _plan.FORWARD and not _plan.transposes_to_forward3(
                gs.stride, gs.pad, gs.dilation, w.shape):
            with pytest.raises(ValueError, match="forward"):
                fn(*gs.kernel_args(np.empty(gs.grad_shape)), algo, 2)
            continue
        out = np.empty(gs.grad_shape)
        fn(*gs.kernel_args(out), algo, 2)
        assert_close(out, want_x, terms=500)
    with pytest.raises(ValueError, match="algo"):
        fn(*gs.kernel_args(np.empty(gs.grad_shape)), "winograd", 2)


@pytest.mark.parametrize("backend", COMPILED)
def test_conv3d_results_do_not_depend_on_threads(rng, backend, threads):
    x, w, b = _make(rng, (2, 16, 6, 7, 9), (16, 16, 3, 3, 3), np.float32)
    x1, w1, b1 = _make(rng, (3, 1, 6, 7, 9), (8, 1, 3, 3, 3), np.float32)
    res = {}
    for n in (1, 2, 3):
        fastconv.set_num_threads(n)
        y = fastconv.conv3d(x, w, b, padding=1, backend=backend)
        y1 = fastconv.conv3d(x1, w1, b1, padding=(0, 1, 1), backend=backend)
        res[n] = (y, y1,
                  G.conv3d_input(x.shape, w, y, padding=1, backend=backend),
                  G.conv3d_weight(x, w.shape, y, padding=1, backend=backend),
                  G.conv3d_input(x1.shape, w1, y1, padding=(0, 1, 1), backend=backend),
                  G.conv3d_weight(x1, w1.shape, y1, padding=(0, 1, 1), backend=backend))
    for n in (2, 3):
        for a, b_ in zip(res[1], res[n]):
            np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("op", ["conv3d", "conv3d_input", "conv3d_weight"])
def test_conv3d_runs_in_pieces(rng, backend, op, monkeypatch):
    """A call past the split threshold runs in pieces (Ctrl-C between them), with the
    whole call's result."""
    x, w, b = _make(rng, (3, 8, 5, 6, 7), (16, 4, 3, 3, 3), np.float64)
    kw = dict(padding=1, groups=2)
    y = fastconv.conv3d(x, w, b, backend="numpy", **kw)
    g = rng.standard_normal(y.shape)

    def run():
        if op == "conv3d":
            return fastconv.conv3d(x, w, b, backend=backend, **kw)
        if op == "conv3d_input":
            return G.conv3d_input(x.shape, w, g, backend=backend, **kw)
        return G.conv3d_weight(x, w.shape, g, backend=backend, **kw)

    whole = run()
    pieces = []
    real = _chunks._piece

    def spy(op_, args, cut, io=(_chunks._contig, _chunks._target)):
        p = real(op_, args, cut, io)
        if io is not _chunks._VIEWS_ONLY:
            pieces.append(cut)
        return p

    monkeypatch.setattr(_chunks, "SPLIT_SECONDS", 0.0)
    monkeypatch.setattr(_chunks, "PIECE_SECONDS", _chunks.estimate(
        op, _dispatch.resolve(backend, op), _args(op, x, w, b, y, g)) / 5)
    monkeypatch.setattr(_chunks, "_piece", spy)
    cut = run()
    assert len(pieces) >= 2
    assert_close(cut, whole, terms=500)


def _args(op, x, w, b, y, g):
    s, p, d = (1, 1, 1), (1, 1, 1), (1, 1, 1)
    if op == "conv3d":
        return (x, w, b, np.empty_like(y), s, p, d, 2)
    if op == "conv3d_input":
        return (g, w, np.empty_like(x), s, p, d, 2)
    return (x, g, np.empty_like(w), s, p, d, 2)


# --------------------------------------------------------------------------------------------
# bad arguments
# --------------------------------------------------------------------------------------------
X = np.zeros((1, 2, 4, 5, 6), np.float32)
W = np.zeros((4, 2, 3, 3, 3), np.float32)
BAD = [
    (dict(x=np.zeros((2, 4, 5, 6, 7, 1))), ValueError, "x must have shape"),
    (dict(x=np.zeros((4, 5))), ValueError, "x must have shape"),
    (dict(weight=np.zeros((4, 2, 3, 3))), ValueError, "weight must have 5 dimensions"),
    (dict(weight=np.zeros((4, 3, 3, 3, 3))), ValueError, "weight"),
    (dict(weight=np.zeros((0, 2, 3, 3, 3))), ValueError, "weight must not be empty"),
    (dict(bias=np.zeros(3)), ValueError, "bias must have shape"),
    (dict(stride=0), ValueError, "stride"),
    (dict(stride=(1, 1)), ValueError, "stride"),
    (dict(stride=1.5), TypeError, "stride"),
    (dict(padding=-1), ValueError, "padding"),
    (dict(padding="full"), ValueError, "padding"),
    (dict(padding="same", stride=2), ValueError, "padding='same'"),
    (dict(dilation=0), ValueError, "dilation"),
    (dict(dilation=True), TypeError, "dilation"),
    (dict(groups=3), ValueError, "groups"),
    (dict(groups=0), ValueError, "groups"),
    (dict(padding_mode="wrap", padding=1), ValueError, "padding_mode"),
    (dict(padding_mode="reflect", padding=4), ValueError, "padding_mode='reflect'"),
    (dict(padding_mode="circular", padding=(5, 0, 0)), ValueError, "padding_mode='circular'"),
    (dict(x=np.zeros((1, 2, 2, 5, 6))), ValueError, "output would be empty"),
    (dict(x=np.zeros((1, 2, 4, 5, 6), complex)), TypeError, "x must be real"),
    (dict(x="abc"), TypeError, "x must be a real numeric array"),
    (dict(weight=np.zeros((4, 2, 3, 3, 3), object)), TypeError, "weight must be"),
    (dict(stride=2 ** 40), ValueError, "stride must be < 2\\*\\*31"),
    (dict(padding=2 ** 31 - 1), ValueError, "would need"),
    (dict(backend="torch"), ValueError, "backend"),
]


@pytest.mark.parametrize("bad,exc,match", BAD, ids=[str(i) for i in range(len(BAD))])
def test_conv3d_bad_arguments(bad, exc, match, monkeypatch):
    def boom(*a, **k):  # pragma: no cover - a kernel must not run
        raise AssertionError("a kernel ran")

    monkeypatch.setattr(_dispatch, "call_kernel", boom)
    args = dict(x=X, weight=W, bias=None)
    args.update(bad)
    with pytest.raises(exc, match=match):
        fastconv.conv3d(**args)


BAD_GRAD = [
    (lambda: G.conv3d_input((1, 2, 4), W, np.zeros((1, 4, 2, 3, 4))), ValueError,
     "input_size must have shape"),
    (lambda: G.conv3d_input((1, 2, 4, 5, 6), W, np.zeros((1, 4, 2, 3, 3))), ValueError,
     "grad_output must have shape"),
    (lambda: G.conv3d_input("abc", W, np.zeros((1, 4, 2, 3, 4))), TypeError, "input_size"),
    (lambda: G.conv3d_weight(X, (4, 2, 3, 3), np.zeros((1, 4, 2, 3, 4))), ValueError,
     "weight_size must have 5 dimensions"),
    (lambda: G.conv3d_weight(X, (4, 2, 3, 3, 3), np.zeros((1, 4, 2, 3, 4)), stride=0),
     ValueError, "stride"),
    (lambda: G.conv3d_weight(X, (4, 2, 3, 3, 3), np.zeros((1, 4, 2, 3, 4), complex)),
     TypeError, "grad_output must be real"),
    (lambda: G.conv3d_bias(np.zeros((4, 2, 3))), ValueError, "grad_output must have shape"),
]


@pytest.mark.parametrize("i", range(len(BAD_GRAD)))
def test_conv3d_grad_bad_arguments(i, monkeypatch):
    monkeypatch.setattr(_dispatch, "call_kernel", lambda *a, **k: 1 / 0)
    fn, exc, match = BAD_GRAD[i]
    with pytest.raises(exc, match=match):
        fn()


# --------------------------------------------------------------------------------------------
# nn.Conv1d and nn.Conv3d against torch's modules
# --------------------------------------------------------------------------------------------
LAYERS = [
    ("Conv3d", (2, 4, 5, 6, 7), dict(kernel_size=(2, 3, 1), stride=2, padding=1, groups=2,
                                     padding_mode="circular")),
    ("Conv3d", (4, 5, 6, 7), dict(kernel_size=3, padding="same", bias=False)),
    ("Conv3d", (2, 4, 5, 6, 7), dict(kernel_size=3, padding="valid", dilation=(1, 2, 1))),
    ("Conv1d", (2, 4, 9), dict(kernel_size=3, padding="same", dilation=2, bias=False)),
    ("Conv1d", (3, 4, 11), dict(kernel_size=4, stride=2, padding=2, groups=2,
                                padding_mode="reflect")),
    ("Conv1d", (4, 10), dict(kernel_size=(5,), padding=(1,))),
]


@pytest.mark.parametrize("i", range(len(LAYERS)))
def test_nn_conv_layers_match_torch(torch, backend, i):
    name, xs, kw = LAYERS[i]
    m = getattr(nn, name)(4, 6, rng=i, backend=backend, dtype=np.float64, **kw)
    t = getattr(torch.nn, name)(4, 6, dtype=torch.float64, **kw)
    assert repr(m) == repr(t)
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(m.weight.data))
        if t.bias is not None:
            t.bias.copy_(torch.from_numpy(m.bias.data))
    # torch's default init: the same bound (kaiming-uniform, a=sqrt(5))
    fan_in = np.prod(m.weight.shape[1:])
    assert np.abs(m.weight.data).max() <= 1 / np.sqrt(fan_in)
    x = np.random.default_rng(i).standard_normal(xs)
    y = m(x)
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = t(tx)
    assert_close(y, ty.detach().numpy(), terms=int(fan_in))
    g = np.random.default_rng(i + 1).standard_normal(y.shape)
    ty.backward(torch.from_numpy(g))
    gx = m.backward(g)
    assert_close(gx, tx.grad.numpy(), terms=int(fan_in) * 4)
    assert_close(m.weight.grad, t.weight.grad.numpy(), terms=g.size)
    if t.bias is not None:
        assert_close(m.bias.grad, t.bias.grad.numpy(), terms=g.size)
    assert [p.name for p in m.parameters()] == (["weight", "bias"] if t.bias is not None
                                                else ["weight"])


def test_nn_conv3d_bad_arguments():
    with pytest.raises(ValueError, match="groups"):
        nn.Conv3d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="kernel_size"):
        nn.Conv3d(4, 6, (3, 3))
    with pytest.raises(ValueError, match="padding"):
        nn.Conv3d(4, 6, 3, padding="full")
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv1d(4, 6, 3, padding_mode="wrap")
    with pytest.raises(TypeError, match="stride"):
        nn.Conv1d(4, 6, 3, stride=1.5)


# --------------------------------------------------------------------------------------------
# memory of the bench-target shapes
# --------------------------------------------------------------------------------------------
MEM_CHILD = r"""
from fastconv.bench.targets_conv3d import _arrays, _BIG, _ONE
import fastconv.grad as G
backend = sys.argv[1]
fastconv.set_num_threads(2)
res = {}
for name, (xs, ws, pad) in {"big": _BIG, "one": _ONE}.items():
    x, w, gy = _arrays(xs, ws, pad)
    small = np.ascontiguousarray(x[:1, :, :4, :8, :8])
    fastconv.conv3d(small, w, padding=pad, backend=backend)  # warm up (Numba compiles)
    gys = fastconv.conv3d(small, w, padding=pad, backend=backend)
    G.conv3d_input(small.shape, w, gys, padding=pad, backend=backend)
    G.conv3d_weight(small, w.shape, gys, padding=pad, backend=backend)
    out = np.empty(gy.shape, np.float32)
    out[...] = 0
    for op in ("conv3d", "conv3d_input", "conv3d_weight"):
        before, reset = reset_peak(backend)
        if op == "conv3d":
            r = fastconv.conv3d(x, w, padding=pad, backend=backend, out=out)
            kept = 0
        elif op == "conv3d_input":
            r = G.conv3d_input(x.shape, w, gy, padding=pad, backend=backend)
            kept = r.nbytes
        else:
            r = G.conv3d_weight(x, w.shape, gy, padding=pad, backend=backend)
            kept = r.nbytes
        res[f"{op}-{name}"] = {"extra": status("VmHWM") - before - kept,
                               "in_out": x.nbytes + gy.nbytes, "reset": reset}
        del r
print(json.dumps(res))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("backend", BACKENDS)
def test_conv3d_extra_memory_is_bounded(backend):
    """Each op's extra memory on the bench-target shapes stays below max(64 MiB, input +
    output), measured as conv2d's is (tests/test_memory.py's measuring code)."""
    import os
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak resident set")
    from test_memory import _PREAMBLE, MIB
    proc = subprocess.run([sys.executable, "-c", _PREAMBLE + MEM_CHILD, backend],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.splitlines()[-1])
    for name, r in res.items():
        assert r["reset"] < MIB
        bound = max(64 * MIB, r["in_out"])
        assert r["extra"] < bound, (backend, name, r["extra"] / MIB, bound / MIB)
