"""What sparse connection and weight sharing save, measured.

For each case the same layer (input -> K feature maps of a kxk filter bank) is computed as
a dense matmul with the full matrix, a scipy.sparse CSR matmul, a locally connected layer
(sparse, no sharing) and conv2d on each fastconv backend. Every variant is checked against
conv2d's output before it is timed; ``extra_info`` carries its FLOPs, weight bytes and the
peak extra memory of one call (tracemalloc, which sees NumPy's and SciPy's allocations).
A 3-D case (a conv3d layer over short clips) has the same variants but the locally connected
one (fastconv has it in 2-D only), and conv3d in place of conv2d.
"""

import tracemalloc

import numpy as np
import pytest

import fastconv
from fastconv.analysis import conv_as_matrix

from .cases import LAYER_CASES, QUICK, layer_geometry

VARIANTS = ["dense", "sparse-csr", "local"] + [f"conv-{b}" for b in fastconv.backends()]
_cache = {}


def _conv(nd):
    """fastconv's conv2d or conv3d (skips a 3-D case where this build has no conv3d)."""
    name = "conv2d" if nd == 2 else "conv3d"
    if not hasattr(fastconv, name):  # pragma: no cover - issue 17 adds conv3d
        pytest.skip(f"fastconv has no {name}")
    return getattr(fastconv, name)


def _case(name):
    if name not in _cache:
        N, shape, K, k, p = layer_geometry(LAYER_CASES[name])
        rng = np.random.default_rng(0)
        x = rng.standard_normal((N,) + shape, dtype=np.float32)
        w = rng.standard_normal((K, shape[0]) + (k,) * (len(shape) - 1), dtype=np.float32)
        M = conv_as_matrix(w, shape, padding=p)
        ref = _conv(len(shape) - 1)(x, w, padding=p, backend="numpy")
        _cache.clear()
        _cache[name] = (x, w, p, M, ref)
    return _cache[name]


def _variant(variant, x, w, p, M, ref):
    """(callable, weight_bytes, flops) for one way of computing the layer."""
    N = x.shape[0]
    out_shape = ref.shape
    X = x.reshape(N, -1)
    if variant == "dense":
        D = M.toarray()
        return (lambda: (X @ D.T).reshape(out_shape)), D.nbytes, 2 * N * D.size
    if variant == "sparse-csr":
        wbytes = M.data.nbytes + M.indices.nbytes + M.indptr.nbytes
        return (lambda: (M @ X.T).T.reshape(out_shape)), wbytes, 2 * N * M.nnz
    positions = int(np.prod(out_shape[2:]))
    if variant == "local":
        wl = np.ascontiguousarray(np.broadcast_to(w, tuple(out_shape[2:]) + w.shape))
        return (lambda: fastconv.locally_connected2d(x, wl, padding=p)), wl.nbytes, \
            2 * N * wl.size
    backend = variant.split("-", 1)[1]
    conv = _conv(x.ndim - 2)
    return (lambda: conv(x, w, padding=p, backend=backend)), w.nbytes, \
        2 * N * positions * w.size


def _peak_bytes(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


PARAMS = [pytest.param(c, v, marks=pytest.mark.quick) if c in QUICK else (c, v)
          for c in LAYER_CASES for v in VARIANTS
          if not (v == "local" and len(LAYER_CASES[c]) == 8)]  # locally connected: 2-D only


@pytest.mark.parametrize(("case", "impl"), PARAMS)
def test_layer(benchmark, case, impl):
    x, w, p, M, ref = _case(case)
    fn, wbytes, flops = _variant(impl, x, w, p, M, ref)
    np.testing.assert_allclose(fn(), ref, rtol=1e-3, atol=2e-3)
    benchmark.group = f"layer-{case}-float32"
    benchmark.extra_info.update(workload="layer", shape=case, case_shape=LAYER_CASES[case],
                                impl=impl, flops=int(flops),
                                weight_bytes=int(wbytes), peak_bytes=int(_peak_bytes(fn)),
                                gflop=flops / 1e9)
    benchmark(fn)
