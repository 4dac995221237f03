"""Issue 21: fastconv trains like torch, as a tested fact.

Every study model (the invariance section's five on the centred digits, and the translated
scenario's three, on a 16x16 canvas to learn in few steps) is built in torch with the same initial weights
(:func:`fastconv.study.models.torch_twin`), trained on the same batches
(:func:`fastconv.study.models.batches`) with the same Adam settings, and its test accuracy
at every shift (mean over the 8 directions) must match fastconv's within 0.005. A short step
budget keeps it fast; it is long enough for the models to learn (accuracy well above
chance), so a wrong gradient would show.

The global-average-pooling net is checked in float64 on both sides: in float32 its early
training amplifies rounding (Adam divides near-zero gradients of its mostly dead units by
their tiny running size), and after 100 steps its float32 weights differ by ~1e-2 from
torch's, while in float64 they agree to ~1e-14 after 400 steps; so the float32 gap is
rounding, not a different computation.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")
torch = pytest.importorskip("torch")

from fastconv.study import data as D  # noqa: E402
from fastconv.study import models as M  # noqa: E402

STEPS = 100
MAX_SHIFT = 4

# fastconv's own thread grains (a batch of 32 small images is one thread's work), one thread
# on both sides: the test is about equal numbers, and stays fast on a busy machine
pytestmark = pytest.mark.real_grains


@pytest.fixture(autouse=True)
def _one_thread(threads):
    import fastconv

    before = torch.get_num_threads()
    fastconv.set_num_threads(1)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def centred():
    return D.load_digits(seed=0)


@pytest.fixture(scope="module")
def translated():
    return D.load_translated(seed=0, canvas=16)


def _torch_train(tnet, x, y, cfg):
    opt = torch.optim.Adam(tnet.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _, idx in M.batches(len(y), cfg):
        it = torch.from_numpy(idx)
        opt.zero_grad()
        loss_fn(tnet(xt[it]), yt[it]).backward()
        opt.step()


def _torch_accuracy(tnet, x, y):
    with torch.no_grad():
        return float((tnet(torch.from_numpy(np.ascontiguousarray(x))).argmax(1).numpy()
                      == y).mean())


def _curves(name, ds, shifts, steps=STEPS, dtype=np.float32):
    torch.manual_seed(0)
    cfg = M.TrainConfig(steps, 32, 2e-3, seed=1)
    model = M.build(name, ds.image_shape, seed=1)
    for p in model.parameters():
        p.data, p.grad = p.data.astype(dtype), p.grad.astype(dtype)
    tnet = M.torch_twin(model)  # the same initial weights
    for p, q in zip(tnet.parameters(), model.parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.data)
    x = ds.x_train.astype(dtype)
    M.train(model, x, ds.y_train, cfg)
    _torch_train(tnet, x, ds.y_train, cfg)
    ours, theirs = [], []
    for s in shifts:
        copies = D.shifted_copies(ds.x_test.astype(dtype), s)
        ours.append(np.mean([M.accuracy(model, c, ds.y_test) for c in copies]))
        theirs.append(np.mean([_torch_accuracy(tnet, c, ds.y_test) for c in copies]))
    return model, tnet, np.array(ours), np.array(theirs)


@pytest.mark.parametrize("name", M.INVARIANCE_MODELS)
def test_study_model_trains_like_torch(centred, name):
    gap = name == "gap"
    model, tnet, ours, theirs = _curves(name, centred, range(MAX_SHIFT + 1),
                                        4 * STEPS if gap else STEPS,
                                        np.float64 if gap else np.float32)
    assert ours[0] > 0.25, ours  # it learned something: the check has teeth
    np.testing.assert_allclose(ours, theirs, atol=0.005, rtol=0)
    if gap:
        for p, q in zip(tnet.parameters(), model.parameters()):
            np.testing.assert_allclose(p.detach().numpy(), q.data, rtol=0, atol=1e-10)
    # and the weights agree: float32 rounding, grown over the Adam steps (lr 2e-3 each), stays
    # below one step
    for p, q in zip(tnet.parameters(), model.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.data, rtol=0, atol=2e-3)


@pytest.mark.parametrize("name", M.MODELS)
def test_translated_model_trains_like_torch(translated, name):
    model, tnet, ours, theirs = _curves(name, translated, [0, 1, 3], 2 * STEPS)
    assert ours[0] > 0.2, ours
    np.testing.assert_allclose(ours, theirs, atol=0.005, rtol=0)


def test_cross_check_can_fail(centred):
    # a torch twin trained on other batches ends elsewhere: the comparison would notice
    cfg = M.TrainConfig(STEPS, 32, 2e-3, seed=1)
    model = M.build("lenet", centred.image_shape, seed=1)
    tnet = M.torch_twin(model)
    M.train(model, centred.x_train, centred.y_train, cfg)
    _torch_train(tnet, centred.x_train, centred.y_train, M.TrainConfig(STEPS, 32, 2e-3, seed=2))
    diff = max(float(np.abs(p.detach().numpy() - q.data).max())
               for p, q in zip(tnet.parameters(), model.parameters()))
    assert diff > 1e-2


def test_torch_twin_rejects_unknown_layers():
    from fastconv import nn

    with pytest.raises(TypeError, match="AvgPool2d"):
        M.torch_twin(nn.Sequential(nn.AvgPool2d(2)))
