"""One training epoch of the study's models: fastconv against the same model in torch.

The models, data, optimizer and batches are the study's (``fastconv.study``): scikit-learn's
digits on a 16x16 canvas; the LeNet-style CNN, Conv(6, 3x3, pad 1) -> ReLU -> MaxPool(2) ->
Conv(16, 3x3, pad 1) -> ReLU -> MaxPool(2) -> Linear(10), and the dense net, Flatten ->
Linear(100) -> ReLU -> Linear(10) (issue 15: it has no convolution; its time is numpy's
BLAS, held to fastconv's threads by :func:`fastconv.nn.hold_blas` around the epoch as in
:func:`fastconv.study.models.train`); Adam (lr 1e-3), batch 32, one pass over the 1,437
training images (45 steps). The torch model starts from fastconv's initial weights and sees
the same batches; before timing, one epoch of each must end at the same weights (to float32
rounding over 45 Adam steps), so both sides do the same work.

The study's other models run on the same digits (groups ``training_epoch-<arch>-digits16``:
the CNN without pooling, LeNet with BlurPool2d and with MaxBlurPool, the
global-average-pooling net), against torch at THREADS threads. Issue 21 adds the translated
scenario's models (``fastconv study``'s section 6): the dense
net, the CNN without pooling and the LeNet-style CNN on the same digits placed at seeded
random positions of a 24x24 canvas (groups ``training_epoch-<arch>-translated24``); the
torch side is :func:`fastconv.study.models.torch_twin` of the fastconv model.

Every round records the process's CPU time over its wall time (``extra_info["cpu_per_wall"]``).
With every library pinned to n threads it must not exceed n: the check that OpenMP, Numba,
OpenBLAS and torch's threads do not oversubscribe the cores. The ``-1t`` variants (one
thread) make that check bite on a machine with no more cores than THREADS.
"""

import os
import time

import numpy as np
import pytest

import fastconv
from fastconv import nn
from fastconv.study import data, models

# fastconv's backends by name (as in test_peers; "cython" is what "auto" picks when built)
IMPLS = [b for b in fastconv.backends() if b != "numpy"] + ["torch", "torch-1t"]
IMPLS += [f"{IMPLS[0]}-1t"]
# the dense net calls no fastconv kernel: its rows are the first backend's name (the report's
# target row reads "cython") and torch's
DENSE_IMPLS = [IMPLS[0], f"{IMPLS[0]}-1t", "torch", "torch-1t"]
PARAMS = [("lenet", i) for i in IMPLS] + [("dense", i) for i in DENSE_IMPLS]
# the study's other models on the centred digits (its invariance section): the CNN without
# pooling, LeNet with BlurPool2d and with MaxBlurPool, the global-average-pooling net
OTHERS = [(a, i) for a in ("cnn", "lenet_blur", "lenet_maxblur", "gap")
          for i in (IMPLS[0], "torch")]
# issue 21: the translated scenario's models, 24x24 canvas
TRANSLATED = [("dense", i) for i in DENSE_IMPLS] + [(a, i) for a in ("cnn", "lenet")
                                                    for i in IMPLS]


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")  # the study's digits (the `study` extra, in `bench`)
    ds = data.load_digits(seed=0)
    return ds.x_train.astype(np.float32), ds.y_train.astype(np.int64)


@pytest.fixture(scope="module")
def translated24():
    pytest.importorskip("sklearn")
    ds = data.load_translated(seed=0, canvas=24)
    return ds.x_train.astype(np.float32), ds.y_train.astype(np.int64)


def _batches(n, bs, seed=0):
    order = np.random.default_rng(seed).permutation(n)
    return [order[i:i + bs] for i in range(0, n, bs)]


def _fastconv_epoch(backend, x, y, seed=0, arch="lenet"):
    model = models.build(arch, x.shape[1:], seed, backend=backend)
    loss_fn = nn.CrossEntropyLoss()
    opt = nn.Adam(model.parameters(), lr=1e-3)

    def epoch():
        with nn.hold_blas():  # as study.models.train: numpy's BLAS by fastconv's threads
            for idx in _batches(len(y), 32):
                opt.zero_grad()
                loss_fn(model.forward(x[idx]), y[idx])
                model.backward(loss_fn.backward(), input_grad=False)  # as torch: none for x
                opt.step()

    return model, epoch


def _torch_epoch(init, x, y, arch="lenet"):
    torch = pytest.importorskip("torch")
    tnet = models.torch_twin(init)  # the same layers, from init's (not yet trained) weights
    opt = torch.optim.Adam(tnet.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def epoch():
        for idx in _batches(len(y), 32):
            it = torch.from_numpy(idx)
            opt.zero_grad()
            loss_fn(tnet(xt[it]), yt[it]).backward()
            opt.step()

    return tnet, epoch


@pytest.mark.quick
@pytest.mark.parametrize(("arch", "impl"), PARAMS)
def test_training_epoch(benchmark, arch, impl, digits, _pinned_threads):
    # numpy's BLAS (the Linear layers) is pinned too: every library gets the same count
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=_pinned_threads, user_api="blas"):
        _training_epoch(benchmark, arch, impl, digits, _pinned_threads)


@pytest.mark.parametrize(("arch", "impl"), OTHERS)
def test_training_epoch_other_models(benchmark, arch, impl, digits, _pinned_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=_pinned_threads, user_api="blas"):
        _training_epoch(benchmark, arch, impl, digits, _pinned_threads)


@pytest.mark.parametrize(("arch", "impl"), TRANSLATED)
def test_training_epoch_translated(benchmark, arch, impl, translated24, _pinned_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=_pinned_threads, user_api="blas"):
        _training_epoch(benchmark, arch, impl, translated24, _pinned_threads, "translated24")


def _training_epoch(benchmark, arch, impl, digits, _pinned_threads, data_name="digits16"):
    x, y = digits
    benchmark.group = f"training_epoch-{arch}-{data_name}"
    benchmark.extra_info.update(workload="training_epoch", shape=f"{arch}-{data_name}",
                                impl=impl,
                                steps=len(_batches(len(y), 32)))
    backend = impl.removesuffix("-1t")
    ref, ref_epoch = _fastconv_epoch("numpy", x, y, arch=arch)
    if impl.startswith("torch"):
        net, epoch = _torch_epoch(ref, x, y, arch)  # from ref's initial weights

        def params():
            return [p.detach().numpy() for p in net.parameters()]
    else:
        net, epoch = _fastconv_epoch(backend, x, y, arch=arch)

        def params():
            return [p.data for p in net.parameters()]
    epoch()
    ref_epoch()
    # the same 45 Adam steps from the same start end at the same weights
    for g, r in zip(params(), ref.parameters()):
        np.testing.assert_allclose(g, r.data, rtol=1e-3, atol=1e-4)

    cpu = []

    def timed():
        c0, t0 = time.process_time(), time.perf_counter()
        epoch()
        cpu.append((time.process_time() - c0) / (time.perf_counter() - t0))

    benchmark.pedantic(timed, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info["cpu_per_wall"] = float(np.median(cpu))
    benchmark.extra_info["threads"] = _pinned_threads
    # more busy CPUs than threads asked for would be oversubscription (0.25: timer noise)
    assert np.median(cpu) <= _pinned_threads + 0.25, (cpu, _pinned_threads, os.cpu_count())
