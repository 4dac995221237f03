"""unfold / fold (issue 17): torch's results on every backend, over geometries, dtypes and
layouts; the adjoint identity; the gradients; bad arguments; thread-count independence;
the bench targets' callables and their extra memory."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
import fastconv.grad as G
from conftest import BACKENDS, LAYOUTS, Unchanged, assert_close, layout

torch = pytest.importorskip("torch")
TF = torch.nn.functional

# (N, C, H, W), kernel_size, dilation, padding, stride
GEOMETRIES = [
    ((2, 3, 7, 6), 3, 1, 1, 1),
    ((2, 3, 9, 8), (2, 3), (2, 1), (1, 0), (2, 3)),
    ((1, 2, 5, 5), 1, 1, 0, 1),
    ((2, 2, 10, 9), 4, 2, 2, 3),
    ((3, 1, 4, 11), (1, 3), 1, (0, 2), (1, 2)),
    ((1, 4, 6, 6), 2, 1, 0, 2),
    ((2, 2, 3, 3), 5, 1, 2, 1),  # the kernel larger than the input
    ((1, 2, 5, 4), 2, 3, 7, 6),  # padding past the kernel: blocks that see only padding
]
IDS = [f"g{i}" for i in range(len(GEOMETRIES))]


def _torch_unfold(x, k, d, p, s):
    return TF.unfold(torch.from_numpy(np.ascontiguousarray(x)), k, d, p, s).numpy()


def _torch_fold(c, size, k, d, p, s):
    return TF.fold(torch.from_numpy(np.ascontiguousarray(c)), size, k, d, p, s).numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geo", GEOMETRIES, ids=IDS)
def test_unfold_and_fold_match_torch_and_the_reference(backend, rng, geo, dtype):
    shape, k, d, p, s = geo
    x = rng.standard_normal(shape).astype(dtype)
    u = fastconv.unfold(x, k, d, p, s, backend=backend)
    assert_close(u, _torch_unfold(x, k, d, p, s))
    assert_close(u, fastconv.unfold(x, k, d, p, s, backend="numpy"))
    cols = rng.standard_normal(u.shape).astype(dtype)
    f = fastconv.fold(cols, shape[2:], k, d, p, s, backend=backend)
    kk = np.prod(np.broadcast_to(k, 2))
    assert_close(f, _torch_fold(cols, shape[2:], k, d, p, s), terms=kk)
    assert_close(f, fastconv.fold(cols, shape[2:], k, d, p, s, backend="numpy"), terms=kk)


@st.composite
def _fold_calls(draw):
    pair = st.tuples(st.integers(1, 3), st.integers(1, 3))
    k, d, s = draw(pair), draw(pair), draw(pair)
    p = draw(st.tuples(st.integers(0, 3), st.integers(0, 3)))
    size = tuple(draw(st.integers(max(1, dd * (kk - 1) + 1 - 2 * pp), 9))
                 for kk, dd, pp in zip(k, d, p))
    return (draw(st.integers(0, 2)), draw(st.integers(1, 3))) + size, k, d, p, s


@settings(max_examples=25, deadline=None)
@given(call=_fold_calls(), seed=st.integers(0, 2**16))
def test_hypothesis_unfold_and_fold_match_torch(call, seed):
    shape, k, d, p, s = call
    x = np.random.default_rng(seed).standard_normal(shape)
    want = _torch_unfold(x, k, d, p, s)
    back = _torch_fold(want, shape[2:], k, d, p, s)
    for b in BACKENDS:
        u = fastconv.unfold(x, k, d, p, s, backend=b)
        assert_close(u, want)
        assert_close(fastconv.fold(u, shape[2:], k, d, p, s, backend=b), back, terms=9)


def test_nonfinite_values_pass_through(backend):
    x = np.ones((1, 1, 4, 4))
    x[0, 0, 1, 1], x[0, 0, 2, 2] = np.inf, -np.inf
    x[0, 0, 3, 0] = np.nan
    u = fastconv.unfold(x, 2, backend=backend)
    assert_close(u, _torch_unfold(x, 2, 1, 0, 1))
    assert_close(fastconv.fold(u, (4, 4), 2, backend=backend),
                 _torch_fold(u, (4, 4), 2, 1, 0, 1))  # inf + (-inf) = NaN where they meet


@pytest.mark.parametrize("kind", LAYOUTS)
def test_layouts_unbatched_and_int_input(backend, rng, kind):
    x = rng.standard_normal((2, 3, 8, 7))
    want = _torch_unfold(x, 3, 2, 1, 2)
    xl = layout(x, kind)
    same = Unchanged(xl)
    assert_close(fastconv.unfold(xl, 3, 2, 1, 2, backend=backend), want)
    same.check()
    assert_close(fastconv.unfold(layout(x[0], kind), 3, 2, 1, 2, backend=backend), want[0])
    cols = rng.standard_normal(want.shape)
    wantf = _torch_fold(cols, (8, 7), 3, 2, 1, 2)
    cl = layout(cols, kind)
    same = Unchanged(cl)
    assert_close(fastconv.fold(cl, (8, 7), 3, 2, 1, 2, backend=backend), wantf)
    same.check()
    assert_close(fastconv.fold(layout(cols[1], kind), (8, 7), 3, 2, 1, 2, backend=backend),
                 wantf[1])
    # integer input: float64, as the dtype rule says; int8: float32
    xi = rng.integers(-5, 5, (2, 3, 8, 7))
    assert_close(fastconv.unfold(layout(xi, kind), 3, backend=backend),
                 _torch_unfold(xi.astype(np.float64), 3, 1, 0, 1))
    ci = rng.integers(-5, 5, (2, 27, 30)).astype(np.int8)
    assert_close(fastconv.fold(ci, (7, 8), 3, backend=backend),
                 _torch_fold(ci.astype(np.float32), (7, 8), 3, 1, 0, 1))


def test_empty_batch(backend):
    x = np.zeros((0, 3, 6, 6), np.float32)
    u = fastconv.unfold(x, 3, padding=1, backend=backend)
    assert u.shape == (0, 27, 36) and u.dtype == np.float32
    f = fastconv.fold(u, (6, 6), 3, padding=1, backend=backend)
    assert f.shape == (0, 3, 6, 6) and f.dtype == np.float32
    assert G.unfold(u, x.shape, 3, padding=1, backend=backend).shape == x.shape
    assert G.fold(x, 3, padding=1, backend=backend).shape == (0, 27, 36)


def test_huge_padding_costs_no_padded_copy(backend):
    # the output is 3x3 blocks; a padded copy of the input would be 2e6 x 2e6
    x = np.arange(1.0, 26.0).reshape(1, 1, 5, 5)
    u = fastconv.unfold(x, 1, padding=10**6, stride=10**6, backend=backend)
    assert_close(u, np.array([[[0, 0, 0, 0, 1, 0, 0, 0, 0]]], float))  # the centre: x[0, 0]
    back = fastconv.fold(u + 1, (5, 5), 1, padding=10**6, stride=10**6, backend=backend)
    want = np.zeros((1, 1, 5, 5))
    want[0, 0, 0, 0] = 2
    assert_close(back, want)


def test_out_is_filled_and_returned(backend, rng):
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    out = np.full((2, 12, 20), np.nan, np.float32)
    assert fastconv.unfold(x, 2, backend=backend, out=out) is out
    assert_close(out, _torch_unfold(x, 2, 1, 0, 1))
    outf = np.full((2, 3, 6, 5), np.nan, np.float32)
    assert fastconv.fold(out, (6, 5), 2, backend=backend, out=outf) is outf
    assert_close(outf, _torch_fold(out, (6, 5), 2, 1, 0, 1), terms=4)
    with pytest.raises(ValueError, match="out"):
        fastconv.unfold(x, 2, backend=backend, out=np.empty((2, 12, 21), np.float32))
    with pytest.raises(TypeError, match="out"):
        fastconv.fold(out, (6, 5), 2, backend=backend, out=np.empty((2, 3, 6, 5)))


@pytest.mark.parametrize("seed", range(6))
def test_unfold_and_fold_are_adjoints(backend, seed):
    r = np.random.default_rng(seed)
    shape = (int(r.integers(1, 3)), int(r.integers(1, 4)), int(r.integers(5, 12)),
             int(r.integers(5, 12)))  # at least the widest dilated kernel (5)
    k = tuple(int(v) for v in r.integers(1, 4, 2))
    d = tuple(int(v) for v in r.integers(1, 3, 2))
    p = tuple(int(v) for v in r.integers(0, 3, 2))
    s = tuple(int(v) for v in r.integers(1, 4, 2))
    x = r.standard_normal(shape)
    u = fastconv.unfold(x, k, d, p, s, backend=backend)
    y = r.standard_normal(u.shape)
    lhs = np.vdot(u, y)
    rhs = np.vdot(x, fastconv.fold(y, shape[2:], k, d, p, s, backend=backend))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("geo", GEOMETRIES[:4], ids=IDS[:4])
def test_gradients_match_torch_autograd(backend, rng, geo):
    shape, k, d, p, s = geo
    x = rng.standard_normal(shape)
    xt = torch.from_numpy(x).requires_grad_()
    u = TF.unfold(xt, k, d, p, s)
    gy = rng.standard_normal(tuple(u.shape))
    u.backward(torch.from_numpy(gy))
    assert_close(G.unfold(gy, shape, k, d, p, s, backend=backend), xt.grad.numpy(), terms=9)
    assert_close(G.unfold(gy[0], shape[1:], k, d, p, s, backend=backend),
                 xt.grad.numpy()[0], terms=9)
    ct = torch.from_numpy(rng.standard_normal(tuple(u.shape))).requires_grad_()
    f = TF.fold(ct, shape[2:], k, d, p, s)
    gf = rng.standard_normal(tuple(f.shape))
    f.backward(torch.from_numpy(gf))
    assert_close(G.fold(gf, k, d, p, s, backend=backend), ct.grad.numpy())


def test_gradient_by_finite_differences(backend, rng):
    # unfold is linear: d<unfold(x), gy>/dx_i, by central differences, is grad.unfold's
    x = rng.standard_normal((1, 2, 4, 5))
    gy = rng.standard_normal(fastconv.unfold(x, 2, 2, 1, 1).shape)
    g = G.unfold(gy, x.shape, 2, 2, 1, 1, backend=backend)
    h = 1e-6
    for i in rng.choice(x.size, 8, replace=False):
        e = np.zeros(x.size)
        e[i] = h
        e = e.reshape(x.shape)
        fd = (np.vdot(fastconv.unfold(x + e, 2, 2, 1, 1, backend=backend), gy)
              - np.vdot(fastconv.unfold(x - e, 2, 2, 1, 1, backend=backend), gy)) / (2 * h)
        np.testing.assert_allclose(fd, g.ravel()[i], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("compiled", [b for b in BACKENDS if b != "numpy"])
def test_results_do_not_depend_on_the_thread_count(compiled, rng, threads):
    x = rng.standard_normal((2, 3, 17, 13)).astype(np.float32)
    cols = rng.standard_normal((2, 27, 17 * 13)).astype(np.float32)
    res = []
    for n in (1, 2, 3):
        fastconv.set_num_threads(n)
        res.append((fastconv.unfold(x, 3, padding=1, backend=compiled),
                    fastconv.fold(cols, (17, 13), 3, padding=1, backend=compiled)))
    fastconv.set_num_threads(threads)
    for u, f in res[1:]:
        np.testing.assert_array_equal(u, res[0][0])
        np.testing.assert_array_equal(f, res[0][1])


X4 = np.zeros((1, 2, 5, 5))
C3 = np.zeros((1, 18, 9))  # 3x3 blocks over a 5x5 plane, 2 channels
BAD = [
    ("unfold", (np.zeros((2, 5, 5, 5, 5)), 3), {}, ValueError, "x"),
    ("unfold", (np.zeros((2, 5)), 3), {}, ValueError, "x"),
    ("unfold", (X4, 0), {}, ValueError, "kernel_size"),
    ("unfold", (X4, (3, 3, 3)), {}, ValueError, "kernel_size"),
    ("unfold", (X4, 2.5), {}, TypeError, "kernel_size"),
    ("unfold", (X4, 3), dict(dilation=0), ValueError, "dilation"),
    ("unfold", (X4, 3), dict(padding=-1), ValueError, "padding"),
    ("unfold", (X4, 3), dict(stride=0), ValueError, "stride"),
    ("unfold", (X4, 6), {}, ValueError, "sliding block"),
    ("unfold", (np.zeros((1, 0, 5, 5)), 3), {}, ValueError, "x"),
    ("unfold", (np.zeros((1, 2, 5, 5), complex), 3), {}, TypeError, "x"),
    ("unfold", ("abc", 3), {}, TypeError, "x"),
    ("unfold", (X4, 3), dict(backend="nope"), ValueError, "backend"),
    ("fold", (C3, (5, 5), 3), dict(stride=2), ValueError, "sliding blocks"),
    ("fold", (np.zeros((1, 17, 9)), (5, 5), 3), {}, ValueError, "kernel_size"),
    ("fold", (np.zeros((1, 2, 18, 9)), (5, 5), 3), {}, ValueError, "x"),
    ("fold", (C3, (5, 5, 5), 3), {}, ValueError, "output_size"),
    ("fold", (C3, 0, 3), {}, ValueError, "output_size"),
    ("fold", (C3, (5, 5), 3), dict(padding=(1, -1)), ValueError, "padding"),
    ("fold", (C3, (5, 5), 3), dict(dilation=True), TypeError, "dilation"),
    ("fold", (C3, (2, 2), 3), {}, ValueError, "output_size"),
]


@pytest.mark.parametrize("fn, args, kwargs, exc, match", BAD,
                         ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_arguments_raise_naming_the_argument(fn, args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        getattr(fastconv, fn)(*args, **kwargs)


def test_gradient_bad_arguments():
    with pytest.raises(ValueError, match="input_size"):
        G.unfold(np.zeros((18, 9)), (2, 5), 3)
    with pytest.raises(ValueError, match="grad_output"):
        G.unfold(np.zeros((1, 18, 9)), (2, 5, 5), 3)
    with pytest.raises(ValueError, match="grad_output|input_size"):
        G.unfold(np.zeros((1, 18, 9)), (1, 2, 5, 6), 3)
    with pytest.raises(ValueError, match="kernel_size"):
        G.fold(np.zeros((1, 2, 5, 5)), 0)


# --------------------------------------------------------------------------------------------
# bench targets (fastconv/bench/targets_fold.py) and the extra memory of their calls
# --------------------------------------------------------------------------------------------
def test_bench_target_callables_agree_with_the_reference():
    from fastconv.bench.targets_fold import PAIRED

    for group, t in PAIRED.items():
        assert t["bound"] == 1.0 and t["what"]
        ref = t["reference"]()
        for impl in ("auto", "torch") + tuple(b for b in BACKENDS if b != "numpy"):
            r = t["make"](impl)()
            r = r.numpy() if hasattr(r, "numpy") else r
            np.testing.assert_allclose(r, ref, rtol=1e-5, atol=1e-5, err_msg=f"{group} {impl}")


MEM_CHILD = r"""
from fastconv.bench.targets_fold import KERNEL, PADDING, SHAPE
backend = sys.argv[1]
fastconv.set_num_threads(2)
rng = np.random.default_rng(0)
res = {}
x = rng.standard_normal(SHAPE).astype(np.float32)
small = x[:1, :1, :8, :8].copy()
cols_small = fastconv.unfold(small, KERNEL, padding=PADDING, backend=backend)
fastconv.fold(cols_small, (8, 8), KERNEL, padding=PADDING, backend=backend)  # warm up
cols = np.empty((SHAPE[0], SHAPE[1] * KERNEL * KERNEL, SHAPE[2] * SHAPE[3]), np.float32)
cols[...] = 0
before, reset = reset_peak(backend)
fastconv.unfold(x, KERNEL, padding=PADDING, backend=backend, out=cols)
res["unfold"] = {"extra": status("VmHWM") - before, "in_out": x.nbytes + cols.nbytes,
                 "reset": reset}
