"""fastconv.analysis for 3-D conv layers (issue 17): conv_as_matrix of a (C, D, H, W) input
against torch's conv3d, and compare_layers' 3-D counts against torch's layers."""

from __future__ import annotations

import doctest
import io
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import fastconv
import fastconv.analysis as A
from fastconv.analysis import compare_layers, conv_as_matrix


def _case(seed):
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 1, 2]))
    C = groups * int(rng.integers(1, 3))
    K = groups * int(rng.integers(1, 3))
    ks = tuple(int(v) for v in rng.integers(1, 4, 3))
    stride = tuple(int(v) for v in rng.integers(1, 3, 3))
    dilation = tuple(int(v) for v in rng.integers(1, 3, 3))
    if seed % 6 == 0:
        padding, stride = "same", 1
    elif seed % 6 == 1:
        padding = "valid"
    else:
        padding = tuple(int(v) for v in rng.integers(0, 3, 3))
    sizes = tuple(int(rng.integers(d * (k - 1) + 1, 8)) for k, d in zip(ks, dilation))
    w = rng.standard_normal((K, C // groups) + ks)
    x = rng.standard_normal((C,) + sizes)
    return x, w, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@pytest.mark.parametrize("seed", range(30))
def test_conv_as_matrix_3d_is_torch_conv3d(seed):
    x, w, kw = _case(seed)
    ref = F.conv3d(torch.from_numpy(x[None]), torch.from_numpy(w), **kw).numpy().ravel()
    M = conv_as_matrix(w, x.shape, **kw)
    assert M.shape == (ref.size, x.size)
    np.testing.assert_allclose(M @ x.ravel(), ref, rtol=1e-10, atol=1e-10)
    D = conv_as_matrix(w, x.shape, format="dense", **kw)
    np.testing.assert_array_equal(D, M.toarray())
    # every stored entry is a connection sharing one of the kernel's weights
    assert set(np.unique(M.data)) <= set(np.unique(w))
    # and every weight is used (at least one connection of each) when nothing is padded away
    if kw["padding"] == "valid":
        assert len(np.unique(M.data)) == len(np.unique(w))


def test_conv_as_matrix_3d_counts_by_hand():
    w = np.arange(1.0, 28.0).reshape(1, 1, 3, 3, 3)
    M = conv_as_matrix(w, (1, 4, 5, 5))
    assert M.shape == (2 * 3 * 3, 4 * 5 * 5)
    assert M.nnz == 18 * 27 and len(np.unique(M.data)) == 27
    # padding 1: each output sees the product of the in-range kernel taps per axis
    Mp = conv_as_matrix(w, (1, 4, 5, 5), padding=1)
    per_axis = [[min(o + 1, n - 1) - max(o - 1, 0) + 1 for o in range(n)] for n in (4, 5, 5)]
    assert Mp.nnz == math.prod(sum(a) for a in per_axis)
    assert conv_as_matrix(w, (1, 4, 5, 5), padding="same").nnz == Mp.nnz
    assert M.dtype == np.float64
    assert conv_as_matrix(w.astype(np.float32), (1, 4, 5, 5)).dtype == np.float32


@pytest.mark.parametrize("shape, K, k, stride, padding", [
    ((1, 8, 16, 16), 4, 3, 1, 1),
    ((3, 5, 9, 7), 6, (2, 3, 1), (1, 2, 3), (1, 0, 0)),
    ((2, 4, 4, 4), 1, 4, 1, 0),
])
def test_compare_layers_3d_against_torch_layers(shape, K, k, stride, padding):
    t = compare_layers(shape, K, k, stride=stride, padding=padding)
    rows = {r.layer: r for r in t}
    conv = torch.nn.Conv3d(shape[0], K, k, stride=stride, padding=padding)
    out = conv(torch.zeros((1,) + shape))
    n_in, n_out = math.prod(shape), out.numel()
    window = conv.weight[0].numel()
    dense = torch.nn.Linear(n_in, n_out)
    assert rows["conv"].params == sum(p.numel() for p in conv.parameters())
    assert rows["dense"].params == sum(p.numel() for p in dense.parameters())
    assert rows["local"].params == n_out * window + n_out
    assert rows["dense"].macs == n_in * n_out
    assert rows["conv"].macs == rows["local"].macs == n_out * window
    assert rows["conv"].output_bytes == n_out * 4 and rows["conv"].input_bytes == n_in * 4
    assert rows["conv"].weight_bytes == rows["conv"].params * 4
    assert rows["conv"].workspace_bytes == window * (n_out // K) * 4
    # the saving weight sharing buys: local / conv parameters, the number of output positions
    assert rows["local"].params // rows["conv"].params == n_out // K
    # a full-size kernel without padding: one output position, local == conv
    if k == 4:
        assert rows["local"].params == rows["conv"].params


def test_compare_layers_3d_dtype_and_2d_unchanged():
    t64 = compare_layers((1, 4, 6, 6), 2, 3, dtype="float64")
    t32 = compare_layers((1, 4, 6, 6), 2, 3)
    assert [r.weight_bytes for r in t64] == [2 * r.weight_bytes for r in t32]
    # a (C, H, W) shape is still a 2-D layer, and an int kernel a square one
    assert [r.params for r in compare_layers((1, 28, 28), 6, 3)] == [3183960, 40560, 60]


@pytest.mark.parametrize("call, exc, name", [
    (lambda: conv_as_matrix(np.ones((2, 1, 3, 3)), (1, 4, 5, 5)), ValueError, "weight"),
    (lambda: conv_as_matrix(np.ones((2, 2, 3, 3, 3)), (3, 4, 5, 5)), ValueError, "groups"),
    (lambda: conv_as_matrix(np.ones((2, 1, 3, 3, 3)), (2, 4, 5, 5), groups=2.0), TypeError,
     "groups"),
    (lambda: conv_as_matrix(np.ones((2, 1, 3, 3, 3)), (1, 2, 5, 5)), ValueError, "output"),
    (lambda: conv_as_matrix(np.ones((2, 1, 3, 3, 3)), (1, 4, 5, 5), stride=0), ValueError,
     "stride"),
    (lambda: conv_as_matrix(np.ones((2, 1, 3, 3, 3)), (1, 4, 5, 5), stride=(1, 2)),
     ValueError, "stride"),
    (lambda: conv_as_matrix(np.ones((2, 1, 3, 3, 3)), (1, 4, 5, 5), padding="same",
                            stride=2), ValueError, "same"),
    (lambda: conv_as_matrix(np.ones((2, 1, 3, 3, 3)), (1, 0, 5, 5)), ValueError,
     "input_shape"),
    (lambda: conv_as_matrix(np.ones((0, 1, 3, 3, 3)), (1, 4, 5, 5)), ValueError, "weight"),
    (lambda: conv_as_matrix(np.ones((2, 1, 3, 3, 3)), (1, 4, 5, 5), format="dense",
                            max_bytes=10), ValueError, "max_bytes"),
    (lambda: compare_layers((1, 4, 5, 5), 2, (3, 3)), ValueError, "kernel_size"),
    (lambda: compare_layers((1, 4, 5, 5), 0, 3), ValueError, "out_channels"),
    (lambda: compare_layers((1, 4, 5, 5), 2, 3, padding=(1, 1)), ValueError, "padding"),
])
def test_3d_errors_name_the_argument(call, exc, name):
    with pytest.raises(exc, match=name):
        call()


def test_doctests():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(A, "fastconv.analysis") if t.examples]
    assert {"compare_layers", "conv_as_matrix"} <= {t.name.rsplit(".", 1)[-1] for t in tests}
    out = io.StringIO()
    for t in tests:
        runner.run(t, out=out.write)
    assert runner.summarize(verbose=False).failed == 0, out.getvalue()


# --------------------------------------------------------------------------------------------
# the bench's dense-vs-conv tables: a 3-D case
# --------------------------------------------------------------------------------------------
def test_bench_has_a_3d_layer_case_without_the_2d_only_variant():
    from fastconv.bench import cases

    three_d = {n: c for n, c in cases.LAYER_CASES.items() if len(c) == 8}
    assert three_d, "no conv3d case in LAYER_CASES"
    for name, case in three_d.items():
        N, shape, K, k, p = cases.layer_geometry(case)
        assert len(shape) == 4 and name in cases.QUICK
    assert cases.layer_geometry(cases.LAYER_CASES["seed"]) == (64, (1, 28, 28), 6, 3, 0)
    # the suite's own collection (its pytest.ini registers its marker)
    pytest.importorskip("pytest_benchmark")
    suite = Path(fastconv.__file__).parent / "bench"
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                          "-p", "no:cacheprovider", "test_dense_sparse.py"], cwd=suite,
                         capture_output=True, text=True, timeout=300,
                         env={k: v for k, v in os.environ.items()
                              if k != "PYTEST_ADDOPTS"}).stdout
    for name in three_d:
        ids = {line.split("[", 1)[1].rstrip("]") for line in out.splitlines()
               if line.startswith("test_dense_sparse.py::test_layer[" + name + "-")}
        assert ids == {f"{name}-{v}" for v in ["dense", "sparse-csr"]
                       + [f"conv-{b}" for b in fastconv.backends()]}, out


