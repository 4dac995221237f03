"""fastconv.dask in 3-D and for conv_transpose2d (issue 17), against the in-memory functions.

conv3d, max_pool3d, avg_pool3d and conv_transpose2d of a chunked Dask array over random
chunkings (uneven chunks, one-element chunks, chunks smaller than the halo or the stride),
strides, paddings, dilations, groups, output paddings, ceil modes, padding modes, dtypes
and unbatched inputs; against the NumPy call and against torch. The pools are exact (values
and indices); the convolutions agree up to the rounding of a sum.

"""

from __future__ import annotations

import doctest
import io

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
torch = pytest.importorskip("torch")
F = torch.nn.functional

import dask
from conftest import Unchanged, assert_close
# tests/test_dask.py's helpers: random chunkings, the threaded scheduler, exact equality
from test_dask import CONV_MODES, _chunks, _same, _threaded

import fastconv
import fastconv.dask as fd

def _ints(rng, lo, hi, n=3):
    return tuple(int(v) for v in rng.integers(lo, hi, n))


# --------------------------------------------------------------------------------------------
# conv3d
# --------------------------------------------------------------------------------------------
def _conv3d_case(seed):
    rng = np.random.default_rng(17_000 + seed)
    groups = int(rng.choice([1, 1, 2]))
    C = groups * int(rng.integers(1, 3))
    K = groups * int(rng.integers(1, 3))
    ks = _ints(rng, 1, 4)
    stride = _ints(rng, 1, 3)
    dilation = _ints(rng, 1, 3)
    mode = CONV_MODES[seed % 4]
    sizes = tuple(int(rng.integers(d * (k - 1) + 1, 11)) for k, d in zip(ks, dilation))
    if seed % 5 == 0 and stride == (1, 1, 1):
        padding = "same"
    elif seed % 5 == 1:
        padding = "valid"
    else:
        padding = tuple(int(rng.integers(0, min(3, n - (mode == "reflect")) + 1))
                        for n in sizes)
    N = int(rng.integers(1, 3))
    dtype = (np.float32, np.float64)[seed % 2]
    x = rng.standard_normal((N, C) + sizes).astype(dtype)
    w = rng.standard_normal((K, C // groups) + ks).astype(dtype)
    b = rng.standard_normal(K).astype(dtype) if seed % 3 else None
    chunks = (_chunks(rng, N), _chunks(rng, C)) + tuple(
        _chunks(rng, n, (seed + i) % 3 == 0) for i, n in enumerate(sizes))
    kw = dict(bias=b, stride=stride, padding=padding, dilation=dilation, groups=groups,
              padding_mode=mode)
    return x, w, kw, chunks


@pytest.mark.parametrize("seed", range(24))
def test_conv3d_random(seed):
    x, w, kw, chunks = _conv3d_case(seed)
    expected = fastconv.conv3d(x, w, **kw)
    unchanged = Unchanged(x, w)
    y = fd.conv3d(da.from_array(x, chunks=chunks), w, **kw)
    assert y.shape == expected.shape and y.dtype == expected.dtype
    assert y.numblocks[1] == 1
    assert y.numblocks[2:] == tuple(len(c) for c in y.chunks[2:])
    assert_close(_threaded(y), expected, terms=w[0].size)
    unchanged.check()


@pytest.mark.parametrize("mode", CONV_MODES)
def test_conv3d_halo_wider_than_chunks_against_torch(mode):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 11, 8))
    w = rng.standard_normal((4, 3, 3, 4, 2))
    b = rng.standard_normal(4)
    kw = dict(stride=(1, 2, 3), padding=(2, 3, 1), dilation=(2, 1, 3))
    # a halo of 4 planes and of 3 rows across 1- and 2-wide chunks
    y = _threaded(fd.conv3d(x, w, b, chunks=(1, 2, 1, 2, 3), padding_mode=mode, **kw))
    assert_close(y, fastconv.conv3d(x, w, b, padding_mode=mode, **kw), terms=w[0].size)
    t = torch.from_numpy(x)
    if mode != "zeros":
        t = F.pad(t, [1, 1, 3, 3, 2, 2], mode={"circular": "circular", "reflect": "reflect",
                                                 "replicate": "replicate"}[mode])
        ref = F.conv3d(t, torch.from_numpy(w), torch.from_numpy(b), kw["stride"], 0,
                       kw["dilation"])
    else:
        ref = F.conv3d(t, torch.from_numpy(w), torch.from_numpy(b), **kw)
    assert_close(y, ref.numpy(), terms=w[0].size)


