"""The calling thread's SSE control register (MXCSR), exposed to Python as a test hook.

fastconv's kernels set flush-to-zero in their own threads only (src_cython/fc_fpenv.h,
:func:`fastconv.set_flush_denormal`); the tests read the caller's register with
:func:`mxcsr` to check that it is left as it was, and :func:`set_mxcsr` lets them put it in
a given state. Elsewhere than x86-64 :func:`supported` is False and both are no-ops (0).
"""

from _common cimport fc_fpenv_get, fc_fpenv_set, fc_ftz_supported

#: MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6) bits.
FTZ = 0x8000
DAZ = 0x0040


def supported():
    """Whether this build can flush subnormals (x86-64: SSE's MXCSR)."""
    return bool(fc_ftz_supported())


def mxcsr():
    """The calling thread's MXCSR (0 where there is none)."""
    return fc_fpenv_get()


def set_mxcsr(unsigned int csr):
    """Write the calling thread's MXCSR (a test hook: restore what :func:`mxcsr` read)."""
    fc_fpenv_set(csr)
