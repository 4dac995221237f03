"""fastconv.dask: larger-than-memory runs, on one process and on a LocalCluster of 2 workers.

Two workloads, each on Dask's threaded scheduler (one process, 2 threads) and on a
``LocalCluster`` of 2 worker processes with 1 thread each (loopback, started once for the
module), every task running fastconv with 1 thread:

* ``dask-image16384-5x5``: a 16384 x 16384 float32 image (1 GiB), generated chunk by chunk
  by ``dask.array.random`` (never whole in the driver), through a 5x5 filter
  (``correlate2d(mode="same")``), reduced to its sum; with 1024- and 2048-square chunks.
* ``dask-digits4096-conv6x3x3``: 4096 digits-sized images (1 x 16 x 16) through the study's
  first conv layer (6 filters 3x3, padding 0), in batch chunks of 512; the result is
  gathered in the driver.

``extra_info`` records, besides the time, the array and chunk sizes and each process's peak
memory: its resident set sampled every 5 ms during the timed run (``peak_rss_mb``), the rise
over its size just before (``peak_rise_mb``, what the computation held), and
``getrusage`` max RSS. The tests assert that the rise stays far below the array's size.
Not in the ``quick`` subset.
"""

from __future__ import annotations

import resource
import threading
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")

import fastconv
import fastconv.dask as fd

IMAGE = 16384
IMAGE_CHUNKS = (1024, 2048)
FILTER = 5
DIGITS, DIGITS_CHUNK = 4096, 512
SCHEDULERS = ("threads", "cluster-2w")


# --------------------------------------------------------------------------------------------
# memory: a sampler per process (the driver for the threaded scheduler, each worker else)
# --------------------------------------------------------------------------------------------
_sampler = {}


def _sampler_start():
    proc = psutil.Process()
    state = {"stop": False, "base": proc.memory_info().rss}
    state["peak"] = state["base"]

    def run():
        while not state["stop"]:
            state["peak"] = max(state["peak"], proc.memory_info().rss)
            time.sleep(0.005)

    state["thread"] = threading.Thread(target=run, daemon=True)
    state["thread"].start()
    _sampler["state"] = state


