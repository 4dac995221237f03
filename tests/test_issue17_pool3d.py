"""Issue 17: max_pool3d, avg_pool1d, avg_pool3d, avg_pool2d's divisor_override, torch's
argument forms for every pool, their gradients and nn layers (MaxPool3d, AvgPool1d).

Checked against torch (values, max-pool indices exactly) and the NumPy reference on every
backend, over a fixed-seed sample of shapes, kernels, strides, paddings, dilations, ceil
modes, count_include_pad, divisors and dtypes, and over layouts; gradients against torch
autograd, finite differences and the adjoint identity; the extra memory of the speed
targets' calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from conftest import BACKENDS, LAYOUTS, Unchanged, assert_close, layout

torch = pytest.importorskip("torch")
F = torch.nn.functional
G = fastconv.grad

POOLS = {  # name: (spatial dims, torch function, max?)
    "max_pool1d": (1, F.max_pool1d, True),
    "max_pool2d": (2, F.max_pool2d, True),
    "max_pool3d": (3, F.max_pool3d, True),
    "avg_pool1d": (1, F.avg_pool1d, False),
    "avg_pool2d": (2, F.avg_pool2d, False),
    "avg_pool3d": (3, F.avg_pool3d, False),
}


def _torch_or_none(f):
    try:
        return f()
    except RuntimeError:
        return None


def _sample_3d(rng, n):
    """``n`` random 3-D pooling calls: (x shape, kernel, stride, padding, dilation, ceil)."""
    cases = []
    while len(cases) < n:
        sp = tuple(int(v) for v in rng.integers(1, 8, 3))
        k = tuple(int(v) for v in rng.integers(1, 4, 3))
        s = tuple(int(v) for v in rng.integers(1, 4, 3))
        p = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k)
        d = tuple(int(v) for v in rng.integers(1, 3, 3))
        cases.append(((int(rng.integers(1, 3)), int(rng.integers(1, 4))) + sp, k, s, p, d,
                      bool(rng.integers(2))))
    return cases


CASES_3D = _sample_3d(np.random.default_rng(17), 40)


def _values(rng, shape, dtype, kind):
    x = rng.standard_normal(shape)
    if kind == "ties":
        x = np.round(x)  # many equal values in a window: the first one wins
    elif kind == "nan" and x.size:
        x.flat[rng.integers(0, x.size, max(1, x.size // 7))] = np.nan
    elif kind == "inf" and x.size:
        x.flat[rng.integers(0, x.size, max(1, x.size // 5))] = -np.inf
    return x.astype(dtype)


# --------------------------------------------------------------------------------------------
# max_pool3d
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("i", range(len(CASES_3D)))
def test_issue17_max_pool3d_matches_torch_and_reference(backend, i):
    shape, k, s, p, d, ceil = CASES_3D[i]
    rng = np.random.default_rng(i)
    dtype = (np.float32, np.float64)[i % 2]
    x = _values(rng, shape, dtype, ("plain", "ties", "nan", "inf")[i % 4])
    want = _torch_or_none(lambda: F.max_pool3d(torch.from_numpy(x), k, s, p, d, ceil,
                                               return_indices=True))
    if want is None:  # an empty output: torch and fastconv both refuse it
        with pytest.raises(ValueError, match="output would be empty"):
            fastconv.max_pool3d(x, k, s, p, d, ceil, backend=backend)
        return
    y, idx = fastconv.max_pool3d(x, k, s, p, d, ceil, return_indices=True, backend=backend)
    assert y.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(y, want[0].numpy())
    np.testing.assert_array_equal(idx, want[1].numpy())
    ry, ridx = fastconv.max_pool3d(x, k, s, p, d, ceil, return_indices=True, backend="numpy")
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    # without indices: the same maxima
    np.testing.assert_array_equal(fastconv.max_pool3d(x, k, s, p, d, ceil, backend=backend), y)


def test_issue17_max_pool3d_windows_that_see_only_padding(backend):
    """A dilated window with no tap inside the input: -inf and torch's index (first tap at
    or after the start, per axis), which may lie outside the volume; the gradient ignores
    an outside index and, as torch's, routes an inside one."""
    for shape, k, s, p, d in [((1, 1, 1, 1, 1), 2, 1, 1, 2), ((1, 2, 2, 2, 2), 2, 1, 1, 3),
                              ((1, 1, 3, 2, 4), (2, 2, 3), 1, 1, (1, 3, 2)),
                              ((2, 1, 3, 4, 2), (2, 3, 2), 2, 1, (1, 2, 3))]:
        x = np.random.default_rng(0).standard_normal(shape)
        ty, ti = F.max_pool3d(torch.from_numpy(x), k, s, p, d, return_indices=True)
        y, idx = fastconv.max_pool3d(x, k, s, p, d, return_indices=True, backend=backend)
        np.testing.assert_array_equal(y, ty.numpy())
        np.testing.assert_array_equal(idx, ti.numpy())
        assert np.isneginf(y).any()
        gy = np.random.default_rng(1).standard_normal(y.shape)
        gx = G.max_pool3d(gy, idx, x.shape, backend=backend)
        # torch's backward scatters out-of-volume indices out of bounds: the reference is a
        # scatter of the in-volume ones
        want = np.zeros(x.shape).reshape(x.shape[0], x.shape[1], -1)
        flat_i, flat_g = idx.reshape(want.shape[:2] + (-1,)), gy.reshape(want.shape[:2] + (-1,))
        for n in range(want.shape[0]):
            for c in range(want.shape[1]):
                inside = (flat_i[n, c] >= 0) & (flat_i[n, c] < want.shape[2])
                np.add.at(want[n, c], flat_i[n, c][inside], flat_g[n, c][inside])
        np.testing.assert_allclose(gx, want.reshape(x.shape), rtol=1e-12, atol=1e-12)