def test_report_shows_the_3d_layer_with_its_savings(tmp_path):
    from fastconv import _benchreport as br

    case = [8, 1, 8, 16, 16, 4, 3, 1]
    benches = [{"group": "layer-video8-float32", "name": f"test_layer[video8-{impl}]",
                "stats": {"median": t, "iqr": t / 10},
                "extra_info": {"workload": "layer", "shape": "video8", "case_shape": case,
                               "impl": impl, "flops": 1, "weight_bytes": 2, "peak_bytes": 3}}
               for impl, t in (("dense", 0.03), ("sparse-csr", 4e-4), ("conv-cython", 1e-4))]
    path = tmp_path / "bench.json"
    path.write_text(__import__("json").dumps({"datetime": "2026-12-05", "benchmarks": benches}))
    with open(br.render(str(path), str(tmp_path / "out"))) as f:
        report = f.read()
    assert "### video8: 1x8x16x16 -> 4 filters of 3x3x3, padding 1" in report
    table = compare_layers((1, 8, 16, 16), 4, 3, padding=1)
    assert str(table) in report
    r = {row.layer: row for row in table}
    assert f"{r['dense'].params / r['conv'].params:,.0f}x fewer parameters" in report
    assert "saves 2,048x the parameters" in report  # local / conv: 8 * 16 * 16 positions
    assert "| video8 | conv-cython | 100.0 us |" in report
