"""Issue 15, item 2: Ctrl-C stops a long call quickly, as a plain KeyboardInterrupt.

Long kernel calls run in pieces (:mod:`fastconv._chunks`); a SIGINT raises KeyboardInterrupt
between two of them. The child-process tests send a real SIGINT to a real long call on
every backend. The other tests check the pieces give the uncut call's results (bitwise
where the module docstring says so), that small calls (every benchmark shape) stay one
piece, and the documented state of ``out=`` after an interrupt.

About the latency bound. STYLE forbids wall-clock asserts (the machine is shared and
noisy), but reacting within 0.5 s is what the issue asks for, so it is asserted, with a
margin that keeps it meaningful: each child first times a small call of the same kind and
sizes the long one to last about 5 s (at least 0.8 s), sends itself nothing, and the
parent signals it after min(1 s, a quarter of that). Without pieces the call would end
only after its remaining 75% (seconds), so the assert checks both the issue's 0.5 s and
that the interrupt came in well under a third of the remaining time. Pieces are sized for
20-100 ms on an idle machine, which leaves a 5x margin for load.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastconv
import fastconv.grad as G
from fastconv import _chunks, _dispatch, ndimage

from conftest import BACKENDS, assert_close, bench_cases

bench_cases = bench_cases()  # fastconv/bench/cases.py: the benchmark shapes

# --------------------------------------------------------------------------------------------
# a real SIGINT to a child process running a long call
# --------------------------------------------------------------------------------------------
_CHILD = textwrap.dedent(r'''
    import json, os, signal, sys, time
    import numpy as np
    import fastconv, fastconv.grad as G

    # Python installs its KeyboardInterrupt handler only if SIGINT is not ignored at start,
    # and a job started in the background by a non-interactive shell (`cmd &`, as CI runners
    # may start the suite) inherits SIGINT ignored: install it, as a terminal's process has
    signal.signal(signal.SIGINT, signal.default_int_handler)

    case, backend = sys.argv[1], sys.argv[2]
    f32 = np.float32
    rng = np.random.default_rng(0)
    # all the arrays of the long call (the fast kernels need it); the FFT engine does little
    # work per byte (a few ms per MiB), so its calls get more
    MAX_BYTES = (1536 if case.startswith("fft") else 512) << 20

    def rand(*shape):
        return rng.standard_normal(shape, dtype=f32)

    # make(n) -> (call, bytes): a call whose work grows linearly with n
    if case == "conv2d_batch":
        w = rand(128, 128, 7, 7)
        def make(n):
            x = rand(n, 128, 16, 16)
            return (lambda: fastconv.conv2d(x, w, padding=3, backend=backend)), 2 * x.nbytes
    elif case == "conv2d_image":
        w = rand(64, 64, 7, 7)
        def make(n):
            x = rand(1, 64, 16 * n, 64)
            return (lambda: fastconv.conv2d(x, w, padding=3, backend=backend)), 2 * x.nbytes
    elif case == "conv1d":
        w = rand(64, 64, 63)
        def make(n):
            x = rand(1, 64, 4096 * n)
            return (lambda: fastconv.conv1d(x, w, padding=31, backend=backend)), 2 * x.nbytes
    elif case == "max_pool2d":
        def make(n):
            x = rand(n, 16, 64, 64)
            return (lambda: fastconv.max_pool2d(x, 15, 1, 7, return_indices=True,
                                                backend=backend)), 4 * x.nbytes
    elif case == "conv2d_input":
        w = rand(128, 128, 7, 7)
        def make(n):
            gy = rand(n, 128, 16, 16)
            return (lambda: G.conv2d_input(gy.shape, w, gy, padding=3, backend=backend)), \
                2 * gy.nbytes
    elif case == "nd_correlate":
        from fastconv import ndimage
        k = rng.standard_normal((9, 9))
        def make(n):
            x = rand(512 * n, 1024)
            return (lambda: ndimage.correlate(x, k, backend=backend)), 2 * x.nbytes
    elif case == "median_filter":
        from fastconv import ndimage
        def make(n):
            x = rand(256 * n, 512)
            return (lambda: ndimage.median_filter(x, (7, 5), mode="wrap", backend=backend)), \
                2 * x.nbytes
    elif case == "fft_blocks":  # many blocks: the engine's tasks, over the threads
        from fastconv import signal as fsig
        w = rand(255, 255)
        def make(n):
            x = rand(128 * n, 2048)
            return (lambda: fsig.fftconvolve(x, w, mode="same")), 3 * x.nbytes
    elif case == "fft_whole":  # blocks of millions of elements: the transforms are cut
        from fastconv import signal as fsig
        def make(n):
            x, y = rand(32 * n, 4096), rand(32 * n, 4096)
            return (lambda: fsig.fftconvolve(x, y)), 24 * x.nbytes
    elif case == "fft_1d":
        v = rand(200001)
        def make(n):
            a = rand(n << 20)
            return (lambda: fastconv.convolve(a, v, method="fft")), 4 * a.nbytes
    elif case == "conv2d_weight":
        def make(n):
            x, gy = rand(n, 128, 16, 16), rand(n, 128, 16, 16)
            return (lambda: G.conv2d_weight(x, (128, 128, 7, 7), gy, padding=3,
                                            backend=backend)), 2 * x.nbytes

    def timed(call):
        t0 = time.perf_counter()
        call()
        return time.perf_counter() - t0

    timed(make(1)[0])  # Numba compiles here
    n_cal = 2
    # the fastest of three: a load spike during one calibration run would make the long
    # call far shorter than predicted (it once ended before the signal was sent)
    t_cal = min(timed(make(n_cal)[0]) for _ in range(3))
    _, b_cal = make(n_cal)
    n = max(n_cal, min(int(n_cal * 5.0 / t_cal), int(n_cal * MAX_BYTES / b_cal)))
    call, _ = make(n)
    predicted = t_cal * n / n_cal

    def other_threads_cpu():
        me, tot = os.getpid(), 0
        for t in os.listdir(f"/proc/{me}/task"):
            if int(t) != me:
                try:
                    with open(f"/proc/{me}/task/{t}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    tot += int(fields[11]) + int(fields[12])  # utime + stime
                except OSError:  # the thread ended
                    pass
        return tot / os.sysconf("SC_CLK_TCK")

    res = {"predicted_s": predicted, "caught": None}
    print("started", json.dumps(predicted), flush=True)
    try:
        call()
        res["caught"] = "returned"
    except KeyboardInterrupt as exc:
        res["caught"] = "KeyboardInterrupt" if type(exc) is KeyboardInterrupt else repr(exc)
    except BaseException as exc:  # what the issue saw: SystemError from Numba
        res["caught"] = f"{type(exc).__name__}: {exc}"[:300]
    res["t_end"] = time.monotonic()
    # idle OpenMP and OpenBLAS workers spin for up to ~0.1 s after their last task before
    # they sleep: measure from 0.25 s on, over 0.5 s, where a thread still running a piece
    # of the kernel would use most of the window
    try:
        time.sleep(0.25)
        c0 = other_threads_cpu()
        time.sleep(0.5)
        res["other_threads_cpu_s"] = other_threads_cpu() - c0
    except KeyboardInterrupt:  # the call returned before the signal came (see the parent)
        res["other_threads_cpu_s"] = None
    print("RESULT", json.dumps(res), flush=True)
''')

CASES = ["conv2d_batch", "conv2d_image", "conv1d", "max_pool2d", "conv2d_input",
         "conv2d_weight", "nd_correlate", "median_filter"]


@pytest.mark.skipif(sys.platform == "win32" or not os.path.isdir("/proc/self/task"),
                    reason="POSIX signals and Linux /proc")
@pytest.mark.parametrize("case", CASES)
def test_issue15_sigint_stops_a_long_call(backend, case, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    # On a loaded machine the long call can still end before the signal is sent (its size
    # comes from a timing): that run tests nothing, so it is run again, up to three times.
    for _ in range(3):
        res, predicted, t_start, t_sig = _interrupt_child(script, backend, case, tmp_path)
        if not (res["caught"] == "returned" and res["t_end"] <= t_sig):
            break
    else:
        pytest.skip("the long call ended before the signal three times (a loaded machine)")
    if predicted < 0.8:
        pytest.skip(f"the call could not be made long enough ({predicted:.2f} s predicted)")
    assert res["caught"] == "KeyboardInterrupt", res
    latency = res["t_end"] - t_sig
    remaining = predicted - (t_sig - t_start)
    print(f"{backend} {case}: interrupted {latency:.3f} s after SIGINT, "
          f"{remaining:.2f} s before the call would have ended")
    assert latency < 0.5 and latency < remaining / 3, (latency, remaining, res)
    # no thread keeps computing after the interrupt (idle pool threads use no CPU)
    assert res["other_threads_cpu_s"] < 0.1, res


@pytest.mark.skipif(sys.platform == "win32" or not os.path.isdir("/proc/self/task"),
                    reason="POSIX signals and Linux /proc")
@pytest.mark.parametrize("case", ["fft_blocks", "fft_whole", "fft_1d"])
def test_sigint_stops_a_long_fft_call(case, tmp_path):
    """The FFT engine (fastconv._fft) stops on Ctrl-C between its tasks and between the
    pieces of a large transform, and leaves no pool thread computing."""
    test_issue15_sigint_stops_a_long_call("auto", case, tmp_path)


def _interrupt_child(script, backend, case, tmp_path):
    """Run the child on ``case``, SIGINT it, and return (its result, the predicted seconds
    of its call, when the parent started waiting, when it sent the signal)."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.Popen([sys.executable, str(script), case, backend], stdout=subprocess.PIPE,
                            text=True, env=env, cwd=str(tmp_path))
    try:
        line = proc.stdout.readline()
        assert line.startswith("started"), line
        predicted = json.loads(line.split(None, 1)[1])
        delay = min(1.0, predicted / 4)
        t_start = time.monotonic()
        time.sleep(delay)
        t_sig = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "RESULT" in out, out
    return json.loads(out.split("RESULT", 1)[1]), predicted, t_start, t_sig