def test_issue17_max_pool3d_indices_do_not_depend_on_threads(backend, threads):
    x = _values(np.random.default_rng(3), (2, 3, 9, 10, 11), np.float32, "ties")
    res = []
    for t in (1, 2, 3):
        fastconv.set_num_threads(t)
        res.append(fastconv.max_pool3d(x, 3, 2, 1, 1, True, True, backend=backend))
        res.append(fastconv.avg_pool3d(x, 3, 2, 1, True, False, backend=backend))
        res.append(G.avg_pool3d(res[-1], x.shape, 3, 2, 1, True, False, backend=backend))
    for a, b in zip(res[:3], res[3:6]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(res[:3], res[6:]):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------------------------
# avg_pool3d, avg_pool2d's divisor_override, avg_pool1d
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("i", range(len(CASES_3D)))
def test_issue17_avg_pool3d_matches_torch_and_reference(backend, i):
    shape, k, s, p, _, ceil = CASES_3D[i]
    rng = np.random.default_rng(100 + i)
    dtype = (np.float32, np.float64)[i % 2]
    cip = bool(i % 3)
    div = (None, 3, -2, None)[i % 4]
    x = _values(rng, shape, dtype, "plain")
    want = _torch_or_none(lambda: F.avg_pool3d(torch.from_numpy(x), k, s, p, ceil, cip, div))
    if want is None:
        with pytest.raises(ValueError, match=r"\bx\b"):
            fastconv.avg_pool3d(x, k, s, p, ceil, cip, div, backend=backend)
        return
    y = fastconv.avg_pool3d(x, k, s, p, ceil, cip, div, backend=backend)
    n_terms = int(np.prod(k))
    assert_close(y, want.numpy(), terms=n_terms)
    assert_close(y, fastconv.avg_pool3d(x, k, s, p, ceil, cip, div, backend="numpy"),
                 terms=n_terms)


@pytest.mark.parametrize("i", range(20))
def test_issue17_avg_pool2d_divisor_override_and_avg_pool1d_match_torch(backend, i):
    shape, k, s, p, _, ceil = CASES_3D[i]
    rng = np.random.default_rng(200 + i)
    dtype = (np.float32, np.float64)[i % 2]
    cip = bool(i % 3)
    x = _values(rng, shape[:2] + shape[3:], dtype, "plain")
    for div in (None, 2, -5):
        want = _torch_or_none(lambda: F.avg_pool2d(torch.from_numpy(x), k[1:], s[1:], p[1:],
                                                   ceil, cip, div))
        if want is None:
            continue
        y = fastconv.avg_pool2d(x, k[1:], s[1:], p[1:], ceil, cip, div, backend=backend)
        assert_close(y, want.numpy(), terms=k[1] * k[2])
    x1 = x[:, :, 0]
    want = _torch_or_none(lambda: F.avg_pool1d(torch.from_numpy(x1), k[2], s[2], p[2], ceil,
                                               cip))
    if want is not None:
        y = fastconv.avg_pool1d(x1, k[2], s[2], p[2], ceil, cip, backend=backend)
        assert_close(y, want.numpy(), terms=k[2])
        assert_close(y, fastconv.avg_pool1d(x1, k[2], s[2], p[2], ceil, cip, backend="numpy"),
                     terms=k[2])


def test_issue17_avg_pool3d_refuses_an_input_smaller_than_the_kernel_as_torch():
    """torch's avg_pool3d (only it) refuses an input smaller than the kernel, padding or
    not; its 1-D and 2-D avg pools and max_pool3d take it (ceil_mode)."""
    x = np.ones((1, 1, 2, 1, 5))
    with pytest.raises(RuntimeError):
        F.avg_pool3d(torch.from_numpy(x), 2, 2, 0, True)
    with pytest.raises(ValueError, match=r"\bx\b must be at least kernel_size"):
        fastconv.avg_pool3d(x, 2, 2, 0, True)
    want = F.max_pool3d(torch.from_numpy(x), 2, 2, 0, ceil_mode=True).numpy()
    np.testing.assert_array_equal(fastconv.max_pool3d(x, 2, 2, 0, ceil_mode=True), want)
    want = F.avg_pool2d(torch.from_numpy(x[:, :, 0]), 2, 2, 0, True).numpy()
    assert_close(fastconv.avg_pool2d(x[:, :, 0], 2, 2, 0, True), want)


# --------------------------------------------------------------------------------------------
# dtypes, layouts, unbatched, empty batch
# --------------------------------------------------------------------------------------------
def _calls():
    """name: (fastconv call, torch call, input shape)."""
    return {
        "max_pool3d": (lambda x, **k: fastconv.max_pool3d(x, (2, 3, 2), (1, 2, 2), 1,
                                                          return_indices=True, **k),
                       lambda t: F.max_pool3d(t, (2, 3, 2), (1, 2, 2), 1, return_indices=True),
                       (2, 3, 5, 6, 7)),
        "avg_pool3d": (lambda x, **k: fastconv.avg_pool3d(x, 3, 2, 1, True, False, **k),
                       lambda t: F.avg_pool3d(t, 3, 2, 1, True, False), (2, 3, 5, 6, 7)),
        "avg_pool3d divisor": (lambda x, **k: fastconv.avg_pool3d(x, 2, divisor_override=3,
                                                                  **k),
                               lambda t: F.avg_pool3d(t, 2, divisor_override=3),
                               (2, 3, 5, 6, 7)),
        "avg_pool2d divisor": (lambda x, **k: fastconv.avg_pool2d(x, 3, 2, 1, True, True, 7,
                                                                  **k),
                               lambda t: F.avg_pool2d(t, 3, 2, 1, True, True, 7), (2, 3, 6, 7)),
        "avg_pool1d": (lambda x, **k: fastconv.avg_pool1d(x, 3, 2, 1, True, False, **k),
                       lambda t: F.avg_pool1d(t, 3, 2, 1, True, False), (2, 3, 11)),
    }


CALLS = _calls()


@pytest.mark.parametrize("name", CALLS)
@pytest.mark.parametrize("kind", LAYOUTS)
def test_issue17_layouts(backend, name, kind):
    f, tf, shape = CALLS[name]
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    v = layout(x, kind)
    keep = Unchanged(v)
    got = f(v, backend=backend)
    keep.check()
    want = tf(torch.from_numpy(x))
    for g, w in zip(got if isinstance(got, tuple) else (got,),
                    want if isinstance(want, tuple) else (want,)):
        if g.dtype == np.int64:
            np.testing.assert_array_equal(g, w.numpy())
        else:
            assert_close(g, w.numpy(), terms=27)


@pytest.mark.parametrize("name", CALLS)
def test_issue17_dtypes_unbatched_and_empty_batch(backend, name):
    f, tf, shape = CALLS[name]
    rng = np.random.default_rng(6)
    # an int input computes in float64 (the dtype rule); int8 in float32
    xi = rng.integers(-9, 9, shape)
    for x, dt in ((xi, np.float64), (xi.astype(np.int8), np.float32),
                  (xi.astype(np.float16), np.float32)):
        got = f(x, backend=backend)
        got = got if isinstance(got, tuple) else (got,)
        assert got[0].dtype == dt
        want = tf(torch.from_numpy(xi.astype(np.float64)))
        want = want if isinstance(want, tuple) else (want,)
        assert_close(got[0], want[0].numpy(), dtype=dt)
    # unbatched: the batched result of one image, without N
    x = rng.standard_normal(shape)
    one = f(x[:1], backend=backend)
    unb = f(x[0], backend=backend)
    for a, b in zip(one if isinstance(one, tuple) else (one,),
                    unb if isinstance(unb, tuple) else (unb,)):
        np.testing.assert_array_equal(a[0], b)
    # N == 0: an empty result of torch's shape
    empty = f(np.ones((0,) + shape[1:]), backend=backend)
    want = tf(torch.ones((0,) + shape[1:], dtype=torch.float64))
    for a, b in zip(empty if isinstance(empty, tuple) else (empty,),
                    want if isinstance(want, tuple) else (want,)):
        assert a.shape == tuple(b.shape)


# --------------------------------------------------------------------------------------------
# torch's argument forms, for every pool
# --------------------------------------------------------------------------------------------
def _forms(nd, is_max):
    """(kwargs) variations of kernel_size, stride, padding, dilation that torch accepts or
    refuses, for an nd-d pool."""
    rows = []
    for k in (2, (2,), [2], (2,) * nd, (2,) * (nd + 1) if nd < 3 else (2, 2), (), (2,) * 2):
        rows.append(dict(kernel_size=k))
    for s in (None, (), [], 1, (1,), [1], (1,) * nd, (1, 2) if nd != 2 else (1, 2, 1)):
        rows.append(dict(kernel_size=2, stride=s))
    for p in (1, (1,), (1,) * nd, (), (1,) * (nd + 1)):
        rows.append(dict(kernel_size=2, padding=p))
    if is_max:
        for d in (2, (2,), (2,) * nd, (), (1,) * (nd + 1)):
            rows.append(dict(kernel_size=2, dilation=d))
    return rows


@pytest.mark.parametrize("name", POOLS)
def test_issue17_argument_forms_match_torch(name):
    """Each form torch accepts gives torch's result; each it refuses raises a ValueError or
    TypeError naming the argument."""
    nd, tf, is_max = POOLS[name]
    x = np.random.default_rng(7).standard_normal((1, 2) + (6,) * nd)
    f = getattr(fastconv, name)
    for kw in _forms(nd, is_max):
        tkw = dict(kw)
        if not is_max and "dilation" in tkw:
            continue
        try:
            want = tf(torch.from_numpy(x), **tkw)
        except (RuntimeError, TypeError, ValueError):
            want = None
        if want is None:
            arg = [a for a in kw if a != "kernel_size"] or ["kernel_size"]
            with pytest.raises((ValueError, TypeError), match=arg[-1]):
                f(x, **kw)
            continue
        got = f(x, **kw)
        assert got.shape == tuple(want.shape), (name, kw)
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-12, err_msg=str(kw))


