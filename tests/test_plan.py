"""fastconv._plan (issue 16): one home for the compiled kernels' algorithm choice, its
constants and the cost estimates.

The expected choices are not written by hand: ``tests/data/plan_main.json`` was recorded by
``tests/plan_table.py`` on main (commit 6a74887), before the plan module existed, from each
kernel's own rules (``_cy_conv.algorithm``, ``_cy_grad.algorithm`` with
``transposes_to_forward``, Numba's ``use_gemm`` and ``grad.algorithm``, and the tile formulas
that ``_chunks._path`` mirrored) and from the two cost formulas (``_dispatch._work``,
``_chunks.estimate``), on 1372 layers (every 3x3 layer near Winograd's bounds, 1x1 layers
near the pointwise rule's, and random ones from a fixed seed). The plan must reproduce every
value, but one deliberate change since: float32 pointwise layers within
``_plan.pointwise_direct``'s bounds run the direct kernel (measured in
docs/guide/performance-notes.md), where main ran GEMM.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import fastconv
from fastconv import _dispatch, _plan, reference

import plan_table
from conftest import FLOATS, assert_close

with open(os.path.join(os.path.dirname(__file__), "data", "plan_main.json")) as _f:
    TABLE = json.load(_f)


def _as_json(v):
    return json.loads(json.dumps(v))


def _pointwise_direct(args):
    x, w, out, stride, pad, groups = args[0], args[1], args[3], args[4], args[5], args[7]
    return (_plan.pointwise_layer(x.shape, w.shape, out.shape, stride, pad)
            and _plan.pointwise_direct(x.shape, w.shape, out.shape, groups, x.itemsize))


def test_issue16_plan_chooses_as_the_kernels_did_on_main():
    """Every algorithm, and every tile size that _chunks keeps equal across pieces, as each
    kernel chose it on main, for both compiled backends, both itemsizes and all three ops."""
    keys = TABLE["keys"]
    bad, changed = [], 0
    for row in TABLE["rows"]:
        case = tuple(row[0])
        for key, expected in zip(keys, row[1:]):
            kind, *rest = key.split("/")
            if kind != "path":
                continue
            backend, op, itemsize = rest
            args = plan_table.args_of(op, case, int(itemsize))
            got = _plan.path(backend, op, args)
            if ((backend, op) == ("cython", "conv2d") and expected[0] == "pointwise"
                    and _pointwise_direct(args)):
                expected = "direct"  # the change since main's table (module docstring)
                changed += 1
            if _as_json(got) != expected:
                bad.append((key, case, got, expected))
    assert not bad, f"{len(bad)} differ, e.g. {bad[:3]}"
    assert changed >= 2  # the table's grid holds pointwise layers the change takes


def test_issue16_one_cost_formula_gives_mains_estimates_and_work():
    """_plan.seconds is _chunks.estimate's formula and _plan.work _dispatch._work's, value
    for value (the same floating-point operations), on every op of the table."""
    keys = TABLE["keys"]
    for row in TABLE["rows"]:
        case = tuple(row[0])
        for key, expected in zip(keys, row[1:]):
            kind, *rest = key.split("/")
            if kind == "estimate":
                backend, op = rest
                assert _plan.seconds(op, backend, plan_table.args_of(op, case, 4)) == expected
            elif kind == "work":
                (op,) = rest
                amount, flops = _plan.work(op, plan_table.args_of(op, case, 4))
                assert [amount, flops] == [expected[0], True]
    from fastconv import _chunks, _threads
    args = plan_table.args_of("conv2d", (8, 64, 56, 56, 64, 1, 3, 3, 1, 1, 1, 1, 1, 1), 4)
    assert _chunks.estimate("conv2d", "cython", args) == _plan.seconds("conv2d", "cython", args)
    assert _dispatch._work("conv2d", args) == (2 * _plan.macs("conv2d", args),
                                              _threads.GRAIN_FLOPS)


def test_issue16_pool_work_and_cost_unchanged():
    """The pools' work (threads) and cost (cuts), as _dispatch._work and _chunks had them."""
    x = np.zeros((2, 3, 10, 12), np.float32)
    out = np.zeros((2, 3, 5, 6), np.float32)
    idx = np.zeros(out.shape, np.int64)
    mp = (x, out, idx, (2, 2), (2, 2), (0, 0))
    ap = (x, out, (2, 2), (2, 2), (0, 0))
    assert _plan.work("max_pool2d", mp) == (out.size * 4, False)
    assert _plan.work("avg_pool2d", ap) == (out.size * 4, False)
    assert _plan.work("max_pool2d_backward", (out, idx, x)) == (out.size + x.size, False)
    assert _plan.work("avg_pool2d_backward", (out, x, (2, 2))) == (out.size * 4 + x.size,
                                                                   False)
    assert _plan.seconds("max_pool2d", "numpy", mp) == \
        out.size * 4 / 0.03e9 + (x.size + out.size) / 0.3e9
    assert _plan.seconds("max_pool2d_backward", "cython", (out, idx, x)) == \
        (2 * out.size + x.size) / 1e9


