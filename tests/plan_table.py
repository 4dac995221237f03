"""Record the algorithm choices and cost estimates of fastconv's kernels on a grid of shapes.

Run once on main before issue 16's refactor (commit 6a74887), where each kernel made its own
choice (``_cy_conv.algorithm``, ``_cy_grad.algorithm``, ``_numba.conv.use_gemm``,
``_numba.grad.algorithm``, the tile formulas mirrored in ``_chunks._path``) and
``_dispatch._work`` and ``_chunks.estimate`` each had their cost formula::

    python -P tests/plan_table.py tests/data/plan_main.json

tests/test_plan.py checks that ``fastconv._plan`` makes the same choices on the same grid
(it imports :func:`grid` and :func:`args_of` from here). The grid is drawn from a fixed seed,
so the same shapes come back on every run. Since issue 16, ``_chunks._path``,
``_chunks.estimate`` and ``_dispatch._work`` are the plan's own, so a table recorded on a
later commit would only compare the plan with itself: the committed one is main's.
"""

import json
import sys

import numpy as np

OPS = ("conv2d", "conv2d_input", "conv2d_weight")


def grid(n=700, seed=16):
    """[(N, C, H, W, K, groups, kh, kw, sh, sw, pt, pl, dh, dw)] with a valid output: the
    layers near Winograd's and the pointwise rule's bounds, then ``n`` random ones."""
    out = [(N, C, H, H, K, 1, 3, 3, 1, 1, p, p, 1, 1)
           for N in (1, 2, 8) for C in (16, 32, 64, 512, 1024) for K in (16, 32, 256, 1024)
           for H in (7, 14, 56, 300) for p in (0, 1)]
    out += [(N, C, H, H, K, 1, 1, 1, s, s, p, p, 1, 1)
            for N in (1, 8) for C in (2, 8, 16, 64) for K in (4, 8, 16) for H in (5, 28)
            for s in (1, 2) for p in (0, 1)]
    rng = np.random.default_rng(seed)
    n += len(out)
    while len(out) < n:
        N = int(rng.choice([1, 2, 3, 8, 64]))
        C = int(rng.choice([1, 2, 3, 6, 16, 32, 64, 128, 256, 512, 1024]))
        g = int(rng.choice([1, 1, 1, 2, C]))
        if C % g:
            continue
        K = int(rng.choice([1, 2, 3, 6, 8, 16, 32, 64, 256, 512, 1024])) * (g if g > 1 else 1)
        if K > 4096:
            continue
        H = int(rng.choice([1, 4, 7, 14, 28, 56, 100, 224]))
        W = int(rng.choice([1, 4, 7, 14, 28, 56, 70, 224, 600]))
        kh, kw = (int(v) for v in rng.choice([(1, 1), (3, 3), (5, 5), (7, 7), (1, 3), (3, 1),
                                              (2, 2)]))
        sh, sw = (int(v) for v in rng.choice([(1, 1), (1, 1), (2, 2), (3, 3), (1, 2), (4, 4)]))
        pt, pl = (int(v) for v in rng.choice([(0, 0), (1, 1), (2, 2), (0, 1), (3, 3)]))
        dh, dw = (int(v) for v in rng.choice([(1, 1), (1, 1), (2, 2), (1, 2)]))
        Ho = (H + 2 * pt - dh * (kh - 1) - 1) // sh + 1
        Wo = (W + 2 * pl - dw * (kw - 1) - 1) // sw + 1
        if Ho < 1 or Wo < 1 or N * C * H * W > 1 << 27:
            continue
        out.append((N, C, H, W, K, g, kh, kw, sh, sw, pt, pl, dh, dw))
    return out


def fake(shape, itemsize):
    """An array of ``shape`` with no memory behind it (the rules read shapes only)."""
    dt = np.float32 if itemsize == 4 else np.float64
    return np.lib.stride_tricks.as_strided(np.zeros(1, dt), shape, (0,) * len(shape))


def args_of(op, case, itemsize):
    N, C, H, W, K, g, kh, kw, sh, sw, pt, pl, dh, dw = case
    Ho = (H + 2 * pt - dh * (kh - 1) - 1) // sh + 1
    Wo = (W + 2 * pl - dw * (kw - 1) - 1) // sw + 1
    x, w = fake((N, C, H, W), itemsize), fake((K, C // g, kh, kw), itemsize)
    y = fake((N, K, Ho, Wo), itemsize)
    geo = ((sh, sw), (pt, pl), (dh, dw), g)
    if op == "conv2d":
        return (x, w, fake((K,), itemsize), y) + geo
    if op == "conv2d_input":
        return (y, w, x) + geo
    return (x, y, w) + geo


def record():
    """{"keys": [...], "rows": [[case, value per key], ...]}."""
    from fastconv import _chunks, _dispatch
    rows = []
    for case in grid():
        row = {}
        for itemsize in (4, 8):
            for op in OPS:
                a = args_of(op, case, itemsize)
                for backend in ("cython", "numba"):
                    p = _chunks._path(backend, op, a)
                    row[f"path/{backend}/{op}/{itemsize}"] = p
                if itemsize == 4:
                    for backend in ("cython", "numba", "numpy"):
                        row[f"estimate/{backend}/{op}"] = _chunks.estimate(op, backend, a)
                    row[f"work/{op}"] = list(_dispatch._work(op, a))
        keys = list(row)
        rows.append([case] + [row[k] for k in keys])
    return {"keys": keys, "rows": rows}


if __name__ == "__main__":
    with open(sys.argv[1], "w") as f:
        json.dump(record(), f, separators=(",", ":"))
