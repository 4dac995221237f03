"""fastconv.nn: layers, loss and optimizers; gradients by finite differences; torch parity."""

import os

import numpy as np
import pytest

import fastconv
from fastconv import nn

BACKENDS = list(fastconv.backends())
PADDING_MODES = ["zeros", "reflect", "replicate", "circular"]


# --------------------------------------------------------------------------------------------
# finite differences over the whole of Sequential (float64)
# --------------------------------------------------------------------------------------------
def _loss_and_grads(model, x, y):
    loss_fn = nn.CrossEntropyLoss()
    model.zero_grad()
    loss = loss_fn(model(x), y)
    gx = model.backward(loss_fn.backward())
    return loss, gx, [p.grad.copy() for p in model.parameters()]


def _numeric_grad(f, arr, eps=1e-6):
    """Central differences of the scalar f() with respect to every entry of arr (in place)."""
    g = np.zeros_like(arr)
    flat, gflat = arr.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return g


def _check_gradients(model, x, y):
    """Every gradient of the loss, input and parameters, against central differences."""
    loss_fn = nn.CrossEntropyLoss()
    _, gx, grads = _loss_and_grads(model, x, y)

    def f():
        return loss_fn(model(x), y)

    np.testing.assert_allclose(gx, _numeric_grad(f, x), rtol=1e-5, atol=1e-8)
    for p, g in zip(model.parameters(), grads):
        np.testing.assert_allclose(g, _numeric_grad(f, p.data), rtol=1e-5, atol=1e-8,
                                   err_msg=p.name)


def _padded_net(padding_mode, backend, seed=1):
    f64 = np.float64
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, padding_mode=padding_mode, rng=rng, dtype=f64,
                  backend=backend),
        nn.ReLU(),
        nn.MaxPool2d(2, backend=backend),
        nn.Conv2d(3, 4, (3, 2), padding=(1, 1), padding_mode=padding_mode, rng=rng,
                  dtype=f64, backend=backend),
        nn.AvgPool2d(2, ceil_mode=True, backend=backend),
        nn.Flatten(),
        nn.Linear(4 * 2 * 3, 5, rng=rng, dtype=f64),
    )


def _geometry_net(backend, seed=2):
    f64 = np.float64
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2), groups=2,
                  rng=rng, dtype=f64, backend=backend),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1, backend=backend),
        nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=False, backend=backend),
        nn.Conv2d(6, 2, 1, bias=False, rng=rng, dtype=f64, backend=backend),
        nn.Flatten(),
        nn.Linear(2 * 3 * 4, 3, rng=rng, dtype=f64),
        nn.ReLU(),
        nn.Linear(3, 4, bias=False, rng=rng, dtype=f64),
    )


def _cases():
    rng = np.random.default_rng(0)
    xa, xb = rng.standard_normal((2, 2, 8, 8)), rng.standard_normal((3, 4, 7, 5))
    cases = [(f"padding-{m}", lambda b, m=m: _padded_net(m, b), xa, np.array([1, 4]))
             for m in PADDING_MODES]
    return cases + [("geometry", _geometry_net, xb, np.array([0, 3, 2]))]


CASES = _cases()


@pytest.mark.parametrize("name, build, x, y", CASES, ids=[c[0] for c in CASES])
def test_sequential_gradients_finite_differences(name, build, x, y):
    """The whole of Sequential, every gradient entry, by central differences (float64, on
    the NumPy reference kernels)."""
    _check_gradients(build("numpy"), x.copy(), y)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
