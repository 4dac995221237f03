# The one BLAS wrapper of fastconv: row-major GEMM over scipy.linalg.cython_blas, for float32
# and float64 (cython.floating), callable without the GIL.
#
# Use it from another .pyx of src_cython/ with
#
#     from _blas cimport gemm_rm
#
# It is ``cdef inline`` on purpose: src_cython/ is a flat source folder, not a package, so a
# cimport cannot name ``fastconv._blas`` (Cython would look for ``fastconv/_blas.pxd``). An
# inline function is compiled into each module that cimports it, so nothing named ``_blas``
# is imported at run time; only ``scipy.linalg.cython_blas`` is (for the sgemm/dgemm
# function pointers). ``fastconv._blas`` (_blas.pyx) exposes it to Python for the tests.
from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, sgemm


cdef inline void gemm_rm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                         const floating* a, int lda, const floating* b, int ldb,
                         floating beta, floating* c, int ldc) noexcept nogil:
    """Row-major ``C = alpha * op(A) @ op(B) + beta * C``.

    ``op(A)`` is (m, k), ``op(B)`` is (k, n), ``C`` is (m, n); ``lda``/``ldb``/``ldc`` are the
    distances, in elements, between consecutive rows of the arrays as stored (A is stored
    (k, m) when ``trans_a``). Fortran BLAS is column-major, and a row-major matrix is its
    transpose in column-major, so this computes ``C^T = op(B)^T @ op(A)^T``: the same call
    with the operands swapped. Threads: whatever the BLAS has (the caller caps it).
    """
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> b, &ldb, <float*> a, &lda, &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> b, &ldb, <double*> a, &lda, &beta, c,
              &ldc)
