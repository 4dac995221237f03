"""The extra memory a conv2d call allocates, measured: below 64 MiB, or below the size of its
input plus its output when that is larger, on every benchmark shape and on two large batches
(where materializing the whole im2col would need 5-10x that).

Measured as the peak resident set of a fresh process during the call, over its resident set
before it (Linux: ``/proc/self/clear_refs`` resets the peak). The buffers Cython's conv2d
keeps between calls are freed, and freed heap memory is handed back to the system
(``malloc_trim``), first, so a workspace that reuses an earlier call's memory is still
counted. float32 and float64, 2 threads. The output is passed in, already written: what is measured is the call's own
work memory (workspaces, copies, temporaries).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import fastconv
from conftest import bench_cases

CONV_SHAPES = bench_cases().CONV_SHAPES

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not os.access("/proc/self/clear_refs", os.W_OK),
    reason="needs Linux's /proc/self/clear_refs to reset the peak resident set",
)

MIB = 1 << 20
SHAPES = dict(CONV_SHAPES)
SHAPES["resnet3x3-batch64"] = (64, 64, 56, 56, 64, 3, 1, 1, 1)       # im2col: 462 MB
SHAPES["small_batch1-batch32"] = (32, 3, 224, 224, 64, 7, 2, 3, 1)  # im2col: 236 MB
# Winograd on a wide layer (im2col would be 462 MB), and shapes that take Cython's tiled
# im2col + GEMM (R > 4608; a stride larger than the kernel)
SHAPES["wide3x3-batch64"] = (64, 1024, 14, 14, 64, 3, 1, 1, 1)
SHAPES["wide5x5-batch64"] = (64, 256, 14, 14, 64, 5, 1, 2, 1)       # im2col: 321 MB
SHAPES["downsample1x1-batch64"] = (64, 256, 28, 28, 128, 1, 2, 0, 1)
# Winograd at its weight bound (2**18 filter x channel pairs: 32 MiB transformed in float64)
SHAPES["wino512"] = (2, 512, 28, 28, 512, 3, 1, 1, 1)
THREADS = 2  # the workspaces are per thread: the same count on every machine

# What both measuring children start with: the peak resident set from /proc/self/status.
_PREAMBLE = r"""
import ctypes, gc, json, sys
import numpy as np
import fastconv

libc = ctypes.CDLL("libc.so.6")

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024

def reset_peak(backend):
    # free what can be freed (Cython's kept conv2d buffers included: a call that reuses them
    # must still count them), reset the peak resident set; return (the resident set now,
    # what the peak reads right after the reset: about 0)
    gc.collect()
    if backend == "cython":
        from fastconv import _cy_conv
        _cy_conv.release_buffers()
    libc.malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status("VmRSS")
    return before, status("VmHWM") - before
"""

CHILD = _PREAMBLE + r"""