@pytest.mark.parametrize("name, build, x, y", CASES, ids=[c[0] for c in CASES])
def test_backend_gradients_match_reference(backend, name, build, x, y):
    """Each compiled backend's gradients equal the reference's, and pass a directional
    finite-difference check (a few random directions: cheap, and still the backend's own)."""
    model, ref = build(backend), build("numpy")
    x = x.copy()
    loss, gx, grads = _loss_and_grads(model, x, y)
    loss_r, gx_r, grads_r = _loss_and_grads(ref, x, y)
    assert loss == pytest.approx(loss_r, rel=1e-12)
    np.testing.assert_allclose(gx, gx_r, rtol=1e-9, atol=1e-12)
    for g, gr in zip(grads, grads_r):
        np.testing.assert_allclose(g, gr, rtol=1e-9, atol=1e-12)
    loss_fn = nn.CrossEntropyLoss()
    arrays = [x] + [p.data for p in model.parameters()]
    analytic = [gx] + grads
    rng = np.random.default_rng(9)
    eps = 1e-6
    for _ in range(3):
        dirs = [rng.standard_normal(a.shape) for a in arrays]
        for a, d in zip(arrays, dirs):
            a += eps * d
        up = loss_fn(model(x), y)
        for a, d in zip(arrays, dirs):
            a -= 2 * eps * d
        down = loss_fn(model(x), y)
        for a, d in zip(arrays, dirs):
            a += eps * d
        expected = sum(float(np.sum(g * d)) for g, d in zip(analytic, dirs))
        assert (up - down) / (2 * eps) == pytest.approx(expected, rel=1e-5, abs=1e-8)


# --------------------------------------------------------------------------------------------
# initialization, dtypes, protocol
# --------------------------------------------------------------------------------------------
def test_initialization_is_deterministic_and_torch_like():
    a = nn.Conv2d(3, 8, 5, rng=7)
    b = nn.Conv2d(3, 8, 5, rng=np.random.default_rng(7))
    c = nn.Conv2d(3, 8, 5, rng=8)
    assert np.array_equal(a.weight.data, b.weight.data)
    assert np.array_equal(a.bias.data, b.bias.data)
    assert not np.array_equal(a.weight.data, c.weight.data)
    bound = 1 / np.sqrt(3 * 5 * 5)  # torch's default: kaiming_uniform(a=sqrt(5))
    assert a.weight.data.dtype == np.float32
    assert np.abs(a.weight.data).max() <= bound
    assert np.abs(a.weight.data).max() > 0.9 * bound
    lin = nn.Linear(100, 10, rng=0)
    assert np.abs(lin.weight.data).max() <= 0.1 and np.abs(lin.bias.data).max() <= 0.1
    he = nn.kaiming_uniform((1000,), 50, 0, a=0)
    assert np.sqrt(6 / 50) * 0.95 < np.abs(he).max() <= np.sqrt(6 / 50)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_stays_float32(backend):
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=rng, backend=backend), nn.ReLU(),
                          nn.MaxPool2d(2, backend=backend), nn.AvgPool2d(1, backend=backend),
                          nn.Flatten(), nn.Linear(2 * 3 * 3, 4, rng=rng))
    x = rng.random((5, 1, 8, 8), dtype=np.float32)
    loss_fn = nn.CrossEntropyLoss()
    out = model(x)
    assert out.dtype == np.float32
    loss_fn(out, np.arange(5) % 4)
    gx = model.backward(loss_fn.backward())
    assert gx.dtype == np.float32 and gx.shape == x.shape
    for p in model.parameters():
        assert p.data.dtype == p.grad.dtype == np.float32


def test_protocol_errors():
    with pytest.raises(RuntimeError, match="before forward"):
        nn.Conv2d(1, 1, 3, rng=0).backward(np.zeros((1, 1, 1, 1), np.float32))
    with pytest.raises(RuntimeError, match="before forward"):
        nn.CrossEntropyLoss().backward()
    with pytest.raises(TypeError, match="layer 1"):
        nn.Sequential(nn.ReLU(), lambda x: x)
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="in_channels"):
        nn.Conv2d(0, 4, 3)
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(1, 1, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="Linear"):
        nn.Linear(3, 2, rng=0)(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="targets"):
        nn.CrossEntropyLoss()(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="targets"):
        nn.CrossEntropyLoss()(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="lr"):
        nn.SGD(nn.Linear(2, 2, rng=0).parameters(), lr=0)
    with pytest.raises(ValueError, match="no parameters"):
        nn.Adam([])