y = np.empty_like(x)
y[...] = 0
before, reset = reset_peak(backend)
fastconv.fold(cols, SHAPE[2:], KERNEL, padding=PADDING, backend=backend, out=y)
res["fold"] = {"extra": status("VmHWM") - before, "in_out": x.nbytes + cols.nbytes,
               "reset": reset}
print(json.dumps(res))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("backend_", BACKENDS)
def test_extra_memory_on_the_bench_shapes_is_bounded(backend_):
    from test_memory import _PREAMBLE, MIB

    proc = subprocess.run([sys.executable, "-c", _PREAMBLE + MEM_CHILD, backend_],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.splitlines()[-1])
    for op, r in res.items():
        assert r["reset"] < MIB, "clear_refs did not reset the peak resident set"
        bound = max(64 * MIB, r["in_out"])
        assert r["extra"] < bound, (f"{backend_} {op}: {r['extra'] / MIB:.1f} MiB extra, "
                                    f"bound {bound / MIB:.1f} MiB")


# --------------------------------------------------------------------------------------------
# long calls run in pieces of planes (fastconv._chunks.by_planes), so Ctrl-C stops them
# --------------------------------------------------------------------------------------------
def _piece_calls(rng):
    x = rng.standard_normal((3, 4, 9, 8)).astype(np.float32)
    cols = rng.standard_normal((3, 36, 49)).astype(np.float32)  # 3x3, 7x7 blocks of 9x9
    y, idx = TF.max_pool2d(torch.from_numpy(x), 2, return_indices=True)
    y, idx = y.numpy(), idx.numpy()
    gy = rng.standard_normal((3, 4, 8, 8)).astype(np.float32)
    return {
        "unfold": lambda b: fastconv.unfold(x, 3, 2, 1, 1, backend=b),
        "fold": lambda b: fastconv.fold(cols, (9, 9), 3, 1, 0, 1, backend=b),
        "grad.unfold": lambda b: G.unfold(cols, (3, 4, 9, 9), 3, backend=b),
        "grad.fold": lambda b: G.fold(x, 3, 2, 1, 1, backend=b),
        "max_unpool2d": lambda b: fastconv.max_unpool2d(y, idx, 2, output_size=(9, 8),
                                                        backend=b),
        "grad.max_unpool2d": lambda b: G.max_unpool2d(gy, idx[:, :, :, :4], backend=b),
    }


