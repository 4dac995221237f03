"""fastconv's backends against the libraries users would otherwise reach for.

One benchmark group per (workload, shape), so every implementation sits side by side:
fastconv's default (``auto``) and each of its backends (conv2d also on one thread:
``cython-1t``, ``numba-1t``), torch with 2 threads and with 1 (``torch-1t``), scipy.signal and
scipy.ndimage looped over planes (only where that finishes in reasonable time), OpenCV's
``filter2D`` (single-plane and depthwise cases) and a plain NumPy im2col + matmul.
Workloads: conv2d forward, conv2d backward (input + weight), max_pool2d, avg_pool2d.
Each implementation is checked against the NumPy reference before it is timed; JIT code is
warmed up by that check, outside the timing.
"""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import fastconv

from .cases import CONV_SHAPES, POOL_SHAPES, QUICK, conv_gflop

BACKENDS = list(fastconv.backends())
LOOPED_PLANES_MAX = 512  # scipy is looped over N*K*C planes: only for shapes with few


def _mark(name, *params):
    return pytest.param(*params, marks=pytest.mark.quick) if name in QUICK else params


# fastconv's compiled backends on one thread, for the 1 -> 2 thread speed-up
ONE_THREAD = [f"{b}-1t" for b in BACKENDS if b != "numpy"]


