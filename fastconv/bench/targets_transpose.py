"""Issue 17's speed targets for the transposed convolution, for the paired bench.

``PAIRED[group]``: ``what`` (the workload), ``bound`` (the largest ``auto / torch`` time
ratio allowed), ``make(impl)`` for impl in ("auto", "torch", "cython", "numba"): a
zero-argument callable doing one call on prebuilt float32 inputs, and ``reference()``: the
NumPy backend's result, to check each side against. Kernel 4, stride 2, padding 1 (the
DCGAN/U-Net upsampling layer): the output is twice the input's size.
"""

from __future__ import annotations

import numpy as np

import fastconv

from .targets import entry

# (N, C_in, H, W, C_out), kernel 4, stride 2, padding 1
SHAPES = {"8x64x28x28": (8, 64, 28, 28, 32), "64x128x7x7": (64, 128, 7, 7, 64)}
KW = dict(stride=2, padding=1)


def _inputs(shape):
    N, C, H, W, K = SHAPES[shape]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = rng.standard_normal((C, K, 4, 4), dtype=np.float32) / np.float32(np.sqrt(C * 16))
    gy = rng.standard_normal((N, K, 2 * H, 2 * W), dtype=np.float32)
    return x, w, gy


def _forward(shape):
    x, w, _ = _inputs(shape)

    def make(impl):
        if impl == "torch":
            import pytest

            torch = pytest.importorskip("torch")
            tx, tw = torch.from_numpy(x), torch.from_numpy(w)

            def call():
                with torch.no_grad():
                    return torch.nn.functional.conv_transpose2d(tx, tw, None, **KW)
            return call
        return lambda: fastconv.conv_transpose2d(x, w, None, **KW, backend=impl)

    def reference():
        return fastconv.conv_transpose2d(x, w, None, **KW, backend="numpy")

    return make, reference


def _backward(shape):
    x, w, gy = _inputs(shape)

    def make(impl):
        if impl == "torch":
            import pytest

            torch = pytest.importorskip("torch")
            tx, tw, tgy = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(gy)

            def call():  # (input grad, weight grad) of the transposed convolution
                gx, gw, _ = torch.ops.aten.convolution_backward(
                    tgy, tx, tw, None, (2, 2), (1, 1), (1, 1), True, (0, 0), 1,
                    (True, True, False))
                return gx, gw
            return call
        G = fastconv.grad
        return lambda: (G.conv_transpose2d_input(x.shape, w, gy, **KW, backend=impl),
                        G.conv_transpose2d_weight(x, w.shape, gy, **KW, backend=impl))

    def reference():
        G = fastconv.grad
        return (G.conv_transpose2d_input(x.shape, w, gy, **KW, backend="numpy"),
                G.conv_transpose2d_weight(x, w.shape, gy, **KW, backend="numpy"))

    return make, reference


PAIRED = {
    "conv_transpose2d-8x64x28x28-float32": entry(
        "conv_transpose2d 8x64x28x28 -> 32 filters, kernel 4, stride 2, padding 1", 1.0,
        _forward("8x64x28x28")),
    "conv_transpose2d-64x128x7x7-float32": entry(
        "conv_transpose2d 64x128x7x7 -> 64 filters, kernel 4, stride 2, padding 1", 1.0,
        _forward("64x128x7x7")),
    "conv_transpose2d_backward-8x64x28x28-float32": entry(
        "backward (input + weight grads) of conv_transpose2d 8x64x28x28 -> 32, k4 s2 p1", 1.5,
        _backward("8x64x28x28")),
}
