"""Issue 17: conv_transpose1d/2d/3d, their input/weight/bias gradients and
nn.ConvTranspose2d, on every backend, against torch and the NumPy reference.

Covered: a seeded grid of shapes, strides, paddings, output paddings (below the stride, and
at or above it when the dilation allows, torch's rule), dilations and groups, in float32,
float64 and an int input; memory layouts (Fortran, strided, negative strides, read-only),
unbatched inputs, an empty batch and ``out=``; a table of bad arguments (raised before any
kernel runs, naming the argument); gradients against torch autograd, central finite
differences and the adjoint identities; the nn layer against torch's module.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastconv
from fastconv import _dispatch
from fastconv import grad as G
from conftest import BACKENDS, layouts

torch = pytest.importorskip("torch")
F = torch.nn.functional

FWD = {1: fastconv.conv_transpose1d, 2: fastconv.conv_transpose2d,
       3: fastconv.conv_transpose3d}
TFWD = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
GIN = {1: G.conv_transpose1d_input, 2: G.conv_transpose2d_input, 3: G.conv_transpose3d_input}
GW = {1: G.conv_transpose1d_weight, 2: G.conv_transpose2d_weight,
      3: G.conv_transpose3d_weight}
GB = {1: G.conv_transpose1d_bias, 2: G.conv_transpose2d_bias, 3: G.conv_transpose3d_bias}


def _tol(dtype, ref):
    scale = max(1.0, float(np.abs(ref).max(initial=0)))
    return (dict(rtol=2e-4, atol=2e-4 * scale) if np.dtype(dtype) == np.float32
            else dict(rtol=1e-10, atol=1e-10 * scale))


def _out_size(L, k, s, p, op, d):
    return (L - 1) * s - 2 * p + d * (k - 1) + op + 1


def _cases(nd, count, seed):
    """A seeded grid of valid calls: every 4th case has output_padding >= stride (allowed
    because it is below the dilation), the rest draw it below the stride."""
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        i = len(cases)
        g = int(rng.choice([1, 1, 2, 3]))
        Cin, Cout = g * int(rng.integers(1, 3)), g * int(rng.integers(1, 3))
        k = tuple(int(v) for v in rng.integers(1, 5, nd))
        d = tuple(int(v) for v in rng.integers(1, 3, nd))
        s = tuple(int(v) for v in rng.integers(1, 4, nd))
        if i % 4 == 3:  # output_padding >= stride: stride 1, dilation 2, output_padding 1
            s, d = (1,) * nd, (2,) * nd
            op = (1,) * nd
        else:
            op = tuple(int(rng.integers(0, si)) for si in s)
        p = tuple(int(v) for v in rng.integers(0, 3, nd))
        L = tuple(int(v) for v in rng.integers(1, 7 if nd < 3 else 4, nd))
        if any(_out_size(*a) < 1 for a in zip(L, k, s, p, op, d)):
            continue
        N = int(rng.integers(1, 3))
        form = i % 3  # ints where all axes agree, tuples, lists
        args = [s, p, op, d]
        if form == 0:
            args = [a[0] if len(set(a)) == 1 else a for a in args]
        elif form == 2:
            args = [list(a) for a in args]
        s_, p_, op_, d_ = args
        cases.append(dict(x=(N, Cin) + L, w=(Cin, Cout // g) + k, stride=s_, padding=p_,
                          output_padding=op_, groups=g, dilation=d_,
                          bias=bool(rng.integers(0, 2)), batched=bool(rng.integers(0, 4))))
    return cases


def _kw(c):
    return dict(stride=c["stride"], padding=c["padding"], output_padding=c["output_padding"],
                groups=c["groups"], dilation=c["dilation"])


def _tkw(c):
    return {k: tuple(v) if isinstance(v, list) else v for k, v in _kw(c).items()}


def _arrays(c, rng, dtype):
    x = rng.standard_normal(c["x"]).astype(dtype)
    w = rng.standard_normal(c["w"]).astype(dtype)
    b = rng.standard_normal(c["w"][1] * c["groups"]).astype(dtype) if c["bias"] else None
    if not c["batched"]:
        x = x[0]
    return x, w, b


def _torch_forward(c, nd, x, w, b):
    t = (lambda a: None if a is None else torch.from_numpy(np.asarray(a, np.float64)))
    with torch.no_grad():
        return TFWD[nd](t(x), t(w), t(b), **_tkw(c)).numpy()


CASES = {1: _cases(1, 24, 1), 2: _cases(2, 32, 2), 3: _cases(3, 12, 3)}


# --------------------------------------------------------------------------------------------
# forward
# --------------------------------------------------------------------------------------------
def _check_forward(nd, c, backend, dtype, rng):
    x, w, b = _arrays(c, rng, dtype)
    ref_t = _torch_forward(c, nd, x, w, b)
    got = FWD[nd](x, w, b, **_kw(c), backend=backend)
    ref_np = FWD[nd](x, w, b, **_kw(c), backend="numpy")
    assert got.dtype == np.dtype(dtype) and got.flags.c_contiguous
    assert got.shape == ref_t.shape
    np.testing.assert_allclose(got, ref_t, **_tol(dtype, ref_t))
    np.testing.assert_allclose(got, ref_np, **_tol(dtype, ref_t))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("ci", range(len(CASES[2])))
def test_conv_transpose2d_matches_torch(backend, dtype, ci, rng):
    _check_forward(2, CASES[2][ci], backend, dtype, rng)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("ci", range(len(CASES[1])))
def test_conv_transpose1d_matches_torch(backend, dtype, ci, rng):
    _check_forward(1, CASES[1][ci], backend, dtype, rng)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("ci", range(len(CASES[3])))
def test_conv_transpose3d_matches_torch(backend, dtype, ci, rng):
    _check_forward(3, CASES[3][ci], backend, dtype, rng)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_int_input_and_dtype_rule(backend, nd, rng):
    """int64 input -> float64; float32 with a float64 bias -> float64; int8 -> float32."""
    x = rng.integers(-3, 4, (2, 2) + (4,) * nd)
    w = rng.standard_normal((2, 3) + (3,) * nd).astype(np.float32)
    ref = _torch_forward(dict(stride=2, padding=1, output_padding=1, groups=1, dilation=1),
                         nd, x, w, None)
    got = FWD[nd](x, w, stride=2, padding=1, output_padding=1, backend=backend)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    got8 = FWD[nd](x.astype(np.int8), w, stride=2, padding=1, output_padding=1,
                   backend=backend)
    assert got8.dtype == np.float32
    np.testing.assert_allclose(got8, ref, rtol=1e-4, atol=1e-4)
    b = np.arange(3, dtype=np.float64)
    y = FWD[nd](x.astype(np.float32), w, b, backend=backend)
    assert y.dtype == np.float64


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_layouts(backend, nd, rng):
    """Fortran, strided, negative-stride and read-only x, weight and bias: the same result."""
    x = rng.standard_normal((2, 4) + (5,) * nd)
    w = rng.standard_normal((4, 3) + (3,) * nd)
    b = rng.standard_normal(6)
    kw = dict(stride=2, padding=1, output_padding=1, groups=2, dilation=1)
    want = _torch_forward(kw, nd, x, w, b)
    for (kx, xv), (kwt, wv), (kb, bv) in zip(layouts(x), layouts(w), layouts(b)):
        got = FWD[nd](xv, wv, bv, **kw, backend=backend)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=kx)
        assert got.flags.c_contiguous


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_unbatched_empty_batch_and_out(backend, nd, rng):
    x = rng.standard_normal((3, 4) + (3,) * nd).astype(np.float32)
    w = rng.standard_normal((4, 2) + (2,) * nd).astype(np.float32)
    b = rng.standard_normal(2).astype(np.float32)
    kw = dict(stride=2, padding=0, output_padding=1)
    full = FWD[nd](x, w, b, **kw, backend=backend)
    assert full.shape == (3, 2) + (7,) * nd  # (3 - 1) * 2 + (2 - 1) + 1 + 1
    one = FWD[nd](x[1], w, b, **kw, backend=backend)  # unbatched
    assert one.shape == full.shape[1:]
    np.testing.assert_allclose(one, full[1], rtol=1e-6, atol=1e-6)
    empty = FWD[nd](x[:0], w, b, **kw, backend=backend)  # N == 0, as torch
    with torch.no_grad():
        tshape = TFWD[nd](torch.from_numpy(x[:0]), torch.from_numpy(w), torch.from_numpy(b),
                          **kw).shape
    assert empty.shape == tuple(tshape) and empty.dtype == np.float32
    out = np.full(full.shape, np.nan, np.float32)
    res = FWD[nd](x, w, b, **kw, backend=backend, out=out)
    assert res is out
    np.testing.assert_array_equal(out, full)
    out1 = np.full(one.shape, np.nan, np.float32)
    FWD[nd](x[1], w, b, **kw, backend=backend, out=out1)
    np.testing.assert_array_equal(out1, one)


def test_threads_do_not_change_the_result(backend, threads, rng):
    x = rng.standard_normal((3, 8, 9, 9)).astype(np.float32)
    w = rng.standard_normal((8, 4, 4, 4)).astype(np.float32)
    res = []
    for n in (1, 2, 3):
        fastconv.set_num_threads(n)
        res.append((fastconv.conv_transpose2d(x, w, None, 2, 1, backend=backend),
                    G.conv_transpose2d_weight(x, w.shape, np.ones((3, 4, 18, 18), np.float32),
                                              2, 1, backend=backend)))
    for y, gw in res[1:]:
        np.testing.assert_allclose(y, res[0][0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(gw, res[0][1], rtol=1e-5, atol=1e-4)


# --------------------------------------------------------------------------------------------
# gradients
# --------------------------------------------------------------------------------------------
def _torch_grads(c, nd, x, w, b, gy):
    tx = torch.from_numpy(x).requires_grad_(True)
    tw = torch.from_numpy(w).requires_grad_(True)
    tb = None if b is None else torch.from_numpy(b).requires_grad_(True)
    TFWD[nd](tx, tw, tb, **_tkw(c)).backward(torch.from_numpy(gy))
    return tx.grad.numpy(), tw.grad.numpy(), None if tb is None else tb.grad.numpy()


def _check_grads(nd, c, backend, dtype, rng):
    x, w, b = _arrays(c, rng, np.float64)
    gy = rng.standard_normal(_torch_forward(c, nd, x, w, b).shape)
    gx_t, gw_t, gb_t = _torch_grads(c, nd, x, w, b, gy)
    xd, wd, gyd = x.astype(dtype), w.astype(dtype), gy.astype(dtype)
    gx = GIN[nd](x.shape, wd, gyd, **_kw(c), backend=backend)
    gw = GW[nd](xd, w.shape, gyd, **_kw(c), backend=backend)
    for got, want, ref_np in ((gx, gx_t, GIN[nd](x.shape, wd, gyd, **_kw(c), backend="numpy")),
                              (gw, gw_t, GW[nd](xd, w.shape, gyd, **_kw(c), backend="numpy"))):
        assert got.dtype == np.dtype(dtype) and got.shape == want.shape
        np.testing.assert_allclose(got, want, **_tol(dtype, want))
        np.testing.assert_allclose(got, ref_np, **_tol(dtype, want))
    if b is not None:
        gb = GB[nd](gyd)
        assert gb.dtype == np.dtype(dtype)
        np.testing.assert_allclose(gb, gb_t, **_tol(dtype, gb_t))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("ci", range(0, len(CASES[2]), 2))
def test_conv_transpose2d_grads_match_torch(backend, dtype, ci, rng):
    _check_grads(2, CASES[2][ci], backend, dtype, rng)


@pytest.mark.parametrize("ci", range(0, len(CASES[1]), 2))
def test_conv_transpose1d_grads_match_torch(backend, ci, rng):
    _check_grads(1, CASES[1][ci], backend, "float64", rng)


@pytest.mark.parametrize("ci", range(0, len(CASES[3]), 2))
def test_conv_transpose3d_grads_match_torch(backend, ci, rng):
    _check_grads(3, CASES[3][ci], backend, "float64", rng)


ADJ = [dict(stride=2, padding=1, output_padding=1, groups=2, dilation=1),
       dict(stride=(1, 3), padding=(0, 2), output_padding=(1, 2), groups=1, dilation=(2, 1)),
       dict(stride=1, padding=0, output_padding=0, groups=1, dilation=1)]


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("ai", range(len(ADJ)))
def test_adjoint_identities(backend, nd, ai, rng):
    """<T(x, w), y> == <x, T_input^*(y)> == <w, T_weight^*(x, y)>: the transposed
    convolution is linear in x and in w, and the gradients are its adjoints."""
    kw = {k: (v if isinstance(v, int) else (v * 2)[:nd]) for k, v in ADJ[ai].items()}
    x = rng.standard_normal((2, 4) + (4,) * nd)
    w = rng.standard_normal((4, 3) + (3,) * nd)
    y = FWD[nd](x, w, **kw, backend=backend)
    g = rng.standard_normal(y.shape)
    lhs = np.vdot(y, g)
    np.testing.assert_allclose(np.vdot(x, GIN[nd](x.shape, w, g, **kw, backend=backend)), lhs,
                               rtol=1e-10)
    np.testing.assert_allclose(np.vdot(w, GW[nd](x, w.shape, g, **kw, backend=backend)), lhs,
                               rtol=1e-10)
    # and T is conv's input gradient: <T(x), g> == <x, conv(g)>
    conv = fastconv.conv1d if nd == 1 else fastconv.conv2d if nd == 2 else fastconv.conv3d
    cy = conv(g, w, None, kw["stride"], kw["padding"], kw["dilation"], kw["groups"],
              backend=backend)
    cut = (Ellipsis,) + tuple(slice(0, s) for s in x.shape[2:])
    np.testing.assert_allclose(np.vdot(x, cy[cut]), lhs, rtol=1e-10)


@pytest.mark.parametrize("nd", [1, 2])
def test_finite_differences(backend, nd, rng):
    """Central differences of sum(T(x, w, b) * g) in float64, a few coordinates each."""
    kw = dict(stride=2, padding=1, output_padding=1, groups=1, dilation=(2 if nd == 1 else 1))
    x = rng.standard_normal((1, 2) + (3,) * nd)
    w = rng.standard_normal((2, 2) + (3,) * nd)
    b = rng.standard_normal(2)
    g = rng.standard_normal(FWD[nd](x, w, b, **kw).shape)

    def f(x_, w_, b_):
        return float(np.vdot(FWD[nd](x_, w_, b_, **kw, backend=backend), g))

    grads = (GIN[nd](x.shape, w, g, **kw, backend=backend),
             GW[nd](x, w.shape, g, **kw, backend=backend), GB[nd](g))
    h = 1e-6
    for which, arr in enumerate((x, w, b)):
        for idx in itertools.islice(np.ndindex(arr.shape), 0, None, max(1, arr.size // 6)):
            plus, minus = [a.copy() for a in (x, w, b)], [a.copy() for a in (x, w, b)]
            plus[which][idx] += h
            minus[which][idx] -= h
            num = (f(*plus) - f(*minus)) / (2 * h)
            assert abs(num - grads[which][idx]) < 1e-6 * max(1.0, abs(num)), (which, idx)


def test_grads_unbatched_and_empty_batch(backend, rng):
    x = rng.standard_normal((4, 5, 5))
    w = rng.standard_normal((4, 2, 3, 3))
    kw = dict(stride=2, padding=1, output_padding=1, groups=2)
    g = rng.standard_normal(fastconv.conv_transpose2d(x, w, **kw).shape)
    gx_t, gw_t, _ = _torch_grads(dict(kw, dilation=1), 2, x, w, None, g)
    np.testing.assert_allclose(G.conv_transpose2d_input(x.shape, w, g, **kw, backend=backend),
                               gx_t, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(G.conv_transpose2d_weight(x, w.shape, g, **kw, backend=backend),
                               gw_t, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(G.conv_transpose2d_bias(g), g.sum(axis=(1, 2)))
    x0 = np.ones((0, 4, 5, 5))
    g0 = np.ones((0, 4, 10, 10))
    assert G.conv_transpose2d_input(x0.shape, w, g0, **kw, backend=backend).shape == x0.shape
    gw0 = G.conv_transpose2d_weight(x0, w.shape, g0, **kw, backend=backend)
    assert gw0.shape == w.shape and not gw0.any()
    assert G.conv_transpose2d_bias(g0).shape == (4,)


# --------------------------------------------------------------------------------------------
# bad arguments: a table, every row on every backend with the kernels disabled
# --------------------------------------------------------------------------------------------
X2, W2 = np.ones((2, 4, 5, 5)), np.ones((4, 3, 3, 3))  # groups=2: out_channels 6
X1, W1 = np.ones((2, 4, 7)), np.ones((4, 3, 3))
TRANSPOSE_BASE = {
    "conv_transpose1d": dict(x=X1, weight=W1, bias=np.ones(6), stride=2, output_padding=1,
                             groups=2),
    "conv_transpose2d": dict(x=X2, weight=W2, bias=np.ones(6), stride=2, output_padding=1,
                             groups=2),
    "grad.conv_transpose1d_input": dict(input_size=(2, 4, 7), weight=W1,
                                        grad_output=np.ones((2, 6, 16)), stride=2,
                                        output_padding=1, groups=2),
    "grad.conv_transpose2d_input": dict(input_size=(2, 4, 5, 5), weight=W2,
                                        grad_output=np.ones((2, 6, 12, 12)), stride=2,
                                        output_padding=1, groups=2),
    "grad.conv_transpose1d_weight": dict(input=X1, weight_size=(4, 3, 3),
                                         grad_output=np.ones((2, 6, 16)), stride=2,
                                         output_padding=1, groups=2),
    "grad.conv_transpose2d_weight": dict(input=X2, weight_size=(4, 3, 3, 3),
                                         grad_output=np.ones((2, 6, 12, 12)), stride=2,
                                         output_padding=1, groups=2),
    "grad.conv_transpose1d_bias": dict(grad_output=np.ones((2, 6, 16))),
    "grad.conv_transpose2d_bias": dict(grad_output=np.ones((2, 6, 12, 12))),
}
X3, W3 = np.ones((2, 4, 3, 4, 5)), np.ones((4, 3, 3, 3, 3))
TRANSPOSE_BASE.update({
    "conv_transpose3d": dict(x=X3, weight=W3, bias=np.ones(6), stride=2, output_padding=1,
                             groups=2),
    "grad.conv_transpose3d_input": dict(input_size=X3.shape, weight=W3,
                                        grad_output=np.ones((2, 6, 8, 10, 12)), stride=2,
                                        output_padding=1, groups=2),
    "grad.conv_transpose3d_weight": dict(input=X3, weight_size=W3.shape,
                                         grad_output=np.ones((2, 6, 8, 10, 12)), stride=2,
                                         output_padding=1, groups=2),
    "grad.conv_transpose3d_bias": dict(grad_output=np.ones((2, 6, 8, 10, 12))),
})
TRANSPOSE_NO_BACKEND = {"grad.conv_transpose1d_bias", "grad.conv_transpose2d_bias",
                        "grad.conv_transpose3d_bias"}
TRANSPOSE_ROWS = []  # (function, id, changes, exception, regex), as test_error_table's ROWS


def _bad(fn, what, exc, match, **changes):
    TRANSPOSE_ROWS.append((fn, what, changes, exc, match))


for _fn_name, _nd in (("conv_transpose1d", 1), ("conv_transpose2d", 2),
                      ("conv_transpose3d", 3)):
    X, W = {1: (X1, W1), 2: (X2, W2), 3: (X3, W3)}[_nd]
    _bad(_fn_name, "x complex", TypeError, r"^x must be real", x=X.astype(complex))
    _bad(_fn_name, "x strings", TypeError, r"^x must be a real numeric", x=np.array(["a"]))
    _bad(_fn_name, "x too few dims", ValueError, r"^x must have shape", x=np.ones((4,) * _nd))
    _bad(_fn_name, "x too many dims", ValueError, r"^x must have shape",
         x=np.ones((1,) + X.shape))
    _bad(_fn_name, "x channels", ValueError, r"weight has 4 input channels.*x has 2",
         x=np.ones((2, 2) + X.shape[2:]))
    _bad(_fn_name, "x empty plane", ValueError, r"^x must have non-empty",
         x=np.ones(X.shape[:2] + (0,) * _nd))
    _bad(_fn_name, "weight dims", ValueError, r"^weight must have %d dimensions" % (_nd + 2),
         weight=np.ones((4, 3)))
    _bad(_fn_name, "weight empty", ValueError, r"^weight must not be empty",
         weight=np.ones((4, 0) + W.shape[2:]))
    _bad(_fn_name, "weight object", TypeError, r"^weight must be a real numeric",
         weight=np.array([None]))
    _bad(_fn_name, "bias shape", ValueError, r"^bias must have shape \(6,\)", bias=np.ones(4))
    _bad(_fn_name, "bias complex", TypeError, r"^bias must be real", bias=np.ones(6) * 1j)
    _bad(_fn_name, "groups 3", ValueError, r"groups=3 must divide", groups=3)
    _bad(_fn_name, "groups 0", ValueError, r"^groups must be >= 1", groups=0)
    _bad(_fn_name, "groups float", TypeError, r"^groups must be an int", groups=2.0)
    _bad(_fn_name, "stride 0", ValueError, r"^stride must be >= 1", stride=0)
    _bad(_fn_name, "stride tuple length", ValueError, r"^stride must be an int or a tuple",
         stride=(1,) * (_nd + 1))
    _bad(_fn_name, "padding negative", ValueError, r"^padding must be >= 0", padding=-1)
    _bad(_fn_name, "padding same", TypeError, r"^padding must be an int or a tuple",
         padding="same")
    _bad(_fn_name, "dilation 0", ValueError, r"^dilation must be >= 1", dilation=0)
    _bad(_fn_name, "dilation bool", TypeError, r"^dilation must be an int, got bool",
         dilation=True)
    _bad(_fn_name, "output_padding = stride", ValueError,
         r"^output_padding must be smaller than either stride or dilation", output_padding=2)
    _bad(_fn_name, "output_padding with stride 1", ValueError, r"^output_padding must be",
         stride=1)
    _bad(_fn_name, "output_padding negative", ValueError, r"^output_padding must be >= 0",
         output_padding=-1)
    _bad(_fn_name, "output_padding float", TypeError, r"^output_padding must be an int",
         output_padding=0.5)
    _bad(_fn_name, "empty output", ValueError, r"^the output would be empty", padding=9)
    _bad(_fn_name, "huge stride", ValueError, r"^stride must be < 2\*\*31", stride=2**31)
    _bad(_fn_name, "huge output", ValueError, r"bytes", stride=2**30)
    out_shape = (2, 6) + tuple((n - 1) * 2 + 3 + 1 for n in X.shape[2:])
    _bad(_fn_name, "out shape", ValueError, r"^out must have shape",
         out=np.empty(out_shape[:-1] + (1,)))
    _bad(_fn_name, "out dtype", TypeError, r"^out must have dtype",
         out=np.empty(out_shape, np.float32))
    _bad(_fn_name, "out list", TypeError, r"^out must be a numpy.ndarray",
         out=np.zeros(out_shape).tolist())
    _bad(_fn_name, "out read-only", ValueError, r"^out must be writeable",
         out=np.lib.stride_tricks.as_strided(np.zeros(out_shape), writeable=False))
    _bad(_fn_name, "backend", ValueError, r"^backend must be", backend="torch")

for _fn_name, _nd in (("grad.conv_transpose1d_input", 1), ("grad.conv_transpose2d_input", 2),
                      ("grad.conv_transpose3d_input", 3), ("grad.conv_transpose1d_weight", 1),
                      ("grad.conv_transpose2d_weight", 2), ("grad.conv_transpose3d_weight", 3)):
    xs = {1: X1, 2: X2, 3: X3}[_nd].shape
    go = TRANSPOSE_BASE[_fn_name]["grad_output"]
    _bad(_fn_name, "grad_output shape", ValueError,
         r"^grad_output must have shape .*transposed convolution's output",
         grad_output=go[..., :-1])
    _bad(_fn_name, "grad_output complex", TypeError, r"^grad_output must be real",
         grad_output=go * 1j)
    _bad(_fn_name, "output_padding", ValueError, r"^output_padding must be smaller",
         output_padding=2)
    _bad(_fn_name, "groups", ValueError, r"groups=3 must divide", groups=3)
    _bad(_fn_name, "stride", ValueError, r"^stride must be >= 1", stride=0)
    _bad(_fn_name, "padding str", TypeError, r"^padding must be an int", padding="valid")
    if _fn_name.endswith("_input"):
        _bad(_fn_name, "input_size not a shape", TypeError, r"^input_size must be a tuple",
             input_size=3)
        _bad(_fn_name, "input_size negative", ValueError, r"^input_size must hold",
             input_size=(2, 4) + (-1,) * _nd)
        _bad(_fn_name, "input_size dims", ValueError, r"^input_size must have shape",
             input_size=(4,))
        _bad(_fn_name, "weight dims", ValueError, r"^weight must have", weight=np.ones(3))
    else:
        _bad(_fn_name, "weight_size not a shape", TypeError, r"^weight_size must be a tuple",
             weight_size=4)
        _bad(_fn_name, "weight_size dims", ValueError, r"^weight_size must have",
             weight_size=(4, 3))
        _bad(_fn_name, "weight_size channels", ValueError, r"^weight_size has 2 input",
             weight_size=(2, 3) + (3,) * _nd)
        _bad(_fn_name, "input complex", TypeError, r"^input must be real",
             input=np.ones(xs) * 1j)
        _bad(_fn_name, "input dims", ValueError, r"^input must have shape",
             input=np.ones((4,)))
for _fn_name, _nd in (("grad.conv_transpose1d_bias", 1), ("grad.conv_transpose2d_bias", 2),
                      ("grad.conv_transpose3d_bias", 3)):
    for shape in ((6,), (1,) * (_nd + 3)):
        _bad(_fn_name, f"grad_output {shape}", ValueError, r"^grad_output must have shape",
             grad_output=np.ones(shape))
    _bad(_fn_name, "grad_output complex", TypeError, r"^grad_output must be real",
         grad_output=np.ones((2, 6) + (3,) * _nd) * 1j)
    _bad(_fn_name, "grad_output strings", TypeError, r"^grad_output must be a real",
         grad_output="abc")
    _bad(_fn_name, "grad_output object", TypeError, r"^grad_output must be a real",
         grad_output=np.array([None, 1]))
    _bad(_fn_name, "grad_output ragged", TypeError, r"^grad_output must be a real",
         grad_output=[[1.0], [1.0, 2.0]])


def _fn(name):
    obj = fastconv
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _call(fn, kwargs, backend):
    if fn in TRANSPOSE_NO_BACKEND:
        return _fn(fn)(**kwargs)
    return _fn(fn)(**{"backend": backend, **kwargs})


@pytest.mark.parametrize("fn", sorted(TRANSPOSE_BASE))
def test_every_base_call_is_valid(backend, fn):
    _call(fn, TRANSPOSE_BASE[fn], backend)


def test_every_public_function_has_rows():
    """Every public function of this part of issue 17 has a base call and 6 rows or more
    (test_error_table.py's rule, for the functions it does not list)."""
    new = {n for n in fastconv.functional.__all__ if n.startswith("conv_transpose")}
    new |= {f"grad.{n}" for n in fastconv.grad.__all__ if n.startswith("conv_transpose")}
    assert new == set(TRANSPOSE_BASE)
    counts = {fn: sum(r[0] == fn for r in TRANSPOSE_ROWS) for fn in new}
    assert all(c >= 6 for c in counts.values()), counts


@pytest.fixture
def no_kernel(monkeypatch):
    """Fail if a kernel runs: every check must come first."""
    def run(op, *args, **kwargs):
        raise AssertionError(f"the {op} kernel ran on invalid input")

    monkeypatch.setattr(_dispatch, "run", run)
    monkeypatch.setattr(_dispatch, "call_kernel", run)


@pytest.mark.parametrize("fn, what, changes, exc, match", TRANSPOSE_ROWS,
                         ids=[f"{r[0]}: {r[1]}" for r in TRANSPOSE_ROWS])
def test_error_input(backend, no_kernel, fn, what, changes, exc, match):
    if fn in TRANSPOSE_NO_BACKEND and backend != BACKENDS[0]:
        pytest.skip("a NumPy sum: no backend")
    kwargs = {**TRANSPOSE_BASE[fn], **changes}
    arrays = [(k, v, np.array(v, copy=True)) for k, v in kwargs.items()
              if isinstance(v, np.ndarray) and v.dtype != object]
    with pytest.raises(exc, match=match):
        _call(fn, kwargs, backend)
    for k, v, copy in arrays:  # nothing mutated, not even ``out``
        np.testing.assert_array_equal(v, copy, err_msg=k)


def test_output_padding_rule_matches_torch():
    """output_padding below the dilation but not the stride is allowed, as in torch; at or
    above both it is refused by both."""
    x, w = np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))
    with torch.no_grad():
        want = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), stride=1,
                                  output_padding=1, dilation=2).numpy()
    np.testing.assert_allclose(fastconv.conv_transpose2d(x, w, stride=1, output_padding=1,
                                                         dilation=2), want)
    with pytest.raises(RuntimeError):
        F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), stride=2,
                           output_padding=2, dilation=2)
    with pytest.raises(ValueError, match="output_padding"):
        fastconv.conv_transpose2d(x, w, stride=2, output_padding=2, dilation=2)