# --------------------------------------------------------------------------------------------
# the pieces give the uncut call's results
# --------------------------------------------------------------------------------------------
@pytest.fixture
def tiny_pieces(monkeypatch):
    """Cut every call into about 5 pieces, and record the cuts."""
    cuts = []
    plan = _chunks.plan

    def recording(op, backend, args):
        monkeypatch.setattr(_chunks, "PIECE_SECONDS", _chunks.estimate(op, backend, args) / 5)
        c = plan(op, backend, args)
        cuts.append((op, c))
        return c

    monkeypatch.setattr(_chunks, "SPLIT_SECONDS", 0.0)
    monkeypatch.setattr(_chunks, "plan", recording)
    return cuts


def _whole(monkeypatch, f):
    with monkeypatch.context() as m:
        m.setattr(_chunks, "SPLIT_SECONDS", float("inf"))
        return f()


def _rand(rng, *shape):
    return rng.standard_normal(shape, dtype=np.float32)


# name: (call(backend, arrays), the backends whose pieces are bitwise the uncut call)
_ALL = set(BACKENDS)
_SPLIT_CASES = {
    "conv2d batch": (lambda b, a: fastconv.conv2d(a["x"], a["w"], a["bias"], padding=1,
                                                  backend=b), {"cython"}),
    "conv2d one image, filters": (lambda b, a: fastconv.conv2d(
        a["x"][:1], a["w"], a["bias"], padding=1, backend=b), {"cython"}),
    "conv2d groups": (lambda b, a: fastconv.conv2d(a["x"][:1], a["wg"], padding=1, groups=4,
                                                   backend=b), {"cython", "numba"}),
    "conv2d depthwise": (lambda b, a: fastconv.conv2d(a["x"][:1], a["wd"], padding=1,
                                                      groups=16, backend=b), {"cython", "numba"}),
    "conv2d rows, stride 2": (lambda b, a: fastconv.conv2d(
        a["x"][:1, :1], a["w"][:1, :1], stride=2, padding=2, backend=b), {"cython", "numba"}),
    "conv2d rows, 5x5": (lambda b, a: fastconv.conv2d(a["plane"], a["w5"], padding=2,
                                                      backend=b), {"cython", "numba"}),
    "conv1d columns": (lambda b, a: fastconv.conv1d(a["signal"], a["w1"], padding=3,
                                                    backend=b), {"cython", "numba"}),
    "conv1d columns, stride 2": (lambda b, a: fastconv.conv1d(
        a["signal"], a["w1"], padding=3, stride=2, backend=b), {"cython", "numba"}),
    "conv2d winograd": (lambda b, a: fastconv.conv2d(a["xw"], a["ww"], padding=1,
                                                     backend=b), {"cython"}),
    "conv2d gemm": (lambda b, a: fastconv.conv2d(a["xg"], a["wgm"], padding=1, backend=b),
                    {"cython"}),
    "locally_connected2d": (lambda b, a: fastconv.locally_connected2d(
        a["x"][:, :4], a["wl"], backend=b), {"cython", "numba"}),
    "max_pool2d": (lambda b, a: fastconv.max_pool2d(a["x"], 3, 2, 1, return_indices=True,
                                                    backend=b), _ALL),
    "max_pool2d one image": (lambda b, a: fastconv.max_pool2d(
        a["x"][:1], 3, 2, 1, return_indices=True, backend=b), _ALL),
    "avg_pool2d": (lambda b, a: fastconv.avg_pool2d(a["x"][:1], 3, 2, 1, backend=b), _ALL),
    "conv2d_input batch": (lambda b, a: G.conv2d_input(a["x"].shape, a["w"], a["gy"],
                                                       padding=1, backend=b), {"cython"}),
    "conv2d_input stride 2": (lambda b, a: G.conv2d_input(
        a["x"].shape, a["w"], a["gy2"], padding=1, stride=2, backend=b), set()),
    "conv2d_input stride 2, channels": (lambda b, a: G.conv2d_input(
        a["x"][:1].shape, a["w"], a["gy2"][:1], padding=1, stride=2, backend=b), set()),
    "conv2d_input groups": (lambda b, a: G.conv2d_input(
        a["x"][:1].shape, a["wg"], a["gy"][:1], padding=1, groups=4, backend=b), {"cython"}),
    "conv2d_weight": (lambda b, a: G.conv2d_weight(a["x"], a["w"].shape, a["gy"], padding=1,
                                                   backend=b), set()),
    "conv2d_weight groups": (lambda b, a: G.conv2d_weight(
        a["x"], a["wg"].shape, a["gy"], padding=1, groups=4, backend=b), set()),
    "max_pool2d backward": (lambda b, a: G.max_pool2d(
        *fastconv.max_pool2d(a["x"], 2, return_indices=True, backend="numpy"), a["x"].shape,
        backend=b), _ALL),
    "avg_pool2d backward": (lambda b, a: G.avg_pool2d(
        a["x"][:, :, ::2, ::2].copy(), a["x"].shape, 3, 2, 1, backend=b), _ALL),
    # ndimage: lines cut along the outer axis, or along the inner one (a first-axis pass);
    # gaussian_filter's fused last two passes (nd_sepcorr) along its rows (2-D) or the outer
    # axis (3-D)
    "ndimage.correlate": (lambda b, a: ndimage.correlate(a["plane"][0, 0], a["w5"][0, 0],
                                                         mode="wrap", backend=b), _ALL),
    "ndimage.correlate 3-D": (lambda b, a: ndimage.correlate(a["x"][0, :8], a["w3d"],
                                                             backend=b), _ALL),
    "ndimage.gaussian_filter": (lambda b, a: ndimage.gaussian_filter(
        a["plane"][0, 0], (2.0, 1.5), mode="constant", cval=0.5, backend=b), _ALL),
    "ndimage.gaussian_filter 3-D": (lambda b, a: ndimage.gaussian_filter(
        a["x"][0], (1.0, 2.0, 1.5), mode="wrap", backend=b), _ALL),
    "ndimage.correlate1d, first axis": (lambda b, a: ndimage.correlate1d(
        a["plane"][0, 0], a["w1"][0, 0], axis=0, backend=b), _ALL),
    "ndimage.uniform_filter 3-D": (lambda b, a: ndimage.uniform_filter(
        a["x"][0], (3, 5, 4), mode="mirror", backend=b), _ALL),
}


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(15)
    return {
        "x": _rand(rng, 3, 16, 34, 30), "w": _rand(rng, 40, 16, 3, 3),
        "bias": _rand(rng, 40), "wg": _rand(rng, 40, 4, 3, 3), "wd": _rand(rng, 16, 1, 3, 3),
        "plane": _rand(rng, 1, 1, 150, 100), "w5": _rand(rng, 1, 1, 5, 5),
        "signal": _rand(rng, 1, 4, 6000), "w1": _rand(rng, 3, 4, 7),
        "xw": _rand(rng, 1, 32, 48, 400), "ww": _rand(rng, 32, 32, 3, 3),
        "xg": _rand(rng, 4, 600, 12, 12), "wgm": _rand(rng, 24, 600, 3, 3),
        "wl": _rand(rng, 32, 28, 5, 4, 3, 3),
        "gy": _rand(rng, 3, 40, 34, 30), "gy2": _rand(rng, 3, 40, 17, 15),
        "w3d": rng.standard_normal((3, 2, 3)),
    }


