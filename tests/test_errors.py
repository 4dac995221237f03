"""Bad input: one case per mistake, on every backend, asserting the exception type and that the
message names the argument. Validation happens once, in Python, before any kernel runs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastconv
from fastconv import _dispatch

X2 = np.ones((2, 4, 6, 6))
W2 = np.ones((6, 4, 3, 3))
X1 = np.ones((2, 4, 8))
W1 = np.ones((6, 4, 3))
P2 = np.ones((2, 3, 6, 6))


def _huge(shape, dtype=np.float64):
    """A read-only view of ``shape`` that costs one element of memory."""
    return np.broadcast_to(np.ones((1,) * len(shape), dtype), shape)


def _readonly(shape):
    a = np.zeros(shape)
    a.flags.writeable = False
    return a


# (id, function, args, kwargs, exception, regex the message must match)
BAD = [
    # ---- conv: shapes
    ("conv2d x ndim", "conv2d", (np.ones((6, 6)), W2), {}, ValueError, r"\bx\b"),
    ("conv2d x ndim 5", "conv2d", (np.ones((1, 2, 4, 6, 6)), W2), {}, ValueError, r"\bx\b"),
    ("conv1d x ndim", "conv1d", (np.ones((1, 1, 4, 8)), W1), {}, ValueError, r"\bx\b"),
    ("conv2d weight ndim", "conv2d", (X2, np.ones((6, 4, 3))), {}, ValueError, "weight"),
    ("conv1d weight ndim", "conv1d", (X1, np.ones((6, 4, 3, 3))), {}, ValueError, "weight"),
    ("conv2d channel mismatch", "conv2d", (X2, np.ones((6, 3, 3, 3))), {}, ValueError,
     "weight.*channels|channels.*weight"),
    ("conv1d channel mismatch", "conv1d", (X1, np.ones((6, 2, 3))), {}, ValueError,
     "weight.*channels|channels.*weight"),
    ("groups do not divide in_channels", "conv2d", (X2, np.ones((6, 1, 3, 3))),
     dict(groups=3), ValueError, "groups"),
    ("groups do not divide out_channels", "conv2d", (X2, np.ones((5, 2, 3, 3))),
     dict(groups=2), ValueError, "groups"),
    ("groups zero", "conv2d", (X2, W2), dict(groups=0), ValueError, "groups"),
    ("groups float", "conv2d", (X2, W2), dict(groups=1.0), TypeError, "groups"),
    ("bias shape", "conv2d", (X2, W2, np.ones(5)), {}, ValueError, "bias"),
    ("bias 2-D", "conv2d", (X2, W2, np.ones((6, 1))), {}, ValueError, "bias"),
    ("bias scalar", "conv1d", (X1, W1, np.float64(1.0)), {}, ValueError, "bias"),
    ("conv2d output empty", "conv2d", (np.ones((1, 4, 2, 6)), W2), {}, ValueError,
     r"output.*\bx\b"),
    ("conv1d output empty (dilation)", "conv1d", (X1, W1), dict(dilation=4), ValueError,
     r"output.*\bx\b"),
    ("conv2d empty x", "conv2d", (np.ones((1, 4, 0, 6)), W2), {}, ValueError, r"\bx\b"),
    ("conv2d empty channels", "conv2d", (np.ones((1, 0, 6, 6)), np.ones((2, 0, 3, 3))), {},
     ValueError, r"\bx\b|weight"),
    ("conv2d empty weight", "conv2d", (X2, np.ones((0, 4, 3, 3))), {}, ValueError, "weight"),
    # ---- conv: stride, padding, dilation
    ("stride zero", "conv2d", (X2, W2), dict(stride=0), ValueError, "stride"),
    ("stride negative pair", "conv2d", (X2, W2), dict(stride=(1, -1)), ValueError, "stride"),
    ("stride wrong length", "conv2d", (X2, W2), dict(stride=(1, 1, 1)), ValueError, "stride"),
    ("stride float", "conv1d", (X1, W1), dict(stride=1.5), TypeError, "stride"),
    ("stride bool", "conv2d", (X2, W2), dict(stride=True), TypeError, "stride"),
    ("dilation zero", "conv2d", (X2, W2), dict(dilation=0), ValueError, "dilation"),
    ("dilation negative", "conv1d", (X1, W1), dict(dilation=-2), ValueError, "dilation"),
    ("padding negative", "conv2d", (X2, W2), dict(padding=-1), ValueError, "padding"),
    ("padding negative pair", "conv2d", (X2, W2), dict(padding=(0, -1)), ValueError,
     "padding"),
    ("padding wrong length", "conv2d", (X2, W2), dict(padding=(1,)), ValueError, "padding"),
    ("padding unknown string", "conv2d", (X2, W2), dict(padding="full"), ValueError,
     "padding"),
    ("padding None", "conv1d", (X1, W1), dict(padding=None), TypeError, "padding"),
    ("same with stride 2", "conv2d", (X2, W2), dict(padding="same", stride=2), ValueError,
     "same.*stride|stride.*same"),
    ("same with stride (1, 2)", "conv2d", (X2, W2), dict(padding="same", stride=(1, 2)),
     ValueError, "same.*stride|stride.*same"),
    ("same with stride 3 (1d)", "conv1d", (X1, W1), dict(padding="same", stride=3),
     ValueError, "same.*stride|stride.*same"),
    # ---- conv: padding modes
    ("padding_mode unknown", "conv2d", (X2, W2), dict(padding_mode="mirror"), ValueError,
     "padding_mode"),
    ("padding_mode None", "conv2d", (X2, W2), dict(padding_mode=None), ValueError,
     "padding_mode"),
    ("reflect padding == size", "conv2d", (np.ones((1, 4, 6, 3)), W2),
     dict(padding=(1, 3), padding_mode="reflect"), ValueError, "reflect.*padding"),
    ("reflect padding > size (1d)", "conv1d", (np.ones((1, 4, 2)), W1),
     dict(padding=3, padding_mode="reflect"), ValueError, "reflect.*padding"),
    ("reflect 'same' too large", "conv1d", (np.ones((1, 4, 2)), np.ones((6, 4, 5))),
     dict(padding="same", padding_mode="reflect"), ValueError, "reflect.*padding"),
    ("circular padding > size", "conv2d", (np.ones((1, 4, 6, 2)), W2),
     dict(padding=3, padding_mode="circular"), ValueError, "circular.*padding"),
    # ---- dtypes
    ("x complex", "conv2d", (X2 + 0j, W2), {}, TypeError, r"\bx\b"),
    ("weight complex", "conv2d", (X2, W2.astype(np.complex64)), {}, TypeError, "weight"),
    ("bias complex", "conv2d", (X2, W2, np.ones(6, complex)), {}, TypeError, "bias"),
    ("x object", "conv1d", (X1.astype(object), W1), {}, TypeError, r"\bx\b"),
    ("weight string", "conv1d", (X1, "weights"), {}, TypeError, "weight"),
    ("x strings", "conv2d", (np.full((1, 4, 6, 6), "a"), W2), {}, TypeError, r"\bx\b"),
    ("x ragged", "conv1d", ([[[1.0, 2.0], [1.0]]], W1), {}, TypeError, r"\bx\b"),
    ("x datetime", "conv1d", (X1.astype("M8[s]"), W1), {}, TypeError, r"\bx\b"),
    ("x longdouble", "conv2d", (X2.astype(np.longdouble), W2), {}, TypeError,
     "float32 or float64"),
    # ---- conv: out=
    ("out wrong shape", "conv2d", (X2, W2), dict(out=np.empty((2, 6, 4, 5))), ValueError,
     "out"),
    ("out wrong dtype", "conv2d", (X2, W2), dict(out=np.empty((2, 6, 4, 4), np.float32)),
     TypeError, "out"),
    ("out Fortran", "conv2d", (X2, W2), dict(out=np.empty((2, 6, 4, 4), order="F")),
     ValueError, "out"),
    ("out strided", "conv1d", (X1, W1), dict(out=np.empty((2, 6, 12))[:, :, ::2]),
     ValueError, "out"),
    ("out read-only", "conv2d", (X2, W2), dict(out=_readonly((2, 6, 4, 4))), ValueError,
     "out.*writeable"),
    ("out a list", "conv1d", (X1, W1), dict(out=[0.0] * 72), TypeError, "out"),
    # ---- pooling
    ("max_pool2d x ndim", "max_pool2d", (np.ones((6, 6)), 2), {}, ValueError, r"\bx\b"),
    ("max_pool1d x ndim", "max_pool1d", (P2, 2), {}, ValueError, r"\bx\b"),
    ("avg_pool2d x ndim", "avg_pool2d", (np.ones(6), 2), {}, ValueError, r"\bx\b"),
    ("max_pool2d kernel zero", "max_pool2d", (P2, 0), {}, ValueError, "kernel_size"),
    ("avg_pool2d kernel negative", "avg_pool2d", (P2, (2, -1)), {}, ValueError,
     "kernel_size"),
    ("max_pool2d kernel wrong length", "max_pool2d", (P2, (2, 2, 2)), {}, ValueError,
     "kernel_size"),
    ("max_pool1d kernel float", "max_pool1d", (P2[0], 2.0), {}, TypeError, "kernel_size"),
    ("max_pool2d stride zero", "max_pool2d", (P2, 2), dict(stride=0), ValueError, "stride"),
    ("avg_pool2d stride zero", "avg_pool2d", (P2, 2), dict(stride=(1, 0)), ValueError,
     "stride"),
    ("max_pool1d dilation zero", "max_pool1d", (P2[0], 2), dict(dilation=0), ValueError,
     "dilation"),
    ("max_pool2d padding negative", "max_pool2d", (P2, 2), dict(padding=-1), ValueError,
     "padding"),
    ("max_pool2d padding over half", "max_pool2d", (P2, 3), dict(padding=2), ValueError,
     "padding.*half|half.*padding"),
    ("max_pool1d padding over half", "max_pool1d", (P2[0], 2), dict(padding=2), ValueError,
     "padding.*half|half.*padding"),
    ("avg_pool2d padding over half", "avg_pool2d", (P2, (4, 2)), dict(padding=(1, 2)),
     ValueError, "padding.*half|half.*padding"),
    ("max_pool2d output empty", "max_pool2d", (P2, 7), {}, ValueError, r"output.*\bx\b"),
    ("max_pool1d output empty (dilation)", "max_pool1d", (P2[0], 3), dict(dilation=3),
     ValueError, r"output.*\bx\b"),
    ("avg_pool2d output empty", "avg_pool2d", (P2, (2, 7)), {}, ValueError, r"output.*\bx\b"),
    ("max_pool2d empty x", "max_pool2d", (np.ones((1, 3, 0, 4)), 1), {}, ValueError, r"\bx\b"),
    ("max_pool2d ceil_mode int", "max_pool2d", (P2, 2), dict(ceil_mode=1), TypeError,
     "ceil_mode"),
    ("max_pool1d return_indices str", "max_pool1d", (P2[0], 2), dict(return_indices="yes"),
     TypeError, "return_indices"),
    ("avg_pool2d count_include_pad None", "avg_pool2d", (P2, 2),
     dict(count_include_pad=None), TypeError, "count_include_pad"),
    ("max_pool2d complex", "max_pool2d", (P2 * 1j, 2), {}, TypeError, r"\bx\b"),
    ("avg_pool2d object", "avg_pool2d", (P2.astype(object), 2), {}, TypeError, r"\bx\b"),
    # ---- numpy-style 1-D
    ("convolve empty a", "convolve", ([], [1.0]), {}, ValueError, r"\ba\b"),
    ("convolve empty v", "convolve", ([1.0], []), {}, ValueError, r"\bv\b"),
    ("correlate empty v", "correlate", ([1.0, 2.0], np.ones(0)), {}, ValueError, r"\bv\b"),
    ("convolve 2-D a", "convolve", (np.ones((2, 2)), [1.0]), {}, ValueError, r"\ba\b"),
    ("correlate 2-D v", "correlate", ([1.0], np.ones((1, 2))), {}, ValueError, r"\bv\b"),
    ("convolve mode unknown", "convolve", ([1.0], [1.0]), dict(mode="circular"), ValueError,
     "mode"),
    ("correlate mode int", "correlate", ([1.0], [1.0]), dict(mode=0), ValueError, "mode"),
    ("correlate string a", "correlate", ("abc", [1.0]), {}, TypeError, r"\ba\b"),
    # ---- scipy-style 2-D
    ("convolve2d in1 ndim", "convolve2d", (np.ones(4), np.ones((2, 2))), {}, ValueError,
     "in1"),
    ("correlate2d in2 ndim", "correlate2d", (np.ones((4, 4)), np.ones((2, 2, 1))), {},
     ValueError, "in2"),
    ("convolve2d empty in1", "convolve2d", (np.ones((0, 4)), np.ones((2, 2))), {},
     ValueError, "in1"),
    ("correlate2d empty in2", "correlate2d", (np.ones((4, 4)), np.ones((2, 0))), {},
     ValueError, "in2"),
    ("convolve2d mode unknown", "convolve2d", (np.ones((4, 4)), np.ones((2, 2))),
     dict(mode="nope"), ValueError, "mode"),
    ("correlate2d boundary unknown", "correlate2d", (np.ones((4, 4)), np.ones((2, 2))),
     dict(boundary="reflect"), ValueError, "boundary"),
    # complex inputs are computed (as numpy and scipy do); a complex fillvalue for real
    # inputs is scipy's ValueError
    ("convolve2d fillvalue complex", "convolve2d", (np.ones((4, 4)), np.ones((2, 2))),
     dict(fillvalue=1j), ValueError, "fillvalue"),
    ("correlate2d fillvalue array", "correlate2d", (np.ones((4, 4)), np.ones((2, 2))),
     dict(fillvalue=[1.0, 2.0]), TypeError, "fillvalue"),
    ("convolve2d valid, neither dominates", "convolve2d", (np.ones((4, 4)), np.ones((2, 6))),
     dict(mode="valid"), ValueError, "valid"),
]


@pytest.fixture
def no_kernel(monkeypatch):
    """Fail if a kernel runs: every check must come first."""
    def run(op, *args, **kwargs):
        raise AssertionError(f"the {op} kernel ran on invalid input")

    monkeypatch.setattr(_dispatch, "run", run)


@pytest.mark.parametrize("name, op, args, kwargs, exc, match", BAD, ids=[c[0] for c in BAD])
def test_bad_input_raises_naming_the_argument(backend, no_kernel, name, op, args, kwargs, exc,
                                              match):
    keep = [np.array(a, copy=True) for a in args if isinstance(a, np.ndarray)]
    with pytest.raises(exc, match=match):
        getattr(fastconv, op)(*args, backend=backend, **kwargs)
    for a, k in zip([a for a in args if isinstance(a, np.ndarray)], keep):
        np.testing.assert_array_equal(a, k)


@pytest.mark.parametrize("op, args", [
    ("conv2d", (X2, W2)), ("conv1d", (X1, W1)), ("max_pool2d", (P2, 2)),
    ("avg_pool2d", (P2, 2)), ("max_pool1d", (P2[0], 2)), ("convolve", ([1.0], [1.0])),
    ("correlate2d", (np.ones((2, 2)), np.ones((1, 1)))),
])
@pytest.mark.parametrize("bad", ["nope", "", "NumPy", 3])
def test_unknown_backend_lists_the_available_ones(op, args, bad):
    with pytest.raises(ValueError, match="backend") as info:
        getattr(fastconv, op)(*args, backend=bad)
    for b in fastconv.backends():
        assert repr(b) in str(info.value)


def test_out_overlapping_an_input_is_refused(backend, no_kernel):
    buf = np.zeros(4 * 6 * 6 + 10)
    x = buf[: 4 * 6 * 6].reshape(1, 4, 6, 6)
    out = buf[-16:].reshape(1, 1, 4, 4)  # shares 10 elements with x
    with pytest.raises(ValueError, match="out.*overlap.*x"):
        fastconv.conv2d(x, np.ones((1, 4, 3, 3)), out=out, backend=backend)
    w = np.zeros((1, 4, 3, 3))
    with pytest.raises(ValueError, match="out.*overlap.*weight"):
        fastconv.conv2d(np.ones((1, 4, 3, 3)), w, out=w.reshape(-1)[:1].reshape(1, 1, 1, 1),
                        backend=backend)
    b = np.zeros(20)
    with pytest.raises(ValueError, match="out.*overlap.*bias"):
        fastconv.conv2d(np.ones((1, 4, 6, 6)), np.ones((1, 4, 3, 3)), b[:1],
                        out=b[:16].reshape(1, 1, 4, 4), backend=backend)
    # out equal to the input (same shape, dtype)
    x = np.ones((1, 1, 3))
    with pytest.raises(ValueError, match="out.*overlap"):
        fastconv.conv1d(x, np.ones((1, 1, 1)), out=x, backend=backend)


# --------------------------------------------------------------------------------------------
# requests that could not exist: a ValueError before anything is allocated
# --------------------------------------------------------------------------------------------
HUGE = [
    ("conv2d huge broadcast x", "conv2d", (_huge((1, 1, 10**6, 10**6)), np.ones((1, 1, 3, 3))),
     {}),
    ("conv2d huge batch", "conv2d", (_huge((10**7, 1, 10**3, 10**3)), np.ones((1, 1, 1, 1))),
     {}),
    ("conv2d huge out_channels", "conv2d", (np.ones((1, 1, 100, 100)),
                                            _huge((10**9, 1, 1, 1))), {}),
    ("conv2d huge x, 1x1 output", "conv2d", (_huge((1, 1, 10**5, 10**5)),
                                             _huge((1, 1, 10**5, 10**5))), {}),
    ("max_pool2d huge x, 1x1 output", "max_pool2d", (_huge((1, 1, 10**5, 10**5)), 10**5), {}),
    ("avg_pool2d huge x, 1x1 output", "avg_pool2d", (_huge((1, 10**5, 10**5)), 10**5), {}),
    ("conv2d huge padding", "conv2d", (np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))),
     dict(padding=10**9)),
    ("conv2d padding beyond int64", "conv2d", (np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))),
     dict(padding=2**70)),
    ("conv1d huge padding", "conv1d", (np.ones((1, 1, 4)), np.ones((1, 1, 3))),
     dict(padding=2**62)),
    ("conv2d huge replicate padding", "conv2d", (np.ones((1, 1, 4, 4)),
                                                 np.ones((1, 1, 1, 1))),
     dict(padding=(10**6, 10**6), padding_mode="replicate")),
    ("conv1d huge x", "conv1d", (_huge((10**6, 1, 10**7)), np.ones((1, 1, 3))), {}),
    ("max_pool2d huge x", "max_pool2d", (_huge((10**5, 10**5, 10, 10)), 2), {}),
    ("max_pool1d huge x", "max_pool1d", (_huge((10**6, 10**7)), 1), {}),
    ("avg_pool2d huge x", "avg_pool2d", (_huge((10**6, 10**6, 2, 2)), 1), {}),
    ("convolve huge", "convolve", (_huge((10**12,)), _huge((10**12,))), {}),
    ("correlate huge full", "correlate", (_huge((10**12,)), [1.0, 2.0]), dict(mode="full")),
    ("convolve2d huge in1", "convolve2d", (_huge((10**6, 10**6)), [[1.0]]), {}),
    ("correlate2d huge in2 full", "correlate2d", ([[1.0]], _huge((10**6, 10**6))), {}),
    ("convolve2d huge valid", "convolve2d", (_huge((10**6, 10**6)), _huge((10**6, 10**6))),
     dict(mode="valid")),
]


@pytest.mark.parametrize("name, op, args, kwargs", HUGE, ids=[c[0] for c in HUGE])
def test_impossible_sizes_raise_valueerror_without_allocating(backend, no_kernel, name, op,
                                                              args, kwargs):
    with pytest.raises(ValueError, match=r"memory|bytes|too big|overflow|size|< 2\*\*31"):
        getattr(fastconv, op)(*args, backend=backend, **kwargs)


# Calls whose output is small but whose arguments are beyond what a 64-bit index holds
# (or whose padded frame would be far larger than memory). fastconv either computes the
# small, known answer or raises a ValueError naming the argument; never an OverflowError, a
# MemoryError, a Numba typing error, nor a wrong value.
def _always_overcommit():
    try:
        with open("/proc/sys/vm/overcommit_memory") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


X44 = np.ones((1, 1, 4, 4))
K33 = np.ones((1, 1, 3, 3))
EXTREME = [
    # stride beyond the input: one window, the full 3x3 sum
    ("conv2d stride 2**63", "conv2d", (X44, K33), dict(stride=2**63), [[[[9.0]]]]),
    ("conv2d stride 2**64", "conv2d", (X44, K33), dict(stride=2**64), [[[[9.0]]]]),
    ("conv2d stride (1, 2**63)", "conv2d", (X44, K33), dict(stride=(1, 2**63)),
     [[[[9.0], [9.0]]]]),
    ("conv1d stride 2**63", "conv1d", (np.ones((1, 1, 4)), np.ones((1, 1, 3))),
     dict(stride=2**63), [[[3.0]]]),
    ("max_pool2d stride 2**63", "max_pool2d", (X44, 2), dict(stride=2**63), [[[[1.0]]]]),
    ("max_pool2d stride 2**63 indices", "max_pool2d", (X44, 2),
     dict(stride=2**63, return_indices=True), ([[[[1.0]]]], [[[[0]]]])),
    ("avg_pool2d stride 2**63", "avg_pool2d", (X44, 2), dict(stride=2**63), [[[[1.0]]]]),
    # a window as large as the padded input: one output, the max / mean of the input
    ("max_pool2d kernel 2**63", "max_pool2d", (X44, 2**63), dict(padding=2**62),
     [[[[1.0]]]]),
    ("avg_pool2d kernel 2**63", "avg_pool2d", (X44, 2**63),
     dict(padding=2**62, count_include_pad=False), [[[[1.0]]]]),
    # dilation and padding so large that only the centre tap meets the input
    ("conv2d dilation 2**62", "conv2d", (X44, K33), dict(dilation=2**62, padding=2**62),
     np.ones((1, 1, 4, 4))),
    ("conv2d dilation 2**62 stride 2**63", "conv2d", (X44, K33),
     dict(dilation=2**62, padding=2**62, stride=2**63), [[[[1.0]]]]),
    ("conv2d dilation 2**63", "conv2d", (X44, K33), dict(dilation=2**63, padding=2**63),
     np.ones((1, 1, 4, 4))),
    # small answers whose zero-padded frame would not fit in any memory (32 TiB as float64)
    ("conv2d dilation 2**20", "conv2d", (X44, K33), dict(dilation=2**20, padding=2**20),
     np.ones((1, 1, 4, 4))),
    ("max_pool2d kernel 2**21", "max_pool2d", (X44, 2**21), dict(padding=2**20),
     [[[[1.0]]]]),
    ("avg_pool2d kernel 2**21", "avg_pool2d", (X44, 2**21),
     dict(padding=2**20, count_include_pad=False), [[[[1.0]]]]),
]


@pytest.mark.parametrize("name, op, args, kwargs, expected", EXTREME,
                         ids=[c[0] for c in EXTREME])
def test_extreme_arguments_compute_or_raise_valueerror(backend, name, op, args, kwargs,
                                                       expected):
    if "2**2" in name and _always_overcommit():
        pytest.skip("a library that tries the 32 TiB frame would be OOM-killed, not refused")
    try:
        got = getattr(fastconv, op)(*args, backend=backend, **kwargs)
    except ValueError as exc:
        assert any(a in str(exc) for a in
                   ("stride", "padding", "dilation", "kernel_size", "memory", "bytes")), exc
        return
    if isinstance(expected, tuple):
        for g, e in zip(got, expected):
            np.testing.assert_array_equal(g, np.asarray(e, dtype=g.dtype))
    else:
        np.testing.assert_array_equal(got, np.asarray(expected, np.float64))


# --------------------------------------------------------------------------------------------
# where PyTorch raises, fastconv raises; where it returns, fastconv returns the same
# --------------------------------------------------------------------------------------------
def _outcome(f):
    try:
        return f()
    except Exception as exc:  # noqa: BLE001 - the comparison needs any exception
        return exc


def _agree(got, expected, what):
    if isinstance(expected, Exception):
        assert isinstance(got, (ValueError, TypeError)), (what, expected, got)
        return
    assert not isinstance(got, Exception), (what, got)
    for g, e in zip(got if isinstance(got, tuple) else (got,),
                    expected if isinstance(expected, tuple) else (expected,)):
        assert g.shape == e.shape, what
        np.testing.assert_allclose(g, e, rtol=1e-12, err_msg=str(what))


def test_conv1d_boundary_geometries_agree_with_torch(backend):
    """Every small size, kernel, padding, dilation, stride and padding mode: torch.nn.Conv1d
    and fastconv both raise, or give the same result (off-by-one checks live here)."""
    torch = pytest.importorskip("torch")
    import warnings

    for L, k, p, d, s, pm in itertools.product(range(1, 5), range(1, 5),
                                               [0, 1, 2, 3, "same", "valid"], [1, 2], [1, 2],
                                               ["zeros", "reflect", "replicate", "circular"]):
        x = np.arange(1.0, L + 1)[None, None]
        w = np.linspace(1, 2, k)[None, None]

        def peer():
            m = torch.nn.Conv1d(1, 1, k, s, p, d, 1, False, pm).double()
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m.weight.copy_(torch.from_numpy(w))
                return m(torch.from_numpy(x)).numpy()

        got = _outcome(lambda: fastconv.conv1d(x, w, stride=s, padding=p, dilation=d,
                                               padding_mode=pm, backend=backend))
        _agree(got, _outcome(peer), (L, k, p, d, s, pm))


def test_pool_boundary_geometries_agree_with_torch(backend):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for L, k, p, d, s, c in itertools.product(range(1, 6), range(1, 5), range(4), [1, 2, 3],
                                              [1, 2, 3], [False, True]):
        x = np.arange(1.0, L + 1)[None, None]
        tx = torch.from_numpy(x)
        expected = _outcome(lambda: tuple(a.numpy() for a in F.max_pool1d(
            tx, k, s, p, d, c, return_indices=True)))
        got = _outcome(lambda: fastconv.max_pool1d(x, k, s, p, d, c, return_indices=True,
                                                   backend=backend))
        _agree(got, expected, ("max_pool1d", L, k, p, d, s, c))
        if d == 1:
            for cip in (False, True):
                expected = _outcome(lambda: F.avg_pool2d(tx[None], (1, k), (1, s), (0, p), c,
                                                         cip).numpy())
                got = _outcome(lambda: fastconv.avg_pool2d(x[None], (1, k), (1, s), (0, p), c,
                                                           cip, backend=backend))
                _agree(got, expected, ("avg_pool2d", L, k, p, s, c, cip))