# --------------------------------------------------------------------------------------------
# gradients
# --------------------------------------------------------------------------------------------
GRAD_CASES = [((2, 2, 5, 6, 7), (2, 3, 2), (1, 2, 2), (1, 1, 0), (1, 1, 2), False),
              ((1, 3, 4, 5, 5), 3, 2, 1, 1, True),
              ((2, 1, 6, 4, 5), 2, 2, 0, 1, False),
              ((1, 2, 3, 7, 6), (1, 3, 3), (1, 1, 2), (0, 1, 1), (1, 2, 1), True)]


@pytest.mark.parametrize("case", range(len(GRAD_CASES)))
def test_issue17_max_pool3d_grad_matches_torch_autograd(backend, case):
    shape, k, s, p, d, ceil = GRAD_CASES[case]
    x = np.random.default_rng(case).standard_normal(shape)
    tx = torch.from_numpy(x).requires_grad_()
    ty, ti = F.max_pool3d(tx, k, s, p, d, ceil, return_indices=True)
    gy = np.random.default_rng(9).standard_normal(tuple(ty.shape))
    ty.backward(torch.from_numpy(gy))
    _, idx = fastconv.max_pool3d(x, k, s, p, d, ceil, return_indices=True, backend=backend)
    gx = G.max_pool3d(gy, idx, x.shape, backend=backend)
    assert_close(gx, tx.grad.numpy(), terms=8)
    # float32 grad_output gives float32
    assert G.max_pool3d(gy.astype(np.float32), idx, x.shape, backend=backend).dtype == \
        np.float32


