"""fastconv.grad: every backend against torch autograd, finite differences and adjoint
identities, thread independence, the dtype rule and the argument errors."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import grad as G
from strategies import conv_args, seeds

BACKENDS = fastconv.backends()
DTYPES = ["float32", "float64"]
MODES = ["zeros", "reflect", "replicate", "circular"]


def _tol(dtype, ref):
    """Per-dtype tolerances, scaled by the reference's magnitude."""
    scale = max(1.0, float(np.abs(ref).max(initial=0)))
    return (dict(rtol=1e-4, atol=1e-4 * scale) if dtype == "float32"
            else dict(rtol=1e-10, atol=1e-10 * scale))


# --------------------------------------------------------------------------------------------
# the grid: deterministic, every padding mode x padding kind, and batch/channels/groups/
# kernel/stride/dilation drawn around them
# --------------------------------------------------------------------------------------------
def _conv_cases(nd, count, seed):
    rng = np.random.default_rng(seed)
    kinds = ["int", "pair", "same", "valid"]
    cases = []
    i = 0
    while len(cases) < count:
        mode = MODES[i % 4]
        kind = kinds[(i // 4) % 4]
        i += 1
        groups = int(rng.choice([1, 1, 2, 3]))
        C = groups * int(rng.integers(1, 7 // groups + 1))
        K = groups * int(rng.integers(1, 7 // groups + 1))
        ks = tuple(int(k) for k in rng.integers(1, 6, size=nd))
        stride = tuple(int(s) for s in rng.integers(1, 4, size=nd))
        dilation = tuple(int(d) for d in rng.integers(1, 3, size=nd))
        if kind == "same":
            stride = (1,) * nd
            padding = "same"
        elif kind == "valid":
            padding = "valid"
        elif kind == "int":
            padding = int(rng.integers(0, 3))
        else:
            padding = tuple(int(p) for p in rng.integers(0, 3, size=nd))
        sp = tuple(int(s) for s in rng.integers(3, 11, size=nd))
        N = int(rng.integers(1, 4))
        case = dict(N=N, C=C, K=K, groups=groups, ks=ks, stride=stride, dilation=dilation,
                    padding=padding, mode=mode, sp=sp, batched=bool(rng.integers(0, 4)))
        try:  # keep only valid calls (padding < size for reflect, non-empty output, ...)
            _forward(case, nd, np.zeros(_xshape(case), np.float64),
                     np.zeros(_wshape(case), np.float64), "numpy")
        except ValueError:
            continue
        cases.append(case)
    return cases


def _xshape(c):
    return ((c["N"],) if c["batched"] else ()) + (c["C"],) + c["sp"]


def _wshape(c):
    return (c["K"], c["C"] // c["groups"]) + c["ks"]


def _kw(c):
    return dict(stride=c["stride"], padding=c["padding"], dilation=c["dilation"],
                groups=c["groups"], padding_mode=c["mode"])


def _forward(c, nd, x, w, backend):
    f = fastconv.conv2d if nd == 2 else fastconv.conv1d
    return f(x, w, **_kw(c), backend=backend)


def _id(c):
    return (f"n{c['N'] if c['batched'] else 'u'}c{c['C']}k{c['K']}g{c['groups']}"
            f"w{'x'.join(map(str, c['ks']))}s{'x'.join(map(str, c['stride']))}"
            f"d{'x'.join(map(str, c['dilation']))}p{c['padding']}-{c['mode']}")


CASES2 = _conv_cases(2, 48, 1)
CASES1 = _conv_cases(1, 16, 2)


def _torch_conv_grads(c, nd, x, w, g):
    """Input and weight gradients from torch autograd through nn.ConvNd (which pads with
    F.pad for the non-zero modes, 'same' included)."""
    torch = pytest.importorskip("torch")
    Conv = torch.nn.Conv2d if nd == 2 else torch.nn.Conv1d
    m = Conv(c["C"], c["K"], c["ks"], stride=c["stride"], padding=c["padding"],
             dilation=c["dilation"], groups=c["groups"], bias=True,
             padding_mode=c["mode"], dtype=torch.float64)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(w))
    tx = torch.from_numpy(x).requires_grad_(True)
    y = m(tx)
    y.backward(torch.from_numpy(g))
    return tx.grad.numpy(), m.weight.grad.numpy(), m.bias.grad.numpy()


def _data(c, rng, dtype):
    x = rng.standard_normal(_xshape(c))
    w = rng.standard_normal(_wshape(c))
    return x.astype(dtype), w.astype(dtype)


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("c", CASES2, ids=_id)
def test_conv2d_grads_match_torch(torch, c, backend, dtype):
    rng = np.random.default_rng(0)
    x, w = _data(c, rng, dtype)
    yshape = _forward(c, 2, x, w, "numpy").shape
    g = rng.standard_normal(yshape).astype(dtype)
    gx_t, gw_t, gb_t = _torch_conv_grads(c, 2, x.astype(np.float64), w.astype(np.float64),
                                         g.astype(np.float64))
    gx = G.conv2d_input(x.shape, w, g, **_kw(c), backend=backend)
    gw = G.conv2d_weight(x, w.shape, g, **_kw(c), backend=backend)
    assert gx.dtype == dtype and gw.dtype == dtype
    assert gx.shape == x.shape and gw.shape == w.shape
    np.testing.assert_allclose(gx, gx_t, **_tol(dtype, gx_t))
    np.testing.assert_allclose(gw, gw_t, **_tol(dtype, gw_t))
    gb = G.conv2d_bias(g)
    assert gb.dtype == dtype
    np.testing.assert_allclose(gb, gb_t, **_tol(dtype, gb_t))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("c", CASES1, ids=_id)
def test_conv1d_grads_match_torch(torch, c, backend, dtype):
    rng = np.random.default_rng(1)
    x, w = _data(c, rng, dtype)
    g = rng.standard_normal(_forward(c, 1, x, w, "numpy").shape).astype(dtype)
    gx_t, gw_t, gb_t = _torch_conv_grads(c, 1, x.astype(np.float64), w.astype(np.float64),
                                         g.astype(np.float64))
    gx = G.conv1d_input(x.shape, w, g, **_kw(c), backend=backend)
    gw = G.conv1d_weight(x, w.shape, g, **_kw(c), backend=backend)
    assert gx.dtype == dtype and gw.dtype == dtype
    np.testing.assert_allclose(gx, gx_t, **_tol(dtype, gx_t))
    np.testing.assert_allclose(gw, gw_t, **_tol(dtype, gw_t))
    np.testing.assert_allclose(G.conv1d_bias(g), gb_t, **_tol(dtype, gb_t))


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv2d_matches_torch_nn_grad(torch, backend):
    """The torch.nn.grad functions themselves (zero padding, stride leaving a remainder)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 11, 8))
    w = rng.standard_normal((6, 2, 3, 2))
    kw = dict(stride=(3, 2), padding=(1, 2), dilation=(2, 1), groups=2)
    y = fastconv.conv2d(x, w, **kw, backend="numpy")
    g = rng.standard_normal(y.shape)
    tg = torch.from_numpy(g)
    ref_x = torch.nn.grad.conv2d_input(x.shape, torch.from_numpy(w), tg, **kw).numpy()
    ref_w = torch.nn.grad.conv2d_weight(torch.from_numpy(x), w.shape, tg, **kw).numpy()
    np.testing.assert_allclose(G.conv2d_input(x.shape, w, g, **kw, backend=backend), ref_x,
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(G.conv2d_weight(x, w.shape, g, **kw, backend=backend), ref_w,
                               rtol=1e-10, atol=1e-10)
    x1 = x[:, :, 0]
    w1 = w[:, :, 0]
    kw1 = dict(stride=3, padding=2, dilation=2, groups=2)
    g1 = rng.standard_normal(fastconv.conv1d(x1, w1, **kw1).shape)
    tg1 = torch.from_numpy(g1)
    np.testing.assert_allclose(
        G.conv1d_input(x1.shape, w1, g1, **kw1, backend=backend),
        torch.nn.grad.conv1d_input(x1.shape, torch.from_numpy(w1), tg1, **kw1).numpy(),
        rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        G.conv1d_weight(x1, w1.shape, g1, **kw1, backend=backend),
        torch.nn.grad.conv1d_weight(torch.from_numpy(x1), w1.shape, tg1, **kw1).numpy(),
        rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------------------------
# identities: adjoint and finite differences (float64)
# --------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.sampled_from([1, 2]).flatmap(lambda nd: st.tuples(st.just(nd), conv_args(nd))),
       st.sampled_from(BACKENDS), seeds)
def test_adjoint_identities(case, backend, seed):
    """<conv(x, w), g> == <x, conv_input(x.shape, w, g)> == <w, conv_weight(x, w.shape, g)>
    (a convolution is bilinear in (x, w), whatever the padding mode)."""
    nd, (x_shape, w_shape, _, kw) = case
    conv, g_in, g_w = ((fastconv.conv2d, G.conv2d_input, G.conv2d_weight) if nd == 2 else
                       (fastconv.conv1d, G.conv1d_input, G.conv1d_weight))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    y = conv(x, w, **kw, backend="numpy")
    gy = rng.standard_normal(y.shape)
    lhs = np.vdot(y, gy)
    gx = g_in(x.shape, w, gy, **kw, backend=backend)
    gw = g_w(x, w.shape, gy, **kw, backend=backend)
    assert gx.shape == x.shape and gw.shape == w.shape
    tol = 1e-10 * (1 + np.abs(y).sum() * np.abs(gy).max())
    assert abs(lhs - np.vdot(x, gx)) <= tol
    assert abs(lhs - np.vdot(w, gw)) <= tol


def _central_diff(f, a, positions, eps=1e-6):
    out = []
    for p in positions:
        ap, am = a.copy(), a.copy()
        ap[p] += eps
        am[p] -= eps
        out.append((f(ap) - f(am)) / (2 * eps))
    return np.array(out)


def _positions(rng, shape, k=12):
    flat = rng.choice(int(np.prod(shape)), size=min(k, int(np.prod(shape))), replace=False)
    return [np.unravel_index(i, shape) for i in flat]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_finite_differences(mode, backend):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 6, 7))
    w = rng.standard_normal((4, 2, 3, 2))
    kw = dict(stride=(2, 1), padding=(2, 1), dilation=(1, 2), groups=2, padding_mode=mode)
    gy = rng.standard_normal(fastconv.conv2d(x, w, **kw).shape)

    def loss(xx, ww):
        return np.vdot(fastconv.conv2d(xx, ww, **kw, backend="numpy"), gy)

    px = _positions(rng, x.shape)
    pw = _positions(rng, w.shape)
    gx = G.conv2d_input(x.shape, w, gy, **kw, backend=backend)
    gw = G.conv2d_weight(x, w.shape, gy, **kw, backend=backend)
    np.testing.assert_allclose([gx[p] for p in px],
                               _central_diff(lambda a: loss(a, w), x, px), atol=1e-6)
    np.testing.assert_allclose([gw[p] for p in pw],
                               _central_diff(lambda a: loss(x, a), w, pw), atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pool_finite_differences(backend):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 7, 8))
    y, idx = fastconv.max_pool2d(x, 3, 2, 1, return_indices=True, backend="numpy")
    gy = rng.standard_normal(y.shape)
    gx = G.max_pool2d(gy, idx, x.shape, backend=backend)
    px = _positions(rng, x.shape, 20)
    fd = _central_diff(lambda a: np.vdot(fastconv.max_pool2d(a, 3, 2, 1), gy), x, px)
    np.testing.assert_allclose([gx[p] for p in px], fd, atol=1e-6)

    y = fastconv.avg_pool2d(x, (3, 2), (2, 1), 1, True, False)
    gy = rng.standard_normal(y.shape)
    gx = G.avg_pool2d(gy, x.shape, (3, 2), (2, 1), 1, True, False, backend=backend)
    fd = _central_diff(
        lambda a: np.vdot(fastconv.avg_pool2d(a, (3, 2), (2, 1), 1, True, False), gy), x, px)
    np.testing.assert_allclose([gx[p] for p in px], fd, atol=1e-6)


# --------------------------------------------------------------------------------------------
# pooling against torch
# --------------------------------------------------------------------------------------------
def _pool_cases(count, seed):
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        nd = int(rng.integers(1, 3))
        k = tuple(int(v) for v in rng.integers(1, 5, size=nd))
        s = tuple(int(v) for v in rng.integers(1, 4, size=nd))
        p = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k)
        d = tuple(int(v) for v in rng.integers(1, 3, size=nd))
        sp = tuple(int(v) for v in rng.integers(4, 11, size=nd))
        shape = ((int(rng.integers(1, 4)),) if rng.integers(0, 4) else ()) + \
                (int(rng.integers(1, 5)),) + sp
        c = dict(nd=nd, k=k, s=s, p=p, d=d, ceil=bool(rng.integers(0, 2)), shape=shape,
                 cip=bool(rng.integers(0, 2)))
        try:
            f = fastconv.max_pool2d if nd == 2 else fastconv.max_pool1d
            f(np.zeros(shape), k, s, p, d, c["ceil"])
        except ValueError:
            continue
        cases.append(c)
    return cases


POOL_CASES = _pool_cases(24, 5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("c", POOL_CASES, ids=lambda c: f"{c['shape']}-k{c['k']}s{c['s']}"
                         f"p{c['p']}d{c['d']}{'-ceil' if c['ceil'] else ''}")
def test_max_pool_grad_matches_torch(torch, c, backend, dtype):
    F = torch.nn.functional
    rng = np.random.default_rng(6)
    x = rng.standard_normal(c["shape"]).astype(dtype)
    tx = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    tf = F.max_pool2d if c["nd"] == 2 else F.max_pool1d
    y, tidx = tf(tx, c["k"], c["s"], c["p"], c["d"], c["ceil"], return_indices=True)
    g = rng.standard_normal(tuple(y.shape)).astype(dtype)
    y.backward(torch.from_numpy(g.astype(np.float64)))
    ff = fastconv.max_pool2d if c["nd"] == 2 else fastconv.max_pool1d
    gf = G.max_pool2d if c["nd"] == 2 else G.max_pool1d
    _, idx = ff(x, c["k"], c["s"], c["p"], c["d"], c["ceil"], return_indices=True,
                backend="numpy")
    np.testing.assert_array_equal(idx, tidx.numpy())
    gx = gf(g, idx, x.shape, backend=backend)
    assert gx.dtype == dtype and gx.shape == x.shape
    np.testing.assert_allclose(gx, tx.grad.numpy(), **_tol(dtype, tx.grad.numpy()))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("c", [c for c in POOL_CASES if c["nd"] == 2] + [
    dict(nd=2, k=(3, 2), s=(2, 1), p=(1, 1), ceil=True, cip=False, shape=(2, 3, 7, 6)),
    dict(nd=2, k=(3, 3), s=None, p=(1, 1), ceil=True, cip=True, shape=(3, 5, 5)),
], ids=lambda c: f"{c['shape']}-k{c['k']}s{c['s']}p{c['p']}{'-ceil' if c['ceil'] else ''}"
                 f"{'-cip' if c['cip'] else ''}")
def test_avg_pool2d_grad_matches_torch(torch, c, backend, dtype):
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    x = rng.standard_normal(c["shape"]).astype(dtype)
    tx = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    args = (c["k"], c["s"], c["p"], c["ceil"], c["cip"])
    y = F.avg_pool2d(tx, *args)
    g = rng.standard_normal(tuple(y.shape)).astype(dtype)
    y.backward(torch.from_numpy(g.astype(np.float64)))
    gx = G.avg_pool2d(g, x.shape, *args, backend=backend)
    assert gx.dtype == dtype and gx.shape == x.shape
    np.testing.assert_allclose(gx, tx.grad.numpy(), **_tol(dtype, tx.grad.numpy()))


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_pool_grad_accumulates_repeated_indices(backend):
    g = np.array([[[1.0, 2.0, 4.0]]], np.float32)
    idx = np.array([[[2, 2, 0]]])
    res = G.max_pool1d(g, idx, (1, 1, 4), backend=backend)
    np.testing.assert_array_equal(res, [[[4.0, 0.0, 3.0, 0.0]]])
    assert res.dtype == np.float32


# --------------------------------------------------------------------------------------------
# threads, dtypes, layouts
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_results_do_not_depend_on_thread_count(backend):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 6, 17, 15)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    kw = dict(stride=(1, 2), padding=1, groups=2)
    gy = rng.standard_normal(fastconv.conv2d(x, w, **kw).shape).astype(np.float32)
    y, idx = fastconv.max_pool2d(x, 3, 1, return_indices=True)
    gp = rng.standard_normal(y.shape).astype(np.float32)
    old = fastconv.get_num_threads()
    runs = []
    try:
        for n in (1, 2, 3):
            fastconv.set_num_threads(n)
            runs.append([G.conv2d_input(x.shape, w, gy, **kw, backend=backend),
                         G.conv2d_weight(x, w.shape, gy, **kw, backend=backend),
                         G.max_pool2d(gp, idx, x.shape, backend=backend),
                         G.avg_pool2d(gp, x.shape, 3, 1, backend=backend)])
    finally:
        fastconv.set_num_threads(old)
    for r in runs[1:]:
        for a, b in zip(runs[0], r):
            np.testing.assert_array_equal(a, b)


def test_compiled_backends_agree_bitwise():
    """Cython and Numba use the same loop orders: identical float32 results."""
    compiled = [b for b in BACKENDS if b != "numpy"]
    if len(compiled) < 2:
        pytest.skip("needs both compiled backends")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 4, 12, 13)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 4)).astype(np.float32)
    kw = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    gy = rng.standard_normal(fastconv.conv2d(x, w, **kw).shape).astype(np.float32)
    gp = rng.standard_normal(fastconv.avg_pool2d(x, 3, 2, 1, True).shape).astype(np.float32)
    res = [(G.conv2d_input(x.shape, w, gy, **kw, backend=b),
            G.conv2d_weight(x, w.shape, gy, **kw, backend=b),
            G.avg_pool2d(gp, x.shape, 3, 2, 1, True, backend=b)) for b in compiled]
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dtype_rule_layouts_and_no_mutation(backend):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 2, 6, 5))
    w = rng.standard_normal((3, 2, 2, 2))
    gy = rng.standard_normal((2, 3, 5, 4))
    # float32 weight with float64 grad_output -> float64; ints -> float64; float16 -> float32
    assert G.conv2d_input(x.shape, w.astype(np.float32), gy, backend=backend).dtype == np.float64
    assert G.conv2d_input(x.shape, w.astype(np.float32), gy.astype(np.float16),
                          backend=backend).dtype == np.float32
    assert G.conv2d_weight(x.astype(np.int32), w.shape, gy.astype(np.int64),
                           backend=backend).dtype == np.float64
    assert G.max_pool2d(gy.astype(np.float16), np.zeros(gy.shape, np.int32), gy.shape[:2] +
                        (5, 4), backend=backend).dtype == np.float32
    assert G.conv2d_bias(gy.astype(np.int8)).dtype == np.result_type(np.int8, np.float32)
    assert G.conv2d_bias(gy.astype(np.int64)).dtype == np.float64
    # Fortran-ordered, negative-stride and read-only inputs; nothing mutated
    ref_x = G.conv2d_input(x.shape, w, gy, backend="numpy")
    ref_w = G.conv2d_weight(x, w.shape, gy, backend="numpy")
    wf = np.asfortranarray(w)
    gneg = gy[:, :, ::-1, ::-1].copy()[:, :, ::-1, ::-1]
    xr = x.copy()
    xr.flags.writeable = False
    before = (wf.copy(), gneg.copy(), xr.copy())
    np.testing.assert_allclose(G.conv2d_input(x.shape, wf, gneg, backend=backend), ref_x,
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(G.conv2d_weight(xr, w.shape, gneg, backend=backend), ref_w,
                               rtol=1e-12, atol=1e-12)
    for a, b in zip(before, (wf, gneg, xr)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_unbatched_equals_batch_of_one(backend):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 7, 6)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    kw = dict(padding="same", padding_mode="reflect")
    gy = rng.standard_normal((2, 7, 6)).astype(np.float32)
    np.testing.assert_array_equal(G.conv2d_input(x.shape, w, gy, **kw, backend=backend),
                                  G.conv2d_input((1,) + x.shape, w, gy[None], **kw,
                                                 backend=backend)[0])
    np.testing.assert_array_equal(G.conv2d_weight(x, w.shape, gy, **kw, backend=backend),
                                  G.conv2d_weight(x[None], w.shape, gy[None], **kw,
                                                  backend=backend))
    np.testing.assert_array_equal(G.conv2d_bias(gy), G.conv2d_bias(gy[None]))


def test_golden_transposed_convolution():
    # conv1d with w = [1, 2], stride 2: y[o] = x[2o] + 2 x[2o+1]; its adjoint interleaves
    w = np.array([[[1.0, 2.0]]])
    g = np.array([[[10.0, 100.0]]])
    for b in BACKENDS:
        np.testing.assert_array_equal(G.conv1d_input((1, 1, 5), w, g, stride=2, backend=b),
                                      [[[10.0, 20.0, 100.0, 200.0, 0.0]]])
        # circular padding 1 on a length-3 input: padded = [x2, x0, x1, x2, x0]
        np.testing.assert_array_equal(
            G.conv1d_input((1, 1, 3), np.array([[[1.0]]]), np.array([[[1.0, 2, 3, 4, 5]]]),
                           padding=1, padding_mode="circular", backend=b),
            [[[2.0 + 5.0, 3.0, 4.0 + 1.0]]])


# --------------------------------------------------------------------------------------------
# errors: named arguments, before any kernel runs, on every backend
# --------------------------------------------------------------------------------------------
_x = np.zeros((2, 4, 6, 6))
_w = np.zeros((6, 2, 3, 3))
_g = np.zeros((2, 6, 4, 4))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("call, exc, match", [
    (lambda b: G.conv2d_input((4, 6, 6), _w, _g, groups=2, backend=b), ValueError, "grad_output"),
    (lambda b: G.conv2d_input((2, 4, 6, 6, 1), _w, _g, groups=2, backend=b), ValueError,
     "input_size"),
    (lambda b: G.conv2d_input((2, -4, 6, 6), _w, _g, groups=2, backend=b), ValueError,
     "input_size"),
    (lambda b: G.conv2d_input(7, _w, _g, groups=2, backend=b), TypeError, "input_size"),
    (lambda b: G.conv2d_input((2, 4, 6.5, 6), _w, _g, groups=2, backend=b), TypeError,
     "input_size"),
    (lambda b: G.conv2d_input(_x.shape, _w, _g, groups=1, backend=b), ValueError, "weight"),
    (lambda b: G.conv2d_input(_x.shape, _w, _g, groups=3, backend=b), ValueError, "groups"),
    (lambda b: G.conv2d_input(_x.shape, _w[0], _g, groups=2, backend=b), ValueError, "weight"),
    (lambda b: G.conv2d_input(_x.shape, _w, _g[:, :, :3], groups=2, backend=b), ValueError,
     "grad_output"),
    (lambda b: G.conv2d_input(_x.shape, _w, _g.astype(complex), groups=2, backend=b),
     TypeError, "grad_output"),
    (lambda b: G.conv2d_input(_x.shape, _w, _g, groups=2, padding_mode="edge", backend=b),
     ValueError, "padding_mode"),
    (lambda b: G.conv2d_input(_x.shape, _w, _g, groups=2, stride=0, backend=b), ValueError,
     "stride"),
    (lambda b: G.conv2d_input(_x.shape, _w, _g, groups=2, stride=2, padding="same",
                              backend=b), ValueError, "same"),
    (lambda b: G.conv2d_input(_x.shape, _w, np.zeros((2, 6, 10, 10)), groups=2, padding=6,
                              padding_mode="reflect", backend=b), ValueError, "reflect"),
    (lambda b: G.conv2d_weight(_x, (6, 2, 3), _g, groups=2, backend=b), ValueError,
     "weight_size"),
    (lambda b: G.conv2d_weight(_x, (6, 4, 3, 3), _g, groups=2, backend=b), ValueError,
     "weight_size"),
    (lambda b: G.conv2d_weight(_x, (6, 2, 3, 3), _g[..., :3], groups=2, backend=b),
     ValueError, "grad_output"),
    (lambda b: G.conv2d_weight("abc", (6, 2, 3, 3), _g, groups=2, backend=b), TypeError,
     "input"),
    (lambda b: G.conv2d_weight(_x, (6, 2, 9, 9), _g, groups=2, backend=b), ValueError,
     "empty"),
    (lambda b: G.conv1d_input((2, 4, 6), _w, _g, groups=2, backend=b), ValueError, "weight"),
    (lambda b: G.max_pool2d(_g, np.zeros(_g.shape), (2, 6, 8, 8), backend=b), TypeError,
     "indices"),
    (lambda b: G.max_pool2d(_g, np.zeros((2, 6, 4), int), (2, 6, 8, 8), backend=b),
     ValueError, "indices"),
    (lambda b: G.max_pool2d(_g, np.zeros(_g.shape, int), (2, 5, 8, 8), backend=b),
     ValueError, "input_size"),
    (lambda b: G.max_pool2d(_g, np.zeros(_g.shape, int), (6, 8, 8), backend=b),
     ValueError, "grad_output"),
    (lambda b: G.max_pool1d(_g, np.zeros(_g.shape, int), (2, 6, 8, 8), backend=b),
     ValueError, "input_size"),
    (lambda b: G.avg_pool2d(_g, (2, 6, 8, 8), 3, backend=b), ValueError, "grad_output"),
    (lambda b: G.avg_pool2d(_g, (2, 6, 8, 8), 2, padding=2, backend=b), ValueError,
     "padding"),
    (lambda b: G.avg_pool2d(_g, (2, 6, 8, 8), 2, ceil_mode=1, backend=b), TypeError,
     "ceil_mode"),
    (lambda b: G.avg_pool2d(_g, (2, 6, 8, 8), 0, backend=b), ValueError, "kernel_size"),
    (lambda b: G.conv2d_input(_x.shape, _w, _g, groups=2, backend="fortran"), ValueError,
     "backend"),
])
def test_errors_name_the_argument(backend, call, exc, match):
    with pytest.raises(exc, match=match):
        call(backend)


def test_bias_errors():
    with pytest.raises(ValueError, match="grad_output"):
        G.conv2d_bias(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="grad_output"):
        G.conv1d_bias(np.zeros((2, 3, 4, 5)))
    with pytest.raises(TypeError, match="grad_output"):
        G.conv2d_bias(np.zeros((2, 3, 4), complex))


def test_tapless_windows_match_a_brute_force_count():
    """_postconditions._tapless (which outputs of a weight gradient have no tap inside the input, so
    that a non-finite grad_output there meets only padding) against listing every tap."""
    from fastconv._postconditions import _tapless

    # small paddings (a few edge windows: plain Python) and wide ones (over 64 edge windows:
    # numpy arrays)
    cases = itertools.chain(
        itertools.product(range(1, 7), range(1, 5), range(1, 4), range(1, 5), range(0, 5)),
        itertools.product((1, 5, 40), (1, 3), (1, 2), (1, 3), (33, 70, 150)))
    for size, k, stride, dilation, before in cases:
        out = (size + 2 * before - dilation * (k - 1) - 1) // stride + 1
        if out < 1:
            continue
        taps = (np.arange(out) * stride - before)[:, None] + np.arange(k) * dilation
        brute = ~((taps >= 0) & (taps < size)).any(axis=1)
        got = _tapless(size, out, k, stride, dilation, before)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, np.flatnonzero(brute))


# --------------------------------------------------------------------------------------------
# issue 15: the compiled gradients' im2col + GEMM paths run tile by tile on long rows
# (fastconv.grad._run_conv_grad). Forced here on small inputs (fastconv._tiling's limits
# patched: blocks of 64 columns of one image, or ranges of whole images); the sums are
# cut differently, so tiled and untiled agree to rounding, and both with the reference.
# Every case takes the GEMM path (R >= 16, Kg >= 8) on both compiled backends.
GRAD_TILED = [  # (x shape, w shape, stride, padding, dilation, groups, padding_mode)
    ((2, 4, 3, 300), (8, 4, 2, 2), (1, 1), (1, 1), (1, 1), 1, "zeros"),  # stride 1
    ((1, 8, 2, 333), (16, 4, 2, 3), (2, 3), (1, 2), (1, 2), 2, "zeros"),  # groups, dilated
    ((1, 8, 1, 600), (8, 8, 1, 2), (1, 5), (0, 0), (1, 1), 1, "zeros"),  # stride > kernel
    ((2, 4, 2, 200), (8, 4, 2, 2), (1, 2), (0, 40), (1, 1), 1, "zeros"),  # wide padding
    ((1, 4, 1, 100), (8, 4, 1, 4), (1, 1), (0, 300), (1, 1), 1, "zeros"),  # blocks in padding
    ((1, 4, 3, 250), (8, 4, 2, 3), (2, 2), (1, 2), (1, 1), 1, "circular"),  # folded padding
]
# (Cython's conv2d_input at stride 1 with pad <= dilation * (kernel - 1), case 0, is a
# forward convolution: the forward's own tiling cuts it.)


@pytest.mark.parametrize("whole_images", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["conv2d_input", "conv2d_weight"])
@pytest.mark.parametrize("case", range(len(GRAD_TILED)))
@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_issue15_tiled_gemm_gradients_match_untiled(backend, case, op, dtype, whole_images,
                                                   monkeypatch):
    from fastconv import _tiling

    xs, ws, stride, padding, dilation, groups, mode = GRAD_TILED[case]
    rng = np.random.default_rng(case)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    y = fastconv.conv2d(x, w, stride=stride, padding=padding, dilation=dilation,
                        groups=groups, padding_mode=mode, backend="numpy")
    gy = rng.standard_normal(y.shape).astype(dtype)
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                padding_mode=mode)

    def call(b):
        if op == "conv2d_input":
            return G.conv2d_input(xs, w, gy, backend=b, **args)
        return G.conv2d_weight(x, ws, gy, backend=b, **args)

    # the GEMM path's tiles: not the direct 3-D kernel that float32 at stride 1 runs on
    monkeypatch.setattr(fastconv._plan, "conv2d_weight_as_3d", lambda *a: False)
    untiled = call(backend)
    calls = []
    tiles = _tiling.tiles
    monkeypatch.setattr(_tiling, "LIMIT", 0)
    monkeypatch.setattr(_tiling, "TILE_BYTES", 1 << 40 if whole_images else 0)
    monkeypatch.setattr(_tiling, "tiles", lambda *a: calls.append(tiles(*a)) or calls[-1])
    tiled = call(backend)
    assert calls, "tiled"
    if not whole_images:
        assert max(len(c) for c in calls) > 1, "more than one tile"
    assert tiled.dtype == dtype
    ref = call("numpy")
    np.testing.assert_allclose(tiled, untiled, **_tol(dtype, ref))
    np.testing.assert_allclose(tiled, ref, **_tol(dtype, ref))


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_issue15_tiled_weight_gradient_keeps_nonfinite_in_the_padding(backend, monkeypatch):
    """An inf of grad_output at an output whose window lies in the zero padding (a tile
    that the tiled weight gradient skips) still makes the weight gradient NaN, as in the
    reference and torch (inf * 0)."""
    from fastconv import _tiling

    xs, ws, stride, padding, dilation, groups, _ = GRAD_TILED[4]
    rng = np.random.default_rng(4)
    x = rng.standard_normal(xs)
    gy = rng.standard_normal((1, 8, 1, 100 + 600 - 3))
    gy[0, 2, 0, -5] = np.inf  # in the right padding: no tap inside the input
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    ref = G.conv2d_weight(x, ws, gy, backend="numpy", **args)
    calls = []
    tiles = _tiling.tiles
    monkeypatch.setattr(_tiling, "LIMIT", 0)
    monkeypatch.setattr(_tiling, "TILE_BYTES", 0)
    monkeypatch.setattr(_tiling, "tiles", lambda *a: calls.append(tiles(*a)) or calls[-1])
    got = G.conv2d_weight(x, ws, gy, backend=backend, **args)
    assert calls and len(calls[0]) > 1, "tiled"
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    assert np.isnan(got[2]).all() and not np.isnan(got[:2]).any()
    fin = ~np.isnan(ref)
    np.testing.assert_allclose(got[fin], ref[fin], **_tol("float64", ref))


def test_issue15_benchmark_gradients_stay_untiled():
    """The benchmark shapes' gradients run untiled (one kernel call, as before)."""
    from conftest import bench_cases

    CONV_SHAPES = bench_cases().CONV_SHAPES

    for backend in [b for b in BACKENDS if b != "numpy"]:
        for name, (N, C, H, W, K, k, s, p, g) in CONV_SHAPES.items():
            Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
            for dtype in (np.float32, np.float64):
                x = np.empty((N, C, H, W), dtype)
                gy = np.empty((N, K, Ho, Wo), dtype)
                w = np.empty((K, C // g, k, k), dtype)
                for op, a in (("conv2d_input", (gy, w, x)), ("conv2d_weight", (x, gy, w))):
                    assert not G._long_gemm_row(op, backend, a + ((s, s), (p, p), (1, 1), g)), \
                        (backend, name, op)


@pytest.mark.parametrize("backend", BACKENDS)
def test_issue15_input_gradient_refuses_a_frame_it_cannot_allocate(backend):
    """Found by the fuzz run: the forward refuses a geometry whose padded input frame cannot
    be allocated (a ValueError before any kernel runs); the input gradient, which scatters
    into that frame, ran it and the NumPy reference died with MemoryError (96 GiB)."""
    big = 2**31 - 1
    w = np.ones((2, 3, 1))
    gy = np.ones((1, 2, 3), np.float32)
    with pytest.raises(ValueError, match="padded input frame"):
        fastconv.conv1d(np.ones((1, 3, 3)), w, stride=big, padding=big, backend=backend)
    with pytest.raises(ValueError, match="padded input frame"):
        fastconv.grad.conv1d_input((1, 3, 3), w, gy, stride=big, padding=big, backend=backend)


@pytest.mark.parametrize("shape", [((4, 1, 16, 16), (8, 1, 3, 3), 1),
                                   ((2, 8, 30, 30), (16, 8, 3, 3), 1),
                                   ((2, 6, 20, 24), (4, 3, 5, 5), 2)])
def test_conv2d_weight_float32_stride1_runs_the_direct_3d_kernel(shape, monkeypatch):
    """Cython's float32 stride-1 conv2d_weight runs conv3d_weight's direct kernel on a depth
    of 1 where the 3-D plan picks it (fastconv._plan.conv2d_weight_as_3d): the reference's
    values, torch's, and the same bits at 1 and 2 threads."""
    if "cython" not in BACKENDS:
        pytest.skip("the Cython backend is not built")
    from fastconv import _dispatch

    xs, ws, groups = shape
    rng = np.random.default_rng(7)
    x = rng.standard_normal(xs).astype(np.float32)
    w_shape = ws
    gy = rng.standard_normal((xs[0], ws[0], xs[2], xs[3])).astype(np.float32)
    seen = []
    call_kernel = _dispatch.call_kernel
    monkeypatch.setattr(_dispatch, "call_kernel",
                        lambda op, *a: seen.append(op) or call_kernel(op, *a))
    kw = dict(padding="same", groups=groups)
    got, before = {}, fastconv.get_num_threads()
    try:
        for t in (1, 2):
            fastconv.set_num_threads(t)
            got[t] = G.conv2d_weight(x, w_shape, gy, backend="cython", **kw)
    finally:
        fastconv.set_num_threads(before)
    assert "conv3d_weight" in seen and "conv2d_weight" not in seen
    np.testing.assert_array_equal(got[1], got[2])
    ref = G.conv2d_weight(x.astype(np.float64), w_shape, gy.astype(np.float64),
                          backend="numpy", **kw)
    np.testing.assert_allclose(got[1], ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    torch = pytest.importorskip("torch")
    tw = torch.nn.grad.conv2d_weight(torch.from_numpy(x), w_shape, torch.from_numpy(gy),
                                     padding=ws[2] // 2, groups=groups)
    np.testing.assert_allclose(got[1], tw.numpy(), rtol=1e-4, atol=1e-4 * np.abs(ref).max())