# the rank filters run in slabs of rows (fastconv._ndrank), sized by timing: bitwise the
# whole call's whatever the sizes, as every result is one of its window's values
_RANK_CASES = {
    "median 5x5, wrap": lambda b, x: ndimage.median_filter(x[0, 0], 5, mode="wrap",
                                                           backend=b),
    "max box, mirror, origins": lambda b, x: ndimage.maximum_filter(
        x[0, 0], (9, 4), mode="mirror", origin=(2, -1), backend=b),
    "min footprint, constant": lambda b, x: ndimage.minimum_filter(
        x[0, 0], footprint=np.eye(5, dtype=bool), mode="constant", cval=0.5, backend=b),
    "median 3-D int16, constant cval 7.5": lambda b, x: ndimage.median_filter(
        (x[0, :6] * 50).astype(np.int16), (3, 3, 2), mode="constant", cval=7.5, backend=b),
    "max int16 to float32, cval 2.5": lambda b, x: ndimage.maximum_filter(
        (x[0] * 50).astype(np.int16), (5, 1, 3), mode="constant", cval=2.5,
        output=np.float32, backend=b),
    "median over the last axes": lambda b, x: ndimage.median_filter(
        x[0], (3, 3), axes=(1, 2), backend=b),
    "max 1-D, reflect": lambda b, x: ndimage.maximum_filter1d(x[0, 0].ravel(), 31, backend=b),
}