@pytest.mark.parametrize("case", range(len(GRAD_CASES)))
def test_issue17_avg_pool_grads_match_torch_autograd(backend, case):
    shape, k, s, p, _, ceil = GRAD_CASES[case]
    x = np.random.default_rng(case).standard_normal(shape)
    for cip, div in ((True, None), (False, None), (True, 5), (False, -3)):
        tx = torch.from_numpy(x).requires_grad_()
        ty = F.avg_pool3d(tx, k, s, p, ceil, cip, div)
        gy = np.random.default_rng(10).standard_normal(tuple(ty.shape))
        ty.backward(torch.from_numpy(gy))
        gx = G.avg_pool3d(gy, x.shape, k, s, p, ceil, cip, div, backend=backend)
        assert_close(gx, tx.grad.numpy(), terms=27)
        # the 2-D one with a divisor, and the 1-D one
        k2 = k if isinstance(k, int) else k[1:]
        s2 = s if isinstance(s, int) else s[1:]
        p2 = p if isinstance(p, int) else p[1:]
        tx2 = torch.from_numpy(x[:, :, 0]).requires_grad_()
        ty2 = F.avg_pool2d(tx2, k2, s2, p2, ceil, cip, div)
        gy2 = np.random.default_rng(11).standard_normal(tuple(ty2.shape))
        ty2.backward(torch.from_numpy(gy2))
        gx2 = G.avg_pool2d(gy2, x[:, :, 0].shape, k2, s2, p2, ceil, cip, div, backend=backend)
        assert_close(gx2, tx2.grad.numpy(), terms=9)
        k1, s1, p1 = (v if isinstance(v, int) else v[-1] for v in (k, s, p))
        tx1 = torch.from_numpy(x[:, :, 0, 0]).requires_grad_()
        ty1 = F.avg_pool1d(tx1, k1, s1, p1, ceil, cip)
        gy1 = np.random.default_rng(12).standard_normal(tuple(ty1.shape))
        ty1.backward(torch.from_numpy(gy1))
        gx1 = G.avg_pool1d(gy1, x[:, :, 0, 0].shape, k1, s1, p1, ceil, cip, backend=backend)
        assert_close(gx1, tx1.grad.numpy(), terms=3)


