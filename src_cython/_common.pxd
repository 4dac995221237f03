# Small inline helpers shared by the Cython kernels (cimport them: ``from _common cimport
# ...``). Inline only, so no module named ``_common`` is imported at run time; see _blas.pxd.


cdef inline void valid_cols(Py_ssize_t off, Py_ssize_t s, Py_ssize_t W, Py_ssize_t Wo,
                            Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """Output columns ``ow`` in ``[lo, hi)`` whose input column ``ow * s + off`` lies in
    ``[0, W)``; always ``0 <= lo <= hi <= Wo``."""
    cdef Py_ssize_t a = 0, e = 0
    if off < 0:
        a = (-off + s - 1) // s
    if W - 1 - off >= 0:
        e = (W - 1 - off) // s + 1
    if a > Wo:
        a = Wo
    if e > Wo:
        e = Wo
    if e < a:
        e = a
    lo[0] = a
    hi[0] = e


cdef inline Py_ssize_t row_blocks(Py_ssize_t planes, Py_ssize_t rows,
                                  Py_ssize_t min_items) noexcept nogil:
    """How many blocks to cut each plane's ``rows`` output rows into, so that there are at
    least about ``min_items`` work items: 1 when there are enough planes. Depends on the
    shapes only (never on the thread count), so the work split is the same for any number
    of threads."""
    cdef Py_ssize_t nb
    if planes >= min_items or rows <= 1:
        return 1
    nb = (min_items + planes - 1) // planes
    return nb if nb < rows else rows
