"""conv3d's speed targets (issue 17), for the paired bench: fastconv ``backend="auto"`` /
torch, 2 threads, float32.

``PAIRED[group]``: ``what`` (the workload), ``bound`` (the target ratio), ``make(impl)`` for
impl in ("auto", "torch", "cython", "numba"): a zero-argument callable doing one call on
prebuilt float32 inputs, and ``reference()``: the NumPy backend's result, for the check.
Backward targets return the (input grad, weight grad) pair.
"""

from __future__ import annotations

import functools

import numpy as np

import fastconv
import fastconv.grad


@functools.lru_cache(maxsize=None)
def _arrays(x_shape, w_shape, padding, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32)
    y = fastconv.conv3d(x, w, padding=padding, backend="numpy")
    gy = rng.standard_normal(y.shape, dtype=np.float32)
    return x, w, gy


def _forward(x_shape, w_shape, padding, impl):
    x, w, _ = _arrays(x_shape, w_shape, padding)
    if impl == "torch":
        import pytest
        torch = pytest.importorskip("torch")
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)

        def run():
            with torch.no_grad():
                return torch.nn.functional.conv3d(xt, wt, padding=padding)
        return run
    backend = impl
    return lambda: fastconv.conv3d(x, w, padding=padding, backend=backend)


def _backward(x_shape, w_shape, padding, impl):
    x, w, gy = _arrays(x_shape, w_shape, padding)
    if impl == "torch":
        import pytest
        torch = pytest.importorskip("torch")
        xt, wt, gyt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(gy)
        pad = (padding,) * 3

        def run():
            gx, gw, _ = torch.ops.aten.convolution_backward(
                gyt, xt, wt, None, (1, 1, 1), pad, (1, 1, 1), False, (0, 0, 0), 1,
                (True, True, False))
            return gx, gw
        return run
    backend = impl
    return lambda: (fastconv.grad.conv3d_input(x.shape, w, gy, padding=padding,
                                               backend=backend),
                    fastconv.grad.conv3d_weight(x, w.shape, gy, padding=padding,
                                                backend=backend))


def _ref_forward(x_shape, w_shape, padding):
    return _forward(x_shape, w_shape, padding, "numpy")()


def _ref_backward(x_shape, w_shape, padding):
    return _backward(x_shape, w_shape, padding, "numpy")()


_BIG = ((2, 16, 16, 64, 64), (32, 16, 3, 3, 3), 1)
_ONE = ((8, 1, 16, 32, 32), (8, 1, 3, 3, 3), 0)

PAIRED = {
    "conv3d-2x16x16x64x64-float32": dict(
        what="conv3d 2x16x16x64x64 -> 32 filters, 3x3x3, padding 1", bound=1.25,
        make=functools.partial(_forward, *_BIG), reference=functools.partial(_ref_forward, *_BIG)),
    "conv3d-8x1x16x32x32-float32": dict(
        what="conv3d 8x1x16x32x32 -> 8 filters, 3x3x3, no padding", bound=0.5,
        make=functools.partial(_forward, *_ONE), reference=functools.partial(_ref_forward, *_ONE)),
    "conv3d_backward-2x16x16x64x64-float32": dict(
        what="conv3d backward (input + weight grads) of 2x16x16x64x64 -> 32, 3x3x3, padding 1",
        bound=1.5, make=functools.partial(_backward, *_BIG),
        reference=functools.partial(_ref_backward, *_BIG)),
}
