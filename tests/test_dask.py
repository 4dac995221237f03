"""fastconv.dask: every function against its NumPy namesake on random shapes and chunkings.

Chunkings include chunk sizes that are not multiples of the stride, chunks smaller than
the halo, and one-element chunks; every padding mode and boundary is exercised at the true
image border. Most tests run on Dask's threaded scheduler; a few run on a LocalCluster of
two worker processes on loopback, started once for the module.
"""

from __future__ import annotations

import doctest
import io
import threading

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
pytest.importorskip("distributed")

import dask
from conftest import Unchanged, assert_close

import fastconv
import fastconv.dask as fd
import fastconv.ndimage

CONV_MODES = ("zeros", "reflect", "replicate", "circular")
BOUNDARIES = ("fill", "wrap", "symm")


def _chunks(rng, n, small=False):
    """A random partition of ``n``: sizes 1..n (1..3 with ``small``), uneven."""
    out = []
    while sum(out) < n:
        hi = 3 if small else max(1, n // 2)
        out.append(int(min(n - sum(out), rng.integers(1, hi + 1))))
    return tuple(out)


def _threaded(arr):
    return arr.compute(scheduler="threads", num_workers=2)


def _same(actual, expected):
    """Exactly equal: shape, dtype, values (NaN matches NaN)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    np.testing.assert_array_equal(actual, expected)


# --------------------------------------------------------------------------------------------
# random cases
# --------------------------------------------------------------------------------------------
def _conv_case(seed):
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 1, 2]))
    C = groups * int(rng.integers(1, 3))
    K = groups * int(rng.integers(1, 3))
    kh, kw = (int(v) for v in rng.integers(1, 6, 2))
    stride = tuple(int(v) for v in rng.integers(1, 4, 2))
    dilation = tuple(int(v) for v in rng.integers(1, 3, 2))
    mode = CONV_MODES[seed % 4]
    H = int(rng.integers(dilation[0] * (kh - 1) + 1, 24))
    W = int(rng.integers(dilation[1] * (kw - 1) + 1, 24))
    if seed % 5 == 0 and stride == (1, 1):
        padding = "same"
    else:
        limit = min(H, W) - 1 if mode == "reflect" else min(H, W)
        padding = (int(rng.integers(0, min(4, limit) + 1)), int(rng.integers(0, min(4, limit) + 1)))
    N = int(rng.integers(1, 4))
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((K, C // groups, kh, kw)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32) if seed % 2 else None
    chunks = (_chunks(rng, N), _chunks(rng, C), _chunks(rng, H, seed % 3 == 0),
              _chunks(rng, W, seed % 3 == 1))
    kw_ = dict(bias=b, stride=stride, padding=padding, dilation=dilation, groups=groups,
               padding_mode=mode)
    return x, w, kw_, chunks


@pytest.mark.parametrize("seed", range(40))
def test_conv2d_random(seed):
    x, w, kw, chunks = _conv_case(seed)
    expected = fastconv.conv2d(x, w, **kw)
    unchanged = Unchanged(x, w)
    y = fd.conv2d(da.from_array(x, chunks=chunks), w, **kw)
    assert y.shape == expected.shape and y.dtype == expected.dtype
    assert y.numblocks[1] == 1
    assert_close(_threaded(y), expected, terms=w[0].size)
    unchanged.check()


@pytest.mark.parametrize("mode", CONV_MODES)
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_conv2d_every_padding_mode_with_halo_wider_than_chunks(mode, stride):
    rng = np.random.default_rng(stride)
    x = rng.standard_normal((2, 3, 17, 13))
    w = rng.standard_normal((4, 3, 5, 4))
    kw = dict(stride=stride, padding=(3, 2), dilation=(2, 1), padding_mode=mode)
    y = fd.conv2d(x, w, chunks=(1, 2, 2, 3), **kw)  # halo of 8 rows across 2-row chunks
    assert_close(_threaded(y), fastconv.conv2d(x, w, **kw), terms=w[0].size)


def _pool_case(seed):
    rng = np.random.default_rng(1000 + seed)
    k = tuple(int(v) for v in rng.integers(1, 5, 2))
    stride = None if seed % 7 == 0 else tuple(int(v) for v in rng.integers(1, 4, 2))
    padding = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k)
    ceil_mode = bool(seed % 2)
    N, C = (int(v) for v in rng.integers(1, 4, 2))
    H, W = (int(v) for v in rng.integers(6, 26, 2))
    x = rng.standard_normal((N, C, H, W)).astype(np.float32 if seed % 3 else np.float64)
    chunks = (_chunks(rng, N), _chunks(rng, C), _chunks(rng, H, seed % 4 == 0),
              _chunks(rng, W, seed % 4 == 1))
    return rng, x, k, stride, padding, ceil_mode, chunks


@pytest.mark.parametrize("seed", range(30))
def test_max_pool2d_random_exact(seed):
    rng, x, k, stride, padding, ceil_mode, chunks = _pool_case(seed)
    dilation = tuple(int(v) for v in rng.integers(1, 3, 2))
    if seed % 5 == 0:  # -inf everywhere in places, NaN in others: ties and propagation
        x[..., :3, :] = -np.inf
        x[..., -1, -2] = np.nan
    kw = dict(stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    try:
        expected, idx = fastconv.max_pool2d(x, k, return_indices=True, **kw)
    except ValueError:
        with pytest.raises(ValueError):
            fd.max_pool2d(da.from_array(x, chunks=chunks), k, **kw)
        return
    y, yi = fd.max_pool2d(da.from_array(x, chunks=chunks), k, return_indices=True, **kw)
    got, got_idx = dask.compute(y, yi, scheduler="threads", num_workers=2)
    _same(got, expected)
    _same(got_idx, idx)
    _same(_threaded(fd.max_pool2d(da.from_array(x, chunks=chunks), k, **kw)), expected)


@pytest.mark.parametrize("seed", range(30))
def test_avg_pool2d_random_exact(seed):
    _, x, k, stride, padding, ceil_mode, chunks = _pool_case(seed)
    for count_include_pad, divisor in ((True, None), (False, None), (False, 3)):
        kw = dict(stride=stride, padding=padding, ceil_mode=ceil_mode,
                  count_include_pad=count_include_pad, divisor_override=divisor)
        expected = fastconv.avg_pool2d(x, k, **kw)
        y = fd.avg_pool2d(da.from_array(x, chunks=chunks), k, **kw)
        _same(_threaded(y), expected)


def _signal_case(seed):
    rng = np.random.default_rng(2000 + seed)
    H, W = (int(v) for v in rng.integers(1, 20, 2))
    kh, kw = (int(v) for v in rng.integers(1, 7, 2))
    if seed % 6 == 0:  # a kernel larger than the image: pads wider than it (full mode)
        kh, kw = H + int(rng.integers(0, 4)), W + int(rng.integers(0, 4))
    a = rng.standard_normal((H, W))
    if seed % 4 == 0:
        a = (a * 10).astype(np.int16)
    k = rng.standard_normal((kh, kw)).astype(np.float32)
    return a, k, (_chunks(rng, H, seed % 3 == 0), _chunks(rng, W, seed % 3 == 1))


@pytest.mark.parametrize("func", ["correlate2d", "convolve2d"])
@pytest.mark.parametrize("seed", range(12))
def test_signal_random_every_mode_and_boundary(func, seed):
    a, k, chunks = _signal_case(seed)
    for mode in ("full", "same", "valid"):
        for boundary in BOUNDARIES:
            fill = 1.5 if seed % 2 else 0
            try:
                expected = getattr(fastconv, func)(a, k, mode, boundary, fill)
            except ValueError:
                with pytest.raises(ValueError):
                    getattr(fd, func)(a, k, mode, boundary, fill, chunks=chunks)
                continue
            y = getattr(fd, func)(da.from_array(a, chunks=chunks), k, mode, boundary, fill)
            assert_close(_threaded(y), expected, terms=k.size, scale=10)


# --------------------------------------------------------------------------------------------
# the shape of the graph
# --------------------------------------------------------------------------------------------
def test_output_chunks_follow_input_chunks_aligned_to_the_stride():
    x = da.zeros((1, 1, 20, 20), chunks=(1, 1, 7, 5))
    y = fd.max_pool2d(x, 3, stride=2, padding=1)
    # window o covers [2*o - 1, 2*o + 1]: those ending before 7, in [7, 14), in [14, 20)
    assert y.chunks[2] == (3, 4, 3)
    assert y.chunks[3] == (2, 3, 2, 3)
    # chunks smaller than the stride: some input chunks start no window
    y = fd.conv2d(da.zeros((1, 1, 9, 9), chunks=(1, 1, 1, 9)), np.ones((1, 1, 1, 1)), stride=3)
    assert y.chunks[2] == (1, 1, 1)


def _reads(y, key, xname):
    """The input chunks the task ``key`` of ``y`` reads, directly or through halo strips,
    and the total number of input elements it receives."""
    graph = y.__dask_graph__()
    deps = dict(graph.get_all_dependencies())
    chunks, elements = set(), 0
    for d in deps[key]:
        if d[0] == xname:
            chunks.add(d)
            elements += 100  # whole 10x10 chunks in these tests
        else:  # a strip: (name, n, c, ch, cw, h0, h1, w0, w1)
            (src,) = deps[d]
            chunks.add(src)
            elements += (d[-3] - d[-4]) * (d[-1] - d[-2])
    return chunks, elements


def test_each_block_reads_only_the_halo_its_windows_cover():
    x = da.zeros((1, 1, 100, 100), chunks=(1, 1, 10, 10))
    y = fd.conv2d(x, np.ones((1, 1, 3, 3)), padding=1)
    # windows belong to the chunk they end in: the halo is the 2 rows/columns before it,
    # cut as strips from the neighbours
    chunks, elements = _reads(y, (y.name, 0, 0, 5, 5), x.name)
    assert chunks == {(x.name, 0, 0, h, w) for h in (4, 5) for w in (4, 5)}
    assert elements == 12 * 12
    # circular padding: the last block also reads the chunks at the opposite borders
    yc = fd.conv2d(x, np.ones((1, 1, 3, 3)), padding=1, padding_mode="circular")
    chunks, elements = _reads(yc, (yc.name, 0, 0, 9, 9), x.name)
    assert chunks == {(x.name, 0, 0, h, w) for h in (8, 9, 0) for w in (8, 9, 0)}
    assert elements == 13 * 13
    # a halo wider than a chunk: 1-row chunks, a 7-row window
    x1 = da.zeros((1, 1, 20, 4), chunks=(1, 1, 1, 4))
    y1 = fd.conv2d(x1, np.ones((1, 1, 7, 1)))
    deps = dict(y1.__dask_graph__().get_all_dependencies())
    assert deps[(y1.name, 0, 0, 3, 0)] == {(x1.name, 0, 0, h, 0) for h in range(3, 10)}


def test_conv2d_channel_axis_is_rechunked_and_out_channels_one_chunk():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6, 10, 10)).astype(np.float32)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    y = fd.conv2d(x, w, groups=2, chunks=(2, 1, 5, 5))
    assert y.chunks[:2] == ((2, 2), (8,))
    assert_close(_threaded(y), fastconv.conv2d(x, w, groups=2), terms=27)


def test_graph_construction_does_not_compute_the_input():
    calls = []

    def make(block):
        calls.append(1)
        return block

    x = da.ones((2, 1, 30, 30), chunks=(1, 1, 10, 10)).map_blocks(
        make, meta=np.empty((0, 0, 0, 0)))
    fd.conv2d(x, np.ones((2, 1, 3, 3)), padding=1, padding_mode="reflect")
    fd.max_pool2d(x, 2)
    fd.avg_pool2d(x, 3, 1, 1)
    fd.correlate2d(x[0, 0], np.ones((3, 3)), boundary="wrap")
    assert not calls


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------
def test_numpy_input_with_chunks_and_unbatched_inputs():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 12, 11)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    y = fd.conv2d(x, w, padding="same", chunks=(3, 4, 5))
    assert isinstance(y, da.Array) and y.shape == (2, 12, 11)
    assert_close(_threaded(y), fastconv.conv2d(x, w, padding="same"), terms=27)
    vals, idx = fd.max_pool2d(x, 3, 2, 1, return_indices=True, chunks=(1, 5, 4))
    ev, ei = fastconv.max_pool2d(x, 3, 2, 1, return_indices=True)
    _same(_threaded(vals), ev)
    _same(_threaded(idx), ei)
    _same(_threaded(fd.avg_pool2d(x, 2, chunks=(2, 5, 5))), fastconv.avg_pool2d(x, 2))
    # no chunks: "auto"
    assert_close(_threaded(fd.conv2d(x, w)), fastconv.conv2d(x, w), terms=27)
    # a dask input rechunked by chunks=
    z = fd.avg_pool2d(da.from_array(x), 2, chunks=(1, 3, 3))
    assert z.chunks[0] == (1, 1, 1)


def test_valid_mode_with_the_larger_kernel_swaps_as_scipy():
    rng = np.random.default_rng(2)
    a, k = rng.standard_normal((3, 4)), rng.standard_normal((5, 6))
    for func in ("correlate2d", "convolve2d"):
        y = getattr(fd, func)(a, k, "valid", chunks=2)
        assert_close(_threaded(y), getattr(fastconv, func)(a, k, "valid"), terms=k.size)


def test_dtypes_follow_fastconv():
    x = da.ones((1, 1, 8, 8), dtype=np.int32, chunks=4)
    assert fd.conv2d(x, np.ones((1, 1, 3, 3), np.float32)).dtype == np.float64
    assert fd.max_pool2d(x.astype(np.float32), 2).dtype == np.float32
    a = da.ones((6, 6), dtype=np.int8, chunks=4)
    y = fd.correlate2d(a, np.ones((2, 2), np.float32), boundary="fill", fillvalue=0.5)
    _same(_threaded(y), fastconv.correlate2d(np.ones((6, 6), np.int8),
                                             np.ones((2, 2), np.float32), fillvalue=0.5))


@pytest.mark.parametrize("call, exc", [
    (lambda x: fd.conv2d(x, np.ones((1, 1, 3, 3)), padding_mode="mirror"), ValueError),
    (lambda x: fd.conv2d(x, np.ones((1, 2, 3, 3))), ValueError),
    (lambda x: fd.conv2d(x, np.ones((1, 1, 3, 3)), padding=40, padding_mode="reflect"),
     ValueError),
    (lambda x: fd.conv2d(x, np.ones((1, 1, 3, 3)), stride=0), ValueError),
    (lambda x: fd.conv2d(x, np.ones((1, 1, 3, 3)), stride="2"), TypeError),
    (lambda x: fd.conv2d(x, np.ones((1, 1, 3, 3)), padding="same", stride=2), ValueError),
    (lambda x: fd.conv2d(x[0, 0], np.ones((1, 1, 3, 3))), ValueError),
    (lambda x: fd.conv2d(x, np.ones((1, 1, 40, 3))), ValueError),
    (lambda x: fd.conv2d(x, np.ones((1, 1, 3, 3)), threads=0), ValueError),
    (lambda x: fd.conv2d(x, np.ones((1, 1, 3, 3)), threads=True), TypeError),
    (lambda x: fd.conv2d(x.astype(np.complex64), np.ones((1, 1, 3, 3))), TypeError),
    (lambda x: fd.max_pool2d(x, 2, padding=2), ValueError),
    (lambda x: fd.max_pool2d(x, 2, ceil_mode=1), TypeError),
    (lambda x: fd.max_pool2d(x, 2, return_indices="yes"), TypeError),
    (lambda x: fd.avg_pool2d(x, 40), ValueError),
    (lambda x: fd.avg_pool2d(x, 2, count_include_pad=None), TypeError),
    (lambda x: fd.correlate2d(x, np.ones((3, 3))), ValueError),
    (lambda x: fd.correlate2d(x[0, 0], np.ones((3, 3)), boundary="mirror"), ValueError),
    (lambda x: fd.convolve2d(x[0, 0], np.ones((3, 3)), mode="nope"), ValueError),
    (lambda x: fd.convolve2d(x[0, 0], np.ones((3, 40)), mode="valid"), ValueError),
    (lambda x: fd.correlate2d(x[0, 0], np.ones((3, 3)), fillvalue="a"), TypeError),
])
def test_errors_are_fastconvs_and_raised_eagerly(call, exc):
    x = da.ones((1, 1, 30, 30), chunks=10)
    with pytest.raises(exc):
        call(x)


# --------------------------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------------------------
def _recording(monkeypatch, name):
    seen = []
    original = getattr(fastconv, name)

    def wrapper(*args, **kwargs):
        seen.append((threading.get_ident(), fastconv.get_num_threads()))
        return original(*args, **kwargs)

    monkeypatch.setattr(fastconv, name, wrapper)
    return seen


@pytest.mark.parametrize("threads, expected", [(None, 1), (2, 2)])
def test_each_task_runs_with_threads_and_the_setting_is_restored(monkeypatch, threads,
                                                                  expected):
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(3)
    try:
        seen = _recording(monkeypatch, "avg_pool2d")
        y = fd.avg_pool2d(da.ones((4, 1, 20, 20), chunks=(1, 1, 10, 10)), 2, threads=threads)
        n_probe = len(seen)
        _threaded(y)
        task_counts = {n for _, n in seen[n_probe:]}
        assert len(seen) - n_probe == y.npartitions
        assert task_counts == {expected}
        assert fastconv.get_num_threads() == 3
    finally:
        fastconv.set_num_threads(before)


def test_task_threads_is_reentrant_across_threads():
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(4)
    try:
        inside = threading.Barrier(2)
        seen = []

        def task():
            with fd._task_threads(1):
                inside.wait()
                seen.append(fastconv.get_num_threads())
                inside.wait()

        ts = [threading.Thread(target=task) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert seen == [1, 1]
        assert fastconv.get_num_threads() == 4
    finally:
        fastconv.set_num_threads(before)


def test_doctests():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(fd, "fastconv.dask") if t.examples]
    out = io.StringIO()
    with dask.config.set(scheduler="threads"):
        for t in tests:
            runner.run(t, out=out.write)
    assert runner.summarize(verbose=False).failed == 0, out.getvalue()
    assert {t.name.rsplit(".", 1)[-1] for t in tests} >= set(fd.__all__)


# --------------------------------------------------------------------------------------------
# a LocalCluster of two worker processes
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def test_distributed_every_function(client):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 2, 19, 17)).astype(np.float32)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    xd = da.from_array(x, chunks=(1, 2, 5, 6))
    conv = fd.conv2d(xd, w, stride=2, padding=2, padding_mode="circular")
    mp, mi = fd.max_pool2d(xd, 3, 2, 1, ceil_mode=True, return_indices=True)
    ap = fd.avg_pool2d(xd, 3, 2, 1, count_include_pad=False)
    a = x[0, 0].astype(np.float64)
    cr = fd.correlate2d(a, w[0, 0], "same", "symm", chunks=(4, 7))
    cv = fd.convolve2d(a, w[0, 0], "full", "fill", 2.0, chunks=(4, 7))
    gf = fd.gaussian_filter(a, 1.5, mode="wrap", chunks=(4, 7))
    got = client.compute([conv, mp, mi, ap, cr, cv, gf], sync=True)
    assert_close(got[0], fastconv.conv2d(x, w, stride=2, padding=2, padding_mode="circular"),
                 terms=18)
    ev, ei = fastconv.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)
    _same(got[1], ev)
    _same(got[2], ei)
    _same(got[3], fastconv.avg_pool2d(x, 3, 2, 1, count_include_pad=False))
    assert_close(got[4], fastconv.correlate2d(a, w[0, 0], "same", "symm"), terms=9)
    assert_close(got[5], fastconv.convolve2d(a, w[0, 0], "full", "fill", 2.0), terms=9)
    assert_close(got[6], fastconv.ndimage.gaussian_filter(a, 1.5, mode="wrap"), terms=32)


def _worker_threads():
    import fastconv

    return fastconv.get_num_threads()


def test_distributed_tasks_restore_the_workers_thread_count(client):
    before = client.run(_worker_threads)
    y = fd.conv2d(da.ones((4, 1, 16, 16), chunks=(1, 1, 8, 8)), np.ones((1, 1, 3, 3)),
                  threads=1)
    client.compute(y, sync=True)
    assert client.run(_worker_threads) == before


# --------------------------------------------------------------------------------------------
# design rules
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", fastconv.backends())
def test_backend_is_passed_to_every_task(backend):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 2, 11, 9))
    w = rng.standard_normal((3, 2, 3, 3))
    y = fd.conv2d(x, w, padding=1, padding_mode="replicate", backend=backend, chunks=(1, 2, 4, 4))
    assert_close(_threaded(y), fastconv.conv2d(x, w, padding=1, padding_mode="replicate"),
                 terms=18)
    _same(_threaded(fd.max_pool2d(x, 3, 2, 1, backend=backend, chunks=(1, 1, 4, 4))),
          fastconv.max_pool2d(x, 3, 2, 1))


def test_only_the_public_api_is_imported():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(fd))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert not (node.module or "").startswith("fastconv") and node.level == 0, \
                ast.dump(node)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id == "fastconv":
            assert node.attr in fastconv.__all__, node.attr
