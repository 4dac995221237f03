"""fastconv's backends against torch, side by side: one benchmark group per (op, shape).

Every implementation is checked against the NumPy reference before it is timed, and JIT
code is warmed up outside the timing. Run with ``pytest bench --benchmark-only``.
"""

import numpy as np
import pytest

import fastconv

# name: (N, C, H, W, K, kernel, stride, pad, groups)
CONV_SHAPES = {
    "lenet1": (64, 1, 28, 28, 6, 3, 1, 0, 1),
    "lenet2": (64, 6, 13, 13, 16, 3, 1, 0, 1),
    "resnet3x3": (8, 64, 56, 56, 64, 3, 1, 1, 1),
    "depthwise": (8, 64, 56, 56, 64, 3, 1, 1, 64),
    "single_image": (1, 1, 512, 512, 1, 5, 1, 2, 1),
}
POOL_SHAPES = {"pool_small": (64, 6, 26, 26), "pool_large": (8, 64, 112, 112)}
IMPLS = list(fastconv.backends()) + ["torch"]


def _conv_case(name):
    N, C, H, W, K, k, s, p, g = CONV_SHAPES[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = rng.standard_normal((K, C // g, k, k), dtype=np.float32)
    return x, w, dict(stride=s, padding=p, groups=g)


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", list(CONV_SHAPES))
def test_conv2d(benchmark, shape, impl):
    x, w, kw = _conv_case(shape)
    benchmark.group = f"conv2d-{shape}-float32"
    N, C, H, W, K, k, s, p, g = CONV_SHAPES[shape]
    Ho = (H + 2 * p - k) // s + 1
    Wo = (W + 2 * p - k) // s + 1
    benchmark.extra_info["gflop"] = 2 * N * K * Ho * Wo * (C // g) * k * k / 1e9
    expected = fastconv.conv2d(x, w, backend="numpy", **kw)
    if impl == "torch":
        torch = _torch()
        F = torch.nn.functional
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)

        def fn():
            with torch.no_grad():
                return F.conv2d(xt, wt, None, kw["stride"], kw["padding"], 1, kw["groups"])

        got = fn().numpy()
    else:

        def fn():
            return fastconv.conv2d(x, w, backend=impl, **kw)

        got = fn()  # also the JIT warm-up
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)
    benchmark(fn)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", list(POOL_SHAPES))
def test_max_pool2d(benchmark, shape, impl):
    x = np.random.default_rng(0).standard_normal(POOL_SHAPES[shape], dtype=np.float32)
    benchmark.group = f"max_pool2d-2x2s2-{shape}-float32"
    benchmark.extra_info["bytes"] = x.nbytes * 5 // 4
    expected = fastconv.max_pool2d(x, 2, backend="numpy")
    if impl == "torch":
        torch = _torch()
        xt = torch.from_numpy(x)

        def fn():
            return torch.nn.functional.max_pool2d(xt, 2)

        got = fn().numpy()
    else:

        def fn():
            return fastconv.max_pool2d(x, 2, backend=impl)

        got = fn()
    np.testing.assert_array_equal(got, expected)
    benchmark(fn)