def _conv_impls(name):
    N, C, H, W, K, k, s, p, g = CONV_SHAPES[name]
    impls = ["auto"] + BACKENDS + ONE_THREAD + ["torch", "torch-1t"]
    if g == 1:
        impls.append("numpy-im2col")
    if N * K * (C // g) <= LOOPED_PLANES_MAX and s == 1:
        impls += ["scipy.signal", "scipy.ndimage"]
    if (C == 1 and K == 1) or g == C == K:
        impls.append("opencv")
    return impls


def _case(name):
    N, C, H, W, K, k, s, p, g = CONV_SHAPES[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = rng.standard_normal((K, C // g, k, k), dtype=np.float32)
    return x, w, s, p, g


def _im2col(x, w, s, p):
    N, C, H, W = x.shape
    K, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::s, ::s]
    Ho, Wo = win.shape[2:4]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(N * Ho * Wo, C * kh * kw)
    return (cols @ w.reshape(K, -1).T).reshape(N, Ho, Wo, K).transpose(0, 3, 1, 2)


def conv_impl(impl, x, w, s, p, g):
    """A zero-argument callable computing conv2d(x, w) with ``impl``."""
    N, C, H, W = x.shape
    K = w.shape[0]
    if impl == "auto":  # the default a user gets
        return lambda: fastconv.conv2d(x, w, stride=s, padding=p, groups=g)
    if impl in BACKENDS or impl in ONE_THREAD:  # conftest pins "-1t" rows to one thread
        backend = impl.removesuffix("-1t")
        return lambda: fastconv.conv2d(x, w, stride=s, padding=p, groups=g, backend=backend)
    if impl.startswith("torch"):
        torch = pytest.importorskip("torch")
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)

        def run():
            with torch.no_grad():
                return torch.nn.functional.conv2d(xt, wt, None, s, p, 1, g).numpy()

        return run
    if impl == "numpy-im2col":
        return lambda: _im2col(x, w, s, p)
    if impl == "opencv":
        cv2 = pytest.importorskip("cv2")

        def run():
            out = np.empty((N, K, H, W), np.float32)
            for n in range(N):
                for k in range(K):
                    out[n, k] = cv2.filter2D(x[n, k if g > 1 else 0], -1, w[k, 0],
                                             borderType=cv2.BORDER_CONSTANT)
            return out

        return run
    if impl == "scipy.signal":
        from scipy import signal

        def run():
            out = np.zeros((N, K, H + 2 * p - w.shape[2] + 1, W + 2 * p - w.shape[3] + 1),
                           np.float32)
            xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
            for n in range(N):
                for k in range(K):
                    for c in range(C // g):
                        ci = (k // (K // g)) * (C // g) + c  # the input channel, per group
                        out[n, k] += signal.correlate2d(xp[n, ci], w[k, c], mode="valid")
            return out

        return run
    if impl == "scipy.ndimage":
        from scipy import ndimage

        kh = w.shape[2]
        c0 = kh // 2 - p  # crop of ndimage's same-size output to conv2d's

        def run():
            Ho = H + 2 * p - kh + 1
            out = np.zeros((N, K, Ho, Ho), np.float32)
            for n in range(N):
                for k in range(K):
                    for c in range(C // g):
                        ci = (k // (K // g)) * (C // g) + c
                        r = ndimage.correlate(x[n, ci], w[k, c], mode="constant")
                        out[n, k] += r[c0 : c0 + Ho, c0 : c0 + Ho]
            return out

        return run
    raise ValueError(impl)


CONV_PARAMS = [_mark(n, n, i) for n in CONV_SHAPES for i in _conv_impls(n)]


@pytest.mark.parametrize(("shape", "impl"), CONV_PARAMS)
def test_conv2d(benchmark, shape, impl):
    x, w, s, p, g = _case(shape)
    benchmark.group = f"conv2d-{shape}-float32"
    benchmark.extra_info.update(workload="conv2d", shape=shape, impl=impl,
                                gflop=conv_gflop(shape))
    fn = conv_impl(impl, x, w, s, p, g)
    expected = fastconv.conv2d(x, w, stride=s, padding=p, groups=g, backend="numpy")
    np.testing.assert_allclose(fn(), expected, rtol=1e-3, atol=2e-3)
    benchmark(fn)


POOL_PARAMS = [_mark(n, n, i, op) for n in POOL_SHAPES for op in ("max_pool2d", "avg_pool2d")
               for i in ["auto"] + BACKENDS + ["torch", "torch-1t"]]


@pytest.mark.parametrize(("shape", "impl", "op"), POOL_PARAMS)
def test_pool2d(benchmark, shape, impl, op):
    x = np.random.default_rng(0).standard_normal(POOL_SHAPES[shape], dtype=np.float32)
    benchmark.group = f"{op}-2x2s2-{shape}-float32"
    benchmark.extra_info.update(workload=op, shape=shape, impl=impl,
                                gbyte=x.nbytes * 1.25 / 1e9)
    expected = getattr(fastconv, op)(x, 2, backend="numpy")
    fn = pool_impl(impl, op, x)
    np.testing.assert_allclose(fn(), expected, rtol=1e-6, atol=1e-6)
    benchmark(fn)


def pool_impl(impl, op, x):
    """A zero-argument callable computing ``op(x, 2)`` (2x2, stride 2) with ``impl``."""
    if impl.startswith("torch"):
        torch = pytest.importorskip("torch")
        xt = torch.from_numpy(x)
        tfn = getattr(torch.nn.functional, op)
        return lambda: tfn(xt, 2).numpy()
    fop = getattr(fastconv, op)
    backend = None if impl in ("auto", "auto-1t") else impl.removesuffix("-1t")
    return lambda: fop(x, 2, backend=backend)


BACKWARD_SHAPES = ["lenet1", "lenet2", "resnet3x3", "depthwise", "single_image"]
BACKWARD_PARAMS = [_mark(n, n, i) for n in BACKWARD_SHAPES
                   for i in ["auto"] + BACKENDS + ["torch", "torch-1t"]]


@pytest.mark.parametrize(("shape", "impl"), BACKWARD_PARAMS)
def test_conv2d_backward(benchmark, shape, impl):
    """The gradients of conv2d with respect to its input and its weight, together."""
    x, w, gy, s, p, g = backward_case(shape)
    benchmark.group = f"conv2d_backward-{shape}-float32"
    benchmark.extra_info.update(workload="conv2d_backward", shape=shape, impl=impl,
                                gflop=2 * conv_gflop(shape))
    kw = dict(stride=s, padding=p, groups=g)
    fn = backward_impl(impl, x, w, gy, s, p, g)
    gx, gw = fn()
    rx = fastconv.grad.conv2d_input(x.shape, w, gy, backend="numpy", **kw)
    rw = fastconv.grad.conv2d_weight(x, w.shape, gy, backend="numpy", **kw)
    np.testing.assert_allclose(gx, rx, rtol=1e-3, atol=2e-3)
    np.testing.assert_allclose(gw, rw, rtol=1e-3, atol=1e-2 * max(1.0, np.abs(rw).max() * 1e-3))
    benchmark(fn)


def backward_case(shape):
    """x, w, the gradient of conv2d's output, stride, padding, groups."""
    x, w, s, p, g = _case(shape)
    y = fastconv.conv2d(x, w, stride=s, padding=p, groups=g, backend="numpy")
    gy = np.random.default_rng(1).standard_normal(y.shape, dtype=np.float32)
    return x, w, gy, s, p, g


def backward_impl(impl, x, w, gy, s, p, g):
    """A zero-argument callable computing conv2d's input and weight gradients with ``impl``."""
    kw = dict(stride=s, padding=p, groups=g)
    if impl.startswith("torch"):
        torch = pytest.importorskip("torch")
        xt, wt, gt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(gy)

        def fn():
            return (torch.nn.grad.conv2d_input(x.shape, wt, gt, **kw).numpy(),
                    torch.nn.grad.conv2d_weight(xt, w.shape, gt, **kw).numpy())

        return fn
    backend = None if impl in ("auto", "auto-1t") else impl.removesuffix("-1t")

    def fn():
        return (fastconv.grad.conv2d_input(x.shape, w, gy, backend=backend, **kw),
                fastconv.grad.conv2d_weight(x, w.shape, gy, backend=backend, **kw))

    return fn
