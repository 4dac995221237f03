"""Cython + OpenMP locally connected layer (contract: fastconv.reference.locally_connected2d).

``locally_connected2d(x, w, b, out, stride, pad, nthreads)``: ``x`` (N, C, H, W), ``w``
(Ho, Wo, K, C, kh, kw) (one filter bank per output position), ``b`` (K, Ho, Wo), ``out``
(N, K, Ho, Wo), implicit zero padding ``pad = (top, left)``. Parallel over (n, k) output
planes; each output is one dot product of its window with its own filter, summed in a
fixed order (results do not depend on the thread count). Inputs may be read-only.
"""

from cython cimport floating
from cython.parallel cimport prange
from _common cimport fc_ftz_enter, fc_ftz_exit, fc_ftz_set


cdef void _plane(const floating[:, :, :, ::1] x, const floating[:, :, :, :, :, ::1] w,
                 const floating[:, :, ::1] b, floating[:, :, :, ::1] out,
                 Py_ssize_t n, Py_ssize_t k, Py_ssize_t sh, Py_ssize_t sw,
                 Py_ssize_t pt, Py_ssize_t pl) noexcept nogil:
    cdef Py_ssize_t C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t Ho = w.shape[0], Wo = w.shape[1], kh = w.shape[4], kw = w.shape[5]
    cdef Py_ssize_t oh, ow, c, i, j, ih, iw, i0, i1, j0, j1
    cdef floating acc
    for oh in range(Ho):
        ih = oh * sh - pt
        i0 = -ih if ih < 0 else 0
        i1 = H - ih if H - ih < kh else kh
        for ow in range(Wo):
            iw = ow * sw - pl
            j0 = -iw if iw < 0 else 0
            j1 = W - iw if W - iw < kw else kw
            acc = b[k, oh, ow]
            for c in range(C):
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        acc = acc + w[oh, ow, k, c, i, j] * x[n, c, ih + i, iw + j]
            out[n, k, oh, ow] = acc


def locally_connected2d(const floating[:, :, :, ::1] x, const floating[:, :, :, :, :, ::1] w,
                        const floating[:, :, ::1] b, out, stride, pad, int nthreads):
    """Fill ``out`` with the locally connected layer of ``x``; return ``out``."""
    cdef floating[:, :, :, ::1] o = out
    cdef Py_ssize_t sh = stride[0], sw = stride[1], pt = pad[0], pl = pad[1]
    cdef Py_ssize_t N = x.shape[0], K = w.shape[2], p
    with nogil:
        for p in prange(N * K, num_threads=nthreads, schedule="static"):
            fc_ftz_enter()
            _plane(x, w, b, o, p // K, p % K, sh, sw, pt, pl)
            fc_ftz_exit()
    return out


# --------------------------------------------------------------------------------------------
# flush-to-zero (fc_fpenv.h): this module's flag, kept equal to fastconv's setting
# --------------------------------------------------------------------------------------------
def _set_flush_denormal(bint on):
    """Set this module's flush-to-zero flag (fastconv._threads owns the setting)."""
    fc_ftz_set(on)


from fastconv import _threads  # noqa: E402

_threads.register_flush_hook(_set_flush_denormal)
