"""The Cython conv2d kernel's algorithms, each forced, against the NumPy reference.

The plan (``fastconv._plan.conv2d``) picks one algorithm per call from the shapes, and the
kernel runs the one it is given (``algo``), so the public-API tests reach each algorithm
only on the shapes that select it. Here every algorithm runs, forced, on every case: the
register-blocked direct kernel (filters four, two and one at a time, position blocks with
an overlapping last block, the scalar path for short lines, in place and on a zero-framed
copy, split into stride phases), the one-plane kernel for depthwise layers (row blocks,
vectors that cross the padding), the strided row kernel, tiled im2col + GEMM, pointwise
GEMM and (on the layers it takes) Winograd F(2x2, 3x3).
"""

from __future__ import annotations

import numpy as np
import pytest

import fastconv
from fastconv import _plan, reference

from conftest import FLOATS, assert_close

cy = pytest.importorskip("fastconv._cy_conv", reason="the Cython backend is not built")

# (N, C, H, W, K, groups, (kh, kw), stride, pad, dilation)
CASES = [
    (1, 1, 5, 5, 1, 1, (3, 3), 1, 0, 1),         # L = 13: shorter than any vector block
    (2, 1, 28, 28, 6, 1, (3, 3), 1, 0, 1),       # lenet1: 4 + 2 filters, in place
    (1, 6, 13, 13, 16, 1, (3, 3), 1, 0, 1),      # lenet2: 4 blocks of 4 filters
    (1, 3, 17, 19, 9, 1, (3, 3), 1, 1, 1),       # 4 + 4 + 1 filters, framed copy
    (1, 4, 9, 70, 7, 1, (2, 5), 1, (1, 2), 1),   # 4 + 2 + 1, uneven padding per axis
    (2, 8, 12, 12, 8, 8, (3, 3), 1, 1, 1),       # depthwise: one filter per group
    (1, 4, 11, 11, 6, 2, (3, 3), 1, 1, 2),       # grouped, dilated
    (1, 2, 40, 33, 3, 1, (5, 5), 1, 2, (2, 1)),  # dilation per axis
    (1, 1, 300, 41, 2, 1, (3, 3), 1, 1, 1),      # many row blocks
    (1, 70, 6, 6, 5, 1, (3, 3), 1, 1, 1),        # many channels: the copy bounds the rows
    (2, 3, 16, 16, 8, 1, (7, 7), 2, 3, 1),       # stride 2: 4 phases of 3 channels
    (1, 4, 10, 9, 8, 2, (3, 2), (2, 3), 1, (1, 2)),  # stride > kernel width: row kernel
    (1, 3, 23, 29, 6, 1, (5, 5), 3, (2, 1), 1),  # stride 3: 9 phases, uneven padding
    (1, 2, 31, 27, 5, 1, (5, 3), (2, 3), 0, 2),  # dilated: phases of unequal use
    (1, 2, 9, 9, 3, 1, (2, 2), 2, 0, 1),         # stride == kernel: each phase one tap
    (2, 6, 15, 14, 6, 6, (3, 3), 2, 1, 1),       # depthwise, stride 2
    (1, 5, 301, 37, 9, 1, (3, 3), 2, 1, 1),      # stride 2, many row blocks
    (2, 16, 12, 12, 16, 1, (1, 1), 2, 0, 1),     # 1x1, stride 2: row kernel or GEMM
    (1, 1, 1, 1, 1, 1, (1, 1), 1, 0, 1),
    (1, 32, 5, 5, 8, 1, (1, 1), 1, 0, 1),        # pointwise
    # one input plane per filter, rows of at least one vector: fc_plane
    (2, 3, 20, 40, 3, 3, (3, 3), 1, 1, 1),       # depthwise: edge and clean blocks
    (1, 2, 13, 100, 2, 2, (5, 5), 1, (2, 20), (1, 2)),  # padding > a vector, dilated
    (1, 2, 9, 33, 2, 2, (3, 3), 1, 1, (2, 1)),   # dilated rows: taps skipped above, below
    (1, 1, 37, 130, 1, 1, (3, 16), 1, (1, 8), 1),  # one channel and filter, widest kernel
    (1, 1, 8, 40, 1, 1, (1, 17), 1, (0, 8), 1),  # wider than fc_plane takes: flat kernel
    (2, 4, 6, 16, 4, 4, (3, 3), 1, 0, 1),        # float32: output row shorter than a vector
    (3, 5, 50, 70, 5, 5, (7, 7), 1, 3, 1),       # 7x7 depthwise, 70 columns: 4 + 1 vectors
    (2, 3, 10, 56, 3, 3, (3, 3), 1, 1, 1),       # 56 columns: edges at the first, last vector
    (1, 2, 9, 64, 2, 2, (5, 5), 1, 2, 1),        # ... a 5x5 kernel, 64 columns
    # 3x3 at dilation 1 (AVX-512): the rows whose windows lie inside the plane stream past
    # (fc_p3rows, 3 or more of them; their count mod 3 picks the last steps' accumulators),
    # the others take row blocks; edge vectors by masked loads
    (1, 2, 7, 40, 2, 2, (3, 3), 1, 1, 1),        # 5 streamed rows
    (1, 2, 8, 40, 2, 2, (3, 3), 1, 1, 1),        # 6
    (1, 2, 9, 40, 2, 2, (3, 3), 1, 1, 1),        # 7
    (1, 2, 4, 40, 2, 2, (3, 3), 1, 1, 1),        # 2: row blocks only
    (2, 3, 6, 33, 3, 3, (3, 3), 1, 0, 1),        # no padding: every row streamed
    (1, 2, 12, 45, 2, 2, (3, 3), 1, 2, 1),       # padding 2: two row-block rows each side
    (1, 2, 11, 50, 2, 2, (3, 3), 1, (2, 0), 1),  # padded rows only
    (1, 2, 11, 50, 2, 2, (3, 3), 1, (0, 2), 1),  # padded columns only
    (1, 3, 10, 16, 3, 3, (3, 3), 1, 1, 1),       # one vector (float32), both edges in it
    (1, 1, 97, 70, 1, 1, (3, 3), 1, 1, 1),       # 70 columns: 4 + 1 vectors, many rows
    # rows of 4 to 12 outputs, 16 filters or more (AVX-512): the filters in the vector
    # lanes, blocks of whole rows (fc_taps_rows), the filters left by the flat kernel
    (2, 5, 9, 9, 16, 1, (3, 3), 1, 0, 1),        # 7 columns: blocks of 3 rows, 3 + 3 + 1
    (1, 3, 6, 6, 40, 1, (3, 3), 1, 0, 1),        # 4 columns, 40 filters: 32 + 8 left
    (2, 4, 10, 12, 32, 2, (3, 3), 1, 1, 1),      # 12 columns, two groups, framed copy
    (1, 2, 14, 14, 16, 1, (5, 3), 1, (0, 1), (1, 2)),  # dilated, 12 columns
    (1, 2, 70, 8, 16, 1, (3, 3), 1, 1, 1),       # 8 columns, 70 rows: several stages
    (1, 3, 7, 8, 24, 1, (3, 3), 1, 0, 1),        # 6 columns: blocks of 4 rows, 4 + 1
    (1, 3, 11, 11, 16, 1, (3, 3), 1, 0, 1),      # 9 columns
    (3, 2, 5, 12, 16, 1, (3, 3), 1, 0, 1),       # 10 columns, 3 rows
]