# --------------------------------------------------------------------------------------------
# 3-D pools
# --------------------------------------------------------------------------------------------
def _pool3d_case(seed):
    rng = np.random.default_rng(18_000 + seed)
    k = _ints(rng, 1, 4)
    if seed % 7 == 0:
        stride = None
    elif seed % 7 == 1:
        stride = int(rng.integers(1, 4))
    else:
        stride = _ints(rng, 1, 4)
    padding = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k)
    ceil_mode = bool(seed % 2)
    N, C = _ints(rng, 1, 3, 2)
    sizes = _ints(rng, 4, 12)
    x = rng.standard_normal((N, C) + sizes).astype(np.float32 if seed % 3 else np.float64)
    chunks = (_chunks(rng, N), _chunks(rng, C)) + tuple(
        _chunks(rng, n, (seed + i) % 4 == 0) for i, n in enumerate(sizes))
    return rng, x, k, stride, padding, ceil_mode, chunks


@pytest.mark.parametrize("seed", range(20))
def test_max_pool3d_random_exact(seed):
    rng, x, k, stride, padding, ceil_mode, chunks = _pool3d_case(seed)
    dilation = _ints(rng, 1, 3)
    if seed % 5 == 0:  # -inf planes and a NaN: ties and propagation
        x[..., :2, :, :] = -np.inf
        x[..., -1, -2, 1] = np.nan
    kw = dict(stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    try:
        expected, idx = fastconv.max_pool3d(x, k, return_indices=True, **kw)
    except ValueError:
        with pytest.raises(ValueError):
            fd.max_pool3d(da.from_array(x, chunks=chunks), k, **kw)
        return
    y, yi = fd.max_pool3d(da.from_array(x, chunks=chunks), k, return_indices=True, **kw)
    got, got_idx = dask.compute(y, yi, scheduler="threads", num_workers=2)
    _same(got, expected)
    _same(got_idx, idx)
    _same(_threaded(fd.max_pool3d(da.from_array(x, chunks=chunks), k, **kw)), expected)


@pytest.mark.parametrize("seed", range(20))
def test_avg_pool3d_random_exact(seed):
    _, x, k, stride, padding, ceil_mode, chunks = _pool3d_case(seed)
    for count_include_pad, divisor in ((True, None), (False, None), (True, 5)):
        kw = dict(stride=stride, padding=padding, ceil_mode=ceil_mode,
                  count_include_pad=count_include_pad, divisor_override=divisor)
        expected = fastconv.avg_pool3d(x, k, **kw)
        y = fd.avg_pool3d(da.from_array(x, chunks=chunks), k, **kw)
        _same(_threaded(y), expected)


def test_pools3d_against_torch_with_one_element_chunks():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 2, 7, 6, 9)).astype(np.float32)
    kw = dict(kernel_size=(3, 2, 3), stride=(2, 1, 2), padding=(1, 0, 1), ceil_mode=True)
    v, i = dask.compute(*fd.max_pool3d(x, dilation=(1, 2, 1), return_indices=True,
                                       chunks=(1, 1, 1, 2, 1), **kw), scheduler="threads")
    tv, ti = F.max_pool3d(torch.from_numpy(x), dilation=(1, 2, 1), return_indices=True, **kw)
    _same(v, tv.numpy())
    _same(i, ti.numpy())
    a = _threaded(fd.avg_pool3d(x, count_include_pad=False, chunks=(2, 1, 1, 1, 2), **kw))
    ta = F.avg_pool3d(torch.from_numpy(x), count_include_pad=False, **kw).numpy()
    np.testing.assert_allclose(a, ta, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------------------------
# conv_transpose2d
# --------------------------------------------------------------------------------------------
def _transpose_case(seed):
    rng = np.random.default_rng(19_000 + seed)
    groups = int(rng.choice([1, 1, 2]))
    C = groups * int(rng.integers(1, 3))
    Kg = int(rng.integers(1, 3))
    ks = _ints(rng, 1, 5, 2)
    stride = _ints(rng, 1, 4, 2)
    dilation = _ints(rng, 1, 3, 2)
    # output_padding < max(stride, dilation); padding up to the kernel's reach and beyond
    output_padding = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
    padding = tuple(int(rng.integers(0, d * (k - 1) + 2)) for k, d in zip(ks, dilation))
    N = int(rng.integers(1, 3))
    sizes = _ints(rng, 1, 14, 2)
    dtype = (np.float32, np.float64)[seed % 2]
    x = rng.standard_normal((N, C) + sizes).astype(dtype)
    w = rng.standard_normal((C, Kg) + ks).astype(dtype)
    b = rng.standard_normal(Kg * groups).astype(dtype) if seed % 3 else None
    chunks = (_chunks(rng, N), _chunks(rng, C)) + tuple(
        _chunks(rng, n, (seed + i) % 3 == 0) for i, n in enumerate(sizes))
    kw = dict(bias=b, stride=stride, padding=padding, output_padding=output_padding,
              groups=groups, dilation=dilation)
    return x, w, kw, chunks


@pytest.mark.parametrize("seed", range(40))
def test_conv_transpose2d_random(seed):
    x, w, kw, chunks = _transpose_case(seed)
    try:
        expected = fastconv.conv_transpose2d(x, w, **kw)
    except ValueError:  # an empty output: the Dask call refuses it too, before any graph
        with pytest.raises(ValueError):
            fd.conv_transpose2d(da.from_array(x, chunks=chunks), w, **kw)
        return
    unchanged = Unchanged(x, w)
    y = fd.conv_transpose2d(da.from_array(x, chunks=chunks), w, **kw)
    assert y.shape == expected.shape and y.dtype == expected.dtype
    assert y.numblocks[1] == 1
    terms = w.shape[0] // kw["groups"] * w.shape[2] * w.shape[3]
    assert_close(_threaded(y), expected, terms=terms)
    unchanged.check()


@pytest.mark.parametrize("stride, padding, output_padding, dilation", [
    (2, 1, 0, 1), (2, 1, 1, 1), (3, 0, 2, 1), (1, 2, 0, 2), (2, 3, 1, 2), (4, 0, 3, 1),
])
def test_conv_transpose2d_against_torch_with_small_chunks(stride, padding, output_padding,
                                                          dilation):
    rng = np.random.default_rng(stride * 10 + padding)
    x = rng.standard_normal((2, 4, 7, 5)).astype(np.float32)
    w = rng.standard_normal((4, 3, 4, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, groups=2,
              dilation=dilation)
    y = _threaded(fd.conv_transpose2d(x, w, b, chunks=(1, 1, 1, 2), **kw))
    ref = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                             **kw).numpy()
    assert_close(y, ref, terms=8)


def test_conv_transpose2d_blocks_no_input_reaches_hold_the_bias():
    # stride 4, a 1-tall kernel, padding 2: outputs 0 and 1 lie in a gap between windows,
    # and with 1-row chunks they are a block of their own, which reads no input
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 2, 6, 5)).astype(np.float32)
    w = rng.standard_normal((2, 3, 1, 2)).astype(np.float32)
    b = np.arange(1, 4, dtype=np.float32)
    kw = dict(stride=(4, 3), padding=(2, 1), output_padding=(3, 2))
    y = fd.conv_transpose2d(x, w, b, chunks=(1, 2, 1, 2), **kw)
    assert y.chunks[2][0] == 2
    got = _threaded(y)
    np.testing.assert_array_equal(got[0, :, :2], np.broadcast_to(b[:, None, None], (3, 2, 14)))
    ref = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                             **kw).numpy()
    assert_close(got, ref, terms=4)
    assert_close(got, fastconv.conv_transpose2d(x, w, b, **kw), terms=4)