@pytest.mark.parametrize("case", range(len(GRAD_CASES)))
def test_issue17_avg_pool3d_adjoint_identity(backend, case):
    """<A x, y> == <x, A^T y>: the gradient is the adjoint of the (linear) forward."""
    shape, k, s, p, _, ceil = GRAD_CASES[case]
    rng = np.random.default_rng(case)
    x = rng.standard_normal(shape)
    for cip, div in ((True, None), (False, None), (False, 4)):
        ax = fastconv.avg_pool3d(x, k, s, p, ceil, cip, div, backend=backend)
        y = rng.standard_normal(ax.shape)
        aty = G.avg_pool3d(y, x.shape, k, s, p, ceil, cip, div, backend=backend)
        lhs, rhs = float(np.vdot(ax, y)), float(np.vdot(x, aty))
        assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))
        x1 = x[:, :, 0, 0]
        k1, s1, p1 = (v if isinstance(v, int) else v[-1] for v in (k, s, p))
        a1 = fastconv.avg_pool1d(x1, k1, s1, p1, ceil, cip, backend=backend)
        y1 = rng.standard_normal(a1.shape)
        at1 = G.avg_pool1d(y1, x1.shape, k1, s1, p1, ceil, cip, backend=backend)
        assert abs(float(np.vdot(a1, y1)) - float(np.vdot(x1, at1))) <= 1e-10