def test_sequential_container():
    layers = [nn.Flatten(), nn.Linear(4, 3, rng=0), nn.ReLU(), nn.Linear(3, 2, rng=1)]
    model = nn.Sequential(*layers)
    assert len(model) == 4 and model[1] is layers[1] and list(model) == layers
    assert [p.shape for p in model.parameters()] == [(3, 4), (3,), (2, 3), (2,)]
    assert model.num_parameters() == 12 + 3 + 6 + 2
    assert "Linear(4, 3" in repr(model)


@pytest.mark.parametrize("first", ["conv", "flatten-linear"])
def test_sequential_backward_without_the_input_gradient(first, monkeypatch):
    # input_grad=False: the same parameter gradients, no gradient for the input (not
    # computed: the first conv layer's input gradient never runs), None returned
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 2, 6, 6)).astype(np.float32)
    if first == "conv":
        layers = [nn.Conv2d(2, 3, 3, rng=0), nn.ReLU(), nn.Flatten(), nn.Linear(48, 5, rng=1)]
    else:
        layers = [nn.Flatten(), nn.Linear(72, 6, rng=0), nn.ReLU(), nn.Linear(6, 5, rng=1)]
    model = nn.Sequential(*layers)
    g = rng.standard_normal((4, 5)).astype(np.float32)
    model.zero_grad()
    model.forward(x)
    gx = model.backward(g)
    assert gx.shape == x.shape
    full = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    model.forward(x)
    calls = []
    real = fastconv.grad.conv2d_input
    monkeypatch.setattr(fastconv.grad, "conv2d_input",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(nn.Conv2d, "_grad_input", staticmethod(fastconv.grad.conv2d_input))
    assert model.backward(g, input_grad=False) is None
    assert calls == []
    for p, f in zip(model.parameters(), full):
        np.testing.assert_array_equal(p.grad, f)


def test_loss_is_stable_for_large_logits():
    loss_fn = nn.CrossEntropyLoss()
    logits = np.array([[1000.0, 0.0], [0.0, -1000.0]])
    assert loss_fn(logits, np.array([0, 0])) == 0.0
    g = loss_fn.backward()
    assert np.all(np.isfinite(g))


def test_training_reduces_the_loss():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 6, 6)).astype(np.float32)
    y = (x[:, 0, :3].sum(axis=(1, 2)) > x[:, 0, 3:].sum(axis=(1, 2))).astype(np.int64)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, rng=rng), nn.ReLU(), nn.Flatten(),
                          nn.Linear(64, 2, rng=rng))
    loss_fn = nn.CrossEntropyLoss()
    for opt in (nn.SGD(model.parameters(), lr=0.05, momentum=0.9),
                nn.Adam(model.parameters(), lr=1e-2)):
        first = None
        for _ in range(30):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            first = loss if first is None else first
            model.backward(loss_fn.backward())
            opt.step()
        assert loss < 0.5 * first