backend, shapes = sys.argv[1], json.loads(sys.argv[2])
fastconv.set_num_threads(int(sys.argv[3]))
dtype = np.dtype(sys.argv[4])
rng = np.random.default_rng(0)
res = {}
for name, (N, C, H, W, K, k, s, p, g) in shapes.items():
    # warm up on a small input of the same kind (Numba compiles per kernel and dtype)
    small = rng.standard_normal((1, C, k + s, k + s)).astype(dtype)
    w = rng.standard_normal((K, C // g, k, k)).astype(dtype)
    fastconv.conv2d(small, w, stride=s, padding=p, groups=g, backend=backend)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    out = np.empty((N, K, Ho, Wo), dtype)
    out[...] = 0
    before, reset = reset_peak(backend)
    fastconv.conv2d(x, w, stride=s, padding=p, groups=g, backend=backend, out=out)
    res[name] = {"extra": status("VmHWM") - before, "in_out": x.nbytes + out.nbytes,
                 "reset": reset}
    del x, out
print(json.dumps(res))
"""


@pytest.fixture(scope="module", params=[(b, dt) for b in ("cython", "numba")
                                        for dt in ("float32", "float64")
                                        if b in fastconv.backends()], ids=str)
def measured(request):
    backend, dtype = request.param
    proc = subprocess.run([sys.executable, "-c", CHILD, backend, json.dumps(SHAPES),
                           str(THREADS), dtype], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr
    return f"{backend} {dtype}", json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_conv2d_extra_memory_is_bounded(measured, shape):
    backend, res = measured
    extra, in_out = res[shape]["extra"], res[shape]["in_out"]
    assert res[shape]["reset"] < MIB, "clear_refs did not reset the peak resident set"
    bound = max(64 * MIB, in_out)
    assert extra < bound, (f"{backend} conv2d {shape}: {extra / MIB:.1f} MiB extra, "
                           f"bound {bound / MIB:.1f} MiB")
    print(f"{backend} {shape}: {extra / MIB:.1f} MiB extra (bound {bound / MIB:.0f} MiB)")


# --------------------------------------------------------------------------------------------
# issue 15: long rows. A work buffer sized by the row length (the direct kernel's stride
# phases, one output row of im2col columns, a padded copy of the whole input, per-column
# window tables) grows without bound; the backends tile such a call along the row
# (fastconv._tiling). float32, at 1 and 2 threads, every backend. The compiled backends'
# work memory must stay below 64 MiB (the README's promise); the numpy reference may take
# the size of input plus output (it gathers windows), but pools copy no input without
# padding. The memory counted for a pool or a gradient excludes the result it returns.
# Each case asked more than that of at least one backend before issue 15's fix.
# name: (op, N, C, H, W, K, (kh, kw), (sh, sw), (pt, pl)); op "conv1d" takes x[:, :, 0]
LONG = {
    # C=16 on a 2**21-sample signal: Cython framed 17 lines of the row (136 MiB), Numba
    # padded the whole input
    "conv1d-c16": ("conv1d", 1, 16, 1, 1 << 21, 1, (1, 3), (1, 1), (0, 1)),
    # ... with 16 filters: one output row of im2col columns is 3x the input (Numba, numpy)
    "conv1d-c16-k16": ("conv1d", 1, 16, 1, 1 << 20, 16, (1, 3), (1, 1), (0, 1)),
    # 7 taps, stride 7: Cython's seven stride phases and accumulators
    "conv1d-7taps-stride7": ("conv1d", 1, 1, 1, 1 << 24, 1, (1, 7), (1, 7), (0, 0)),
    # stride larger than the kernel with many channels: im2col + GEMM, one row per tile
    "conv1d-strided-gemm": ("conv1d", 1, 8, 1, 1 << 22, 8, (1, 4), (1, 5), (0, 0)),
    # long 2-D rows, 3x3, stride 1 and stride 2
    "conv2d-long-rows": ("conv2d", 1, 16, 2, 1 << 19, 1, (3, 3), (1, 1), (1, 1)),
    "conv2d-strided-long-rows": ("conv2d", 1, 16, 2, 1 << 19, 1, (3, 3), (2, 2), (1, 1)),
    # pools without padding: numpy framed a full copy of the input; Numba's window tables
    # took 16-24 bytes per output column
    "max_pool1d": ("max_pool1d", 1, 2, 1, 1 << 24, 0, (1, 4), (1, 4), (0, 0)),
    "avg_pool2d-rows": ("avg_pool2d", 1, 4, 1, 1 << 23, 0, (1, 4), (1, 4), (0, 0)),
    # the weight gradient's direct loops kept (kh, kw, Wo) accumulators per thread (120 MiB
    # here); the reference gathered the windows
    "conv1d_weight-15taps": ("conv1d_weight", 1, 1, 1, 1 << 21, 1, (1, 15), (1, 1), (0, 0)),
    # the gradients' im2col + GEMM paths (R = C * kh * kw >= 16 and 8 filters or more)
    # held one output row of columns per thread: 96-128 MiB here (Cython, Numba)
    "conv1d_weight-gemm": ("conv1d_weight", 1, 16, 1, 1 << 19, 16, (1, 3), (1, 1), (0, 1)),
    # ... and the input gradient's columns (15 taps of one channel) and, in Numba, its
    # packed grad_output: 60-92 MiB per thread here (stride 2: Cython's stride-1 input
    # gradient is a forward convolution)
    "conv1d_input-gemm": ("conv1d_input", 1, 4, 1, 1 << 21, 8, (1, 15), (1, 2), (0, 7)),
    # the reference's 2-D max-pool copied the windows of a plane to flatten them (the
    # input's size here); its avg-pool computed int64 window counts the length of the row
    # (64 MiB each)
    "max_pool2d-2x2": ("max_pool2d", 1, 1, 2, 1 << 24, 0, (2, 2), (2, 2), (0, 0)),
    "avg_pool2d-long-row": ("avg_pool2d", 1, 1, 1, 1 << 25, 0, (1, 4), (1, 4), (0, 0)),
    # ... and, for its indices, gathered the windows with int64 positions of every tap
    "max_pool2d-indices": ("max_pool2d_idx", 1, 1, 2, 1 << 22, 0, (2, 2), (2, 2), (0, 0)),
}

LONG_CHILD = _PREAMBLE + r"""
import fastconv.grad

backend, cases = sys.argv[1], json.loads(sys.argv[2])
fastconv.set_num_threads(int(sys.argv[3]))
dt = np.float32
rng = np.random.default_rng(0)

def call(op, x, w, k, s, p, out):
    if op == "conv1d":
        return fastconv.conv1d(x[:, :, 0], w[:, :, 0], stride=s[1], padding=p[1],
                               backend=backend, out=out)
    if op == "conv2d":
        return fastconv.conv2d(x, w, stride=s, padding=p, backend=backend, out=out)
    if op in ("conv1d_weight", "conv1d_input"):
        Lo = (x.shape[3] + 2 * p[1] - k[1]) // s[1] + 1
        gy = np.ones((x.shape[0], w.shape[0], Lo), dt) if out is None else out
        if op == "conv1d_input":
            return fastconv.grad.conv1d_input(x[:, :, 0].shape, w[:, :, 0], gy, s[1], p[1],
                                              backend=backend)
        return fastconv.grad.conv1d_weight(x[:, :, 0], w[:, :, 0].shape, gy, s[1], p[1],
                                           backend=backend)
    if op == "max_pool1d":
        return fastconv.max_pool1d(x[:, :, 0], k[1], s[1], p[1], backend=backend)
    if op == "max_pool2d":
        return fastconv.max_pool2d(x, k, s, p, backend=backend)
    if op == "max_pool2d_idx":
        return fastconv.max_pool2d(x, k, s, p, return_indices=True, backend=backend)
    return fastconv.avg_pool2d(x, k, s, p, backend=backend)

res = {}
for name, (op, N, C, H, W, K, k, s, p) in cases.items():
    Ho, Wo = (H + 2 * p[0] - k[0]) // s[0] + 1, (W + 2 * p[1] - k[1]) // s[1] + 1
    w = rng.standard_normal((K, C) + tuple(k)).astype(dt)
    # warm up on a small input of the same kind (Numba compiles per kernel and dtype)
    call(op, rng.standard_normal((1, C, H, 64 * s[1])).astype(dt), w, k, s, p, None)
    x = rng.standard_normal((N, C, H, W)).astype(dt)
    if op == "conv1d_weight":  # positive: its sums are checked below
        x = rng.random((N, C, H, W)).astype(dt)
    out = None
    if op.startswith("conv"):  # passed in, already written: count the work memory only
        out = np.empty((N, K, Ho, Wo) if op == "conv2d" else (N, K, Wo), dt)
        out[...] = op != "conv1d"  # the gradients' grad_output: ones
    before, reset = reset_peak(backend)
    r = call(op, x, w, k, s, p, out)
    out_bytes = N * (K if op.startswith("conv") else C) * Ho * Wo * 4 + w.nbytes
    rs = r if isinstance(r, tuple) else (r,)  # a pool's result (and indices), a gradient
    kept = 0 if op in ("conv1d", "conv2d") else sum(a.nbytes for a in rs)
    res[name] = {"extra": status("VmHWM") - before - kept,
                 "reset": reset, "in_out": x.nbytes + out_bytes, "err": 0.0}
    if op == "conv1d_weight":  # stride 1, grad_output is ones: tap j sums x[j - p : ...]
        want = np.array([x[0, 0, 0, max(0, j - p[1]):j - p[1] + Wo].sum(dtype=np.float64)
                         for j in range(k[1])])
        res[name]["err"] = float(np.max(np.abs(r[0, 0] - want) / want))
    if op == "conv1d_input":  # grad_output is ones: the weights of the taps that reach i
        i = np.r_[0:3 * k[1], W // 2:W // 2 + 3 * k[1], W - 3 * k[1]:W]
        ow = (i[:, None] + p[1] - np.arange(k[1])) / s[1]  # the output each tap comes from
        hit = (ow == np.floor(ow)) & (ow >= 0) & (ow < Wo)
        want = (w[:, 0, 0].sum(axis=0, dtype=np.float64)[None, :] * hit).sum(axis=1)
        res[name]["err"] = float(np.max(np.abs(r[0, 0, i] - want))
                                 / np.abs(w[:, 0]).sum())
    del x, out, r
print(json.dumps(res))
"""


@pytest.fixture(scope="module", params=[(b, t) for b in fastconv.backends() for t in (1, 2)],
                ids=lambda p: f"{p[0]}-{p[1]}threads")
def measured_long(request):
    backend, nthreads = request.param
    proc = subprocess.run([sys.executable, "-c", LONG_CHILD, backend, json.dumps(LONG),
                           str(nthreads)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return f"{backend} {nthreads} threads", json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize("case", sorted(LONG))
def test_issue15_long_rows_extra_memory_is_bounded(measured_long, case):
    backend, res = measured_long
    extra, in_out = res[case]["extra"], res[case]["in_out"]
    assert res[case]["reset"] < MIB, "clear_refs did not reset the peak resident set"
    pool = "pool" in LONG[case][0]
    bound = max(64 * MIB, in_out) if backend.startswith("numpy") and not pool else 64 * MIB
    assert extra < bound, (f"{backend} {case}: {extra / MIB:.1f} MiB extra, "
                           f"bound {bound / MIB:.1f} MiB")
    assert res[case]["err"] < 1e-3, f"{backend} {case}: relative error {res[case]['err']}"
    print(f"{backend} {case}: {extra / MIB:.1f} MiB extra (bound {bound / MIB:.0f} MiB)")
