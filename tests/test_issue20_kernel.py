"""Issue 20 (the direct kernel's register block, and the transposed convolution's phases).

fc_taps_out (src_cython/fc_kernels_body.h) writes the direct kernel's sums straight from the
registers into the output (on AVX-512, a vector's output lanes packed together and stored
at once where the output rows follow each other; masked stores or scatters per row segment
for column segments and strided outputs), in
tiles of eight filters x three vectors on AVX-512 (weights packed by fc_pack) and six x
three (24 taps or more), four x two, four x one, two x two, one x four for the filters left
over. These tests force the direct
algorithm on shapes that reach every tile and store path (filter counts around multiples of
eight, lines shorter and longer than a tile, rows shorter and longer than a vector, strided
phases, groups, one long output row cut into column segments) against the NumPy
reference, check that the two builds (AVX-512 and FASTCONV_NO_WIDE=1) agree bit for bit
and that thread counts do not change a bit; then
the transposed convolution's phase kernel (``_cy_conv.transpose_phased``: each phase over
exactly its own outputs, stored in place; on small planes with whole blocks of 64 float32
filters, fc_taps_fv with the filters in the vector lanes) against torch and the reference,
with groups,
unequal strides, output padding, ``out=`` and every thread count.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv import _transpose, reference

from conftest import FLOATS, assert_close

cy = pytest.importorskip("fastconv._cy_conv", reason="the Cython backend is not built")

# (N, C, H, W, K, groups, (kh, kw), stride, pad, dilation)
CASES = [
    (1, 2, 5, 5, 8, 1, (3, 3), 1, 0, 1),          # L = 13: plain loops for 8 filters
    (1, 3, 9, 9, 8, 1, (3, 3), 1, 1, 1),          # L = 79: one 8 x 3 tile + overlap
    (2, 3, 12, 11, 19, 1, (3, 3), 1, 1, 1),       # 8 + 8 + 2 + 1 filters, short rows
    (1, 4, 20, 40, 27, 1, (3, 3), 1, 1, 1),       # 8 x 3 + 2 + 1, rows over two vectors
    (1, 2, 7, 70, 12, 1, (1, 5), 1, (0, 2), 1),   # 8 + 4 (4 x 2 tile), long rows
    (1, 2, 6, 33, 13, 1, (3, 3), 1, 0, 1),        # in place: 8 + 4 + 1, Wo = 31
    (2, 8, 10, 10, 16, 2, (3, 3), 1, 1, 1),       # groups of 8 filters
    (1, 6, 9, 17, 24, 3, (3, 3), 1, 1, 2),        # groups, dilated
    (1, 3, 40, 40, 16, 1, (7, 7), 2, 3, 1),       # stride 2: four phases, 8 x 3 tiles
    (1, 2, 23, 29, 9, 1, (5, 5), 3, (2, 1), 1),   # stride 3: nine phases, 8 + 1
    (1, 3, 4, 4, 8, 1, (1, 1), 1, 0, 1),          # Wo = 4: every vector crosses rows
    (1, 1, 3, 64, 8, 1, (3, 3), 1, 1, 1),         # Wo = 64: whole vectors per row
    (1, 1, 300, 17, 11, 1, (3, 3), 1, 1, 1),      # many row blocks, Wo = 17
    # rows back to back in the output: a vector's output lanes packed and stored at once
    (1, 2, 9, 3, 8, 1, (3, 3), 1, 0, 1),          # Wo = 1, Wp = 3: a vector spans 6 rows
    (3, 2, 11, 6, 12, 1, (3, 5), 1, (1, 0), 1),   # Wo = 2, Wp = 6, framed, 8 + 4 filters
    (2, 3, 13, 13, 6, 1, (3, 3), 1, 0, 1),        # lenet2-like rows (11 of 13), 4 + 2
    (2, 16, 11, 11, 6, 1, (3, 3), 1, 2, 1),       # 144 taps: the six-filter x 3 tile
    (1, 3, 9, 14, 15, 1, (3, 3), 1, 1, 1),        # 27 taps: 8 + 6 + 1
    # one output row, cut into column segments (work items along the row)
    (1, 16, 1, 20000, 16, 1, (1, 9), 1, 0, 1),    # in place, a long 1-D layer
    (1, 5, 1, 9001, 7, 1, (1, 5), 1, (0, 2), 1),  # framed segments with their halo
    (2, 4, 1, 7000, 6, 2, (1, 3), (1, 2), (0, 1), 1),   # stride-2 phases, groups
    (1, 3, 2, 5000, 5, 1, (2, 3), 1, (0, 1), (1, 2)),   # a two-row kernel, dilated
    (1, 2, 1, 3, 8, 1, (1, 1), 1, (0, 1100), 1),  # padding wider than a segment's frame
    (1, 2, 2, 1, 9, 1, (2, 1), 1, (0, 1500), 1),  # ... zero columns only, 2-row kernel
]


def _case(case, dtype, rng):
    N, C, H, W, K, g, kernel, stride, pad, dil = case
    p2 = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    stride, pad, dil = p2(stride), p2(pad), p2(dil)
    Ho = (H + 2 * pad[0] - dil[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    Wo = (W + 2 * pad[1] - dil[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C // g) + kernel).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    return x, w, b, (N, K, Ho, Wo), stride, pad, dil, g


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", CASES, ids=[f"c{i}" for i in range(len(CASES))])
def test_issue20_direct_tiles_match_reference(case, dtype, rng):
    x, w, b, oshape, stride, pad, dil, g = _case(case, dtype, rng)
    want = np.empty(oshape, np.float64)
    reference.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), want,
                     stride, pad, dil, g, 1)
    out = np.full(oshape, np.nan, dtype)
    got = cy.conv2d(x, w, b, out, stride, pad, dil, g, "direct", 2)
    assert got is out
    assert_close(got, want.astype(dtype), terms=int(np.prod(w.shape[1:])))


def test_issue20_direct_tiles_thread_independent(rng):
    for case in (CASES[3], CASES[8], CASES[14], CASES[16], *CASES[18:22]):
        x, w, b, oshape, stride, pad, dil, g = _case(case, np.float32, rng)
        outs = [cy.conv2d(x, w, b, np.empty(oshape, np.float32), stride, pad, dil, g,
                          "direct", n) for n in (1, 2, 3)]
        assert all(np.array_equal(outs[0], o) for o in outs[1:])


_BOTH_BUILDS = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import fastconv
from fastconv import _cy_conv as cy
import test_issue20_kernel as t
print(cy.WIDE_KERNELS)
outs = {}
for dtype in (np.float32, np.float64):
    for i, case in enumerate(t.CASES):
        x, w, b, oshape, stride, pad, dil, g = t._case(case, dtype, np.random.default_rng(i))
        outs[f"{np.dtype(dtype).name}-{i}"] = cy.conv2d(
            x, w, b, np.empty(oshape, dtype), stride, pad, dil, g, "direct", 2)
    for i, (xs, K, k, s, p, op, g) in enumerate(t.TRANSPOSED):
        x, w, b = t._tr_arrays(xs, K, k, g, dtype, np.random.default_rng(i))
        outs[f"t-{np.dtype(dtype).name}-{i}"] = fastconv.conv_transpose2d(
            x, w, b, s, p, op, g, backend="cython")
np.savez(sys.argv[2], **outs)
"""


