"""What sparse connection and weight sharing save, measured.

For each case the same layer (input -> K feature maps of a kxk filter bank) is computed as
a dense matmul with the full matrix, a scipy.sparse CSR matmul, a locally connected layer
(sparse, no sharing) and conv2d on each fastconv backend. Every variant is checked against
conv2d's output before it is timed; ``extra_info`` carries its FLOPs, weight bytes and the
peak extra memory of one call (tracemalloc, which sees NumPy's and SciPy's allocations).
"""

import tracemalloc

import numpy as np
import pytest

import fastconv
from fastconv.analysis import conv_as_matrix

from .cases import LAYER_CASES, QUICK

VARIANTS = ["dense", "sparse-csr", "local"] + [f"conv-{b}" for b in fastconv.backends()]
_cache = {}


def _case(name):
    if name not in _cache:
        N, C, H, W, K, k, p = LAYER_CASES[name]
        rng = np.random.default_rng(0)
        x = rng.standard_normal((N, C, H, W), dtype=np.float32)
        w = rng.standard_normal((K, C, k, k), dtype=np.float32)
        M = conv_as_matrix(w, (C, H, W), padding=p)
        ref = fastconv.conv2d(x, w, padding=p, backend="numpy")
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
    Ho, Wo = out_shape[2:]
    if variant == "local":
        wl = np.ascontiguousarray(np.broadcast_to(w, (Ho, Wo) + w.shape))
        return (lambda: fastconv.locally_connected2d(x, wl, padding=p)), wl.nbytes, \
            2 * N * wl.size
    backend = variant.split("-", 1)[1]
    return (lambda: fastconv.conv2d(x, w, padding=p, backend=backend)), w.nbytes, \
        2 * N * Ho * Wo * w.size


def _peak_bytes(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


PARAMS = [pytest.param(c, v, marks=pytest.mark.quick) if c in QUICK else (c, v)
          for c in LAYER_CASES for v in VARIANTS]


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