@pytest.mark.parametrize("name", list(_RANK_CASES))
def test_issue15_rank_filter_slabs_give_the_whole_calls_result(backend, name, monkeypatch):
    from fastconv import _ndrank

    x = _rand(np.random.default_rng(16), 1, 16, 150, 100)
    call = _RANK_CASES[name]
    with monkeypatch.context() as m:
        m.setattr(_ndrank, "SLAB_SECONDS", float("inf"))
        whole = call(backend, x)
    slabs = []
    run_whole = _ndrank._run_whole
    monkeypatch.setattr(_ndrank, "SLAB_SECONDS", 0.0)
    monkeypatch.setattr(_ndrank, "FIRST_SLAB_TAPS", 1)
    monkeypatch.setattr(_chunks, "PIECE_SECONDS", 1e-9)  # every slab one row
    monkeypatch.setattr(_ndrank, "_run_whole", lambda p, n: slabs.append(1) or run_whole(p, n))
    got = call(backend, x)
    assert len(slabs) >= 5, f"{name} on {backend}: {len(slabs)} slabs"
    assert got.dtype == whole.dtype
    np.testing.assert_array_equal(got, whole)


@pytest.mark.parametrize("name", list(_SPLIT_CASES))
def test_issue15_pieces_give_the_whole_calls_result(backend, name, arrays, tiny_pieces,
                                                    monkeypatch):
    call, bitwise = _SPLIT_CASES[name]
    whole = _whole(monkeypatch, lambda: call(backend, arrays))
    got = call(backend, arrays)
    pieces = [len(c) for _, c in tiny_pieces if c is not None]
    assert pieces and max(pieces) >= 2, f"{name} on {backend} ran in one piece"
    for g, w in zip(*((got, whole) if isinstance(got, tuple) else ((got,), (whole,)))):
        if backend in bitwise:
            np.testing.assert_array_equal(g, w)
        else:  # sums in another order: agree to rounding (the module docstring says where)
            assert_close(g, w, terms=16 * 9 * 3)