def test_conv_transpose2d_blocks_gather_from_the_chunks_before_them():
    x = da.zeros((1, 1, 40, 40), chunks=(1, 1, 10, 10))
    y = fd.conv_transpose2d(x, np.ones((1, 1, 4, 4)), stride=2, padding=1)
    # output block j starts where chunk j's first pixel lands: 2 * 10j - 1
    assert y.chunks[2] == (19, 20, 20, 21)
    deps = dict(y.__dask_graph__().get_all_dependencies())
    chunks, rows = set(), 0
    for d in deps[(y.name, 0, 0, 2, 2)]:
        if d[0] == x.name:
            chunks.add(d)
        else:  # a strip (name, n, c, ch, cw, h0, h1, w0, w1), cut from one chunk
            (src,) = deps[d]
            chunks.add(src)
            rows += 1
    # outputs 39..58 read inputs 19..29: their own chunk and one row/column before it
    assert chunks == {(x.name, 0, 0, h, w) for h in (1, 2) for w in (1, 2)}
    assert rows == 3


# --------------------------------------------------------------------------------------------
# every function: unbatched, NumPy inputs, dtypes, empty batch, lazy graphs
# --------------------------------------------------------------------------------------------
def _calls():
    w3 = np.arange(2 * 3 * 27, dtype=np.float32).reshape(2, 3, 3, 3, 3) / 100
    wt = np.arange(3 * 2 * 9, dtype=np.float32).reshape(3, 2, 3, 3) / 10
    return {
        "conv3d": (fd.conv3d, lambda: fastconv.conv3d,
                   dict(weight=w3, stride=(1, 2, 1), padding=1), 3),
        "max_pool3d": (fd.max_pool3d, lambda: fastconv.max_pool3d,
                       dict(kernel_size=2, padding=1, return_indices=True), 3),
        "avg_pool3d": (fd.avg_pool3d, lambda: fastconv.avg_pool3d,
                       dict(kernel_size=(2, 3, 2), stride=1, ceil_mode=True), 3),
        "conv_transpose2d": (fd.conv_transpose2d, lambda: fastconv.conv_transpose2d,
                             dict(weight=wt, stride=2, padding=1, output_padding=1), 2),
    }


