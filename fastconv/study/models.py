"""The study's three models, their training loop, and what each layer costs.

* ``dense``: flatten -> Linear(100) -> ReLU -> Linear(10): the project's "dense layer to 100
  hidden units".
* ``cnn``: Conv(6, 3x3) -> ReLU -> Conv(8, 3x3) -> ReLU -> Linear(10); no pooling.
* ``lenet``: Conv(6, 3x3, pad 1) -> ReLU -> MaxPool(2) -> Conv(16, 3x3, pad 1) -> ReLU ->
  MaxPool(2) -> Linear(10).
* ``lenet_blur``: ``lenet`` with anti-aliased pooling (:class:`fastconv.nn.BlurPool2d`: a
  binomial blur, then the max pooling).
* ``lenet_maxblur``: ``lenet`` with Zhang's MaxBlurPool (``BlurPool2d(blur_first=False)``:
  max pooling at stride 1, then the blur subsamples by 2).
* ``gap``: a CNN with a global-average-pooling head: Conv(8, 3x3, pad 1) -> ReLU ->
  MaxPool(2) -> Conv(16, 3x3, pad 1) -> ReLU -> Conv(32, 3x3, pad 1) -> ReLU ->
  AdaptiveAvgPool(1) -> Linear(10); its classifier sees no position at all.

:func:`torch_twin` builds the same model in PyTorch with the same weights (the cross-check
test and the training bench use it).

The CNNs' parameters sit almost all in their last (dense) layer; pooling shrinks what that
layer sees by 16, which is where LeNet's small size comes from. The report counts them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import nn

__all__ = ["MODELS", "INVARIANCE_MODELS", "build", "TrainConfig", "train", "batches",
           "predict", "accuracy", "layer_costs", "torch_twin"]

MODELS = ("dense", "cnn", "lenet")  # the data-efficiency sections' models
INVARIANCE_MODELS = MODELS + ("lenet_blur", "lenet_maxblur", "gap")  # the invariance section's
DESCRIPTIONS = {
    "dense": "dense net: input -> 100 -> 10",
    "cnn": "CNN without pooling: conv3x3(6) -> ReLU -> conv3x3(8) -> ReLU -> linear",
    "lenet": "LeNet-style: conv3x3(6) -> ReLU -> maxpool2 -> conv3x3(16) -> ReLU -> "
             "maxpool2 -> linear",
    "lenet_blur": "LeNet, anti-aliased: LeNet-style with blur + maxpool2 (BlurPool2d)",
    "lenet_maxblur": "LeNet, MaxBlurPool: LeNet-style with maxpool2 at stride 1 + blur with "
                     "stride 2 (Zhang's order)",
    "gap": "CNN, global average pooling: conv3x3(8) -> ReLU -> maxpool2 -> conv3x3(16) -> "
           "ReLU -> conv3x3(32) -> ReLU -> global avg pool -> linear",
}
N_CLASSES = 10


def build(name, image_shape, seed, backend=None) -> nn.Sequential:
    """A fresh model ``name`` for (C, H, W) inputs, initialized from ``seed``."""
    C, H, W = image_shape
    rng = np.random.default_rng(seed)
    if name == "dense":
        return nn.Sequential(
            nn.Flatten(), nn.Linear(C * H * W, 100, rng=rng), nn.ReLU(),
            nn.Linear(100, N_CLASSES, rng=rng))
    if name == "cnn":
        return nn.Sequential(
            nn.Conv2d(C, 6, 3, rng=rng, backend=backend), nn.ReLU(),
            nn.Conv2d(6, 8, 3, rng=rng, backend=backend), nn.ReLU(),
            nn.Flatten(), nn.Linear(8 * (H - 4) * (W - 4), N_CLASSES, rng=rng))
    if name in ("lenet", "lenet_blur", "lenet_maxblur"):
        def pool():
            if name == "lenet":
                return nn.MaxPool2d(2, backend=backend)
            return nn.BlurPool2d(2, blur_first=name == "lenet_blur", backend=backend)

        return nn.Sequential(
            nn.Conv2d(C, 6, 3, padding=1, rng=rng, backend=backend), nn.ReLU(), pool(),
            nn.Conv2d(6, 16, 3, padding=1, rng=rng, backend=backend), nn.ReLU(), pool(),
            nn.Flatten(), nn.Linear(16 * (H // 4) * (W // 4), N_CLASSES, rng=rng))
    if name == "gap":
        return nn.Sequential(
            nn.Conv2d(C, 8, 3, padding=1, rng=rng, backend=backend), nn.ReLU(),
            nn.MaxPool2d(2, backend=backend),
            nn.Conv2d(8, 16, 3, padding=1, rng=rng, backend=backend), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1, rng=rng, backend=backend), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1, backend=backend),
            nn.Flatten(), nn.Linear(32, N_CLASSES, rng=rng))
    raise ValueError(f"model must be one of {INVARIANCE_MODELS}, got {name!r}")


@dataclass(frozen=True)
class TrainConfig:
    """One optimizer, batch size, seed and step budget, shared by every model."""

    steps: int  # optimizer steps per run, whatever the training-set size
    batch_size: int = 32
    lr: float = 1e-3  # Adam
    seed: int = 0


def train(model, x, y, cfg: TrainConfig, progress=None) -> list:
    """Train ``model`` with Adam on (x, y) for ``cfg.steps`` minibatch steps.

    Batches come from seeded reshuffles of the whole set (epoch after epoch), so the same
    seed gives the same batches. Returns the mean loss of each epoch (a partial last epoch
    included). ``progress`` is an optional callable given the number of steps done.
    numpy's BLAS is held to fastconv's threads meanwhile (:func:`fastconv.nn.hold_blas`).
    """
    with nn.hold_blas():
        return _train(model, x, y, cfg, progress)


def batches(n, cfg: TrainConfig):
    """The minibatches :func:`train` uses on ``n`` examples: ``(new_epoch, indices)`` pairs,
    ``cfg.steps`` of them, from seeded reshuffles of the whole set (a partial last batch of
    an epoch is dropped); ``new_epoch`` is True where a reshuffle starts a new epoch."""
    rng = np.random.default_rng(cfg.seed)
    bs = min(cfg.batch_size, n)
    order, pos = rng.permutation(n), 0
    for _ in range(cfg.steps):
        new_epoch = False
        if pos + bs > n:
            order, pos, new_epoch = rng.permutation(n), 0, True
        yield new_epoch, order[pos:pos + bs]
        pos += bs


def _train(model, x, y, cfg, progress):
    loss_fn = nn.CrossEntropyLoss()
    opt = nn.Adam(model.parameters(), lr=cfg.lr)
    losses, epoch_losses = [], []
    for new_epoch, idx in batches(len(y), cfg):
        if new_epoch:
            losses.append(float(np.mean(epoch_losses)))
            epoch_losses = []
        opt.zero_grad()
        epoch_losses.append(loss_fn(model.forward(x[idx]), y[idx]))
        model.backward(loss_fn.backward(), input_grad=False)  # no gradient for the batch
        opt.step()
        if progress is not None:
            progress(1)
    if epoch_losses:
        losses.append(float(np.mean(epoch_losses)))
    return losses


def predict(model, x, batch_size=512) -> np.ndarray:
    """Predicted class of every image, in batches."""
    out = [np.argmax(model.forward(x[i:i + batch_size]), axis=1)
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def accuracy(model, x, y) -> float:
    return float(np.mean(predict(model, x) == y)) if len(y) else float("nan")


def layer_costs(model, image_shape) -> list:
    """Per layer, for one example: output shape, parameters, multiply-adds, weight bytes and
    activation (output) bytes. Shapes come from running one zero image through the model.

    Multiply-adds count every conv window position (padding included) and every dense
    connection; pooling and ReLU count none (they compare, they do not multiply).
    """
    x = np.zeros((1,) + tuple(image_shape), np.float32)
    rows = []
    for i, layer in enumerate(model):
        y = layer.forward(x)
        params = layer.num_parameters()
        if isinstance(layer, nn.Conv2d):
            kh, kw = layer.kernel_size
            macs = y[0].size * (layer.in_channels // layer.groups) * kh * kw
        elif isinstance(layer, nn.Linear):
            macs = layer.in_features * layer.out_features
        else:
            macs = 0
        itemsize = max([p.data.itemsize for p in layer.parameters()] or [y.itemsize])
        rows.append({
            "layer": f"{i}:{type(layer).__name__}",
            "output_shape": list(y.shape[1:]),
            "params": int(params),
            "macs": int(macs),
            "weight_bytes": int(params * itemsize),
            "activation_bytes": int(y[0].nbytes),
        })
        x = y
    return rows


def torch_twin(model):
    """The same network in PyTorch, with a copy of ``model``'s current weights.

    Maps :class:`fastconv.nn.Conv2d`, ``Linear``, ``ReLU``, ``MaxPool2d``, ``BlurPool2d`` (a
    depthwise ``torch.nn.functional.conv2d`` of the same filter, then max pooling),
    ``AdaptiveAvgPool2d`` and ``Flatten`` to their torch counterparts, in a
    ``torch.nn.Sequential`` (float64 layers where ``model``'s parameters are float64).
    Needs torch.
    """
    import torch

    class _Blur(torch.nn.Module):
        def __init__(self, layer):
            super().__init__()
            self.k, self.s, self.p = layer.kernel_size, layer.stride, layer.padding
            self.first, self.bs = layer.blur_first, layer._blur_stride()

        def forward(self, x):
            F = torch.nn.functional
            w = torch.from_numpy(nn.BlurPool2d.blur_weight(x.shape[1])).to(x.dtype)
            if self.first:
                return F.max_pool2d(F.conv2d(x, w, None, 1, 1, 1, x.shape[1]), self.k, self.s,
                                    self.p)
            return F.conv2d(F.max_pool2d(x, self.k, 1, self.p), w, None, self.bs, 1, 1,
                            x.shape[1])

    layers = []
    for layer in model:
        if isinstance(layer, nn.Conv2d):
            t = torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                                layer.stride, layer.padding, layer.dilation, layer.groups,
                                layer.bias is not None, layer.padding_mode)
        elif isinstance(layer, nn.Linear):
            t = torch.nn.Linear(layer.in_features, layer.out_features, layer.bias is not None)
        elif isinstance(layer, nn.ReLU):
            t = torch.nn.ReLU()
        elif isinstance(layer, nn.BlurPool2d):
            t = _Blur(layer)
        elif isinstance(layer, nn.MaxPool2d):
            t = torch.nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
        elif isinstance(layer, nn.AdaptiveAvgPool2d):
            t = torch.nn.AdaptiveAvgPool2d(layer.output_size)
        elif isinstance(layer, nn.Flatten):
            t = torch.nn.Flatten()
        else:
            raise TypeError(f"torch_twin: no torch counterpart for {type(layer).__name__}")
        params = layer.parameters()
        if params and params[0].data.dtype == np.float64:
            t = t.double()
        with torch.no_grad():
            for p, q in zip(t.parameters(), layer.parameters()):
                p.copy_(torch.from_numpy(np.ascontiguousarray(q.data)))
        layers.append(t)
    return torch.nn.Sequential(*layers)
