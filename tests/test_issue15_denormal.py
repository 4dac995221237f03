"""Issue 15, item 7: ``fastconv.set_flush_denormal`` flushes subnormals in the kernel threads.

With flushing on, the compiled kernels give torch's results under
``torch.set_flush_denormal(True)``, on subnormal inputs and on inputs whose products are
subnormal, with no subnormal left in any result; with it off, subnormals are kept (the NumPy
reference's results). The mode never leaks: the caller's MXCSR is unchanged after a call,
and a torch call afterwards computes in its own mode. Results do not depend on the thread
count. The setter validates its argument.
"""

from __future__ import annotations

import doctest
import io
import threading

import numpy as np
import pytest

import fastconv
from fastconv import _threads
from fastconv import grad as G

from conftest import BACKENDS

COMPILED = [b for b in ("cython", "numba") if b in BACKENDS]
FTZ_DAZ = 0x8040
# MXCSR without its six sticky exception flags (bits 0-5): the modes and masks
CONTROL = 0xFFC0

pytestmark = pytest.mark.skipif(not _threads.flush_denormal_supported(),
                                reason="FTZ/DAZ needs x86-64")


def _mxcsr():
    """The calling thread's MXCSR, read by compiled code (the Cython hook, else Numba's)."""
    try:
        from fastconv import _fpenv
        return _fpenv.mxcsr()
    except ImportError:  # pragma: no cover - a build without the Cython backend
        from fastconv._numba._common import mxcsr
        return int(mxcsr())


@pytest.fixture
def flush():
    """Flushing on for the test, off afterwards (whatever the test did)."""
    assert fastconv.set_flush_denormal(True) is True
    yield
    fastconv.set_flush_denormal(False)


@pytest.fixture
def torch_flush():
    """Run a callable in torch with its flush-to-zero on, on the calling thread (torch's
    setting is the calling thread's MXCSR: one intra-op thread keeps all its work there)."""
    torch = pytest.importorskip("torch")

    def run(fn):
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        assert torch.set_flush_denormal(True)
        try:
            with torch.no_grad():
                return fn(torch)
        finally:
            torch.set_flush_denormal(False)
            torch.set_num_threads(n)
    return run


def _subnormal(a):
    a = np.asarray(a)
    return (a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny)


def _data(rng, shape, dtype, kind):
    """Values of ``kind``: "sub" a mix of normal values and subnormals, and subnormals
    and zeros only along the first index;
    "prod" values of about sqrt(tiny) / 32, whose products are subnormal (also those of
    Winograd's transformed values, up to 9x larger)."""
    tiny = np.finfo(dtype).tiny
    a = rng.standard_normal(shape)
    if kind == "sub":
        sub = rng.random(shape) < 0.5
        sub[:1] = True  # the first image (filter, bias) holds subnormals and zeros only
        a = np.where(sub, a * tiny * 0.2, a)
        a[:1][rng.random(a[:1].shape) < 0.1] = 0
    else:
        a = a * np.sqrt(tiny) / 32
    return a.astype(dtype)


def _same_as_torch(ours, theirs, dtype, what):
    """Equal to torch's result: the same exact zeros, no subnormal, and values within
    rounding of a sum taken in another order."""
    theirs = np.asarray(theirs)
    assert ours.dtype == dtype, what
    assert not _subnormal(ours).any(), f"{what}: subnormals left with flushing on"
    assert not _subnormal(theirs).any(), f"{what}: torch kept subnormals (not flushing?)"
    np.testing.assert_array_equal(ours == 0, theirs == 0, err_msg=what)
    # (the exact zeros are compared above; this is rounding, cancellation included)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    atol = rtol * 0.1 * float(np.abs(theirs).max(initial=0))
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, err_msg=what)


