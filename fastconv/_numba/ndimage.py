"""Numba kernel of fastconv.ndimage's 1-D correlation pass (issue 18; contract:
:func:`fastconv.reference.nd_correlate1d`).

The parallel loop runs over the output rows ``(o, i)``; each row sums its ``k`` taps' input
rows (or cval) in tap order, in the data's float type (the reference's), vectorized over the
row's ``inner`` columns, so the results do not depend on the thread count.

The fused pairs of passes (``nd_sepcorr``, ``nd_sepbox``) run here as their two passes
through an array between them: the contract, not the Cython kernels' saving of memory.
"""

import functools

import numpy as np
from numba import prange

from ..reference import _two_passes, nd_symmetry
from ._common import jit, use_threads


@jit
def _pass(x, w, idx, c, out, sym):
    outer, n, inner = out.shape  # x: (outer, nx, inner), idx: n + k - 1 indices into nx
    k = w.shape[0]
    h = k // 2
    for r in prange(outer * n):
        o = r // n
        i = r - o * n
        acc = np.zeros(inner, dtype=w.dtype)  # sums in x's type, in scipy's order
        if sym != 0:
            p = idx[i + h]
            for q in range(inner):
                acc[q] = (x[o, p, q] if p >= 0 else c) * w[h]
            for j in range(h):
                pa = idx[i + j]
                pb = idx[i + k - 1 - j]
                for q in range(inner):
                    a = x[o, pa, q] if pa >= 0 else c
                    b = x[o, pb, q] if pb >= 0 else c
                    acc[q] += (a + b if sym > 0 else a - b) * w[j]
        else:  # the last tap first, then the others in order
            p = idx[i + k - 1]
            for q in range(inner):
                acc[q] = (x[o, p, q] if p >= 0 else c) * w[k - 1]
            for j in range(k - 1):
                p = idx[i + j]
                for q in range(inner):
                    acc[q] += (x[o, p, q] if p >= 0 else c) * w[j]
        for q in range(inner):
            out[o, i, q] = acc[q]


def nd_correlate1d(x, w, idx, cval, out, nthreads=1):
    """See :func:`fastconv.reference.nd_correlate1d` (the weights and cval in ``x``'s
    type, as the sums)."""
    if out.size == 0:
        return out
    if len(w) < 1 or len(idx) != out.shape[1] + len(w) - 1:
        raise ValueError("nd_correlate1d: inconsistent shapes")
    use_threads(nthreads)
    _pass(x, np.asarray(w).astype(x.dtype), np.ascontiguousarray(idx, dtype=np.int64),
          x.dtype.type(cval), out, nd_symmetry(w))
    return out


def _check_pair(op, x, k0, idx0, k1, idx1, out, same_rows):
    """ValueError unless the arguments of a pair of passes (nd_sepcorr, nd_sepbox) fit one
    another: the jitted loops index unchecked."""
    outer, n, inner = out.shape
    if (x.shape[0] != outer or x.shape[2] != inner or (same_rows and x.shape[1] != n)
            or k0 < 1 or k1 < 1 or idx0.shape[0] != n + k0 - 1
            or idx1.shape[0] != inner + k1 - 1):
        raise ValueError(f"{op}: inconsistent shapes")
    if not (-1 <= idx0.min() and idx0.max() < x.shape[1]
            and -1 <= idx1.min() and idx1.max() < inner):
        raise ValueError(f"{op}: index out of range")


def nd_sepcorr(x, w0, idx0, w1, idx1, cval, out, nthreads=1):
    """See :func:`fastconv.reference.nd_sepcorr`: two :func:`nd_correlate1d` passes,
    through an array between them."""
    if out.size == 0:
        return out
    _check_pair("nd_sepcorr", x, w0.shape[0], idx0, w1.shape[0], idx1, out, False)
    return _two_passes(functools.partial(nd_correlate1d, nthreads=nthreads), x, w0, idx0, w1,
                       idx1, cval, out)


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


def nd_sepbox(x, size0, idx0, size1, idx1, cval, out, nthreads=1):
    """See :func:`fastconv.reference.nd_sepbox`: two :func:`nd_uniform1d` passes, through
    an array between them."""
    if out.size == 0:
        return out
    _check_pair("nd_sepbox", x, size0, idx0, size1, idx1, out, True)
    return _two_passes(functools.partial(nd_uniform1d, nthreads=nthreads), x, size0, idx0,
                       size1, idx1, cval, out)


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