def test_issue20_wide_and_narrow_builds_agree_bitwise(tmp_path):
    """The AVX-512 build (8 x 3 tiles, masked stores, scatters) and FASTCONV_NO_WIDE=1's
    (4 x 3 tiles, 2 x 6 with the filters in the lanes, lane stores) give every output the
    same taps in the same order."""
    here = os.path.dirname(os.path.abspath(__file__))
    flags = []
    for no_wide in ("0", "1"):
        env = dict(os.environ, FASTCONV_NO_WIDE=no_wide)
        r = subprocess.run([sys.executable, "-c", _BOTH_BUILDS, here,
                            str(tmp_path / f"out{no_wide}.npz")],
                           env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        flags.append(r.stdout.split()[-1])
    assert flags[1] == "False"
    with np.load(tmp_path / "out0.npz") as a, np.load(tmp_path / "out1.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            assert np.array_equal(a[k], b[k]), k
    if flags[0] == "False":
        pytest.skip("this CPU has no x86-64-v4: only the narrow build ran")


# ---- the transposed convolution's phases -------------------------------------------------
# (x shape, K, kernel, stride, padding, output_padding, groups): all taken by the sub-pixel
# plan, so the Cython backend runs transpose_phased
TRANSPOSED = [
    ((2, 5, 7, 7), 16, 4, 2, 1, 0, 1),               # the targets' layer, 8 + 8 filters
    ((1, 4, 9, 30), 11, 4, 2, 1, 1, 1),              # output padding: unequal phases
    ((2, 6, 5, 6), 18, (4, 6), (2, 3), (1, 2), (1, 2), 3),  # unequal strides, groups
    ((1, 3, 6, 8), 9, 6, 3, 2, 2, 1),                # stride 3: nine phases
    ((2, 4, 3, 3), 8, 2, 2, 0, 0, 1),                # one tap per phase, tiny planes
    ((1, 2, 20, 4), 24, (2, 4), (1, 2), (0, 1), 0, 2),  # stride 1 on one axis
    # 64 filters a phase on small planes: filters in the vector lanes (fc_taps_fv)
    ((3, 5, 7, 7), 64, 4, 2, 1, 0, 1),               # the 64x128x7x7 target's layer
    ((2, 4, 3, 5), 128, 4, 2, 1, 1, 2),              # two groups of 64, output padding
    ((1, 3, 2, 9), 128, (2, 4), (1, 2), (0, 1), 0, 1),  # 8 x 1-row phases: last block short
    ((2, 4, 3, 15), 64, 4, 2, 1, 0, 1),  # framed kernel on AVX-512, filters in lanes on AVX2
]


def _tr_arrays(xs, K, k, g, dtype, rng):
    kk = (k, k) if isinstance(k, int) else k
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal((xs[1], K // g) + kk).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("ci", range(len(TRANSPOSED)))
def test_issue20_transpose_phases_match_torch(ci, dtype, rng, monkeypatch):
    torch = pytest.importorskip("torch")
    xs, K, k, s, p, op, g = TRANSPOSED[ci]
    x, w, b = _tr_arrays(xs, K, k, g, dtype, rng)
    calls = []
    real = cy.transpose_phased
    monkeypatch.setattr(cy, "transpose_phased", lambda *a: calls.append(1) or real(*a))
    want = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(x.astype(np.float64)), torch.from_numpy(w.astype(np.float64)),
        torch.from_numpy(b.astype(np.float64)), s, p, op, g).numpy()
    got = fastconv.conv_transpose2d(x, w, b, s, p, op, g, backend="cython")
    assert calls and got.dtype == np.dtype(dtype)
    terms = x.shape[1] // g * int(np.prod(w.shape[2:]))
    assert_close(got, want.astype(dtype), terms=terms)
    ref = fastconv.conv_transpose2d(x, w, b, s, p, op, g, backend="numpy")
    assert_close(got, ref, terms=terms)
    # out= (filled in place, NaN before): the same values
    out = np.full(got.shape, np.nan, dtype)
    assert fastconv.conv_transpose2d(x, w, b, s, p, op, g, backend="cython", out=out) is out
    np.testing.assert_array_equal(out, got)


def test_issue20_transpose_phases_thread_independent_and_blocks(rng, monkeypatch):
    from fastconv import _threads

    x, w, b = _tr_arrays((5, 8, 9, 11), 12, 4, 1, np.float32, rng)
    outs = []
    for n in (1, 2, 3):
        monkeypatch.setattr(_threads, "threads_for", lambda work, grain, n=n: n)
        outs.append(fastconv.conv_transpose2d(x, w, b, 2, 1, backend="cython"))
    monkeypatch.setattr(_transpose, "BLOCK_BYTES", 1)  # one image per block
    outs.append(fastconv.conv_transpose2d(x, w, b, 2, 1, backend="cython"))
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


@pytest.mark.parametrize("dtype", FLOATS)
def test_issue20_transpose_phases_fv_thread_independent(dtype, rng, monkeypatch):
    """The filters-in-lanes kernel (64 filters a phase, 7 x 7 planes: classes of outputs by
    the taps inside the input, blocks of unequal sizes) gives the same bits on any thread
    count and image blocking."""
    from fastconv import _threads

    x, w, b = _tr_arrays((5, 6, 7, 9), 128, 4, 2, dtype, rng)
    outs = []
    for n in (1, 2, 3):
        monkeypatch.setattr(_threads, "threads_for", lambda work, grain, n=n: n)
        outs.append(fastconv.conv_transpose2d(x, w, b, 2, 1, groups=2, backend="cython"))
    monkeypatch.setattr(_transpose, "BLOCK_BYTES", 1)
    outs.append(fastconv.conv_transpose2d(x, w, b, 2, 1, groups=2, backend="cython"))
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("ci", range(len(TRANSPOSED)))
def test_issue20_transpose_phases_nonfinite_as_reference(ci, dtype, rng):
    """inf and NaN reach exactly the outputs the transposed convolution's own sum gives
    them (the NumPy reference's pattern): the filters-in-lanes kernel runs only the taps
    inside the input; the framed kernel, which multiplies the padding's zeros, declines a
    weight with an inf or NaN (the input-gradient kernels run it)."""
    xs, K, k, s, p, op, g = TRANSPOSED[ci]
    x, w, b = _tr_arrays(xs, K, k, g, dtype, rng)
    w[0, 0, 0, 0] = np.inf  # a corner tap: at the edges, only the padding meets it
    w[-1, -1, -1, 0] = -np.inf
    x[0, 0, 0, -1] = np.nan
    x[-1, -1, -1, 0] = np.inf
    want = fastconv.conv_transpose2d(x, w, b, s, p, op, g, backend="numpy")
    got = fastconv.conv_transpose2d(x, w, b, s, p, op, g, backend="cython")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
    fin = np.isfinite(want)
    terms = x.shape[1] // g * int(np.prod(w.shape[2:]))
    assert_close(got[fin], want[fin], terms=terms)


@pytest.mark.parametrize("dtype", FLOATS)
def test_issue20_transpose_phases_same_bits_whichever_kernel(dtype, rng, monkeypatch):
    """The kernel choice depends on the image block (its row blocks) and the build; the
    framed kernel and the filters-in-lanes one sum each output's taps in one order (the
    frame's extra taps add zeros), so an image gets the same bits alone, in a batch, and
    one image per block."""
    x, w, b = _tr_arrays((2, 64, 8, 16), 64, 4, 1, dtype, rng)
    both = fastconv.conv_transpose2d(x, w, b, 2, 1, backend="cython")
    alone = fastconv.conv_transpose2d(x[:1], w, b, 2, 1, backend="cython")
    np.testing.assert_array_equal(both[:1], alone)
    monkeypatch.setattr(_transpose, "BLOCK_BYTES", 1)
    np.testing.assert_array_equal(fastconv.conv_transpose2d(x, w, b, 2, 1, backend="cython"),
                                  both)