# Conv layers covering every path of both backends: (x shape, w shape, stride, padding,
# groups). Cython's algorithm is checked below, so that a change of its rules cannot quietly
# leave a prange region untested.
CONV_CASES = {
    "direct_flat": ((2, 3, 9, 9), (4, 3, 3, 3), 1, 1, 1),
    "direct_rows": ((2, 3, 11, 11), (4, 3, 2, 2), 3, 0, 1),
    "plane": ((1, 4, 20, 20), (4, 1, 3, 3), 1, 1, 4),
    "gemm": ((1, 32, 12, 12), (16, 32, 1, 1), 2, 0, 1),
    "pointwise": ((1, 32, 6, 6), (16, 32, 1, 1), 1, 0, 1),
    "winograd": ((1, 32, 32, 32), (32, 32, 3, 3), 1, 1, 1),
    "numba_gemm": ((1, 8, 9, 9), (8, 8, 3, 3), 1, 1, 1),
}
CY_ALGO = {"direct_flat": "direct", "direct_rows": "direct", "plane": "direct",
           "gemm": "gemm", "pointwise": "pointwise", "winograd": "winograd"}


def test_issue15_conv_cases_reach_every_cython_algorithm():
    if "cython" not in BACKENDS:
        pytest.skip("no Cython backend")
    from fastconv import _plan

    for name, algo in CY_ALGO.items():
        xs, ws, s, p, g = CONV_CASES[name]
        ho = (xs[2] + 2 * p - ws[2]) // s + 1
        wo = (xs[3] + 2 * p - ws[3]) // s + 1
        got = _plan.conv2d("cython", xs, ws, (xs[0], ws[0], ho, wo), (s, s), (p, p), (1, 1),
                           g)
        assert got == algo, name