# --------------------------------------------------------------------------------------------
# nn.ConvTranspose2d
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [dict(stride=2, padding=1),
                                 dict(stride=(2, 1), padding=(0, 1), output_padding=(1, 0),
                                      groups=2, dilation=(1, 2), bias=False)])
def test_nn_conv_transpose2d_matches_torch_module(backend, cfg, rng):
    m = fastconv.nn.ConvTranspose2d(4, 6, 3, **cfg, rng=0, dtype=np.float64, backend=backend)
    t = torch.nn.ConvTranspose2d(4, 6, 3, **cfg, dtype=torch.float64)
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(m.weight.data))
        if m.bias is not None:
            t.bias.copy_(torch.from_numpy(m.bias.data))
    assert m.weight.shape == tuple(t.weight.shape)
    assert (m.bias is None) == (t.bias is None)
    x = rng.standard_normal((2, 4, 5, 6))
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = t(tx)
    y = m(x)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    g = rng.standard_normal(y.shape)
    ty.backward(torch.from_numpy(g))
    m.zero_grad()
    gx = m.backward(g)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(m.weight.grad, t.weight.grad.numpy(), rtol=1e-10, atol=1e-10)
    if m.bias is not None:
        np.testing.assert_allclose(m.bias.grad, t.bias.grad.numpy(), rtol=1e-10, atol=1e-10)
    # the repr names the same arguments torch's does
    assert repr(m).split("(", 1)[0] == "ConvTranspose2d"
    for part in ("4, 6", "kernel_size=(3, 3)", "stride="):
        assert part in repr(m) and part in repr(t)


