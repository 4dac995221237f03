"""The Cython conv2d kernel's algorithms, each forced, against the NumPy reference.

``fastconv._cy_conv.conv2d`` picks one algorithm per call from the shapes (see its module
docstring), so the public-API tests reach each algorithm only on the shapes that select it.
Here every algorithm runs on every case: the register-blocked direct kernel (filters four,
two and one at a time, position blocks with an overlapping last block, the scalar path for
short lines, in place and on a zero-framed copy, split into stride phases), the strided row
kernel, and tiled im2col + GEMM.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastconv
from fastconv import reference

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
]
ALGOS = {"auto": cy.conv2d, "direct": cy.conv2d_direct, "gemm": cy.conv2d_gemm}


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
    x, w, b, oshape, stride, pad, dil, g = _case(case, dtype, rng)
    expected = np.empty(oshape, np.float64)
    reference.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                     expected, stride, pad, dil, g, 1)
    out = np.full(oshape, np.nan, dtype)
    with fastconv._threads.blas_single_threaded():
        got = ALGOS[algo](x, w, b, out, stride, pad, dil, g, 2)
    assert got is out
    assert_close(got, expected.astype(dtype), terms=int(np.prod(w.shape[1:])))


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_each_algorithm_is_bitwise_thread_independent(algo, rng):
    x, w, b, oshape, stride, pad, dil, g = _case((3, 5, 23, 37, 9, 1, (3, 3), 1, 1, 1),
                                                 np.float32, rng)
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
        ((8, 64, 56, 56, 64, 1, (3, 3), 1, 1, 1), "direct"),      # stride 1, R = 576
        ((8, 64, 56, 56, 64, 64, (3, 3), 1, 1, 1), "direct"),     # depthwise
        ((8, 256, 14, 14, 256, 1, (3, 3), 1, 1, 1), "direct"),    # R = 2304
        ((8, 1024, 14, 14, 256, 1, (3, 3), 1, 1, 1), "gemm"),     # R = 9216: GEMM
        ((1, 3, 224, 224, 64, 1, (7, 7), 2, 3, 1), "direct"),     # strided: phases
        ((8, 256, 56, 56, 512, 1, (1, 1), 2, 0, 1), "gemm"),      # stride > kernel
        ((8, 128, 28, 28, 256, 1, (1, 1), 1, 0, 1), "pointwise"),
        ((1, 3, 20, 20, 4, 1, (3, 3), 2, 1, 1), "direct"),        # strided, few filters
    ],
)
def test_algorithm_choice(case, expected):
    N, C, H, W, K, g, kernel = case[:7]
    stride, pad, dil, Ho, Wo = _geometry(case)
    got = cy.algorithm((N, C, H, W), (K, C // g) + kernel, (N, K, Ho, Wo), stride, pad, dil, g)
    assert got == expected
