"""Issue 17: the extra memory of conv_transpose2d and its backward on the speed-target shapes
(fastconv/bench/targets_transpose.py) stays below max(64 MiB, input + output bytes), as
conv2d's does (tests/test_memory.py, whose measuring preamble this reuses: the peak resident
set of a fresh process over its resident set before the call). float32, 2 threads, the
compiled backends. The forward's output is passed in with ``out=``, already written; the
backward's returned gradients are not counted as extra."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import fastconv
from test_memory import _PREAMBLE, MIB, pytestmark  # noqa: F401  (Linux only)

CHILD = _PREAMBLE + r"""
import fastconv.grad
from fastconv.bench.targets_transpose import SHAPES, KW, _inputs

backend = sys.argv[1]
fastconv.set_num_threads(int(sys.argv[2]))
res = {}
for shape in SHAPES:
    x, w, gy = _inputs(shape)
    # warm up on a small input of the same kind (Numba compiles per kernel and dtype)
    small = np.ascontiguousarray(x[:1, :, :3, :3])
    fastconv.conv_transpose2d(small, w, **KW, backend=backend)
    gs = np.ones((1, w.shape[1], 6, 6), np.float32)
    fastconv.grad.conv_transpose2d_input(small.shape, w, gs, **KW, backend=backend)
    fastconv.grad.conv_transpose2d_weight(small, w.shape, gs, **KW, backend=backend)
    out = np.empty(gy.shape, np.float32)
    out[...] = 0
    before, reset = reset_peak(backend)
    fastconv.conv_transpose2d(x, w, **KW, backend=backend, out=out)
    res["forward " + shape] = {"extra": status("VmHWM") - before, "reset": reset,
                               "in_out": x.nbytes + w.nbytes + out.nbytes}
    del out
    before, reset = reset_peak(backend)
    gx = fastconv.grad.conv_transpose2d_input(x.shape, w, gy, **KW, backend=backend)
    gw = fastconv.grad.conv_transpose2d_weight(x, w.shape, gy, **KW, backend=backend)
    kept = gx.nbytes + gw.nbytes
    res["backward " + shape] = {"extra": status("VmHWM") - before - kept, "reset": reset,
                                "in_out": x.nbytes + w.nbytes + gy.nbytes + kept}
    del gx, gw
print(json.dumps(res))
"""


@pytest.fixture(scope="module", params=[b for b in ("cython", "numba")
                                        if b in fastconv.backends()])
def measured(request):
    proc = subprocess.run([sys.executable, "-c", CHILD, request.param, "2"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return request.param, json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize("case", ["forward 8x64x28x28", "forward 64x128x7x7",
                                  "backward 8x64x28x28", "backward 64x128x7x7"])
def test_conv_transpose2d_extra_memory_is_bounded(measured, case):
    backend, res = measured
    extra, in_out = res[case]["extra"], res[case]["in_out"]
    assert res[case]["reset"] < MIB, "clear_refs did not reset the peak resident set"
    bound = max(64 * MIB, in_out)
    assert extra < bound, (f"{backend} conv_transpose2d {case}: {extra / MIB:.1f} MiB "
                           f"extra, bound {bound / MIB:.1f} MiB")
    print(f"{backend} {case}: {extra / MIB:.1f} MiB extra (bound {bound / MIB:.0f} MiB)")