@pytest.mark.parametrize("kind", ["sub", "prod"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(CONV_CASES))
@pytest.mark.parametrize("backend", COMPILED)
def test_issue15_conv2d_flushed_equals_torch(backend, case, dtype, kind, rng, flush,
                                             torch_flush):
    xs, ws, s, p, g = CONV_CASES[case]
    x, w = _data(rng, xs, dtype, kind), _data(rng, ws, dtype, kind)
    b = _data(rng, ws[:1], dtype, "sub")
    ours = fastconv.conv2d(x, w, b, stride=s, padding=p, groups=g, backend=backend)
    theirs = torch_flush(lambda t: t.nn.functional.conv2d(
        t.from_numpy(x), t.from_numpy(w), t.from_numpy(b), stride=s, padding=p,
        groups=g).numpy())
    _same_as_torch(ours, theirs, dtype, f"{backend} {case}")
    if kind == "prod":  # every product flushed: only the (flushed) bias is left
        expected = np.where(_subnormal(b), 0, b)[None, :, None, None]
        np.testing.assert_array_equal(ours, np.broadcast_to(expected, ours.shape))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool", ["max2x2", "max3x3", "avg"])
@pytest.mark.parametrize("backend", COMPILED)
def test_issue15_pools_flushed_equal_torch(backend, pool, dtype, rng, flush, torch_flush):
    x = _data(rng, (2, 3, 10, 10), dtype, "sub")
    tiny = np.finfo(dtype).tiny
    # a window of subnormals only, read as zeros under DAZ: no maximum is larger than the
    # first (without DAZ, the second is)
    x[0, 0, :2, :2] = [[0.1 * tiny, 0.5 * tiny], [0, 0.3 * tiny]]
    x[0, 1, :2, :2] = -0.25 * tiny
    if pool == "avg":
        ours = fastconv.avg_pool2d(x, 3, 2, 1, backend=backend)
        theirs = torch_flush(lambda t: t.nn.functional.avg_pool2d(
            t.from_numpy(x), 3, 2, 1).numpy())
    else:
        args = (2,) if pool == "max2x2" else (3, 1, 1)
        ours, idx = fastconv.max_pool2d(x, *args, return_indices=True, backend=backend)
        np.testing.assert_array_equal(fastconv.max_pool2d(x, *args, backend=backend), ours)
        # max-pooling moves values: comparisons read subnormals as zero (DAZ), and the
        # maximum is returned as it is, as torch's max_pool2d with indices does
        theirs, tidx = torch_flush(lambda t: [a.numpy() for a in t.nn.functional.max_pool2d(
            t.from_numpy(x), *args, return_indices=True)])
        np.testing.assert_array_equal(idx, tidx)
        np.testing.assert_array_equal(ours, theirs)
        assert _subnormal(ours).any()
        assert idx[0, 0, 0, 0] == 0 and ours[0, 0, 0, 0] == x[0, 0, 0, 0]
        return
    _same_as_torch(ours, theirs, dtype, f"{backend} {pool}")
    assert ours[0, 0, 0, 0] == 0
    np.testing.assert_array_equal(np.signbit(ours), np.signbit(theirs))


# (x shape, w shape, stride, padding): the direct and the GEMM gradient kernels
GRAD_CASES = {"direct": ((2, 3, 8, 8), (4, 3, 3, 3), 1, 1),
              "gemm": ((2, 16, 8, 8), (16, 16, 3, 3), 1, 1),
              "strided": ((2, 4, 9, 9), (4, 4, 3, 3), 2, 0)}


@pytest.mark.parametrize("kind", ["sub", "prod"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(GRAD_CASES))
@pytest.mark.parametrize("backend", COMPILED)
def test_issue15_conv_grads_flushed_equal_torch(backend, case, dtype, kind, rng, flush,
                                                torch_flush):
    xs, ws, s, p = GRAD_CASES[case]
    x, w = _data(rng, xs, dtype, kind), _data(rng, ws, dtype, kind)
    ho = (xs[2] + 2 * p - ws[2]) // s + 1
    gy = _data(rng, (xs[0], ws[0], ho, ho), dtype, kind)
    gx = G.conv2d_input(xs, w, gy, s, p, backend=backend)
    gw = G.conv2d_weight(x, ws, gy, s, p, backend=backend)
    tgx, tgw = torch_flush(lambda t: (
        t.nn.grad.conv2d_input(xs, t.from_numpy(w), t.from_numpy(gy), s, p).numpy(),
        t.nn.grad.conv2d_weight(t.from_numpy(x), ws, t.from_numpy(gy), s, p).numpy()))
    _same_as_torch(gx, tgx, dtype, f"{backend} {case} grad input")
    _same_as_torch(gw, tgw, dtype, f"{backend} {case} grad weight")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", COMPILED)
def test_issue15_pool_grads_flushed_equal_torch(backend, dtype, rng, flush, torch_flush):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 8, 8)).astype(dtype)
    y, idx = fastconv.max_pool2d(x, 3, 2, 1, return_indices=True, backend="numpy")
    gy = _data(rng, y.shape, dtype, "sub")
    gx_max = G.max_pool2d(gy, idx, x.shape, backend=backend)
    gy_avg = _data(rng, fastconv.avg_pool2d(x, 3, 2, 1, backend="numpy").shape, dtype, "sub")
    gx_avg = G.avg_pool2d(gy_avg, x.shape, 3, 2, 1, backend=backend)

    def ref(t):
        out = []
        for fn, g in ((lambda a: t.nn.functional.max_pool2d(a, 3, 2, 1), gy),
                      (lambda a: t.nn.functional.avg_pool2d(a, 3, 2, 1), gy_avg)):
            a = t.from_numpy(x).requires_grad_(True)
            with t.enable_grad():
                fn(a).backward(t.from_numpy(g))
            out.append(a.grad.numpy())
        return out
    tmax, tavg = torch_flush(ref)
    assert torch is not None
    _same_as_torch(gx_max, tmax, dtype, f"{backend} max_pool2d grad")
    _same_as_torch(gx_avg, tavg, dtype, f"{backend} avg_pool2d grad")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", COMPILED)
