"""max_unpool1d/2d/3d and lp_pool1d/2d (issue 17): torch's results on every backend, over
geometries, output sizes, ceil modes, dtypes and layouts; indices checked before any kernel
runs; the gradients against torch autograd, finite differences and the adjoint identity;
bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

import fastconv
import fastconv.grad as G
from conftest import BACKENDS, LAYOUTS, assert_close, layout

torch = pytest.importorskip("torch")
TF = torch.nn.functional

POOL = {1: TF.max_pool1d, 2: TF.max_pool2d, 3: TF.max_pool3d}
UNPOOL = {1: TF.max_unpool1d, 2: TF.max_unpool2d, 3: TF.max_unpool3d}

# nd, input shape, kernel_size, stride, padding, output_size (None: the default)
UNPOOL_CASES = [
    (1, (2, 3, 12), 2, None, 0, None),
    (1, (2, 3, 11), 3, 2, 1, (11,)),
    (1, (1, 2, 10), 3, 1, 0, None),          # overlapping windows: repeated indices
    (2, (2, 3, 8, 6), 2, None, 0, None),
    (2, (2, 3, 8, 7), 3, 2, 1, (8, 7)),
    (2, (1, 2, 7, 7), (2, 3), (1, 2), (1, 1), None),
    (2, (2, 2, 9, 9), 3, 3, 0, (2, 2, 10, 10)),
    (2, (1, 3, 6, 6), 3, 1, 1, None),        # overlapping windows: repeated indices
    (3, (2, 2, 4, 6, 8), 2, None, 0, None),
    (3, (1, 2, 5, 6, 7), 3, 2, 1, (5, 6, 7)),
    (3, (1, 1, 4, 4, 6), (1, 2, 3), (1, 2, 3), 0, None),
]
IDS = [f"{c[0]}d-{i}" for i, c in enumerate(UNPOOL_CASES)]


def _fn(name, nd):
    return getattr(fastconv, f"{name}{nd}d")


def _pooled(rng, nd, shape, k, s, p, dtype=np.float64):
    xt = torch.from_numpy(rng.standard_normal(shape).astype(dtype))
    y, idx = POOL[nd](xt, k, s, p, return_indices=True)
    return y, idx


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", UNPOOL_CASES, ids=IDS)
def test_max_unpool_matches_torch(backend, rng, case, dtype):
    nd, shape, k, s, p, size = case
    y, idx = _pooled(rng, nd, shape, k, s, p, dtype)
    want = UNPOOL[nd](y, idx, k, s, p, output_size=size).numpy()
    got = _fn("max_unpool", nd)(y.numpy(), idx.numpy(), k, s, p, size, backend=backend)
    assert_close(got, want)  # repeated indices: the last value, as torch's CPU kernel
    assert_close(got, _fn("max_unpool", nd)(y.numpy(), idx.numpy(), k, s, p, size,
                                            backend="numpy"))
    # unbatched
    got1 = _fn("max_unpool", nd)(y.numpy()[0], idx.numpy()[0], k, s, p,
                                 None if size is None else size[-nd:], backend=backend)
    assert_close(got1, want[0])


@pytest.mark.parametrize("kind", LAYOUTS)
def test_max_unpool_layouts_int_input_and_int32_indices(backend, rng, kind):
    y, idx = _pooled(rng, 2, (2, 3, 8, 6), 2, None, 0)
    want = TF.max_unpool2d(y, idx, 2).numpy()
    got = fastconv.max_unpool2d(layout(y.numpy(), kind), layout(idx.numpy(), kind), 2,
                                backend=backend)
    assert_close(got, want)
    got = fastconv.max_unpool2d(layout(y.numpy(), kind), idx.numpy().astype(np.int32), 2,
                                backend=backend)
    assert_close(got, want)
    yi = rng.integers(-9, 9, y.shape)
    assert_close(fastconv.max_unpool2d(layout(yi, kind), idx.numpy(), 2, backend=backend),
                 TF.max_unpool2d(torch.from_numpy(yi.astype(np.float64)), idx, 2).numpy())


def test_max_unpool_empty_batch(backend):
    for nd in (1, 2, 3):
        x = np.zeros((0, 2) + (2,) * nd, np.float32)
        r = _fn("max_unpool", nd)(x, x.astype(np.int64), 2, backend=backend)
        assert r.shape == (0, 2) + (4,) * nd and r.dtype == np.float32
        g = getattr(G, f"max_unpool{nd}d")(r, x.astype(np.int64), backend=backend)
        assert g.shape == x.shape and g.dtype == np.float32


def test_max_unpool_stride_forms(backend, rng):
    y, idx = _pooled(rng, 2, (1, 2, 6, 6), 3, None, 0)
    want = TF.max_unpool2d(y, idx, 3).numpy()
    for stride in (None, (), 3, (3, 3)):
        assert_close(fastconv.max_unpool2d(y.numpy(), idx.numpy(), 3, stride,
                                           backend=backend), want)


def test_out_of_range_indices_raise_before_any_write(backend):
    x = np.ones((1, 1, 2, 2))
    for bad in (-1, 16, 2**40):
        idx = np.array([[[[0, 1], [2, bad]]]])
        with pytest.raises(ValueError, match="indices"):
            fastconv.max_unpool2d(x, idx, 2, backend=backend)
        with pytest.raises(ValueError, match="indices"):
            G.max_unpool2d(np.ones((1, 1, 4, 4)), idx, backend=backend)
    with pytest.raises(TypeError, match="indices"):
        fastconv.max_unpool2d(x, np.zeros((1, 1, 2, 2)), 2, backend=backend)
    with pytest.raises(ValueError, match="indices"):
        fastconv.max_unpool2d(x, np.zeros((1, 1, 2, 3), np.int64), 2, backend=backend)


UNPOOL_BAD = [
    (2, dict(output_size=(9, 4)), ValueError, "output_size"),
    (2, dict(output_size=(4, 4, 4)), ValueError, "output_size"),
    (2, dict(output_size="ab"), TypeError, "output_size"),
    (2, dict(output_size=(4.0, 4)), TypeError, "output_size"),
    (2, dict(kernel_size=0), ValueError, "kernel_size"),
    (2, dict(kernel_size=(2, 2, 2)), ValueError, "kernel_size"),
    (2, dict(stride=0), ValueError, "stride"),
    (2, dict(padding=-1), ValueError, "padding"),
    (2, dict(kernel_size=1, padding=1), ValueError, "empty"),
    (1, dict(output_size=(1, 1, 1, 1)), ValueError, "output_size"),
    (3, dict(backend="nope"), ValueError, "backend"),
]


@pytest.mark.parametrize("nd, kwargs, exc, match", UNPOOL_BAD,
                         ids=[f"{i}-{b[3]}" for i, b in enumerate(UNPOOL_BAD)])
def test_max_unpool_bad_arguments(nd, kwargs, exc, match):
    x = np.ones((1, 1) + (2,) * nd)
    args = dict(kernel_size=2)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        _fn("max_unpool", nd)(x, np.zeros(x.shape, np.int64), **args)
    with pytest.raises(ValueError, match="x"):
        _fn("max_unpool", nd)(np.ones((1,) * (nd + 3)), np.zeros((1,) * (nd + 3), np.int64), 2)


@pytest.mark.parametrize("case", UNPOOL_CASES, ids=IDS)
def test_max_unpool_gradient_matches_torch_autograd(backend, rng, case):
    nd, shape, k, s, p, size = case
    y, idx = _pooled(rng, nd, shape, k, s, p)
    yt = y.clone().requires_grad_()
    out = UNPOOL[nd](yt, idx, k, s, p, output_size=size)
    gy = rng.standard_normal(tuple(out.shape))
    out.backward(torch.from_numpy(gy))
    grad = getattr(G, f"max_unpool{nd}d")
    assert_close(grad(gy, idx.numpy(), backend=backend), yt.grad.numpy())
    assert_close(grad(gy[0], idx.numpy()[0], backend=backend), yt.grad.numpy()[0])


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_unpool_adjoint_identity_and_finite_differences(backend, rng, nd):
    # non-overlapping windows: unique indices, so the gather is the scatter's transpose
    shape = (2, 2) + (4,) * nd
    y, idx = _pooled(rng, nd, shape, 2, None, 0)
    x = rng.standard_normal(tuple(y.shape))
    up = _fn("max_unpool", nd)(x, idx.numpy(), 2, backend=backend)
    z = rng.standard_normal(up.shape)
    g = getattr(G, f"max_unpool{nd}d")(z, idx.numpy(), backend=backend)
    np.testing.assert_allclose(np.vdot(up, z), np.vdot(x, g), rtol=1e-12)
    h = 1e-6
    for i in rng.choice(x.size, 5, replace=False):
        e = np.zeros(x.size)
        e[i] = h
        e = e.reshape(x.shape)
        fd = (np.vdot(_fn("max_unpool", nd)(x + e, idx.numpy(), 2, backend=backend), z)
              - np.vdot(_fn("max_unpool", nd)(x - e, idx.numpy(), 2, backend=backend), z))
        np.testing.assert_allclose(fd / (2 * h), g.ravel()[i], rtol=1e-6, atol=1e-9)


def test_max_unpool_gradient_bad_arguments():
    with pytest.raises(ValueError, match="grad_output"):
        G.max_unpool2d(np.ones((4, 4)), np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match="indices"):
        G.max_unpool2d(np.ones((1, 4, 4)), np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match="batch and channel"):
        G.max_unpool2d(np.ones((1, 2, 4, 4)), np.zeros((1, 3, 2, 2), np.int64))
    with pytest.raises(TypeError, match="indices"):
        G.max_unpool1d(np.ones((1, 4)), np.zeros((1, 2)))


@pytest.mark.parametrize("compiled", [b for b in BACKENDS if b != "numpy"])
def test_unpool_does_not_depend_on_the_thread_count(compiled, rng, threads):
    y, idx = _pooled(rng, 2, (2, 5, 12, 12), 3, 1, 1)  # repeated indices
    res = []
    for n in (1, 2, 3):
        fastconv.set_num_threads(n)
        res.append(fastconv.max_unpool2d(y.numpy(), idx.numpy(), 3, 1, 1, backend=compiled))
    fastconv.set_num_threads(threads)
    for r in res[1:]:
        np.testing.assert_array_equal(r, res[0])


# --------------------------------------------------------------------------------------------
# lp_pool1d / lp_pool2d
# --------------------------------------------------------------------------------------------
NORMS = [1, 2, 3, 1.5, float("inf"), -float("inf")]
# nd, shape, kernel_size, stride
LP_CASES = [
    (1, (2, 3, 11), 3, None),
    (1, (2, 3, 11), 3, 2),
    (1, (1, 2, 8), 1, 1),
    (2, (2, 3, 9, 8), 3, 2),
    (2, (2, 3, 9, 8), (2, 3), None),
    (2, (1, 2, 7, 7), 2, (1, 3)),
]
LP_IDS = [f"{c[0]}d-{i}" for i, c in enumerate(LP_CASES)]


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("case", LP_CASES, ids=LP_IDS)
@pytest.mark.parametrize("p", NORMS)
def test_lp_pool_matches_torch(backend, rng, case, p, ceil_mode):
    nd, shape, k, s = case
    tfn = TF.lp_pool1d if nd == 1 else TF.lp_pool2d
    for dtype in (np.float32, np.float64):
        # signed input: x ** 1.5 of a negative value is NaN, in torch and here
        x = rng.standard_normal(shape).astype(dtype)
        want = tfn(torch.from_numpy(x), p, k, s, ceil_mode).numpy()
        got = _fn("lp_pool", nd)(x, p, k, s, ceil_mode, backend=backend)
        assert_close(got, want, terms=9)
        assert_close(_fn("lp_pool", nd)(x[0], p, k, s, ceil_mode, backend=backend), want[0],
                     terms=9)


@pytest.mark.parametrize("kind", LAYOUTS)
def test_lp_pool_layouts_int_input_and_empty_batch(backend, rng, kind):
    x = np.abs(rng.standard_normal((2, 3, 8, 9)))
    want = TF.lp_pool2d(torch.from_numpy(x), 2, 3, 2).numpy()
    assert_close(fastconv.lp_pool2d(layout(x, kind), 2, 3, 2, backend=backend), want)
    x1 = x[:, :, 0]
    assert_close(fastconv.lp_pool1d(layout(x1, kind), 3, 2, backend=backend),
                 TF.lp_pool1d(torch.from_numpy(x1), 3, 2).numpy())
    xi = rng.integers(0, 5, (2, 3, 8, 9))
    assert_close(fastconv.lp_pool2d(layout(xi, kind), 2, 2, backend=backend),
                 TF.lp_pool2d(torch.from_numpy(xi.astype(np.float64)), 2, 2).numpy())
    e = fastconv.lp_pool2d(np.zeros((0, 3, 8, 9), np.float32), 2, 2, backend=backend)
    assert e.shape == (0, 3, 4, 4) and e.dtype == np.float32


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("case", LP_CASES, ids=LP_IDS)
@pytest.mark.parametrize("p", [1, 2, 3, 1.5, float("inf"), -float("inf")])
def test_lp_pool_gradient_matches_torch_autograd(backend, rng, case, p, ceil_mode):
    nd, shape, k, s = case
    tfn = TF.lp_pool1d if nd == 1 else TF.lp_pool2d
    x = np.abs(rng.standard_normal(shape)) + 0.1  # positive: every power is defined
    x[..., :2] *= rng.choice([-1, 1], x[..., :2].shape) if p in (2, float("inf")) else 1
    xt = torch.from_numpy(x).requires_grad_()
    out = tfn(xt, p, k, s, ceil_mode)
    gy = rng.standard_normal(tuple(out.shape))
    out.backward(torch.from_numpy(gy))
    grad = getattr(G, f"lp_pool{nd}d")
    assert_close(grad(gy, x, p, k, s, ceil_mode, backend=backend), xt.grad.numpy(), terms=9)


def test_lp_pool_gradient_where_a_window_is_zero(backend):
    # torch: no gradient through relu(|s|) where the sum of powers is 0
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, :2, :2] = [[1.0, 2.0], [3.0, 4.0]]
    xt = torch.from_numpy(x).requires_grad_()
    out = TF.lp_pool2d(xt, 2, 2)
    out.backward(torch.ones_like(out))
    got = G.lp_pool2d(np.ones(out.shape), x, 2, 2, backend=backend)
    assert_close(got, xt.grad.numpy())
    assert np.isfinite(got).all()


@pytest.mark.parametrize("nd", [1, 2])
def test_lp_pool_gradient_by_finite_differences(backend, rng, nd):
    shape = (1, 2, 7) if nd == 1 else (1, 2, 5, 6)
    x = rng.random(shape) + 0.5
    fwd, grad = _fn("lp_pool", nd), getattr(G, f"lp_pool{nd}d")
    gy = rng.standard_normal(fwd(x, 3, 2, 1, True).shape)
    g = grad(gy, x, 3, 2, 1, True, backend=backend)
    h = 1e-6
    for i in rng.choice(x.size, 6, replace=False):
        e = np.zeros(x.size)
        e[i] = h
        e = e.reshape(x.shape)
        fd = (np.vdot(fwd(x + e, 3, 2, 1, True, backend=backend), gy)
              - np.vdot(fwd(x - e, 3, 2, 1, True, backend=backend), gy)) / (2 * h)
        np.testing.assert_allclose(fd, g.ravel()[i], rtol=1e-5, atol=1e-7)


LP_BAD = [
    (2, (0, 2), {}, ValueError, "norm_type"),
    (2, (float("nan"), 2), {}, ValueError, "norm_type"),
    (2, ("2", 2), {}, TypeError, "norm_type"),
    (2, (True, 2), {}, TypeError, "norm_type"),
    (2, (2, 0), {}, ValueError, "kernel_size"),
    (2, (2, (2, 2, 2)), {}, ValueError, "kernel_size"),
    (2, (2, 2), dict(stride=0), ValueError, "stride"),
    (2, (2, 2), dict(ceil_mode=1), TypeError, "ceil_mode"),
    (2, (2, 9), {}, ValueError, "empty"),
    (1, (2, (2, 2)), {}, ValueError, "kernel_size"),
    (1, (float("inf"), 0), {}, ValueError, "kernel_size"),
    (1, (2, 2), dict(backend="nope"), ValueError, "backend"),
]


@pytest.mark.parametrize("nd, args, kwargs, exc, match", LP_BAD,
                         ids=[f"{i}-{b[4]}" for i, b in enumerate(LP_BAD)])
def test_lp_pool_bad_arguments(nd, args, kwargs, exc, match):
    x = np.ones((1, 2) + (6,) * nd)
    with pytest.raises(exc, match=match):
        _fn("lp_pool", nd)(x, *args, **kwargs)
    with pytest.raises(exc, match=match):
        getattr(G, f"lp_pool{nd}d")(np.ones((1, 2) + (3,) * nd), x, *args, **kwargs)


def test_lp_pool_gradient_checks_grad_output():
    with pytest.raises(ValueError, match="grad_output"):
        G.lp_pool2d(np.ones((1, 2, 2, 2)), np.ones((1, 2, 6, 6)), 2, 2)
