"""Calibrate and check fastconv._fft's direct-or-FFT cost model (issue 19).

Times fastconv's direct path and its FFT path (method="direct" / "fft" of
fastconv.correlate / correlate2d, mode="same") over the issue's grid: signals/images 64 to
4096 wide, kernels 3 to 255 wide, 1-D and 2-D, float32 and float64. Prints, per case, both
times, what ``auto`` picks, and auto's time over the better one. CPU time of one thread
(``time.process_time``, best of a few) is used because the dev machine is shared; run
``python tools/fft_calibrate.py [--threads N] [--wall]``.
"""
import sys
import time

import numpy as np

import fastconv
from fastconv import _fft


def best(f, clock, reps=3, budget=0.3):
    f()
    ts = []
    t_end = time.perf_counter() + budget
    for _ in range(reps):
        t0 = clock()
        f()
        ts.append(clock() - t0)
        if time.perf_counter() > t_end:
            break
    return min(ts)


def main():
    threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 1
    clock = time.perf_counter if "--wall" in sys.argv else time.process_time
    fastconv.set_num_threads(threads)
    rng = np.random.default_rng(0)
    worst = 0.0
    rows = []
    for dt in (np.float32, np.float64):
        for d in (1, 2):
            sizes = (64, 256, 1024, 4096) if d == 2 else (64, 256, 1024, 4096, 65536)
            for n in sizes:
                for k in (3, 7, 15, 31, 63, 127, 255):
                    if k > n:
                        continue
                    if d == 2 and n * n * k * k > 4096 * 4096 * 64 * 64:
                        continue  # direct would take seconds
                    x = rng.random((n,) * d).astype(dt)
                    w = rng.random((k,) * d).astype(dt)
                    f = fastconv.correlate if d == 1 else fastconv.correlate2d
                    tdir = best(lambda: f(x, w, "same", method="direct"), clock)
                    tfft = best(lambda: f(x, w, "same", method="fft"), clock)
                    pick = _fft.choose_shapes((n,) * d, (k,) * d, dt)
                    ratio = (tdir if pick == "direct" else tfft) / min(tdir, tfft)
                    worst = max(worst, ratio)
                    rows.append((dt.__name__, d, n, k, tdir * 1e3, tfft * 1e3, pick, ratio))
                    print("| %s | %d-D | %d | %d | %.3f | %.3f | %s | %.2f |" % rows[-1],
                          flush=True)
    print("worst auto / best: %.2f" % worst)


if __name__ == "__main__":
    main()
