"""Issue 21: nn.BlurPool2d (binomial blur as a depthwise conv2d, then max pooling; or, with
blur_first=False, Zhang's order: dense max pooling, then the blur subsamples), forward and
backward, against torch (the same composition, autograd), finite differences and the
NumPy backend, on every backend and layout."""

from __future__ import annotations

import numpy as np
import pytest

from fastconv import nn

from conftest import BACKENDS, assert_close, layouts

torch = pytest.importorskip("torch")
F = torch.nn.functional

# (input shape, kernel_size, stride, padding)
CASES = [
    ((2, 3, 8, 8), 2, None, 0),
    ((1, 2, 9, 7), 2, None, 0),
    ((3, 1, 6, 10), 3, 2, 1),
    ((2, 4, 5, 5), (2, 3), (1, 2), 0),
    ((2, 6, 6), 2, None, 0),  # unbatched
    ((0, 2, 6, 6), 2, None, 0),  # empty batch
]


def _torch_blurpool(x, k, s, p, blur_first=True):
    C = x.shape[-3]
    w = torch.from_numpy(nn.BlurPool2d.blur_weight(C, np.float64)).to(x.dtype)
    if blur_first:
        return F.max_pool2d(F.conv2d(x, w, None, 1, 1, 1, C), k, s, p)
    return F.conv2d(F.max_pool2d(x, k, 1, p), w, None, k if s is None else s, 1, 1, C)


def test_blur_weight_is_binomial():
    w = nn.BlurPool2d.blur_weight(3)
    assert w.shape == (3, 1, 3, 3) and w.dtype == np.float32
    np.testing.assert_array_equal(w[1, 0], np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16)
    np.testing.assert_allclose(w.sum(axis=(1, 2, 3)), 1)


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("blur_first", [True, False])
def test_blurpool_forward_backward_vs_torch(backend, case, dtype, blur_first):
    shape, k, s, p = CASES[case]
    rng = np.random.default_rng(case)
    x = rng.standard_normal(shape).astype(dtype)
    layer = nn.BlurPool2d(k, s, p, blur_first=blur_first, backend=backend)
    y = layer(x)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = _torch_blurpool(xt, k, s, p, blur_first)
    assert_close(y, yt.detach().numpy(), terms=9)
    g = rng.standard_normal(y.shape).astype(dtype)
    gx = layer.backward(g)
    if yt.numel():
        yt.backward(torch.from_numpy(g))
        expected = xt.grad.numpy()
    else:
        expected = np.zeros_like(x)
    assert_close(gx, expected, terms=9)
    # the NumPy reference backend agrees
    ref = nn.BlurPool2d(k, s, p, blur_first=blur_first, backend="numpy")
    assert_close(ref(x), y, terms=9)
    assert_close(ref.backward(g), gx, terms=9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_blurpool_layouts_and_int_input(backend):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 7, 8))
    expected = _torch_blurpool(torch.from_numpy(x), 2, None, 0).numpy()
    for kind, xv in layouts(x):
        assert_close(nn.BlurPool2d(2, backend=backend)(xv), expected, terms=9)
    xi = rng.integers(-5, 6, (2, 2, 6, 6))
    y = nn.BlurPool2d(2, backend=backend)(xi)
    assert y.dtype == np.float64
    assert_close(y, _torch_blurpool(torch.from_numpy(xi.astype(np.float64)), 2, None, 0).numpy(),
                 terms=9)


@pytest.mark.parametrize("blur_first", [True, False])
def test_blurpool_finite_differences(blur_first):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 2, 5, 6))
    layer = nn.BlurPool2d(2, blur_first=blur_first, backend="numpy")
    g = rng.standard_normal(layer(x).shape)
    layer(x)
    gx = layer.backward(g)
    eps = 1e-6
    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        num[i] = np.sum(g * (layer.forward(xp) - layer.forward(xm))) / (2 * eps)
    np.testing.assert_allclose(gx, num, rtol=1e-6, atol=1e-8)


def test_blurpool_is_more_shift_stable_than_maxpool():
    # a one-pixel impulse: max pooling's output jumps between windows as it moves; the
    # blurred one changes by at most half the peak
    x = np.zeros((1, 1, 8, 8))
    x[0, 0, 3, 3] = 1
    x2 = np.roll(x, 1, axis=-1)
    mp = [nn.MaxPool2d(2)(a) for a in (x, x2)]
    bp = [nn.BlurPool2d(2)(a) for a in (x, x2)]
    assert np.abs(mp[0] - mp[1]).max() == 1
    assert np.abs(bp[0] - bp[1]).max() <= 0.5 * bp[0].max() + 1e-12


def test_blurpool_bad_arguments():
    with pytest.raises(ValueError, match="input"):
        nn.BlurPool2d(2)(np.zeros((4, 4)))
    with pytest.raises(RuntimeError, match="before forward"):
        nn.BlurPool2d(2).backward(np.zeros((1, 1, 2, 2)))
    with pytest.raises((ValueError, TypeError), match="kernel_size"):
        nn.BlurPool2d(0)(np.zeros((1, 1, 4, 4)))
    assert nn.BlurPool2d(2).parameters() == []
    assert repr(nn.BlurPool2d(3, 2, 1)) == "BlurPool2d(kernel_size=3, stride=2, padding=1)"
    assert repr(nn.BlurPool2d(2, blur_first=False)).endswith("blur_first=False)")
