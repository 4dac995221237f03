"""conv3d's speed work (issue 17, wave 2): the float32 register tile of Cython's direct
conv3d (fc_kernels.h's fc_taps_out) and Cython's direct conv3d_weight (fc3_wgrad), against
PyTorch, the NumPy reference and the GEMM algorithm, over the shapes that reach every
block and tail of the tiles; thread-count independence; the plan's rules; the algorithm's
refusals; inf / NaN inputs; layouts through the public API. The extra memory of the
bench-target shapes is tests/test_issue17_conv3d.py's memory test (same shapes, same
ops)."""

from __future__ import annotations

import numpy as np
import pytest

import fastconv
import fastconv.grad as G
from fastconv import _dispatch, _plan, _spec

from conftest import LAYOUTS, assert_close, layout


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


# (x shape, w shape, keywords): filters past blocks of 8 (forward) and 4 (weight grad),
# taps past blocks of 6, rows past one work item, W past and under 16 / 48 positions
CASES = [
    ((2, 8, 5, 6, 7), (16, 8, 3, 3, 3), dict(padding=1)),
    ((1, 3, 4, 9, 21), (11, 3, 3, 3, 3), dict(padding=(1, 0, 2))),
    ((2, 4, 5, 7, 6), (6, 2, 3, 2, 3), dict(padding=(0, 1, 2), dilation=(2, 1, 2), groups=2)),
    ((3, 3, 4, 9, 5), (5, 3, 1, 3, 2), dict()),
    ((1, 2, 3, 70, 40), (9, 2, 2, 3, 3), dict(padding=1)),  # several row blocks
    ((1, 1, 3, 4, 50), (8, 1, 3, 1, 5), dict(padding=(1, 0, 2))),  # 1 row: L = 50
]
IDS = ["flat", "kg11", "dilated-groups", "small", "tall", "one-row"]


def _data(rng, xs, ws, kw, dtype=np.float32):
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    y = fastconv.conv3d(x, w, backend="numpy", **kw)
    gy = rng.standard_normal(y.shape).astype(dtype)
    return x, w, gy


def _torch_grads(torch, x, w, gy, kw):
    tx = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    tw = torch.from_numpy(w.astype(np.float64)).requires_grad_(True)
    y = torch.nn.functional.conv3d(tx, tw, **kw)
    y.backward(torch.from_numpy(gy.astype(np.float64)))
    return y.detach().numpy(), tw.grad.numpy()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_and_weight_grad_match_torch_reference_and_gemm(torch, rng, case):
    xs, ws, kw = case
    x, w, gy = _data(rng, xs, ws, kw)
    terms = int(np.prod(ws[1:]))
    ty, tgw = _torch_grads(torch, x, w, gy, kw)
    ry = fastconv.conv3d(x, w, backend="numpy", **kw)
    rgw = G.conv3d_weight(x, w.shape, gy, backend="numpy", **kw)
    assert_close(ry, ty, terms=terms, dtype=np.float32)
    # the forward's direct kernel (fc_taps_out), forced
    spec = _spec.conv_spec(x, w, None, kw.get("stride", 1), kw.get("padding", 0),
                           kw.get("dilation", 1), kw.get("groups", 1), "zeros", 3)
    _, fn = _dispatch.kernel("conv3d", "cython")
    out = np.empty(spec.out_shape, np.float32)
    fn(*spec.kernel_args(out), _plan.DIRECT, 2)
    assert_close(out, ty, terms=terms, dtype=np.float32)
    # both weight-gradient algorithms, forced
    gs = _spec.conv_weight_grad_spec(x, w.shape, gy, kw.get("stride", 1),
                                     kw.get("padding", 0), kw.get("dilation", 1),
                                     kw.get("groups", 1), "zeros", 3)
    _, fn = _dispatch.kernel("conv3d_weight", "cython")
    nterms = gy.size // gy.shape[1]
    got = {}
    for algo in _plan.ALGORITHMS["cython", "conv3d_weight"]:
        out = np.empty(w.shape, np.float32)
        fn(*gs.kernel_args(out), algo, 2)
        assert_close(out, tgw, terms=nterms, dtype=np.float32)
        assert_close(out, rgw, terms=nterms)
        got[algo] = out
    assert _plan.DIRECT in got
    # and through the public API
    assert_close(G.conv3d_weight(x, w.shape, gy, backend="cython", **kw), tgw, terms=nterms,
                 dtype=np.float32)


