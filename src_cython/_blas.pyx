"""fastconv's BLAS wrapper, exposed to Python as a test hook.

The wrapper itself, ``gemm_rm`` (row-major GEMM over ``scipy.linalg.cython_blas``
sgemm/dgemm, fused float/double, nogil), lives in ``_blas.pxd`` and is cimported by the
kernels. :func:`gemm` calls it from Python so that a test can compare it with numpy.
"""

import numpy as np

from cython cimport floating
from _blas cimport gemm_rm


def _gemm(const floating[:, ::1] a, const floating[:, ::1] b, floating[:, ::1] c,
          bint trans_a, bint trans_b):
    cdef int m = c.shape[0], n = c.shape[1]
    cdef int k = a.shape[0] if trans_a else a.shape[1]
    if m == 0 or n == 0:
        return
    if k == 0:
        c[:, :] = 0
        return
    with nogil:
        gemm_rm(trans_a, trans_b, m, n, k, <floating> 1, &a[0, 0], <int> a.shape[1],
                &b[0, 0], <int> b.shape[1], <floating> 0, &c[0, 0], n)


def gemm(a, b, trans_a=False, trans_b=False):
    """``op(a) @ op(b)`` through fastconv's BLAS wrapper (a test hook).

    Parameters
    ----------
    a, b : array_like
        2-D, both float32 or both float64 (made C-contiguous here).
    trans_a, trans_b : bool
        Use the transpose of ``a`` / ``b``, as BLAS's ``transa``/``transb``.

    Returns
    -------
    numpy.ndarray
        The C-contiguous product, in the inputs' dtype.
    """
    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"gemm needs 2-D arrays, got {a.ndim}-D and {b.ndim}-D")
    if a.dtype != b.dtype or a.dtype not in (np.float32, np.float64):
        raise TypeError(f"gemm needs two float32 or two float64 arrays, got {a.dtype} and "
                        f"{b.dtype}")
    m, ka = (a.shape[1], a.shape[0]) if trans_a else a.shape
    kb, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if ka != kb:
        raise ValueError(f"gemm: inner dimensions differ ({ka} and {kb})")
    if max(a.shape + b.shape) >= 2**31:
        raise ValueError("gemm: every dimension must fit in a 32-bit BLAS int")
    c = np.empty((m, n), a.dtype)
    _gemm(a, b, c, bool(trans_a), bool(trans_b))
    return c