@pytest.mark.parametrize("size", [(9, 13), (10, 15), (2, 6, 10, 14)])
def test_nn_conv_transpose2d_output_size_matches_torch(backend, size, rng):
    # stride (2, 3): heights 9-10 and widths 13-15 are reachable from a 5x5 input
    m = fastconv.nn.ConvTranspose2d(4, 6, 3, stride=(2, 3), padding=1, rng=0,
                                    dtype=np.float64, backend=backend)
    t = torch.nn.ConvTranspose2d(4, 6, 3, stride=(2, 3), padding=1, dtype=torch.float64)
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(m.weight.data))
        t.bias.copy_(torch.from_numpy(m.bias.data))
    x = rng.standard_normal((2, 4, 5, 5))
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = t(tx, output_size=list(size))
    y = m(x, output_size=size)
    assert y.shape == tuple(ty.shape)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    g = rng.standard_normal(y.shape)
    ty.backward(torch.from_numpy(g))
    m.zero_grad()
    np.testing.assert_allclose(m.backward(g), tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(m.weight.grad, t.weight.grad.numpy(), rtol=1e-10, atol=1e-10)
    # the next call without output_size is back to the layer's own output padding
    assert m(x).shape == tuple(t(tx).shape) == (2, 6, 9, 13)


def test_nn_conv_transpose2d_output_size_errors():
    m = fastconv.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, rng=0)
    x = np.zeros((1, 4, 5, 5), np.float32)
    with pytest.raises(ValueError, match=r"valid sizes range from \(9, 9\) to \(10, 10\)"):
        m(x, output_size=(11, 9))
    with pytest.raises(ValueError, match="output_size must hold 2 or 4 ints"):
        m(x, output_size=(9, 9, 9))
    with pytest.raises(TypeError, match="output_size must be a sequence of ints"):
        m(x, output_size=(9.5, 9))