def _as_tuple(r):
    return r if isinstance(r, tuple) else (r,)


@pytest.mark.parametrize("name", ["conv3d", "max_pool3d", "avg_pool3d", "conv_transpose2d"])
def test_unbatched_numpy_and_int_inputs(name):
    dask_fn, fn, kw, nd = _calls()[name]
    rng = np.random.default_rng(1)
    shape = (3,) + (5, 7, 6)[:nd] if nd == 3 else (3, 6, 5)
    for x in (rng.standard_normal(shape).astype(np.float32),
              rng.integers(-50, 50, shape).astype(np.int32)):  # int32 computes in float64
        expected = _as_tuple(fn()(x, **kw))
        got = dask.compute(*_as_tuple(dask_fn(x, chunks=(3,) + (2,) * nd, **kw)),
                           scheduler="threads")
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert g.shape == e.shape and g.dtype == e.dtype, (g.shape, e.shape, g.dtype)
            if e.dtype.kind == "i":
                _same(g, e)
            else:
                assert_close(g, e, terms=54)


@pytest.mark.parametrize("name", ["conv3d", "max_pool3d", "avg_pool3d", "conv_transpose2d"])
def test_numpy_layouts(name):
    dask_fn, fn, kw, nd = _calls()[name]
    base = np.random.default_rng(4).standard_normal((2, 3) + (5, 6, 7)[:nd])
    fortran = np.asfortranarray(base)
    negative = base[:, :, ::-1].copy()[:, :, ::-1]
    strided = np.repeat(base, 2, axis=-1)[..., ::2]
    readonly = base.copy()
    readonly.flags.writeable = False
    for x in (fortran, negative, strided, readonly):
        expected = _as_tuple(fn()(x, **kw))
        got = dask.compute(*_as_tuple(dask_fn(x, chunks=(1, 3) + (3,) * nd, **kw)),
                           scheduler="threads")
        for g, e in zip(got, expected):
            if e.dtype.kind == "i":
                _same(g, e)
            else:
                assert_close(g, e, terms=54)


