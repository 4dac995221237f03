# Small inline helpers shared by the Cython kernels (cimport them: ``from _common cimport
# ...``). Inline only, so no module named ``_common`` is imported at run time; see _blas.pxd.

from cython cimport floating
from libc.string cimport memcpy, memset


# The C kernels compiled per x86-64 level (see the comment at the top of fc_kernels.h).
cdef extern from "fc_kernels.h" nogil:
    int fc_wide()
    void fc_frame_f(float* dst, Py_ssize_t Wp, const float* src, Py_ssize_t H,
                    Py_ssize_t W, Py_ssize_t ih0, Py_ssize_t rin, Py_ssize_t pl)
    void fc_frame_d(double* dst, Py_ssize_t Wp, const double* src, Py_ssize_t H,
                    Py_ssize_t W, Py_ssize_t ih0, Py_ssize_t rin, Py_ssize_t pl)
    void fc_phases_f(float* dst, Py_ssize_t pstride, Py_ssize_t Wp, const float* src,
                     Py_ssize_t H, Py_ssize_t W, Py_ssize_t ih0, Py_ssize_t rin,
                     Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pl)
    void fc_phases_d(double* dst, Py_ssize_t pstride, Py_ssize_t Wp, const double* src,
                     Py_ssize_t H, Py_ssize_t W, Py_ssize_t ih0, Py_ssize_t rin,
                     Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pl)
    float fc_absmax_f(const float* x, Py_ssize_t n)
    double fc_absmax_d(const double* x, Py_ssize_t n)
    void fc_wino_weights_f(const float* g, Py_ssize_t C, float* U, Py_ssize_t ld)
    void fc_wino_weights_d(const double* g, Py_ssize_t C, double* U, Py_ssize_t ld)
    void fc_wino_in_f(const float* F, Py_ssize_t Wp, Py_ssize_t tw, float* V, Py_ssize_t ldv)
    void fc_wino_in_d(const double* F, Py_ssize_t Wp, Py_ssize_t tw, double* V,
                      Py_ssize_t ldv)
    void fc_wino_out_f(const float* M, Py_ssize_t ldm, Py_ssize_t tw, float bk, float* o0,
                       float* o1, Py_ssize_t Wo)
    void fc_wino_out_d(const double* M, Py_ssize_t ldm, Py_ssize_t tw, double bk, double* o0,
                       double* o1, Py_ssize_t Wo)
    void fc_plane_f(const float* x, Py_ssize_t H, Py_ssize_t W, const float* w,
                    Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t pt,
                    Py_ssize_t pl, float bias, float* out, Py_ssize_t Wo, Py_ssize_t oh0,
                    Py_ssize_t oh1)
    void fc_plane_d(const double* x, Py_ssize_t H, Py_ssize_t W, const double* w,
                    Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t pt,
                    Py_ssize_t pl, double bias, double* out, Py_ssize_t Wo, Py_ssize_t oh0,
                    Py_ssize_t oh1)
    # fc_row: 1-D layers, a range of one output row (fc_kernels_body.h)
    Py_ssize_t fc_row_block(Py_ssize_t itemsize)
    Py_ssize_t fc_row_scratch(Py_ssize_t C, Py_ssize_t kw, Py_ssize_t dw, Py_ssize_t itemsize)
    void fc_row_f(const float* x, Py_ssize_t xs, Py_ssize_t C, Py_ssize_t W, const float* w,
                  Py_ssize_t ws, Py_ssize_t kw, Py_ssize_t dw, Py_ssize_t pl, float bias,
                  float* out, Py_ssize_t o0, Py_ssize_t o1, float* ext)
    void fc_row_d(const double* x, Py_ssize_t xs, Py_ssize_t C, Py_ssize_t W,
                  const double* w, Py_ssize_t ws, Py_ssize_t kw, Py_ssize_t dw,
                  Py_ssize_t pl, double bias, double* out, Py_ssize_t o0, Py_ssize_t o1,
                  double* ext)
    # fc_taps_out: the register-blocked direct convolution, stored straight to a
    # (strided) output
    ctypedef struct fc_ogeo:
        Py_ssize_t ldo, ldr, ldc, Wo, Wp
    enum: FC_OKB  # fc_pack's filters a block
    void fc_pack_f(const float* w, Py_ssize_t ldw, Py_ssize_t R, Py_ssize_t nk, float* wp)
    void fc_pack_d(const double* w, Py_ssize_t ldw, Py_ssize_t R, Py_ssize_t nk, double* wp)
    void fc_taps_out_f(const float* src, const Py_ssize_t* off, Py_ssize_t R, const float* w,
                       Py_ssize_t ldw, const float* wp, const float* bias, Py_ssize_t nk,
                       float* out, const fc_ogeo* g, Py_ssize_t L)
    void fc_taps_out_d(const double* src, const Py_ssize_t* off, Py_ssize_t R,
                       const double* w, Py_ssize_t ldw, const double* wp, const double* bias,
                       Py_ssize_t nk, double* out, const fc_ogeo* g, Py_ssize_t L)
    Py_ssize_t fc_fv_filters_f()
    Py_ssize_t fc_fv_filters_d()
    Py_ssize_t fc_fv_positions_f()
    Py_ssize_t fc_fv_positions_d()
    void fc_taps_fv_f(const float* src, Py_ssize_t plane, Py_ssize_t Cg, Py_ssize_t ku,
                      const Py_ssize_t* ev, const Py_ssize_t* dv, Py_ssize_t ne,
                      const float* wv, const float* bias, Py_ssize_t nk, float* out,
                      const Py_ssize_t* q, const Py_ssize_t* po, Py_ssize_t n)
    void fc_taps_fv_d(const double* src, Py_ssize_t plane, Py_ssize_t Cg, Py_ssize_t ku,
                      const Py_ssize_t* ev, const Py_ssize_t* dv, Py_ssize_t ne,
                      const double* wv, const double* bias, Py_ssize_t nk, double* out,
                      const Py_ssize_t* q, const Py_ssize_t* po, Py_ssize_t n)
    void fc_fv_unstage_f(const float* st, Py_ssize_t nk, Py_ssize_t np, float* out,
                         Py_ssize_t ldo)
    void fc_fv_unstage_d(const double* st, Py_ssize_t nk, Py_ssize_t np, double* out,
                         Py_ssize_t ldo)


