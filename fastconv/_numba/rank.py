"""Numba rank-filter kernel (issue 18; contract: the rank-filter section of
:mod:`fastconv.reference`).

``footprint(xp, out, bases, off, rank, op)``: ``out[r, j]`` is, over ``t``, the minimum
(``op`` 0), maximum (1) or ``rank``-th smallest (2) of ``xp[bases[r] + off[t] + j]`` (``xp``
the flat padded input). The parallel loop runs over output lines; min/max fold the taps in
order with the Cython kernel's comparisons, the rank a Wirth selection on a gathered copy.
Box filters use it with an all-ones footprint (one pass, not separable: simple and real).
"""

import numba
import numpy as np
from numba import prange

from ._common import CACHE, use_threads

__all__ = ["footprint"]

serial = numba.njit(cache=CACHE, nogil=True)


@serial
def _select(a, k):
    lo, hi = 0, a.shape[0] - 1
    while lo < hi:
        v = a[k]
        i, j = lo, hi
        while i <= j:
            while a[i] < v:
                i += 1
            while v < a[j]:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if j < k:
            lo = i
        if k < i:
            hi = j
    return a[k]


@serial
def _line(xp, o, base, off, rank, op, buf):
    n = o.shape[0]
    cnt = off.shape[0]
    for j in range(n):
        if op == 2:
            for t in range(cnt):
                buf[t] = xp[base + off[t] + j]
            o[j] = _select(buf, rank)
        else:
            v = xp[base + off[0] + j]
            for t in range(1, cnt):
                w = xp[base + off[t] + j]
                if op == 1:
                    v = w if w > v else v
                else:
                    v = w if w < v else v
            o[j] = v


@numba.njit(cache=CACHE, parallel=True, nogil=True)
def _footprint(xp, out, bases, off, rank, op):
    for r in prange(out.shape[0]):
        buf = np.empty(off.shape[0], xp.dtype)
        _line(xp, out[r], bases[r], off, rank, op, buf)


def footprint(xp, out, bases, off, rank, op, nthreads):
    """See the module docstring; ``out`` is 2-D (lines, last axis)."""
    if out.shape[0] == 0 or out.shape[1] == 0:
        return
    use_threads(nthreads)
    _footprint(xp, out, bases, off, int(rank), int(op))