def test_nn_conv_transpose2d_init_bound_is_torchs():
    """torch's fan-in for a transposed weight (C_in, C_out // groups, kh, kw) is its
    dimension 1 times the kernel: here 3 * 4 * 4 = 48, bound 1/sqrt(48)."""
    m = fastconv.nn.ConvTranspose2d(8, 6, 4, groups=2, rng=1)
    t = torch.nn.ConvTranspose2d(8, 6, 4, groups=2)
    fan_in = torch.nn.init._calculate_fan_in_and_fan_out(t.weight)[0]
    assert fan_in == 48
    bound = 1 / np.sqrt(fan_in)
    for p, tp in ((m.weight.data, t.weight), (m.bias.data, t.bias)):
        assert p.shape == tuple(tp.shape) and p.dtype == np.float32
        assert np.abs(p).max() <= bound
        assert float(tp.detach().abs().max()) <= bound + 1e-7
    # 288 draws reach 0.9 of the bound (a fan-in of C_in // groups * 16 = 64 would not)
    assert np.abs(m.weight.data).max() > 0.9 * bound
    with pytest.raises(ValueError, match="padding_mode"):
        fastconv.nn.ConvTranspose2d(8, 6, 4, padding_mode="reflect")
    with pytest.raises(ValueError, match="groups"):
        fastconv.nn.ConvTranspose2d(8, 6, 4, groups=4)
    with pytest.raises(RuntimeError, match="before forward"):
        fastconv.nn.ConvTranspose2d(8, 6, 4).backward(np.ones((1, 6, 4, 4)))