def test_issue16_dispatch_passes_the_plans_choice(monkeypatch):
    """fastconv.conv2d's kernel call carries the plan's algorithm, before the thread count."""
    seen = []
    real = _dispatch._call_here

    def spy(op, name, fn, args):
        seen.append((op, name, _plan.algorithm(op, name, args)))
        return real(op, name, fn, args)

    monkeypatch.setattr(_dispatch, "_call_here", spy)
    x = np.ones((1, 64, 14, 14), np.float32)
    w = np.ones((64, 64, 1, 1), np.float32)
    for backend in sorted(set(fastconv.backends()) - {"numpy"}):
        fastconv.conv2d(x, w, backend=backend)
    expected = {"cython": "pointwise", "numba": "gemm"}
    assert seen == [("conv2d", b, expected[b]) for b in sorted(set(fastconv.backends())
                                                                - {"numpy"})]


def test_issue16_the_kernels_refuse_an_unknown_or_impossible_algo():
    x = np.ones((1, 2, 8, 8), np.float32)
    w = np.ones((2, 2, 3, 3), np.float32)
    b = np.zeros(2, np.float32)
    out = np.empty((1, 2, 6, 6), np.float32)
    args = (x, w, b, out, (1, 1), (0, 0), (1, 1), 1)
    for backend in sorted(set(fastconv.backends()) - {"numpy"}):
        _, fn = _dispatch.kernel("conv2d", backend)
        with pytest.raises(ValueError, match="algo"):
            fn(*args, "fastest", 1)
        with pytest.raises(ValueError):  # not a 1x1 layer: never pointwise
            fn(*args, "pointwise", 1)
        gy = np.ones((1, 2, 6, 6), np.float32)
        _, fn = _dispatch.kernel("conv2d_weight", backend)
        with pytest.raises(ValueError, match="algo"):
            fn(x, gy, np.empty_like(w), (1, 1), (0, 0), (1, 1), 1, "winograd", 1)
    if "numba" in fastconv.backends():
        _, fn = _dispatch.kernel("conv2d_input", "numba")
        with pytest.raises(ValueError, match="algo"):
            fn(np.ones((1, 2, 6, 6), np.float32), w, np.empty_like(x), (1, 1), (0, 0),
               (1, 1), 1, "forward", 1)


