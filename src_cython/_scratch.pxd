# Scratch memory for the kernels' parallel regions (cimport: ``from _scratch cimport
# scratch``). Inline only, so no module named ``_scratch`` is imported at run time.
#
# A parallel region's per-thread buffers are taken here, before the region, with the GIL:
# a failed allocation raises MemoryError. Taken inside the region, a thread whose malloc
# failed could only skip its share of the loop (leaving outputs unwritten) or write through
# NULL; and an OpenMP loop that some threads of the team skip is undefined behaviour.

from libc.stdint cimport SIZE_MAX
from libc.stdlib cimport malloc


cdef inline char* scratch(Py_ssize_t nt, Py_ssize_t nbytes, str what) except NULL:
    """``nt`` blocks of ``nbytes`` (thread ``t`` of a region takes ``p + t * nbytes``), or
    MemoryError naming ``what``. Free it with ``free``."""
    cdef char* p = NULL
    if nt < 1 or nbytes < 0 or (nbytes > 0 and <size_t>nt > (SIZE_MAX // 2) // <size_t>nbytes):
        raise MemoryError(f"{what}: {nt} scratch blocks of {nbytes} bytes")
    p = <char*>malloc(max(<Py_ssize_t>1, nt * nbytes))
    if p == NULL:
        raise MemoryError(f"{what}: could not allocate {nt} scratch blocks of {nbytes} "
                          f"bytes")
    return p