@pytest.mark.parametrize("name", ["conv3d", "max_pool3d", "avg_pool3d", "conv_transpose2d"])
def test_empty_batch_and_lazy_graph(name):
    dask_fn, fn, kw, nd = _calls()[name]
    shape = (3,) + (6, 5, 4)[:nd]
    empty = np.zeros((0,) + shape, np.float32)
    for g, e in zip(_as_tuple(dask_fn(da.from_array(empty, chunks=1), **kw)),
                    _as_tuple(fn()(empty, **kw))):
        assert g.shape == e.shape and _threaded(g).shape == e.shape
    # building the graph does not compute the input
    calls = []

    def source(block):
        calls.append(1)
        return block

    x = da.ones((2,) + shape, chunks=2, dtype=np.float32).map_blocks(
        source, meta=np.empty((0,) * (nd + 2), np.float32))
    out = _as_tuple(dask_fn(x, **kw))
    assert not calls
    assert_close(_threaded(out[0]), _as_tuple(fn()(np.ones((2,) + shape, np.float32),
                                                   **kw))[0], terms=54)
    assert calls


def test_channel_axis_rechunked_for_the_convolutions():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 5, 6, 7)).astype(np.float32)
    w = rng.standard_normal((6, 2, 2, 2, 2)).astype(np.float32)
    y = fd.conv3d(x, w, groups=2, chunks=(1, 1, 3, 3, 3))
    assert y.chunks[:2] == ((1, 1), (6,))
    assert_close(_threaded(y), fastconv.conv3d(x, w, groups=2), terms=16)
    wt = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    yt = fd.conv_transpose2d(x[:, :, 0], wt, groups=2, chunks=(1, 1, 2, 5))
    assert yt.chunks[:2] == ((1, 1), (6,))
    assert_close(_threaded(yt), fastconv.conv_transpose2d(x[:, :, 0], wt, groups=2), terms=8)


def test_backend_and_threads_reach_every_task(monkeypatch):
    seen = []
    real = fastconv.conv3d

    def spy(*args, backend=None, **kw):
        seen.append((backend, fastconv.get_num_threads()))
        return real(*args, backend=backend, **kw)

    monkeypatch.setattr(fastconv, "conv3d", spy)
    x = np.ones((1, 1, 6, 6, 6), np.float32)
    y = fd.conv3d(x, np.ones((1, 1, 2, 2, 2), np.float32), backend="numpy", threads=2,
                  chunks=3)
    n_probe = len(seen)
    _threaded(y)
    assert len(seen) == n_probe + 8
    assert all(s == ("numpy", 2) for s in seen[n_probe:])


@pytest.mark.parametrize("backend", fastconv.backends())
@pytest.mark.parametrize("name", ["conv3d", "max_pool3d", "avg_pool3d", "conv_transpose2d"])
def test_every_backend(name, backend):
    dask_fn, fn, kw, nd = _calls()[name]
    x = np.random.default_rng(6).standard_normal((2, 3) + (7, 6, 5)[:nd]).astype(np.float32)
    expected = _as_tuple(fn()(x, backend=backend, **kw))
    got = dask.compute(*_as_tuple(dask_fn(x, backend=backend, chunks=(1, 3) + (3,) * nd,
                                          **kw)), scheduler="threads")
    for g, e in zip(got, expected):
        if e.dtype.kind == "i" or name != "conv3d" and name != "conv_transpose2d":
            _same(g, e)
        else:
            assert_close(g, e, terms=54)


def test_distributed_cluster():
    """On a LocalCluster: worker processes, or (while stand-ins are patched into this
    process only) worker threads of this process."""
    distributed = pytest.importorskip("distributed")
    rng = np.random.default_rng(7)
    x3 = rng.standard_normal((2, 2, 7, 8, 6)).astype(np.float32)
    x2 = x3[:, :, 0]
    w3 = rng.standard_normal((3, 2, 3, 3, 3)).astype(np.float32)
    wt = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    chunks3, chunks2 = (1, 2, 3, 4, 3), (1, 2, 3, 4)
    lazy = [fd.conv3d(x3, w3, padding=1, padding_mode="circular", chunks=chunks3),
            *fd.max_pool3d(x3, 3, 2, 1, ceil_mode=True, return_indices=True, chunks=chunks3),
            fd.avg_pool3d(x3, 2, 1, 1, count_include_pad=False, chunks=chunks3),
            fd.conv_transpose2d(x2, wt, stride=2, padding=1, chunks=chunks2)]
    where = dict(processes=True, host="127.0.0.1")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                       dashboard_address=None, **where)
    try:
        with distributed.Client(cluster) as client:
            got = client.compute(lazy, sync=True)
    finally:
        cluster.close()
    assert_close(got[0], fastconv.conv3d(x3, w3, padding=1, padding_mode="circular"),
                 terms=54)
    ev, ei = fastconv.max_pool3d(x3, 3, 2, 1, ceil_mode=True, return_indices=True)
    _same(got[1], ev)
    _same(got[2], ei)
    _same(got[3], fastconv.avg_pool3d(x3, 2, 1, 1, count_include_pad=False))
    assert_close(got[4], fastconv.conv_transpose2d(x2, wt, stride=2, padding=1), terms=16)