def test_issue15_conv2d_weight_cut_along_the_batch_as_a_last_resort(monkeypatch, arrays):
    """One filter and one channel too large for a piece: the batch is cut and its partial
    sums added (another order: to rounding)."""
    monkeypatch.setattr(_chunks, "SPLIT_SECONDS", 0.0)
    monkeypatch.setattr(_chunks, "PIECE_SECONDS", 1e-6)
    x, gy = arrays["x"][:, :1], arrays["gy"][:, :1]
    args = (x, gy, np.empty((1, 1, 3, 3), np.float32), (1, 1), (1, 1), (1, 1), 1)
    assert [c[0] for c in _chunks.plan("conv2d_weight", "numpy", args)] == ["batch"] * 3
    got = G.conv2d_weight(x, (1, 1, 3, 3), gy, padding=1, backend="numpy")
    expected = _whole(monkeypatch, lambda: G.conv2d_weight(x, (1, 1, 3, 3), gy, padding=1,
                                                           backend="numpy"))
    assert_close(got, expected, terms=3 * 34 * 30)


# --------------------------------------------------------------------------------------------
# small calls stay one piece
# --------------------------------------------------------------------------------------------
def _bench_kernel_args():
    """(op, kernel args) of every benchmark shape (fastconv/bench/cases.py), with empty
    arrays."""
    f32 = np.float32
    out = []
    for N, C, H, W, K, k, s, p, g in bench_cases.CONV_SHAPES.values():
        Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
        x, w = np.empty((N, C, H, W), f32), np.empty((K, C // g, k, k), f32)
        y = np.empty((N, K, Ho, Wo), f32)
        geo = ((s, s), (p, p), (1, 1), g)
        out += [("conv2d", (x, w, np.empty(K, f32), y) + geo),
                ("conv2d_input", (y, w, x) + geo), ("conv2d_weight", (x, y, w) + geo)]
    for N, shape, K, k, p in map(bench_cases.layer_geometry, bench_cases.LAYER_CASES.values()):
        if len(shape) != 3:  # a conv3d layer (issue 17): not a conv2d kernel's call
            continue
        C, H, W = shape
        x, w = np.empty((N, C, H, W), f32), np.empty((K, C, k, k), f32)
        y = np.empty((N, K, H + 2 * p - k + 1, W + 2 * p - k + 1), f32)
        out.append(("conv2d", (x, w, np.empty(K, f32), y, (1, 1), (p, p), (1, 1), 1)))
    for N, C, H, W in bench_cases.POOL_SHAPES.values():
        x, y = np.empty((N, C, H, W), f32), np.empty((N, C, H // 2, W // 2), f32)
        idx = np.empty(y.shape, np.int64)
        out += [("max_pool2d", (x, y, idx, (2, 2), (2, 2), (0, 0), (1, 1))),
                ("avg_pool2d", (x, y, (2, 2), (2, 2), (0, 0), True)),
                ("max_pool2d_backward", (y, idx, x)),
                ("avg_pool2d_backward", (y, x, (2, 2), (2, 2), (0, 0), True))]
    return out


@pytest.mark.parametrize("name", BACKENDS)
def test_issue15_benchmark_shapes_stay_one_piece(name):
    for op, args in _bench_kernel_args():
        assert _chunks.estimate(op, name, args) <= _chunks.SPLIT_SECONDS, (op, args[0].shape)
        assert _chunks.plan(op, name, args) is None, (op, args[0].shape)


def test_issue15_large_calls_are_cut_into_pieces_of_the_target_size():
    f32 = np.float32
    x, w = np.empty((64, 128, 32, 32), f32), np.empty((128, 128, 5, 5), f32)
    y = np.empty((64, 128, 32, 32), f32)
    args = (x, w, np.empty(128, f32), y, (1, 1), (2, 2), (1, 1), 1)
    for name in BACKENDS:
        total = _chunks.estimate("conv2d", name, args)
        cuts = _chunks.plan("conv2d", name, args)
        assert total > _chunks.SPLIT_SECONDS and len(cuts) >= total / (2 * _chunks.PIECE_SECONDS)
        # along the batch: every image in exactly one piece
        assert [c[:2] for c in cuts] == sorted(set(c[:2] for c in cuts))
        assert cuts[0][0] == 0 and cuts[-1][1] == 64


# --------------------------------------------------------------------------------------------
# the state after an interrupt, and Numba's SystemError
# --------------------------------------------------------------------------------------------
def test_issue15_out_holds_the_pieces_finished_before_an_interrupt(monkeypatch, arrays):
    x, w, b = arrays["x"], arrays["w"], arrays["bias"]
    expected = fastconv.conv2d(x, w, b, padding=1, backend="numpy")
    args = (x, w, b, expected, (1, 1), (1, 1), (1, 1), 1)
    monkeypatch.setattr(_chunks, "SPLIT_SECONDS", 0.0)
    monkeypatch.setattr(_chunks, "PIECE_SECONDS", _chunks.estimate("conv2d", "numpy", args) / 3)
    assert [c[:2] for c in _chunks.plan("conv2d", "numpy", args)] == [(0, 1), (1, 2), (2, 3)]
    calls = []
    real = _dispatch._call

    def interrupted_third(op, name, fn, args):
        calls.append(args[0].shape)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(op, name, fn, args)

    monkeypatch.setattr(_dispatch, "_call", interrupted_third)
    out = np.full(expected.shape, -7.0, np.float32)
    with pytest.raises(KeyboardInterrupt):
        fastconv.conv2d(x, w, b, padding=1, backend="numpy", out=out)
    assert calls[:2] == [(1,) + x.shape[1:]] * 2
    for i in range(2):  # the finished pieces, as one-image calls compute them
        np.testing.assert_array_equal(out[i], fastconv.conv2d(x[i], w, b, padding=1,
                                                              backend="numpy"))


@pytest.mark.parametrize("split", [False, True])
def test_issue15_numba_systemerror_becomes_a_plain_keyboardinterrupt(monkeypatch, arrays,
                                                                     split):
    """Numba's dispatcher reports a SIGINT handled inside it as a SystemError caused by the
    KeyboardInterrupt; the caller gets the KeyboardInterrupt itself."""
    def numba_like(op, name, fn, args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as ki:
            raise SystemError("CPUDispatcher(<function _conv2d_flat>) returned a result "
                              "with an exception set") from ki

    if split:
        monkeypatch.setattr(_chunks, "SPLIT_SECONDS", 0.0)
        monkeypatch.setattr(_chunks, "PIECE_SECONDS", 1e-9)
    monkeypatch.setattr(_dispatch, "_call", numba_like)
    with pytest.raises(KeyboardInterrupt) as info:
        fastconv.conv2d(arrays["x"], arrays["w"], padding=1, backend="numpy")
    assert type(info.value) is KeyboardInterrupt and info.value.__suppress_context__


def test_issue15_other_systemerrors_are_left_alone(monkeypatch, arrays):
    def broken(op, name, fn, args):
        raise SystemError("something else")

    monkeypatch.setattr(_dispatch, "_call", broken)
    with pytest.raises(SystemError, match="something else"):
        fastconv.conv2d(arrays["x"], arrays["w"], padding=1, backend="numpy")