def test_issue17_pool3d_grads_match_finite_differences(backend):
    """float64, small: central differences of <pool(x), gy> agree with the gradients (the
    max-pool's input has distinct values, so its argmax is stable under the step)."""
    rng = np.random.default_rng(13)
    shape = (1, 2, 3, 4, 4)
    x = rng.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) / 10
    eps = 1e-6
    fns = {
        "max": (lambda v: fastconv.max_pool3d(v, 2, 1, 1, backend=backend),
                lambda gy: G.max_pool3d(gy, fastconv.max_pool3d(
                    x, 2, 1, 1, return_indices=True, backend=backend)[1], shape,
                    backend=backend)),
        "avg": (lambda v: fastconv.avg_pool3d(v, 3, 2, 1, True, False, backend=backend),
                lambda gy: G.avg_pool3d(gy, shape, 3, 2, 1, True, False, backend=backend)),
        "avg divisor": (lambda v: fastconv.avg_pool3d(v, 2, 1, 0, divisor_override=3,
                                                      backend=backend),
                        lambda gy: G.avg_pool3d(gy, shape, 2, 1, 0, divisor_override=3,
                                                backend=backend)),
    }
    for name, (fwd, bwd) in fns.items():
        gy = rng.standard_normal(fwd(x).shape)
        gx = bwd(gy)
        num = np.empty(shape)
        for i in range(x.size):
            e = np.zeros(x.size)
            e[i] = eps
            e = e.reshape(shape)
            num.flat[i] = (np.vdot(fwd(x + e), gy) - np.vdot(fwd(x - e), gy)) / (2 * eps)
        np.testing.assert_allclose(gx, num, rtol=1e-6, atol=1e-6, err_msg=name)


# --------------------------------------------------------------------------------------------
# nn layers
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, kwargs", [((2,), {}), (((2, 3, 2),), dict(stride=(1, 2, 1),
                                          padding=1, dilation=(1, 1, 2), ceil_mode=True))])
def test_issue17_nn_maxpool3d_matches_torch_module(backend, args, kwargs):
    layer = fastconv.nn.MaxPool3d(*args, **kwargs, backend=backend)
    tlayer = torch.nn.MaxPool3d(*args, **kwargs)
    assert repr(layer) == repr(tlayer)
    x = np.random.default_rng(14).standard_normal((2, 3, 5, 6, 7)).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    ty = tlayer(tx)
    y = layer(x)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    gy = np.random.default_rng(15).standard_normal(y.shape).astype(np.float32)
    ty.backward(torch.from_numpy(gy))
    assert_close(layer.backward(gy), tx.grad.numpy(), terms=8)


@pytest.mark.parametrize("args, kwargs", [((4,), {}), (((3,),), dict(stride=2, padding=1,
                                          ceil_mode=True, count_include_pad=False))])
def test_issue17_nn_avgpool1d_matches_torch_module(backend, args, kwargs):
    layer = fastconv.nn.AvgPool1d(*args, **kwargs, backend=backend)
    tlayer = torch.nn.AvgPool1d(*args, **kwargs)
    assert repr(layer) == repr(tlayer)
    x = np.random.default_rng(16).standard_normal((2, 3, 17)).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    ty = tlayer(tx)
    y = layer(x)
    assert_close(y, ty.detach().numpy(), terms=4)
    gy = np.random.default_rng(17).standard_normal(y.shape).astype(np.float32)
    ty.backward(torch.from_numpy(gy))
    assert_close(layer.backward(gy), tx.grad.numpy(), terms=4)


# --------------------------------------------------------------------------------------------
# the speed targets: callables, and the extra memory of their calls
# --------------------------------------------------------------------------------------------
def test_issue17_pool3d_bench_targets_are_well_formed():
    from fastconv.bench.targets_pool3d import PAIRED

    assert len(PAIRED) == 2
    for group, t in PAIRED.items():
        assert group.endswith("-float32") and 0 < t["bound"] <= 1 and t["what"]
        assert callable(t["make"]) and callable(t["reference"])


