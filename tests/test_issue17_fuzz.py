"""Issue 17's functions under the fuzz target tools/fuzz.py (its ``calls17`` generator), and
the hostile inputs the fuzzing probed: sizes whose output or padded frame could not exist must
raise ValueError on every backend, before any kernel runs (never a crash or a MemoryError)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings

import fastconv

G = fastconv.grad
FUZZ = Path(__file__).resolve().parent.parent / "tools" / "fuzz.py"
BACKENDS = fastconv.backends()


def _load():
    spec = importlib.util.spec_from_file_location("fastconv_fuzz17", FUZZ)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


fuzz = _load()


def test_issue17_fuzz_generator_agrees_on_every_backend():
    """A fixed-seed sample of issue 17's calls: every backend returns the reference's result
    or raises the same ValueError/TypeError; the sample reaches both outcomes."""
    fuzz.OUTCOMES.clear()

    @seed(17)
    @settings(max_examples=120, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(fuzz.calls17())
    def run(case):
        fuzz.check(*case)

    run()
    names = {name for name, _ in fuzz.OUTCOMES}
    assert names <= set(fuzz.NAMES17)
    assert len(names) >= 20
    assert sum(n for (_, what), n in fuzz.OUTCOMES.items() if what == "result") >= 20
    assert sum(n for (_, what), n in fuzz.OUTCOMES.items() if what != "result") >= 20


def test_issue17_fuzz_torch_cross_check_sample():
    """The --torch report on a fixed-seed sample: no value differs from torch's."""
    pytest.importorskip("torch")
    fuzz.TORCH_SEEN.clear()
    fuzz.TORCH_DIFFS.clear()

    @seed(1717)
    @settings(max_examples=80, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(fuzz.calls17())
    def run(case):
        name, f, args, kwargs = case
        ref = fuzz._outcome(f, args, kwargs if name in fuzz.NO_BACKEND
                            else {**kwargs, "backend": "numpy"})
        fuzz.torch_check(name, args, kwargs, ref)

    run()
    assert sum(fuzz.TORCH_SEEN.values()) >= 10
    assert [d for d in fuzz.TORCH_DIFFS if d[1] == "values"] == []


x1 = np.ones((1, 2, 3), np.float32)
x2 = np.ones((1, 2, 3, 3), np.float32)
x3 = np.ones((1, 2, 3, 3, 3), np.float32)
BIG = 2**31 - 1

HUGE = {
    "conv_transpose3d stride": lambda b: fastconv.conv_transpose3d(
        x3, np.ones((2, 1, 3, 3, 3), np.float32), stride=2**30, backend=b),
    "conv_transpose2d dilation": lambda b: fastconv.conv_transpose2d(
        x2, np.ones((2, 1, 3, 3), np.float32), dilation=2**30, backend=b),
    "conv_transpose2d output_padding": lambda b: fastconv.conv_transpose2d(
        x2, np.ones((2, 1, 3, 3), np.float32), stride=2**30, output_padding=2**30 - 1,
        backend=b),
    "conv3d padding": lambda b: fastconv.conv3d(
        x3, np.ones((1, 2, 1, 1, 1), np.float32), padding=2**30, stride=2**30, backend=b),
    "conv3d dilation": lambda b: fastconv.conv3d(
        x3, np.ones((1, 2, 2, 2, 2), np.float32), padding=2**30, dilation=BIG, backend=b),
    "fold output_size": lambda b: fastconv.fold(
        np.ones((1, 4, 1), np.float32), (BIG, BIG), 2, stride=BIG, backend=b),
    "adaptive_avg_pool3d output_size": lambda b: fastconv.adaptive_avg_pool3d(
        x3, BIG, backend=b),
    "max_unpool3d kernel_size": lambda b: fastconv.max_unpool3d(
        np.ones((1, 1, 1, 1, 1), np.float32), np.zeros((1, 1, 1, 1, 1), np.int64), BIG,
        backend=b),
    "max_unpool1d index": lambda b: fastconv.max_unpool1d(
        np.ones((1, 1, 2), np.float32), np.array([[[0, 2**40]]]), 2, backend=b),
    "max_pool3d padding": lambda b: fastconv.max_pool3d(
        x3, BIG, padding=2**30 - 1, backend=b),
    "avg_pool2d divisor_override": lambda b: fastconv.avg_pool2d(
        x2, 2, stride=1, divisor_override=2**62, backend=b),
    "grad.conv3d_input input_size": lambda b: G.conv3d_input(
        (1, 2, BIG, 1, 1), np.ones((1, 2, 1, 1, 1)), np.ones((1, 1, 1, 1, 1)), stride=BIG,
        backend=b),
    "grad.avg_pool3d input_size": lambda b: G.avg_pool3d(
        np.ones((1, 1, 1, 1, 1)), (1, 1, BIG, BIG, BIG), BIG, backend=b),
    "grad.adaptive_avg_pool1d input_size": lambda b: G.adaptive_avg_pool1d(
        np.ones((1, 1, 1)), (1, 1, 2**62), backend=b),
    "grad.fold padding": lambda b: G.fold(np.ones((1, 1, 3, 3)), BIG, padding=2**30,
                                          backend=b),
    "grad.max_unpool2d index": lambda b: G.max_unpool2d(
        np.ones((1, 1, 3, 3)), np.array([9]).reshape(1, 1, 1, 1), backend=b),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(HUGE))
def test_issue17_fuzz_impossible_sizes_raise_valueerror(case, backend):
    with pytest.raises(ValueError):
        HUGE[case](backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("f", [fastconv.lp_pool1d, fastconv.lp_pool2d, G.lp_pool1d, G.lp_pool2d])
def test_issue17_fuzz_lp_pool_norm_type_beyond_float(f, backend):
    """Found by fuzzing: norm_type=10**400 raised OverflowError from float(); now a ValueError
    naming norm_type, on every backend, for the pools and their gradients."""
    x = np.ones((1, 2, 4, 4), np.float32)
    args = (x,) if f in (fastconv.lp_pool1d, fastconv.lp_pool2d) else (np.ones((1, 2, 2, 2)), x)
    if f in (fastconv.lp_pool1d, G.lp_pool1d):
        args = tuple(a[:, :, 0] for a in args)
    for p in (10**400, -(10**400)):
        with pytest.raises(ValueError, match="norm_type"):
            f(*args, p, 2, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("p, poison", [(0.5, "negative"), (2.0, "nan"), (1.5, "negative"),
                                      (1.0, "nan"), (3.0, "inf"), (1.0, "negative")])
def test_issue17_fuzz_lp_pool_grad_nan_windows_match_torch(nd, p, poison, backend):
    """Found by the fuzz target's torch cross-check: a window whose power sum is NaN (a
    negative x to a fractional norm_type, or a NaN in x) passed a zero gradient to its other
    elements, where torch's autograd passes NaN; now it matches torch's, NaN for NaN (and 0
    where torch gives 0: norm_type=1 with a NaN in x, torch's sign(NaN) being 0)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(17)
    x = np.abs(rng.standard_normal((2, 3, 9) if nd == 1 else (2, 3, 7, 6))) + 0.1
    x.reshape(-1)[::11] = {"negative": -1.0, "nan": np.nan, "inf": np.inf}[poison]
    f, g = (fastconv.lp_pool1d, G.lp_pool1d) if nd == 1 else (fastconv.lp_pool2d, G.lp_pool2d)
    tf = torch.nn.functional.lp_pool1d if nd == 1 else torch.nn.functional.lp_pool2d
    for ceil_mode in (False, True):
        y = f(x, p, 3, 2, ceil_mode, backend=backend)
        gy = rng.standard_normal(y.shape)
        got = g(gy, x, p, 3, 2, ceil_mode, backend=backend)
        xt = torch.from_numpy(x).requires_grad_(True)
        tf(xt, p, 3, 2, ceil_mode).backward(torch.from_numpy(gy))
        want = xt.grad.numpy()
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, equal_nan=True)


def _poisoned(shape, where, value, seed_=0):
    a = np.random.default_rng(seed_).standard_normal(shape)
    a[where] = value
    return a


NONFINITE = {  # name -> (call(backend), what holds the NaN/inf)
    "grad.conv3d_weight x": lambda b, v: G.conv3d_weight(
        _poisoned((1, 2, 1, 2, 6), (0, 0, 0, 0, 5), v), (2, 2, 1, 1, 3),
        np.ones((1, 2, 1, 2, 4)), backend=b),
    "grad.conv3d_input weight": lambda b, v: G.conv3d_input(
        (1, 2, 1, 2, 6), _poisoned((2, 2, 1, 1, 3), (0, 0, 0, 0, 2), v),
        np.ones((1, 2, 1, 2, 4)), backend=b),
    "grad.conv2d_input weight": lambda b, v: G.conv2d_input(
        (1, 2, 2, 6), _poisoned((2, 2, 1, 3), (0, 0, 0, 2), v), np.ones((1, 2, 2, 4)),
        backend=b),
    "conv_transpose1d weight": lambda b, v: fastconv.conv_transpose1d(
        np.ones((1, 2, 4)), _poisoned((2, 2, 3), (0, 0, 2), v), backend=b),
    "conv_transpose2d weight": lambda b, v: fastconv.conv_transpose2d(
        np.ones((1, 2, 2, 4)), _poisoned((2, 2, 1, 3), (0, 0, 0, 2), v), backend=b),
    "conv_transpose3d weight": lambda b, v: fastconv.conv_transpose3d(
        np.ones((1, 2, 1, 2, 4)), _poisoned((2, 2, 1, 1, 3), (0, 0, 0, 0, 2), v), backend=b),
    "grad.conv_transpose3d_weight grad_output": lambda b, v: G.conv_transpose3d_weight(
        np.ones((1, 2, 1, 2, 4)), (2, 2, 1, 1, 3),
        _poisoned((1, 2, 1, 2, 6), (0, 0, 0, 0, 5), v), backend=b),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("case", sorted(NONFINITE))
def test_issue17_fuzz_nonfinite_stays_where_it_belongs(case, value, backend):
    """Found by fuzzing: Cython's stride-1 conv3d_weight (its flat-grid GEMM) multiplied x
    by grad_output's zero padding, so one NaN in x made every weight tap along W NaN; the
    stride-1 input gradients (conv3d_input, conv2d_input, and so the transposed
    convolutions) did the same with a NaN or inf weight against the zero frame. Each
    backend now has NaN exactly where the reference has it, and the same finite values."""
    want = NONFINITE[case]("numpy", value)
    got = NONFINITE[case](backend, value)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-9, equal_nan=True)