# every algorithm of every gradient kernel, forced, against the reference
GRAD_CASES = [
    (2, 4, 9, 11, 6, 1, (3, 3), 1, 1, 1),
    (1, 6, 12, 10, 8, 2, (3, 2), 2, (1, 0), (1, 2)),
    (2, 3, 7, 30, 9, 3, (2, 3), (2, 3), 1, 1),
    (1, 16, 6, 6, 16, 1, (1, 1), 1, 0, 1),
]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _layer(case, dtype, rng):
    """A case's layer, ``(N, C, K, groups, kh, kw, Ho, Wo, stride, pad, dilation)``, and its
    random input and weights."""
    N, C, H, W, K, g, (kh, kw) = case[:7]
    stride, pad, dil = _pair(case[7]), _pair(case[8]), _pair(case[9])
    Ho = (H + 2 * pad[0] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    Wo = (W + 2 * pad[1] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C // g, kh, kw)).astype(dtype)
    return (N, C, K, g, kh, kw, Ho, Wo, stride, pad, dil), x, w


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", GRAD_CASES, ids=[f"g{i}" for i in range(len(GRAD_CASES))])
@pytest.mark.parametrize("op", ["conv2d_input", "conv2d_weight"])
@pytest.mark.parametrize("backend", ["cython", "numba"])
def test_issue16_every_forced_gradient_algorithm_matches_reference(backend, op, case, dtype,
                                                                   rng):
    if backend not in fastconv.backends():
        pytest.skip(f"{backend} is not available")
    (N, C, K, g, kh, kw, Ho, Wo, stride, pad, dil), x, w = _layer(case, dtype, rng)
    gy = rng.standard_normal((N, K, Ho, Wo)).astype(dtype)
    _, fn = _dispatch.kernel(op, backend)
    algos = _plan.ALGORITHMS[backend, op]
    for algo in algos:
        if algo == _plan.FORWARD and not _plan.transposes_to_forward(stride, pad, dil, w.shape):
            continue
        if op == "conv2d_input":
            args = (gy, w, np.empty_like(x), stride, pad, dil, g)
        else:
            args = (x, gy, np.empty_like(w), stride, pad, dil, g)
        expected = getattr(reference, op)(*args)
        expected = expected.copy()
        got = fn(*args[:2], np.full_like(args[2], np.nan), *args[3:], algo, 2)
        terms = K * kh * kw if op == "conv2d_input" else N * Ho * Wo
        assert_close(got, expected, terms=terms, scale=1.0)


def test_issue16_numba_conv_keeps_its_own_gemm_threshold():
    """Numba's conv2d goes to GEMM from R = 32, Cython's from 16 (two named constants; the
    measurement is in docs/guide/performance-notes.md)."""
    shape = ((8, 2, 28, 28), (16, 2, 3, 3), (8, 16, 26, 26), (1, 1), (0, 0), (1, 1), 1)
    assert _plan.conv2d("cython", *shape) == "direct"  # R = 18: phased direct wins here
    assert _plan.conv2d("numba", *shape) == "direct"
    shape = ((8, 4, 28, 28), (16, 4, 3, 3), (8, 16, 26, 26), (1, 1), (0, 0), (1, 1), 1)
    assert _plan.conv2d("numba", *shape) == "gemm"  # R = 36
    assert _plan.NUMBA_GEMM_MIN_R == 32 and _plan.GEMM_MIN_R == 16


def test_issue16_plan_keeps_answers_per_shape_and_takes_lists():
    """algorithm() keeps its answer per shape (every kernel call asks); a list argument
    (unhashable) is planned, not kept, with the same answer."""
    x = plan_table.fake((8, 64, 56, 56), 4)
    w = plan_table.fake((64, 64, 3, 3), 4)
    args = (x, w, plan_table.fake((64,), 4), x, (1, 1), (1, 1), (1, 1), 1)
    _plan._MEMO.clear()
    assert _plan.algorithm("conv2d", "cython", args) == "winograd"
    assert len(_plan._MEMO) == 1
    assert _plan.algorithm("conv2d", "cython", args) == "winograd"
    assert _plan.algorithm("conv2d", "numba", args) == "gemm"
    assert len(_plan._MEMO) == 2
    lists = args[:4] + ([1, 1], [1, 1], [1, 1], 1)
    assert _plan.algorithm("conv2d", "cython", lists) == "winograd"
    assert len(_plan._MEMO) == 2
    assert _plan.algorithm("max_pool2d", "cython", args) is None
    assert _plan.algorithm("conv2d", "numpy", args) is None


# Numba's conv2d algorithms, forced, on layers of every kind (its rule picks one per layer)
CONV_CASES = [
    (2, 3, 17, 19, 9, 1, (3, 3), 1, 1, 1),        # stride 1: the flat kernel or GEMM
    (1, 4, 11, 11, 8, 2, (3, 3), 1, 1, 2),        # grouped, dilated
    (2, 3, 16, 16, 8, 1, (7, 7), 2, 3, 1),        # strided
    (1, 4, 10, 9, 8, 2, (3, 2), (2, 3), 1, (1, 2)),  # stride > kernel width
    (1, 32, 5, 5, 8, 1, (1, 1), 1, 0, 1),         # pointwise: flat GEMM tiles in place
    (2, 6, 15, 14, 6, 6, (3, 3), 2, 1, 1),        # depthwise, stride 2
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", CONV_CASES, ids=[f"c{i}" for i in range(len(CONV_CASES))])
@pytest.mark.parametrize("algo", ["direct", "gemm"])
def test_issue16_every_forced_numba_conv_algorithm_matches_reference(algo, case, dtype, rng):
    if "numba" not in fastconv.backends():
        pytest.skip("numba is not available")
    (N, C, K, g, kh, kw, Ho, Wo, stride, pad, dil), x, w = _layer(case, dtype, rng)
    b = rng.standard_normal(K).astype(dtype)
    expected = reference.conv2d(x, w, b, np.empty((N, K, Ho, Wo), dtype), stride, pad, dil, g)
    _, fn = _dispatch.kernel("conv2d", "numba")
    out = np.full((N, K, Ho, Wo), np.nan, dtype)
    with fastconv._threads.blas_single_threaded():
        got = fn(x, w, b, out, stride, pad, dil, g, algo, 2)
    assert got is out
    assert_close(got, expected, terms=(C // g) * kh * kw)