# Flush-to-zero in the kernel threads (see fc_fpenv.h): fc_ftz_enter() first and
# fc_ftz_exit() last in every prange body; each module's _set_flush_denormal sets its flag.
cdef extern from "fc_fpenv.h" nogil:
    int fc_ftz_supported()
    void fc_ftz_set(int on)
    int fc_ftz_get()
    unsigned fc_fpenv_get()
    void fc_fpenv_set(unsigned csr)
    void fc_ftz_enter()
    void fc_ftz_exit()


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


# The im2col of the forward GEMM path (_cy_conv) and of the gradients (_cy_grad).
cdef inline void im2col(const floating[:, :, :, ::1] x, Py_ssize_t n, Py_ssize_t c0, Py_ssize_t Cg,
                         Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t oh0, Py_ssize_t oh1, Py_ssize_t Wo,
                         Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh,
                         Py_ssize_t dw, floating* col, Py_ssize_t ld) noexcept nogil:
    """col[(cc, i, j) * ld + (oh - oh0) * Wo + ow] = x[n, c0 + cc, oh*sh - pt + i*dh,
    ow*sw - pl + j*dw], zero outside the input."""
    cdef Py_ssize_t H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t cc, i, j, oh, ih, off, ow, ow0, ow1
    cdef floating* d
    cdef const floating* xrow
    for cc in range(Cg):
        for i in range(kh):
            for j in range(kw):
                off = j * dw - pl
                valid_cols(off, sw, W, Wo, &ow0, &ow1)
                for oh in range(oh0, oh1):
                    d = col + ((cc * kh + i) * kw + j) * ld + (oh - oh0) * Wo
                    ih = oh * sh - pt + i * dh
                    # short rows (small planes) by plain loops: a libc call per row of 8
                    # costs more than the copy (a third of an 8x8-plane weight gradient)
                    if ih < 0 or ih >= H:
                        if Wo >= 32:
                            memset(d, 0, Wo * sizeof(floating))
                        else:
                            for ow in range(Wo):
                                d[ow] = 0
                        continue
                    xrow = &x[n, c0 + cc, ih, 0]
                    for ow in range(ow0):
                        d[ow] = 0
                    if sw == 1:
                        if ow1 - ow0 >= 32:
                            memcpy(d + ow0, xrow + ow0 + off, (ow1 - ow0) * sizeof(floating))
                        else:
                            for ow in range(ow0, ow1):
                                d[ow] = xrow[ow + off]
                    else:
                        for ow in range(ow0, ow1):
                            d[ow] = xrow[ow * sw + off]
                    for ow in range(ow1, Wo):
                        d[ow] = 0