@pytest.mark.parametrize("name", ["unfold", "fold", "grad.unfold", "grad.fold",
                                  "max_unpool2d", "grad.max_unpool2d"])
def test_long_calls_run_in_pieces_with_the_whole_calls_result(backend, rng, monkeypatch,
                                                             name):
    from fastconv import _chunks, _dispatch

    f = _piece_calls(rng)[name]
    whole = f(backend)
    calls = []
    real = _dispatch._call

    def counting(op, nm, fn, args):
        calls.append(args[0].shape[0])
        return real(op, nm, fn, args)

    monkeypatch.setattr(_dispatch, "_call", counting)
    monkeypatch.setattr(_chunks, "SPLIT_SECONDS", 0.0)
    monkeypatch.setattr(_chunks, "PIECE_SECONDS", 1e-9)  # one plane a piece
    pieces = f(backend)
    assert calls == [1] * 12, calls  # 3 images x 4 channels
    np.testing.assert_array_equal(pieces, whole)


def test_an_interrupt_stops_between_two_pieces(rng, monkeypatch):
    from fastconv import _chunks, _dispatch

    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    want = fastconv.unfold(x, 2, backend="numpy")
    calls = []
    real = _dispatch._call

    def interrupted_third(op, nm, fn, args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(op, nm, fn, args)

    monkeypatch.setattr(_dispatch, "_call", interrupted_third)
    monkeypatch.setattr(_chunks, "SPLIT_SECONDS", 0.0)
    monkeypatch.setattr(_chunks, "PIECE_SECONDS", 1e-9)
    out = np.full(want.shape, -7.0, np.float32)
    with pytest.raises(KeyboardInterrupt):
        fastconv.unfold(x, 2, backend="numpy", out=out)
    np.testing.assert_array_equal(out[0, :8], want[0, :8])  # the two planes finished
    assert (out[0, 8:] == -7).all() and (out[1] == -7).all()


def test_bench_shapes_run_in_one_piece(backend):
    from fastconv import _chunks, _plan

    x = np.empty((8, 64, 56, 56), np.float32)
    cols = np.empty((8, 576, 3136), np.float32)
    for op, args in (("unfold", (x, cols)), ("fold", (cols, x))):
        assert _plan.seconds(op, backend, args) <= _chunks.SPLIT_SECONDS


def test_bench_targets_name_the_groups_of_the_paired_bench():
    from fastconv.bench.targets import FAMILIES, FAMILY_TARGETS
    from fastconv.bench.targets_fold import PAIRED

    wanted = {g: b for _, g, b in FAMILY_TARGETS if g.split("-")[0] in ("unfold", "fold")}
    assert set(PAIRED) == set(wanted) and all(wanted[g] == PAIRED[g]["bound"] for g in PAIRED)
    assert "fold" in FAMILIES