def test_issue15_locally_connected_flushes(backend, dtype, rng, flush):
    """No torch twin: subnormal products (and subnormal inputs times normal weights) add up
    to exact zeros, and the result without flushing is subnormal."""
    x = _data(rng, (2, 3, 6, 6), dtype, "prod")
    w = _data(rng, (4, 4, 5, 3, 3, 3), dtype, "prod")
    xs = (rng.standard_normal(x.shape) * np.finfo(dtype).tiny * 0.01).astype(dtype)
    ws = rng.standard_normal(w.shape).astype(dtype)
    for a, b in ((x, w), (xs, ws)):
        np.testing.assert_array_equal(fastconv.locally_connected2d(a, b, backend=backend), 0)
        assert _subnormal(fastconv.locally_connected2d(a, b, backend="numpy")).mean() > 0.9


# --------------------------------------------------------------------------------------------
# off: subnormals kept
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", COMPILED)
def test_issue15_off_keeps_subnormals(backend, dtype, rng):
    assert fastconv.get_flush_denormal() is False
    tiny = np.finfo(dtype).tiny
    x, w = _data(rng, (2, 3, 9, 9), dtype, "prod"), _data(rng, (4, 3, 3, 3), dtype, "prod")
    ours = fastconv.conv2d(x, w, padding=1, backend=backend)
    ref = fastconv.conv2d(x, w, padding=1, backend="numpy")
    assert _subnormal(ours).mean() > 0.9
    # sums of subnormal products: each product rounded to the subnormal grid
    np.testing.assert_allclose(ours, ref, rtol=0, atol=28 * np.finfo(dtype).smallest_subnormal)
    xs = _data(rng, (2, 3, 8, 8), dtype, "sub")
    for ours, ref in ((fastconv.max_pool2d(xs, 2, backend=backend),
                       fastconv.max_pool2d(xs, 2, backend="numpy")),
                      (fastconv.avg_pool2d(xs * 4, 2, backend=backend),
                       fastconv.avg_pool2d(xs * 4, 2, backend="numpy"))):
        assert _subnormal(ours).any()
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=4 * tiny * 2.0 ** -20)


@pytest.mark.parametrize("backend", COMPILED)
def test_issue15_switching_back_off_keeps_subnormals_again(backend):
    x = np.full((1, 1, 3, 3), 1e-39, np.float32)
    w = np.ones((1, 1, 3, 3), np.float32)
    assert fastconv.set_flush_denormal(True)
    try:
        assert fastconv.conv2d(x, w, backend=backend)[0, 0, 0, 0] == 0
    finally:
        assert fastconv.set_flush_denormal(False)
    assert _subnormal(fastconv.conv2d(x, w, backend=backend)).all()


# --------------------------------------------------------------------------------------------
# no leak
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", COMPILED)
def test_issue15_caller_mxcsr_unchanged(backend, rng, flush, threads):
    x = _data(rng, (2, 16, 8, 8), np.float32, "sub")
    w = _data(rng, (16, 16, 3, 3), np.float32, "sub")
    for n in (1, 2):
        fastconv.set_num_threads(n)
        before = _mxcsr() & CONTROL
        assert before & FTZ_DAZ == 0
        y = fastconv.conv2d(x, w, padding=1, backend=backend)
        fastconv.max_pool2d(y, 2, backend=backend)
        fastconv.avg_pool2d(y, 2, backend=backend)
        G.conv2d_weight(x, w.shape, y, padding=1, backend=backend)
        assert _mxcsr() & CONTROL == before, f"{n} threads"
    # a caller that set the modes itself keeps them too
    saved = _mxcsr()
    from fastconv import _fpenv
    _fpenv.set_mxcsr(saved | FTZ_DAZ)
    try:
        fastconv.conv2d(x, w, padding=1, backend=backend)
        assert _mxcsr() & FTZ_DAZ == FTZ_DAZ
    finally:
        _fpenv.set_mxcsr(saved)


