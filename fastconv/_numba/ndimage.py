"""Numba kernel of fastconv.ndimage's 1-D correlation pass (issue 18; contract:
:func:`fastconv.reference.nd_correlate1d`).

The parallel loop runs over the output rows ``(o, i)``; each row sums its ``k`` taps' input
rows (or cval) in tap order, in float64, vectorized over the row's ``inner`` columns, so the
results do not depend on the thread count.
"""

import numpy as np
from numba import prange

from ..reference import nd_symmetry
from ._common import jit, use_threads


@jit
def _pass(x, w, idx, cval, out, sym):
    outer, n, inner = x.shape
    k = w.shape[0]
    h = k // 2
    c = float(x.dtype.type(cval))
    for r in prange(outer * n):
        o = r // n
        i = r - o * n
        acc = np.zeros(inner)  # float64 sums in scipy's order (see the reference)
        if sym != 0:
            p = idx[i + h]
            for q in range(inner):
                acc[q] = (np.float64(x[o, p, q]) if p >= 0 else c) * w[h]
            for j in range(h):
                pa = idx[i + j]
                pb = idx[i + k - 1 - j]
                for q in range(inner):
                    a = np.float64(x[o, pa, q]) if pa >= 0 else c
                    b = np.float64(x[o, pb, q]) if pb >= 0 else c
                    acc[q] += (a + b if sym > 0 else a - b) * w[j]
        else:  # the last tap first, then the others in order
            p = idx[i + k - 1]
            for q in range(inner):
                acc[q] = (np.float64(x[o, p, q]) if p >= 0 else c) * w[k - 1]
            for j in range(k - 1):
                p = idx[i + j]
                for q in range(inner):
                    acc[q] += (np.float64(x[o, p, q]) if p >= 0 else c) * w[j]
        for q in range(inner):
            out[o, i, q] = acc[q]


def nd_correlate1d(x, w, idx, cval, out, nthreads=1):
    """See :func:`fastconv.reference.nd_correlate1d`."""
    if out.size == 0:
        return out
    use_threads(nthreads)
    _pass(x, w, np.ascontiguousarray(idx, dtype=np.int64), float(cval), out,
          nd_symmetry(w))
    return out


@jit
def _box(x, size, idx, cval, out):
    outer, n, inner = x.shape
    fs = float(size)
    for r in prange(outer * inner):
        o = r // inner
        q = r - o * inner
        t = 0.0
        for j in range(size):
            p = idx[j]
            t += np.float64(x[o, p, q]) if p >= 0 else cval
        out[o, 0, q] = t / fs
        for i in range(1, n):
            pa = idx[i + size - 1]
            pb = idx[i - 1]
            a = np.float64(x[o, pa, q]) if pa >= 0 else cval
            b = np.float64(x[o, pb, q]) if pb >= 0 else cval
            t += a - b
            out[o, i, q] = t / fs


def nd_uniform1d(x, size, idx, cval, out, nthreads=1):
    """See :func:`fastconv.reference.nd_uniform1d` (one line per parallel iteration)."""
    if out.size == 0:
        return out
    use_threads(nthreads)
    _box(x, int(size), np.ascontiguousarray(idx, dtype=np.int64), float(x.dtype.type(cval)),
         out)
    return out


@jit
def _nd(xp, base, offs, w, out):
    R, W = out.shape
    for r in prange(R):
        acc = np.zeros(W)
        for j in range(w.shape[0]):
            a = w[j]
            b = base[r] + offs[j]
            for c in range(W):
                acc[c] += a * np.float64(xp[b + c])
        for c in range(W):
            out[r, c] = acc[c]


def nd_correlate(xp, base, offs, w, out, nthreads=1):
    """See :func:`fastconv.reference.nd_correlate` (one output line per parallel
    iteration, float64 sums in tap order)."""
    if out.size == 0:
        return out
    use_threads(nthreads)
    _nd(xp, base, offs, w, out)
    return out