# --------------------------------------------------------------------------------------------
# torch parity
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_matches_torch(backend, padding_mode, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    layer = nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 1), dilation=(1, 2), groups=2,
                      padding_mode=padding_mode, rng=rng, dtype=dtype, backend=backend)
    ref = torch.nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 1), dilation=(1, 2),
                          groups=2, padding_mode=padding_mode)
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    ref = ref.to(tdtype)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(layer.weight.data))
        ref.bias.copy_(torch.from_numpy(layer.bias.data))
    x = rng.standard_normal((3, 4, 9, 8)).astype(dtype)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    y = layer(x)
    yt = ref(xt)
    g = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(torch.from_numpy(g))
    gx = layer.backward(g)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    assert y.dtype == gx.dtype == dtype
    np.testing.assert_allclose(y, yt.detach().numpy(), **tol)
    np.testing.assert_allclose(gx, xt.grad.numpy(), **tol)
    np.testing.assert_allclose(layer.weight.grad, ref.weight.grad.numpy(), **tol)
    np.testing.assert_allclose(layer.bias.grad, ref.bias.grad.numpy(), **tol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pools_linear_loss_match_torch(backend):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 9, 7))
    for layer, fn in (
        (nn.MaxPool2d(3, 2, 1, backend=backend), lambda t: F.max_pool2d(t, 3, 2, 1)),
        (nn.MaxPool2d(2, ceil_mode=True, backend=backend),
         lambda t: F.max_pool2d(t, 2, ceil_mode=True)),
        (nn.AvgPool2d(3, 2, 1, count_include_pad=False, backend=backend),
         lambda t: F.avg_pool2d(t, 3, 2, 1, count_include_pad=False)),
    ):
        xt = torch.from_numpy(x.copy()).requires_grad_()
        yt = fn(xt)
        g = rng.standard_normal(tuple(yt.shape))
        yt.backward(torch.from_numpy(g))
        np.testing.assert_allclose(layer(x), yt.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(layer.backward(g), xt.grad.numpy(), rtol=1e-12, atol=1e-14)

    lin = nn.Linear(5, 4, rng=rng, dtype=np.float64)
    ref = torch.nn.Linear(5, 4).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(lin.weight.data))
        ref.bias.copy_(torch.from_numpy(lin.bias.data))
    a = rng.standard_normal((6, 5))
    y = np.array([0, 1, 2, 3, 0, 1])
    at = torch.from_numpy(a.copy()).requires_grad_()
    loss_t = F.cross_entropy(ref(at), torch.from_numpy(y))
    loss_t.backward()
    loss_fn = nn.CrossEntropyLoss()
    loss = loss_fn(lin(a), y)
    ga = lin.backward(loss_fn.backward())
    assert loss == pytest.approx(loss_t.item(), rel=1e-12)
    np.testing.assert_allclose(ga, at.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(lin.weight.grad, ref.weight.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(lin.bias.grad, ref.bias.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_optimizers_match_torch(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    w0 = rng.standard_normal((3, 4))
    p = nn.Parameter(w0.copy())
    pt = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    if name == "SGD":
        opt = nn.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
        opt_t = torch.optim.SGD([pt], lr=0.1, momentum=0.9, weight_decay=0.01)
    else:
        opt = nn.Adam([p], lr=0.01, betas=(0.8, 0.99), weight_decay=0.01)
        opt_t = torch.optim.Adam([pt], lr=0.01, betas=(0.8, 0.99), weight_decay=0.01)
    for _ in range(5):
        g = rng.standard_normal((3, 4))
        opt.zero_grad()
        p.grad += g
        opt.step()
        opt_t.zero_grad()
        pt.grad = torch.from_numpy(g.copy())
        opt_t.step()
    np.testing.assert_allclose(p.data, pt.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_adam_steps_many_parameters_of_two_dtypes_as_torch_and_one_by_one():
    """Adam's step runs over the flat moments of each dtype's parameters at once: the same
    values as torch's Adam, and to the bit as Adam on each parameter alone."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    shapes = [((3, 4), np.float64), ((5,), np.float32), ((2, 1, 3), np.float64),
              ((1,), np.float32), ((4, 2), np.float32)]
    w0 = [rng.standard_normal(s).astype(dt) for s, dt in shapes]
    ps = [nn.Parameter(w.copy()) for w in w0]
    alone = [nn.Parameter(w.copy()) for w in w0]
    pts = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in w0]
    kw = dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.01)
    opt, opt_t = nn.Adam(ps, **kw), torch.optim.Adam(pts, **kw)
    opts1 = [nn.Adam([p], **kw) for p in alone]
    for _ in range(5):
        gs = [rng.standard_normal(w.shape).astype(w.dtype) for w in w0]
        opt.zero_grad()
        opt_t.zero_grad()
        for p, q, pt, g in zip(ps, alone, pts, gs):
            p.grad += g
            q.grad[...] = g
            pt.grad = torch.from_numpy(g.copy())
        opt.step()
        opt_t.step()
        for o in opts1:
            o.step()
    for p, q, pt in zip(ps, alone, pts):
        assert p.data.dtype == q.data.dtype
        np.testing.assert_array_equal(p.data, q.data)
        tol = 1e-12 if p.data.dtype == np.float64 else 1e-6
        np.testing.assert_allclose(p.data, pt.detach().numpy(), rtol=tol, atol=tol)


# --------------------------------------------------------------------------------------------
# numpy's BLAS held to fastconv's threads while training (issue 15)
# --------------------------------------------------------------------------------------------
def _numpy_blas_threads():
    """numpy's BLAS thread count, as threadpoolctl sees it from here."""
    from threadpoolctl import threadpool_info

    # numpy's own copy (numpy.libs/ in wheels): other BLAS libraries a test loaded (scipy's
    # copy, torch's) are not numpy's
    libs = [i for i in threadpool_info() if i["user_api"] == "blas"
            and f"numpy.libs{os.sep}" in i["filepath"]]
    assert libs, "numpy's BLAS not found"
    return {i["num_threads"] for i in libs}


class _Probe(nn.Module):
    """Records numpy's BLAS thread count in forward and backward, passes data through."""

    def __init__(self):
        self.seen = []

    def forward(self, x):
        self.seen.append(_numpy_blas_threads())
        return x

    def backward(self, grad_out):
        self.seen.append(_numpy_blas_threads())
        return grad_out


def test_issue15_the_study_trains_with_numpy_blas_held_and_restores_it(threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from fastconv.study import models

    rng = np.random.default_rng(0)
    x = rng.random((64, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    model = models.build("dense", (1, 8, 8), seed=0)
    probe = _Probe()
    model.layers.insert(2, probe)  # between the two Linear layers
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        fastconv.set_num_threads(1)
        models.train(model, x, y, models.TrainConfig(steps=3, batch_size=16))
        assert _numpy_blas_threads() == {2}  # the caller's count is back
    assert len(probe.seen) == 6 and all(s == {1} for s in probe.seen), probe.seen


@pytest.mark.real_grains
def test_issue15_linear_products_get_numpy_blas_threads_by_work(threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(0)

    def net(n_in, n_out):
        # Sequential runs backward in reverse, so the first probe's backward and the last
        # one's forward each see the count the Linear product just ran with
        return nn.Sequential(_Probe(), nn.Linear(n_in, n_out, rng=rng), _Probe())

    tiny = net(64, 10)  # 2 x 32 x 64 x 10 FLOPs: one thread
    big = net(2048, 512)  # 2 x 32 x 2048 x 512: 67 MFLOP, every thread
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        fastconv.set_num_threads(2)
        with nn.hold_blas():
            assert _numpy_blas_threads() == {2}  # held to fastconv's count
            big(rng.random((32, 2048), dtype=np.float32))
            tiny(rng.random((32, 64), dtype=np.float32))
            big.backward(np.ones((32, 512), np.float32))
            tiny.backward(np.ones((32, 10), np.float32))
        assert _numpy_blas_threads() == {1}  # the caller's count is back
        tiny(rng.random((32, 64), dtype=np.float32))  # outside a hold, per product
        assert _numpy_blas_threads() == {1}
    for model, n in ((big, 2), (tiny, 1)):
        after_forward = model[2].seen[0]
        after_backward = model[0].seen[-1]
        assert after_forward == after_backward == {n}, (n, model[0].seen, model[2].seen)


def test_relu_matches_torch_on_nonfinite_values():
    torch = pytest.importorskip("torch")
    x = np.array([[-1.0, 0.0, 2.0, np.nan, np.inf, -np.inf, -0.0, 3.0]], np.float32)
    g = np.array([[np.inf, np.nan, 1.0, 5.0, -np.inf, np.nan, 2.0, np.nan]], np.float32)
    relu = nn.ReLU()
    y = relu(x)
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = torch.relu(tx)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(y, ty.detach().numpy())
    assert y.dtype == np.float32
    gx = relu.backward(g)
    np.testing.assert_array_equal(gx, tx.grad.numpy())
    assert gx.dtype == np.float32
    # finite gradients take the fast path: the same zeros where the output is not above 0
    gx = relu.backward(np.ones_like(x))
    np.testing.assert_array_equal(gx, (~(y <= 0)).astype(np.float32))
