"""Measure the grain of fastconv._threads: 1- against 2-thread time of the Cython kernels over
work sizes, optionally while a busy-loop process keeps one core busy.

    python -P tools/grain_measure.py [--busy] [--gap-ms 2]

Calls the compiled kernels directly (``fastconv._cy_pool.max_pool2d``, ``_cy_conv.conv2d``)
with an explicit thread count, so the grain itself does not interfere. The two counts take
turns call by call, with ``--gap-ms`` of sleep before each call (0: back to back; a gap lets
the OpenMP threads go to sleep, as between the kernels of a training step); the medians are
printed with their ratio. Wall-clock numbers on a shared machine: read them as indicative.
"""

import argparse
import subprocess
import sys
import time

import numpy as np

from fastconv import _cy_conv, _cy_pool


def _pair(f, gap, budget=0.5):
    f(1)
    f(2)
    res = {1: [], 2: []}
    t0 = time.perf_counter()
    r = 0
    while (r < 40 or time.perf_counter() - t0 < budget) and time.perf_counter() - t0 < 3:
        for n in ((1, 2) if r % 2 else (2, 1)):
            if gap:
                time.sleep(gap)
            t = time.perf_counter()
            f(n)
            res[n].append(time.perf_counter() - t)
        r += 1
    return float(np.median(res[1])), float(np.median(res[2]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--busy", action="store_true", help="keep one core busy meanwhile")
    ap.add_argument("--gap-ms", type=float, default=2.0)
    args = ap.parse_args()
    gap = args.gap_ms / 1e3
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        time.sleep(0.3 if busy else 0)
        rng = np.random.default_rng(0)
        print("op          work  1 thread (us)  2 threads (us)  1t / 2t")
        for hw in (8, 32, 64, 128, 256, 512):  # max-pool 2x2/2 on (1, 8, hw, hw): taps
            x = rng.standard_normal((1, 8, hw, hw), dtype=np.float32)
            out = np.empty((1, 8, hw // 2, hw // 2), np.float32)
            t1, t2 = _pair(lambda n: _cy_pool.max_pool2d(x, out, None, (2, 2), (2, 2), (0, 0),
                                                          (1, 1), n), gap)
            print(f"pool {out.size * 4:>12d}  {t1 * 1e6:13.1f}  {t2 * 1e6:14.1f}  {t1 / t2:7.2f}")
        for hw in (8, 16, 32, 64, 128, 256):  # conv 3x3, 8 -> 8 channels, pad 1: FLOPs
            x = rng.standard_normal((1, 8, hw, hw), dtype=np.float32)
            w = rng.standard_normal((8, 8, 3, 3), dtype=np.float32)
            b = np.zeros(8, np.float32)
            out = np.empty((1, 8, hw, hw), np.float32)
            t1, t2 = _pair(lambda n: _cy_conv.conv2d(x, w, b, out, (1, 1), (1, 1), (1, 1), 1,
                                                     "direct", n), gap)
            print(f"conv {2 * out.size * 72:>12d}  {t1 * 1e6:13.1f}  {t2 * 1e6:14.1f}  "
                  f"{t1 / t2:7.2f}")
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()


if __name__ == "__main__":
    main()