@pytest.mark.parametrize("backend", COMPILED)
def test_issue15_torch_after_us_keeps_its_mode(backend, flush, threads):
    """Our flushing ends with our work: torch (flag off) then computes subnormals, on its
    own threads (the OpenMP pool threads we used) and on the caller's."""
    torch = pytest.importorskip("torch")
    x = np.full((4, 8, 16, 16), 1e-39, np.float32)
    w = np.ones((8, 8, 3, 3), np.float32) / 72  # sums of 72 taps stay subnormal
    fastconv.set_num_threads(2)
    assert (fastconv.conv2d(x, w, backend=backend) == 0).all()
    n = torch.get_num_threads()
    try:
        for nt in (1, 2):
            torch.set_num_threads(nt)
            y = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w)).numpy()
            assert _subnormal(y).all(), f"torch on {nt} threads flushed"
            z = (torch.from_numpy(x) * 0.5).numpy()
            assert _subnormal(z).all()
    finally:
        torch.set_num_threads(n)


@pytest.mark.parametrize("backend", COMPILED)
def test_issue15_other_python_thread_unchanged(backend, flush):
    """A Python thread running numpy meanwhile keeps its own (default) mode."""
    x = np.full((8, 16, 32, 32), 1e-39, np.float32)
    w = np.ones((16, 16, 3, 3), np.float32)
    seen = []

    def other():
        seen.append(_mxcsr() & FTZ_DAZ)
        seen.append(bool(_subnormal(np.full(4, 1e-39, np.float32) * np.float32(0.5)).all()))

    t = threading.Thread(target=other)
    t.start()
    fastconv.conv2d(x, w, padding=1, backend=backend)
    t.join()
    assert seen == [0, True]


# --------------------------------------------------------------------------------------------
# threads, validation, docs
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", COMPILED)
def test_issue15_flushed_results_independent_of_threads(backend, rng, flush, threads):
    x = _data(rng, (4, 16, 12, 12), np.float32, "prod")
    x[0] = rng.standard_normal(x[0].shape)
    w = _data(rng, (16, 16, 3, 3), np.float32, "prod")
    w[:4] = rng.standard_normal(w[:4].shape)
    res = []
    for n in (1, 2, 3):
        fastconv.set_num_threads(n)
        y = fastconv.conv2d(x, w, padding=1, backend=backend)
        res.append((y, fastconv.max_pool2d(x, 2, backend=backend),
                    fastconv.avg_pool2d(x, 2, backend=backend),
                    G.conv2d_weight(x, w.shape, y, padding=1, backend=backend)))
    assert not (res[0][0] == 0).all() and (res[0][0] == 0).any()
    for other in res[1:]:
        for a, b in zip(res[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [1, 0, 1.0, "yes", None, np.array([True])])
def test_issue15_set_flush_denormal_validates(bad):
    with pytest.raises(TypeError, match="set_flush_denormal: mode"):
        fastconv.set_flush_denormal(bad)
    assert fastconv.get_flush_denormal() is False


def test_issue15_set_flush_denormal_accepts_numpy_bool():
    try:
        assert fastconv.set_flush_denormal(np.True_) is True
        assert fastconv.get_flush_denormal() is True
    finally:
        fastconv.set_flush_denormal(False)
    assert fastconv.get_flush_denormal() is False


def test_issue15_public_and_in_info():
    assert {"set_flush_denormal", "get_flush_denormal"} <= set(fastconv.__all__)
    buf = io.StringIO()
    fastconv.info(file=buf)
    line = next(ln for ln in buf.getvalue().splitlines() if ln.startswith("flush_denormal"))
    assert line.split(":", 1)[1].strip().startswith("off")


def test_issue15_docstring_example_runs():
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = doctest.DocTestFinder().find(_threads.set_flush_denormal, "set_flush_denormal")
    assert tests and tests[0].examples
    out = io.StringIO()
    try:
        for t in tests:
            runner.run(t, out=out.write)
    finally:
        fastconv.set_flush_denormal(False)
    assert runner.summarize(verbose=False).failed == 0, out.getvalue()