@pytest.mark.parametrize("kind", LAYOUTS)
def test_weight_grad_layouts(rng, kind):
    x, w, gy = _data(rng, (2, 4, 3, 6, 80), (8, 4, 3, 3, 3), dict(padding=1))
    assert _plan.algorithm("conv3d_weight", "cython",
                           (x, gy, np.empty(w.shape, np.float32), (1, 1, 1), (1, 1, 1),
                            (1, 1, 1), 1)) == _plan.DIRECT
    want = G.conv3d_weight(x, w.shape, gy, padding=1, backend="numpy")
    got = G.conv3d_weight(layout(x, kind), w.shape, layout(gy, kind), padding=1,
                          backend="cython")
    assert_close(got, want, terms=gy.size // 8)


def test_empty_batch_and_unbatched(rng):
    x, w, gy = _data(rng, (1, 4, 5, 6, 7), (8, 4, 3, 3, 3), dict(padding=1))
    gw = G.conv3d_weight(x[:0], w.shape, gy[:0], padding=1, backend="cython")
    assert gw.shape == w.shape and gw.dtype == np.float32 and not gw.any()
    assert_close(G.conv3d_weight(x[0], w.shape, gy[0], padding=1, backend="cython"),
                 G.conv3d_weight(x[0], w.shape, gy[0], padding=1, backend="numpy"),
                 terms=gy.size)


@pytest.mark.parametrize("case", [CASES[0], CASES[4]], ids=["flat", "tall"])
def test_results_do_not_depend_on_threads(rng, threads, case):
    xs, ws, kw = case
    x, w, gy = _data(rng, (4,) + xs[1:], ws, kw)
    res = {}
    for n in (1, 2, 3):
        fastconv.set_num_threads(n)
        res[n] = (fastconv.conv3d(x, w, backend="cython", **kw),
                  G.conv3d_weight(x, w.shape, gy, backend="cython", **kw),
                  G.conv3d_input(x.shape, w, gy, backend="cython", **kw))
    for n in (2, 3):
        for a, b in zip(res[1], res[n]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("W", [5, 300])  # GEMM and (float32) direct
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("where", ["inside", "right-edge", "nan"])
def test_weight_grad_nonfinite_input_as_torch(torch, dtype, where, W):
    """An inf or NaN of the input reaches the weight gradient only through real taps: the
    flat grids' unused columns must not multiply it by zero (NaN where torch has inf)."""
    x = np.ones((1, 2, 3, 4, W), dtype)
    x[0, 0, 1, 2, {"inside": 2, "right-edge": W - 1, "nan": 0}[where]] = (
        np.nan if where == "nan" else np.inf)
    gy = np.ones((1, 3, 3, 4, W), dtype)
    tx = torch.from_numpy(x)
    tw = torch.ones((3, 2, 3, 3, 3), dtype=tx.dtype, requires_grad=True)
    torch.nn.functional.conv3d(tx, tw, padding=1).backward(torch.from_numpy(gy))
    for backend in fastconv.backends():
        gw = G.conv3d_weight(x, (3, 2, 3, 3, 3), gy, padding=1, backend=backend)
        np.testing.assert_array_equal(gw, tw.grad.numpy().astype(dtype), err_msg=backend)


def test_direct_weight_grad_refuses_what_it_cannot_run(rng):
    _, fn = _dispatch.kernel("conv3d_weight", "cython")
    for dtype, stride in ((np.float64, 1), (np.float32, (1, 1, 2))):
        x, w, _ = _data(rng, (1, 2, 4, 5, 6), (4, 2, 3, 3, 3), {}, dtype)
        gy = np.ones(fastconv.conv3d(x, w, stride=stride, backend="numpy").shape, dtype)
        gs = _spec.conv_weight_grad_spec(x, w.shape, gy, stride, 0, 1, 1, "zeros", 3)
        with pytest.raises(ValueError, match="direct"):
            fn(*gs.kernel_args(np.empty(w.shape, dtype)), _plan.DIRECT, 2)
        out = np.empty(w.shape, dtype)
        fn(*gs.kernel_args(out), _plan.GEMM, 2)
        assert_close(out, G.conv3d_weight(x, w.shape, gy, stride=stride, backend="numpy"),
                     terms=gy.size)


def test_plan_rules():
    x = np.zeros((2, 16, 16, 64, 64), np.float32)
    gy = np.zeros((2, 32, 16, 64, 64), np.float32)
    gw = np.zeros((32, 16, 3, 3, 3), np.float32)
    s, p, d = (1, 1, 1), (1, 1, 1), (1, 1, 1)
    assert _plan.algorithm("conv3d_weight", "cython", (x, gy, gw, s, p, d, 1)) == _plan.DIRECT
    assert _plan.algorithm("conv3d_weight", "cython",
                           (x, gy[..., ::2], gw, (1, 1, 2), p, d, 1)) == _plan.GEMM
    x64, gy64, gw64 = (a.astype(np.float64) for a in (x[:1, :, :2], gy[:1, :, :2], gw))
    assert _plan.algorithm("conv3d_weight", "cython", (x64, gy64, gw64, s, p, d, 1)) \
        == _plan.GEMM
    big = np.zeros((512, 256, 3, 3, 3), np.float32)  # 2 slots of partials > PARTIAL_BYTES
    assert _plan.algorithm("conv3d_weight", "cython",
                           (x[:, :1, :1], gy[:, :1, :1], big, s, p, d, 1)) == _plan.GEMM
    # deep layers on small planes: short work items, GEMM
    assert _plan.algorithm("conv3d_weight", "cython", (
        np.zeros((1, 32, 8, 8, 8), np.float32), np.zeros((1, 32, 8, 8, 8), np.float32),
        np.zeros((32, 32, 3, 3, 3), np.float32), s, p, d, 1)) == _plan.GEMM  # 80 < 256
    assert _plan.algorithm("conv3d_weight", "cython", (
        np.zeros((1, 32, 8, 8, 200), np.float32), np.zeros((1, 32, 8, 8, 200), np.float32),
        np.zeros((32, 32, 3, 3, 3), np.float32), s, p, d, 1)) == _plan.DIRECT
    # the bench shape's split: balanced row blocks within the budget, 8 slots
    rows, S = _plan.conv3d_weight_direct_split(2, 16, 64, 66, 48, 32, 2, 32 * 432)
    nb = -(-64 // rows)
    assert nb * rows - 64 < nb and S == 8
    assert (48 * (rows + 2) + 32 * rows) * 66 * 4 <= _plan.CONV3D_WGRAD_BYTES
    # slots never exceed the items, and a power of two
    for N, Do, Ho in ((1, 1, 1), (1, 3, 5), (4, 8, 200)):
        rows, S = _plan.conv3d_weight_direct_split(N, Do, Ho, 20, 8, 8, 2, 8 * 72)
        assert 1 <= rows <= Ho and S & (S - 1) == 0
        assert S <= max(1, N * Do * -(-Ho // rows))


_BOTH_BUILDS = """
import sys
import numpy as np
import fastconv, fastconv.grad as G
from fastconv import _cy_conv as cy
rng = np.random.default_rng(7)
outs = {}
for i, (xs, ws, kw) in enumerate(CASES):
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    y = fastconv.conv3d(x, w, backend="cython", **kw)
    outs[f"y{i}"] = y
    outs[f"gw{i}"] = G.conv3d_weight(x, w.shape, y, backend="cython", **kw)
np.savez(sys.argv[1], **outs)
print(cy.WIDE_KERNELS)
"""


def test_wide_and_narrow_builds_agree_bitwise(tmp_path):
    """On AVX-512 the float32 tiles are 8 filters x 48 positions (forward) and 4 filters x
    6 taps (weight gradient); elsewhere, and with FASTCONV_NO_WIDE=1, 4 x 24 and 3 x 4
    tiles. Every output (every lane of a partial) takes the same terms in the same order,
    so both agree bit for bit: run both, in two processes."""
    import os
    import subprocess
    import sys

    flags = []
    for no_wide in ("0", "1"):
        env = dict(os.environ, FASTCONV_NO_WIDE=no_wide)
        r = subprocess.run([sys.executable, "-c", f"CASES = {CASES!r}\n" + _BOTH_BUILDS,
                            str(tmp_path / f"out{no_wide}.npz")],
                           env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        flags.append(r.stdout.split()[-1])
    assert flags[1] == "False"  # the override took effect
    with np.load(tmp_path / "out0.npz") as a, np.load(tmp_path / "out1.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            assert np.array_equal(a[k], b[k]), k
    if flags[0] == "False":
        pytest.skip("this CPU has no x86-64-v4: only the narrow build ran")