def _forced(algo):
    """The kernel with ``algo`` passed (None: the plan's choice), in the old entry points'
    argument order (x, w, b, out, stride, pad, dilation, groups, nthreads)."""
    def run(x, w, b, out, stride, pad, dil, g, nthreads):
        a = algo or _plan.conv2d("cython", x.shape, w.shape, out.shape, stride, pad, dil, g,
                                 x.itemsize)
        return cy.conv2d(x, w, b, out, stride, pad, dil, g, a, nthreads)
    return run


ALGOS = {"auto": _forced(None), "direct": _forced("direct"), "gemm": _forced("gemm")}
WINOGRAD = _forced("winograd")


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _geometry(case):
    """stride, pad, dilation as pairs, and the output (Ho, Wo) of a case."""
    N, C, H, W, K, g, kernel, stride, pad, dil = case
    stride, pad, dil = _pair(stride), _pair(pad), _pair(dil)
    Ho = (H + 2 * pad[0] - dil[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    Wo = (W + 2 * pad[1] - dil[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    return stride, pad, dil, Ho, Wo


def _case(case, dtype, rng):
    N, C, H, W, K, g, kernel = case[:7]
    stride, pad, dil, Ho, Wo = _geometry(case)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C // g) + kernel).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    return x, w, b, (N, K, Ho, Wo), stride, pad, dil, g


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("algo", sorted(ALGOS))
@pytest.mark.parametrize("case", CASES, ids=[f"c{i}" for i in range(len(CASES))])
def test_each_algorithm_matches_reference(case, algo, dtype, rng):
    _check_against_reference(ALGOS[algo], case, dtype, rng)


def _check_against_reference(fn, case, dtype, rng):
    """``fn`` (a forced entry point) fills a NaN-filled ``out`` with the reference's result,
    computed in float64, to the rounding of the case's number of terms."""
    x, w, b, oshape, stride, pad, dil, g = _case(case, dtype, rng)
    expected = np.empty(oshape, np.float64)
    reference.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                     expected, stride, pad, dil, g, 1)
    out = np.full(oshape, np.nan, dtype)
    with fastconv._threads.blas_single_threaded():
        got = fn(x, w, b, out, stride, pad, dil, g, 2)
    assert got is out
    assert_close(got, expected.astype(dtype), terms=int(np.prod(w.shape[1:])))


@pytest.mark.parametrize("case", [
    (3, 5, 23, 37, 9, 1, (3, 3), 1, 1, 1),
    # depthwise, few planes of many rows: the threads split a plane's rows, and each piece
    # streams its own inner rows (fc_p3rows) and takes row blocks at its ends
    (1, 2, 101, 56, 2, 2, (3, 3), 1, 1, 1),
    (1, 1, 67, 40, 1, 1, (3, 3), 1, 0, 1),
    # rows of 8 outputs, 16 filters: blocks of whole rows (fc_taps_rows) in each piece
    (1, 2, 70, 8, 16, 1, (3, 3), 1, 1, 1),
], ids=["grid", "depthwise-56", "depthwise-unpadded", "short-rows"])
@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_each_algorithm_is_bitwise_thread_independent(algo, case, rng):
    x, w, b, oshape, stride, pad, dil, g = _case(case, np.float32, rng)
    outs = []
    for nthreads in (1, 2, 3):
        out = np.empty(oshape, np.float32)
        with fastconv._threads.blas_single_threaded():
            outs.append(ALGOS[algo](x, w, b, out, stride, pad, dil, g, nthreads))
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


@pytest.mark.parametrize(
    "case, expected",
    [
        ((64, 1, 28, 28, 6, 1, (3, 3), 1, 0, 1), "direct"),       # few channels
        ((8, 64, 56, 56, 64, 1, (3, 3), 1, 1, 1), "winograd"),    # 3x3, 64 channels
        ((8, 16, 56, 56, 64, 1, (3, 3), 1, 1, 1), "direct"),      # 3x3, 16 channels
        ((8, 64, 56, 56, 64, 1, (3, 3), 1, 1, 2), "direct"),      # dilated: not Winograd
        ((8, 64, 56, 56, 64, 64, (3, 3), 1, 1, 1), "direct"),     # depthwise
        ((8, 256, 14, 14, 256, 1, (3, 3), 1, 1, 1), "winograd"),  # deep
        ((8, 256, 14, 14, 256, 1, (5, 5), 1, 2, 1), "gemm"),      # R = 6400 > 4608
        ((1, 1024, 8, 8, 1024, 1, (3, 3), 1, 1, 1), "gemm"),      # K * C too big for Winograd
        ((1, 512, 7, 7, 512, 1, (3, 3), 1, 1, 1), "direct"),      # 16 tiles: too few for it
        ((8, 1024, 14, 14, 256, 1, (3, 3), 1, 1, 1), "winograd"),  # R = 9216, 3x3
        ((1, 3, 224, 224, 64, 1, (7, 7), 2, 3, 1), "direct"),     # strided: phases
        ((8, 256, 56, 56, 512, 1, (1, 1), 2, 0, 1), "gemm"),      # stride > kernel
        ((8, 128, 28, 28, 256, 1, (1, 1), 1, 0, 1), "direct"),    # pointwise, float32
        ((1, 128, 28, 28, 256, 1, (1, 1), 1, 0, 1), "pointwise"),  # one image
        ((8, 512, 14, 14, 256, 1, (1, 1), 1, 0, 1), "pointwise"),  # 512 KiB of weights
        ((1, 3, 20, 20, 4, 1, (3, 3), 2, 1, 1), "direct"),        # strided, few filters
    ],
)
def test_algorithm_choice(case, expected):
    N, C, H, W, K, g, kernel = case[:7]
    stride, pad, dil, Ho, Wo = _geometry(case)
    got = _plan.conv2d("cython", (N, C, H, W), (K, C // g) + kernel, (N, K, Ho, Wo), stride,
                       pad, dil, g)
    assert got == expected


def test_pointwise_layers_take_the_direct_kernel_in_float32_within_the_measured_range():
    """A pointwise layer runs the direct kernel in float32 with 48 or more channels, at most
    384 filters and 2**16 weights, two images or more and 400 output positions or more;
    GEMM ("pointwise") outside any of those bounds, and always in float64."""
    def algo(N, C, HW, K, itemsize=4, g=1):
        return _plan.conv2d("cython", (N, C, HW, HW), (K, C // g, 1, 1), (N, K, HW, HW),
                            (1, 1), (0, 0), (1, 1), g, itemsize)

    assert algo(8, 128, 28, 256) == "direct"
    assert algo(8, 128, 28, 256, itemsize=8) == "pointwise"
    assert algo(2, 48, 20, 384) == "direct"            # every bound met exactly (400 positions)
    assert algo(2, 47, 20, 16) == "pointwise"          # channels
    assert algo(2, 64, 20, 385) == "pointwise"         # filters
    assert algo(2, 256, 20, 257) == "pointwise"        # weights: 65,792 > 2**16
    assert algo(2, 256, 20, 256) == "direct"           # weights: 2**16
    assert algo(1, 64, 56, 64) == "pointwise"          # one image
    assert algo(4, 64, 9, 64) == "pointwise"           # 324 positions
    assert algo(2, 96, 20, 128, g=2) == "direct"       # per group: 48 channels, 64 filters
    assert algo(2, 64, 20, 128, g=2) == "pointwise"    # 32 channels per group


_BOTH_BUILDS = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import fastconv
from fastconv import _cy_conv as cy
import test_cy_algorithms as t
print(cy.WIDE_KERNELS)
outs = {}
for dtype in (np.float32, np.float64):
    for i, case in enumerate(t.CASES):
        x, w, b, oshape, stride, pad, dil, g = t._case(case, dtype, np.random.default_rng(i))
        outs[f"{np.dtype(dtype).name}-{i}"] = cy.conv2d(
            x, w, b, np.empty(oshape, dtype), stride, pad, dil, g, "direct", 2)
np.savez(sys.argv[2], **outs)
"""


def test_wide_and_narrow_kernel_builds_agree_bitwise(tmp_path):
    """With AVX-512 the direct kernel runs a build with eight accumulators; elsewhere (and with
    FASTCONV_NO_WIDE=1) one with four. Each output takes the same taps in the same order, so
    the two agree bit for bit: run both on every case, in two processes."""
    import os
    import subprocess
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    flags = []
    for no_wide in ("0", "1"):
        env = dict(os.environ, FASTCONV_NO_WIDE=no_wide)
        r = subprocess.run([sys.executable, "-c", _BOTH_BUILDS, here,
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
        pytest.skip("this CPU has no x86-64-v4: only the four-accumulator build ran")


# Winograd F(2x2, 3x3) takes 3x3, stride 1, undilated, ungrouped layers: odd and even output
# sizes (partial tiles), paddings 0-2, few and many channels, one tile and many tile blocks
WINO_CASES = [c for c in CASES if c[5] == 1 and c[6] == (3, 3) and c[7] == 1 and c[9] == 1]
WINO_CASES += [
    (1, 1, 3, 3, 1, 1, (3, 3), 1, 0, 1),       # one output
    (2, 3, 7, 9, 5, 1, (3, 3), 1, 1, 1),       # odd rows, odd columns
    (1, 4, 5, 6, 3, 1, (3, 3), 1, 2, 1),       # padding 2: tiles of zeros
    (2, 33, 13, 12, 40, 1, (3, 3), 1, 1, 1),   # many channels and filters
    (1, 8, 60, 31, 4, 1, (3, 3), 1, (0, 1), 1),  # many tile blocks, uneven padding
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", WINO_CASES, ids=[f"w{i}" for i in range(len(WINO_CASES))])
def test_winograd_matches_reference(case, dtype, rng):
    _check_against_reference(WINOGRAD, case, dtype, rng)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("W", [5, 129, 130, 133, 258, 261])
@pytest.mark.parametrize("pad", [0, 1])
def test_winograd_is_exact_on_small_integers(W, pad, dtype, rng):
    """Small integers keep every step of F(2x2, 3x3) exact (the transforms add, subtract
    and halve them), so Winograd must give the reference's values exactly: every output,
    odd widths (a last tile with one column), and rows of more than 64 tiles (fc_wino_in
    takes 64 at a time)."""
    x = rng.integers(-4, 5, (1, 32, 5, W)).astype(dtype)
    w = rng.integers(-2, 3, (32, 32, 3, 3)).astype(dtype)
    b = rng.integers(-3, 4, 32).astype(dtype)
    oshape = (1, 32, 5 + 2 * pad - 2, W + 2 * pad - 2)
    expected = np.empty(oshape, np.float64)
    reference.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                     expected, (1, 1), (pad, pad), (1, 1), 1, 1)
    out = np.full(oshape, np.nan, dtype)
    with fastconv._threads.blas_single_threaded():
        WINOGRAD(x, w, b, out, (1, 1), (pad, pad), (1, 1), 1, 2)
    np.testing.assert_array_equal(out, expected)


def test_winograd_is_bitwise_thread_independent(rng):
    x, w, b, oshape, stride, pad, dil, g = _case((3, 9, 29, 23, 7, 1, (3, 3), 1, 1, 1),
                                                 np.float32, rng)
    outs = []
    for nthreads in (1, 2, 3):
        with fastconv._threads.blas_single_threaded():
            outs.append(WINOGRAD(x, w, b, np.empty(oshape, np.float32), stride,
                                 pad, dil, g, nthreads))
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


@pytest.mark.parametrize("case", [(1, 2, 8, 8, 2, 1, (3, 3), 2, 1, 1),
                                  (1, 2, 8, 8, 2, 1, (3, 3), 1, 1, 2),
                                  (1, 2, 8, 8, 2, 2, (3, 3), 1, 1, 1),
                                  (1, 2, 8, 8, 2, 1, (5, 5), 1, 1, 1)])
def test_winograd_refuses_other_layers(case, rng):
    x, w, b, oshape, stride, pad, dil, g = _case(case, np.float32, rng)
    with pytest.raises(ValueError, match="3x3"):
        WINOGRAD(x, w, b, np.empty(oshape, np.float32), stride, pad, dil, g, 1)


def test_kept_work_buffers_are_bounded_and_released(rng):
    """conv2d keeps freed work buffers for its next calls: at most 64 MiB, reused (results
    unchanged), and freed by release_buffers()."""
    cases = [(8, 64, 30, 30, 64, 1, (3, 3), 1, 1, 1),       # Winograd
             (2, 5, 40, 40, 9, 1, (3, 3), 1, 1, 1),         # direct, framed
             (2, 16, 20, 20, 32, 1, (1, 1), 2, 0, 1)]       # GEMM
    first = []
    for case in cases * 2:
        x, w, b, oshape, stride, pad, dil, g = _case(case, np.float32,
                                                     np.random.default_rng(7))
        with fastconv._threads.blas_single_threaded():
            first.append(ALGOS["auto"](x, w, b, np.empty(oshape, np.float32), stride, pad,
                                       dil, g, 2))
        assert 0 < cy.kept_buffer_bytes() <= 64 << 20
    for a, b in zip(first[:3], first[3:]):  # a reused buffer holds stale data: no matter
        assert np.array_equal(a, b)
    cy.release_buffers()
    assert cy.kept_buffer_bytes() == 0


@pytest.mark.parametrize("dtype", FLOATS)
def test_depthwise_infinite_weight_times_padding_is_nan(dtype):
    """fc_plane skips the taps that fall in the padding, so a layer with a non-finite weight
    goes to the framed kernel, which multiplies the padding's zeros: inf * 0 is NaN there,
    as in the reference (and torch in float64 or without oneDNN: its float32 oneDNN kernels
    skip the padding's taps and give inf)."""
    x = np.ones((1, 2, 20, 40), dtype)
    w = np.ones((2, 1, 3, 3), dtype)
    w[1, 0, 0, 0] = np.inf
    b = np.zeros(2, dtype)
    expected = reference.conv2d(x, w, b, np.empty((1, 2, 20, 40), dtype), (1, 1), (1, 1),
                                (1, 1), 2)
    got = ALGOS["auto"](x, w, b, np.empty((1, 2, 20, 40), dtype), (1, 1), (1, 1), (1, 1), 2,
                        2)
    assert np.isnan(expected[0, 1, 0]).all() and np.isnan(expected[0, 1, :, 0]).all()
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("algo", sorted(ALGOS) + ["winograd"])
def test_empty_output_width_is_a_no_op(algo):
    """The kernels' internal entry points return at once on an empty output (the public API
    refuses it before; Winograd's tile arithmetic would divide by zero)."""
    x = np.ones((1, 40, 4, 2), np.float32)
    w = np.ones((40, 40, 3, 3), np.float32)
    fn = WINOGRAD if algo == "winograd" else ALGOS[algo]
    out = np.empty((1, 40, 2, 0), np.float32)
    assert fn(x, w, np.zeros(40, np.float32), out, (1, 1), (0, 0), (1, 1), 1, 2) is out


# the pointwise layers of CASES: 1x1, stride 1, no padding
POINTWISE_CASES = [c for c in CASES if c[6] == (1, 1) and c[7] == 1 and c[8] == 0]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", POINTWISE_CASES,
                         ids=[f"p{i}" for i in range(len(POINTWISE_CASES))])
def test_issue16_forced_pointwise_matches_reference(case, dtype, rng):
    """"pointwise" (GEMM on the input plane read in place), forced on its layers, even those
    the plan gives the direct kernel (few channels or filters)."""
    _check_against_reference(_forced("pointwise"), case, dtype, rng)


@pytest.mark.parametrize("algo", ["pointwise", "forward", None, 3])
def test_issue16_kernel_refuses_an_algo_it_cannot_run(algo, rng):
    """A 3x3 layer cannot run "pointwise"; "forward" is conv2d_input's; anything else is not
    an algorithm: ValueError naming algo, or the layer's requirement."""
    x, w, b, oshape, stride, pad, dil, g = _case((1, 2, 8, 8, 2, 1, (3, 3), 1, 1, 1),
                                                 np.float32, rng)
    with pytest.raises(ValueError, match="algo"):
        cy.conv2d(x, w, b, np.empty(oshape, np.float32), stride, pad, dil, g, algo, 1)


@pytest.mark.parametrize("dtype", FLOATS)
def test_short_rows_zero_sums_keep_the_flat_kernels_sign(dtype):
    """A -0 bias over zero input and negative weights: every sum is -0 + (-0)..., and the
    flat kernel starts from 0 + bias (+0). The short-row kernel (rows of 8 outputs, 16
    filters) starts the same way: +0 everywhere, as the NumPy reference gives."""
    x = np.zeros((2, 3, 10, 10), dtype)
    w = -np.ones((16, 3, 3, 3), dtype)
    b = np.full(16, -0.0, dtype)
    out = np.empty((2, 16, 8, 8), dtype)
    got = ALGOS["direct"](x, w, b, out, (1, 1), (0, 0), (1, 1), 1, 2)
    assert not np.signbit(got).any()
