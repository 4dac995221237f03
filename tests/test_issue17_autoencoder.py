"""Issue 17: fastconv.nn trains a small convolutional autoencoder on the study's digits
(Conv2d -> ReLU -> MaxPool2d -> Conv2d -> ReLU -> MaxPool2d -> ConvTranspose2d -> ReLU ->
ConvTranspose2d, MSE loss) exactly as torch trains the same model: the same initial
weights, the same batches, SGD with momentum; the losses agree at every step.

float64 on both sides, so that the comparison is tight (1e-9 relative) over three epochs;
float32 drifts by rounding (the two libraries sum in different orders) and is checked with
a float32 tolerance over one epoch.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastconv
from fastconv import nn

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from fastconv.study.data import load_digits  # noqa: E402


def _models(dtype, backend):
    tdtype = {np.float64: torch.float64, np.float32: torch.float32}[dtype]
    ours = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, rng=0, dtype=dtype, backend=backend), nn.ReLU(),
        nn.MaxPool2d(2, backend=backend),                                         # 16 -> 8
        nn.Conv2d(8, 16, 3, padding=1, rng=1, dtype=dtype, backend=backend), nn.ReLU(),
        nn.MaxPool2d(2, backend=backend),                                         # 8 -> 4
        nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1, rng=2, dtype=dtype,
                           backend=backend), nn.ReLU(),                           # 4 -> 8
        nn.ConvTranspose2d(8, 1, 3, stride=2, padding=1, output_padding=1, rng=3,
                           dtype=dtype, backend=backend),                         # 8 -> 16
    )
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.ConvTranspose2d(8, 1, 3, stride=2, padding=1, output_padding=1),
    ).to(tdtype)
    with torch.no_grad():  # torch starts from our initial weights
        for ours_p, theirs_p in zip(ours.parameters(), theirs.parameters()):
            assert ours_p.shape == tuple(theirs_p.shape), ours_p.name
            theirs_p.copy_(torch.from_numpy(ours_p.data))
    return ours, theirs


def _train(dtype, backend, epochs, n_images, batch=32):
    data = load_digits(seed=0, limit=n_images)
    x = data.x_train.astype(dtype)
    ours, theirs = _models(dtype, backend)
    opt = nn.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    loss_fn, tloss_fn = nn.MSELoss(), torch.nn.MSELoss()
    order = np.random.default_rng(0)
    losses, tlosses = [], []
    for _ in range(epochs):
        perm = order.permutation(len(x))
        for i in range(0, len(x), batch):
            xb = x[perm[i:i + batch]]
            loss = loss_fn(ours(xb), xb)  # reconstruct the input
            opt.zero_grad()
            ours.backward(loss_fn.backward())
            opt.step()
            txb = torch.from_numpy(xb)
            tloss = tloss_fn(theirs(txb), txb)
            topt.zero_grad()
            tloss.backward()
            topt.step()
            losses.append(loss)
            tlosses.append(tloss.item())
    return np.array(losses), np.array(tlosses), ours, theirs


@pytest.mark.parametrize("backend", fastconv.backends())
def test_autoencoder_trains_like_torch_float64(backend):
    # the NumPy reference is slow: one short epoch (5 steps); the compiled backends 3 x 10
    epochs, n_images = (1, 200) if backend == "numpy" else (3, 400)
    losses, tlosses, ours, theirs = _train(np.float64, backend, epochs, n_images)
    assert len(losses) == epochs * (5 if backend == "numpy" else 10)
    np.testing.assert_allclose(losses, tlosses, rtol=1e-9)
    for p, tp in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-7, atol=1e-9)
    if backend != "numpy":  # it learns: the last epoch's mean loss is well below the start
        assert losses[-10:].mean() < 0.8 * losses[:3].mean()


def test_autoencoder_trains_like_torch_float32():
    losses, tlosses, *_ = _train(np.float32, "auto", epochs=1, n_images=400)
    np.testing.assert_allclose(losses, tlosses, rtol=2e-4)