# --------------------------------------------------------------------------------------------
# errors: what the in-memory call raises, raised by the Dask call before any graph
# --------------------------------------------------------------------------------------------
X3 = np.ones((1, 2, 8, 8, 8), np.float32)
X2 = np.ones((1, 2, 8, 8), np.float32)
W3 = np.ones((2, 2, 3, 3, 3), np.float32)
WT = np.ones((2, 2, 3, 3), np.float32)

BAD = [
    ("conv3d", X3, dict(weight=np.ones((2, 3, 3, 3, 3)))),  # channels
    ("conv3d", X3, dict(weight=np.ones((2, 2, 3, 3)))),  # a 2-D weight
    ("conv3d", X3, dict(weight=W3, padding_mode="mirror")),
    ("conv3d", X3, dict(weight=W3, padding=9, padding_mode="reflect")),
    ("conv3d", X3, dict(weight=W3, stride=0)),
    ("conv3d", X3, dict(weight=np.ones((2, 2, 9, 3, 3)))),  # kernel larger than the input
    ("conv3d", X3[0, 0], dict(weight=W3)),  # too few dimensions
    ("max_pool3d", X3, dict(kernel_size=2, padding=2)),  # padding over half the kernel
    ("max_pool3d", X3, dict(kernel_size=(2, 2))),
    ("max_pool3d", X3, dict(kernel_size=20)),
    ("avg_pool3d", X3, dict(kernel_size=0)),
    ("avg_pool3d", X3, dict(kernel_size=2, divisor_override=0)),
    ("conv_transpose2d", X2, dict(weight=np.ones((3, 2, 3, 3)))),  # in-channels
    ("conv_transpose2d", X2, dict(weight=WT, stride=2, output_padding=2)),
    ("conv_transpose2d", X2, dict(weight=WT, padding=9)),  # empty output
    ("conv_transpose2d", X2, dict(weight=WT, stride=0)),
    ("conv_transpose2d", X2, dict(weight=WT, groups=3)),
]


@pytest.mark.parametrize("name, x, kw", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_errors_are_the_in_memory_calls(name, x, kw):
    with pytest.raises((ValueError, TypeError)) as expected:
        getattr(fastconv, name)(x, **kw)
    # the same type, raised by the call itself (the graph is never computed); the messages
    # may differ in the shapes they quote (fastconv checks a small probe of the input)
    with pytest.raises(expected.type):
        getattr(fd, name)(da.from_array(x, chunks=3), **kw)


@pytest.mark.parametrize("name", ["conv3d", "max_pool3d", "avg_pool3d", "conv_transpose2d"])
@pytest.mark.parametrize("threads, exc", [(0, ValueError), (True, TypeError),
                                          (1.5, TypeError)])
def test_threads_argument_is_checked(name, threads, exc):
    dask_fn, _, kw, nd = _calls()[name]
    with pytest.raises(exc, match="threads"):
        dask_fn(np.ones((1, 3) + (6,) * nd, np.float32), threads=threads, **kw)


def test_doctests():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    names = {"conv3d", "max_pool3d", "avg_pool3d", "conv_transpose2d"}
    tests = [t for t in finder.find(fd, "fastconv.dask")
             if t.examples and t.name.rsplit(".", 1)[-1] in names]
    assert {t.name.rsplit(".", 1)[-1] for t in tests} == names
    out = io.StringIO()
    with dask.config.set(scheduler="threads"):
        for t in tests:
            runner.run(t, out=out.write)
    assert runner.summarize(verbose=False).failed == 0, out.getvalue()