MEMORY_CHILD = r"""
import json, sys
import numpy as np
import fastconv
from test_memory import _PREAMBLE
exec(_PREAMBLE)
backend = sys.argv[1]
fastconv.set_num_threads(2)
rng = np.random.default_rng(0)
res = {}
cases = {"max_pool3d": ((4, 32, 32, 64, 64), lambda x: fastconv.max_pool3d(x, 2, backend=backend)),
         "max_pool3d indices": ((4, 32, 32, 64, 64), lambda x: fastconv.max_pool3d(
             x, 2, return_indices=True, backend=backend)),
         "avg_pool1d": ((64, 128, 4096), lambda x: fastconv.avg_pool1d(x, 4, 4, backend=backend))}
for name, (shape, f) in cases.items():
    f(rng.standard_normal((1, 2) + shape[2:]).astype(np.float32))  # warm up (Numba compiles)
    x = rng.standard_normal(shape, dtype=np.float32)
    before, reset = reset_peak(backend)
    r = f(x)
    rs = r if isinstance(r, tuple) else (r,)
    res[name] = {"extra": status("VmHWM") - before, "reset": reset,
                 "in_out": x.nbytes + sum(a.nbytes for a in rs)}
    del x, r, rs
print(json.dumps(res))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux")
                    or not os.access("/proc/self/clear_refs", os.W_OK),
                    reason="needs Linux's /proc/self/clear_refs to reset the peak resident set")
@pytest.mark.parametrize("backend_name", [b for b in BACKENDS if b != "numpy"])
def test_issue17_pool3d_targets_extra_memory_is_bounded(backend_name):
    """On the speed targets' shapes, float32, 2 threads: the call's extra peak resident set
    (its result included) stays below max(64 MiB, input + output)."""
    env = dict(os.environ, PYTHONPATH=os.path.dirname(__file__) + os.pathsep
               + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", MEMORY_CHILD, backend_name],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.splitlines()[-1])
    mib = 1 << 20
    for name, r in res.items():
        assert r["reset"] < mib, "clear_refs did not reset the peak resident set"
        bound = max(64 * mib, r["in_out"])
        assert r["extra"] < bound, (f"{backend_name} {name}: {r['extra'] / mib:.1f} MiB "
                                    f"extra, bound {bound / mib:.0f} MiB")


# --------------------------------------------------------------------------------------------
# Ctrl-C pieces (fastconv._chunks): a long 3-D pool is cut along its volumes, bitwise
# --------------------------------------------------------------------------------------------
def assert_cut_calls_give_the_uncut_result(calls, monkeypatch):
    """Each of ``calls`` ({op: zero-argument call}), cut into about 5 Ctrl-C pieces, gives
    bitwise its uncut result, and every op is cut into 2 pieces or more (also used by
    tests/test_issue17_adaptive.py)."""
    from fastconv import _chunks

    with monkeypatch.context() as m:
        m.setattr(_chunks, "SPLIT_SECONDS", float("inf"))
        whole = {op: f() for op, f in calls.items()}
    cuts = []
    plan = _chunks.plan

    def recording(op, name, args):
        m.setattr(_chunks, "PIECE_SECONDS", _chunks.estimate(op, name, args) / 5)
        c = plan(op, name, args)
        cuts.append((op, c))
        return c

    with monkeypatch.context() as m:
        m.setattr(_chunks, "SPLIT_SECONDS", 0.0)
        m.setattr(_chunks, "plan", recording)
        for op, f in calls.items():
            got = f()
            for a, b in zip(got if isinstance(got, tuple) else (got,),
                            whole[op] if isinstance(whole[op], tuple) else (whole[op],)):
                np.testing.assert_array_equal(a, b, err_msg=op)
    assert {op for op, c in cuts if c and len(c) >= 2} == set(calls)


def test_issue17_pool3d_calls_cut_into_volume_pieces_give_the_uncut_result(backend,
                                                                          monkeypatch):
    x = np.random.default_rng(18).standard_normal((3, 4, 5, 6, 7)).astype(np.float32)
    calls = {
        "max_pool3d": lambda: fastconv.max_pool3d(x, 3, 2, 1, 1, True, True, backend=backend),
        "avg_pool3d": lambda: fastconv.avg_pool3d(x, 3, 2, 1, True, False, 5, backend=backend),
        "avg_pool3d_backward": lambda: G.avg_pool3d(np.ones((3, 4, 3, 4, 4), np.float32),
                                                    x.shape, 3, 2, 1, True, False,
                                                    backend=backend),
    }
    assert_cut_calls_give_the_uncut_result(calls, monkeypatch)