def test_nn_mse_loss_matches_torch(rng):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    ta = torch.from_numpy(a).requires_grad_(True)
    tl = torch.nn.MSELoss()(ta, torch.from_numpy(b))
    tl.backward()
    loss = fastconv.nn.MSELoss()
    assert abs(loss(a, b) - tl.item()) < 1e-12
    np.testing.assert_allclose(loss.backward(), ta.grad.numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="target"):
        loss(a, b[:2])
    with pytest.raises(RuntimeError, match="before forward"):
        fastconv.nn.MSELoss().backward()


# --------------------------------------------------------------------------------------------
# the sub-pixel path (fastconv._transpose): one forward convolution when the stride divides
# the kernel
# --------------------------------------------------------------------------------------------
SUBPIXEL = [  # (x shape, C_out, kernel, stride, padding, output_padding, groups)
    ((2, 6, 5, 7), 4, 4, 2, 1, 0, 1),
    ((2, 6, 5, 7), 4, 4, 2, 1, 1, 2),
    ((1, 3, 4, 4), 2, 2, 2, 0, 1, 1),
    ((2, 4, 3, 5), 6, (6, 3), (3, 3), (2, 0), (2, 1), 2),
    ((2, 4, 6, 5), 2, (4, 3), (2, 1), (3, 1), 0, 1),   # p // s == k / s - 1, stride 1 on W
    ((3, 2, 4, 4), 3, 2, 2, 2, 0, 1),                  # p // s > k / s - 1: not taken
    ((2, 4, 9), 4, 4, 2, 1, 1, 2),                     # 1-D
    ((4, 9), 2, 6, 3, 2, 2, 1),                        # 1-D unbatched
]