def _sampler_stop():
    state = _sampler.pop("state")
    state["stop"] = True
    state["thread"].join()
    mb = 2**20
    return {"peak_rss_mb": round(state["peak"] / mb, 1),
            "peak_rise_mb": round((state["peak"] - state["base"]) / mb, 1),
            "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def _run(benchmark, scheduler, request, collection, rounds):
    """Time ``collection.compute()`` on ``scheduler``; return (result, per-process memory)."""
    if scheduler == "threads":
        def go():
            return collection.compute(scheduler="threads", num_workers=2)

        _sampler_start()
        res = benchmark.pedantic(go, rounds=rounds, iterations=1)
        return res, {"driver": _sampler_stop()}
    client = request.getfixturevalue("client")
    client.run(_sampler_start)
    res = benchmark.pedantic(lambda: client.compute(collection, sync=True), rounds=rounds,
                             iterations=1)
    mem = client.run(_sampler_stop)
    return res, {f"worker{i}": m for i, m in enumerate(mem.values())}


def _record(benchmark, impl, mem, **info):
    benchmark.extra_info.update(impl=impl, **info)
    for who, m in mem.items():
        for k, v in m.items():
            benchmark.extra_info[f"{who}_{k}"] = v
    benchmark.extra_info["max_peak_rise_mb"] = max(m["peak_rise_mb"] for m in mem.values())


# --------------------------------------------------------------------------------------------
# a 16384^2 image through a 5x5 filter
# --------------------------------------------------------------------------------------------
def _image(chunk):
    return da.random.default_rng(0).standard_normal((IMAGE, IMAGE), dtype=np.float32,
                                                    chunks=chunk)


def _check_image(img, y, compute):
    """Windows of the result across chunk corners, and at the image's corner, against
    fastconv on the same pixels (computed from the same generator's chunks)."""
    k = np.arange(FILTER * FILTER, dtype=np.float32).reshape(FILTER, FILTER) / 300
    h = FILTER // 2
    for r0, c0 in [(IMAGE_CHUNKS[0] - 6, IMAGE_CHUNKS[1] - 5), (0, 0)]:
        lo_r, lo_c = max(r0 - h, 0), max(c0 - h, 0)
        pix, got = compute(img[lo_r:r0 + 12 + h, lo_c:c0 + 12 + h], y[r0:r0 + 12, c0:c0 + 12])
        exp = fastconv.correlate2d(pix, k, "same")[r0 - lo_r:r0 - lo_r + 12,
                                                   c0 - lo_c:c0 - lo_c + 12]
        np.testing.assert_allclose(got, exp, rtol=1e-4, atol=1e-4)
    return k


@pytest.mark.parametrize("chunk", IMAGE_CHUNKS)
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_image_5x5(benchmark, request, scheduler, chunk):
    benchmark.group = f"dask-image{IMAGE}-{FILTER}x{FILTER}"
    img = _image(chunk)
    k = np.arange(FILTER * FILTER, dtype=np.float32).reshape(FILTER, FILTER) / 300
    y = fd.correlate2d(img, k, mode="same")
    if scheduler == "threads":
        def compute(*cs):
            return da.compute(*cs, scheduler="threads", num_workers=2)
    else:
        client = request.getfixturevalue("client")

        def compute(*cs):
            return client.compute(list(cs), sync=True)
    _check_image(img, y, compute)  # and warms up every process
    total, mem = _run(benchmark, scheduler, request, y.sum(), rounds=1)
    assert np.isfinite(total)
    array_mb = IMAGE * IMAGE * 4 / 2**20
    chunk_mb = chunk * chunk * 4 / 2**20
    _record(benchmark, f"fastconv.dask {scheduler} chunk {chunk}", mem,
            gflop=2 * IMAGE * IMAGE * FILTER * FILTER / 1e9, array_mb=array_mb,
            chunk_mb=chunk_mb, n_chunks=int(img.npartitions))
    rise = benchmark.extra_info["max_peak_rise_mb"]
    benchmark.extra_info["peak_rise_in_chunks"] = round(rise / chunk_mb, 1)
    assert rise < array_mb / 2, f"a process held {rise} MB of a {array_mb} MB array"


# --------------------------------------------------------------------------------------------
# 4096 digits through the study's first conv layer
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_digits_first_conv_layer(benchmark, request, scheduler):
    benchmark.group = f"dask-digits{DIGITS}-conv6x3x3"
    x = da.random.default_rng(1).random((DIGITS, 1, 16, 16), dtype=np.float32,
                                        chunks=(DIGITS_CHUNK, 1, 16, 16))
    w = np.random.default_rng(2).standard_normal((6, 1, 3, 3), dtype=np.float32)
    b = np.zeros(6, np.float32)
    xs = x.persist(scheduler="threads") if scheduler == "threads" else None
    if scheduler != "threads":
        xs = request.getfixturevalue("client").persist(x)
        distributed.wait(xs)
    y = fd.conv2d(xs, w, b, padding=0)
    expected = fastconv.conv2d(xs.compute(), w, b)
    if scheduler == "threads":  # checked, and every process warmed up, before the timing
        warm = y.compute(scheduler="threads", num_workers=2)
    else:
        warm = request.getfixturevalue("client").compute(y, sync=True)
    np.testing.assert_allclose(warm, expected, rtol=1e-5, atol=1e-5)
    y_np, mem = _run(benchmark, scheduler, request, y, rounds=5)
    np.testing.assert_array_equal(y_np, warm)
    _record(benchmark, f"fastconv.dask {scheduler}", mem,
            gflop=2 * DIGITS * 6 * 14 * 14 * 9 / 1e9, array_mb=x.nbytes / 2**20,
            chunk_mb=DIGITS_CHUNK * 16 * 16 * 4 / 2**20, n_chunks=int(x.npartitions))