@pytest.mark.parametrize("ci", range(len(SUBPIXEL)))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_subpixel_path_matches_torch(ci, dtype, rng, monkeypatch):
    from fastconv import _transpose

    xs, K, k, s, p, op, g = SUBPIXEL[ci]
    nd = 2 if len(xs) == 4 else 1
    C = xs[1] if len(xs) == nd + 2 else xs[0]
    ks = (k,) * nd if isinstance(k, int) else k
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal((C, K // g) + ks).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    kw = dict(stride=s, padding=p, output_padding=op, groups=g)
    calls = []
    monkeypatch.setattr(_transpose, "run",
                        lambda *a, _run=_transpose.run: calls.append(1) or _run(*a))
    want = _torch_forward(dict(kw, dilation=1), nd, x, w, b)
    got = FWD[nd](x, w, b, **kw, backend="cython") if "cython" in BACKENDS else None
    if got is not None:
        np.testing.assert_allclose(got, want, **_tol(dtype, want))
        assert got.dtype == np.dtype(dtype)
        assert len(calls) == (0 if ci == 5 else 1)
        out = np.full(want.shape, np.nan, dtype)
        FWD[nd](x, w, b, **kw, backend="cython", out=out)
        np.testing.assert_array_equal(out, got)
    # the reference never takes it
    calls.clear()
    np.testing.assert_allclose(FWD[nd](x, w, b, **kw, backend="numpy"), want,
                               **_tol(dtype, want))
    assert not calls


def test_subpixel_blocks_of_images(rng, monkeypatch):
    """A batch whose forward output passes BLOCK_BYTES runs in blocks of images."""
    from fastconv import _transpose

    monkeypatch.setattr(_transpose, "BLOCK_BYTES", 1)  # one image per block
    x = rng.standard_normal((5, 4, 6, 6))
    w = rng.standard_normal((4, 3, 4, 4))
    b = rng.standard_normal(3)
    want = _torch_forward(dict(stride=2, padding=1, output_padding=0, groups=1, dilation=1),
                          2, x, w, b)
    for backend in BACKENDS:
        np.testing.assert_allclose(fastconv.conv_transpose2d(x, w, b, 2, 1, backend=backend),
                                   want, rtol=1e-10, atol=1e-10)
