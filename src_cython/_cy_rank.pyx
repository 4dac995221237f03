# Rank filters (issue 18): the kernels behind fastconv.ndimage's maximum/minimum/median
# filters. The loops over a line live in fc_rank.h (one version per element type, vectorized
# across output positions, compiled per x86-64 level); here the threads split the work.
"""Compiled rank-filter kernels (Cython + OpenMP).

All arrays are C-contiguous, passed flat; ``tc`` is the element type code of fc_rank.h
(see :data:`fastconv._ndrank._TYPE_CODES`).

``minmax_axis(tc, src, dst, outer, nsrc, n, inner, k, before, idx, cval, is_max, nthreads)``
    One 1-D running max/min pass of width ``k`` along the middle axis of ``src`` (viewed as
    ``outer x nsrc x inner``) into ``dst`` (``outer x n x inner``); ``idx[p]`` (length
    ``n + k - 1``) is the source index of padded position ``p``, -1 for ``cval`` (and
    ``p - before`` for ``before <= p < before + nsrc``, whatever the mode). Windows of
    up to ``DIRECT_K`` run as ``k - 1`` vector max/min ops per output line; wider ones by van
    Herk / Gil-Werman (3 ops per output, whatever ``k``).
``footprint(tc, xp, out, bases, nlast, off, rank, op, nthreads)``
    ``out[r, j]`` = op over ``t`` of ``xp[bases[r] + off[t] + j]``: ``op`` 0 min, 1 max, 2 the
    ``rank``-th smallest (median: a selection network for 9 or 25 values, else Wirth's
    selection).
"""

from cython.parallel cimport prange, parallel, threadid
from libc.stdlib cimport free
from libc.string cimport memcpy

from _scratch cimport scratch

import numpy as np

cdef extern from "fc_rank.h" nogil:
    void fcr_vext(int tc, int is_max, void* o, const void* a, Py_ssize_t n)
    void fcr_fold(int tc, void* o, const void* x, const Py_ssize_t* off, int cnt,
                  Py_ssize_t n, int is_max)
    void fcr_rank(int tc, const void* x, const Py_ssize_t* off, int cnt, int rank, void* o,
                  Py_ssize_t n, void* buf)
    void fcr_herk(int tc, const void* line, void* o, Py_ssize_t n, int k, void* g, void* h,
                  int is_max)
    void fcr_hrun(int tc, void* o, const void* l, Py_ssize_t n, int k, int is_max)
    void fcr_vrun(int tc, void* o, const void* const* rows, Py_ssize_t n, int k, int is_max)
    int fcr_cmed(int tc, int k, const void* sb, Py_ssize_t m, void* o, Py_ssize_t n, void* cs)
    void fcr_gather(int tc, void* line, const void* src, const Py_ssize_t* idx, Py_ssize_t m,
                    Py_ssize_t stride, const void* cval)

DIRECT_K = 8
cdef int _DIRECT_K = 8
cdef Py_ssize_t _CHUNK = 2048   # output positions per task along a contiguous line
cdef Py_ssize_t _COLS = 512     # inner columns per task of a strided van Herk pass


cdef char* _cval_row(const char* cv, Py_ssize_t n, Py_ssize_t isz, str what) except NULL:
    """A row of ``n`` elements of ``cval`` (``scratch``: MemoryError naming ``what``), which
    the border rows of a pass along a strided axis read. Free it with ``free``."""
    cdef char* row = scratch(1, n * isz, what)
    cdef Py_ssize_t q
    for q in range(n):
        memcpy(row + q * isz, cv, isz)
    return row


cdef inline int _threads(Py_ssize_t tasks, int nthreads) noexcept nogil:
    if nthreads < 1:
        return 1
    return <int>min(<Py_ssize_t>nthreads, max(tasks, <Py_ssize_t>1))


def minmax_axis(int tc, const unsigned char[::1] src, unsigned char[::1] dst, Py_ssize_t outer,
                Py_ssize_t nsrc, Py_ssize_t n, Py_ssize_t inner, int k, Py_ssize_t before,
                const Py_ssize_t[::1] idx, const unsigned char[::1] cval, bint is_max,
                int nthreads):
    cdef Py_ssize_t isz = cval.shape[0]
    cdef Py_ssize_t m = n + k - 1
    if outer == 0 or n == 0 or inner == 0:
        return
    if idx.shape[0] != m or src.shape[0] < outer * nsrc * inner * isz \
            or dst.shape[0] < outer * n * inner * isz:
        raise ValueError("minmax_axis: inconsistent sizes")
    cdef const char* s = <const char*>&src[0]
    cdef char* d = <char*>&dst[0]
    cdef const Py_ssize_t* ix = &idx[0]
    cdef const char* cv = <const char*>&cval[0]
    # the scratch each path needs, taken here (_scratch.pxd): a row of cval, and each
    # thread's buffers
    cdef Py_ssize_t nt = max(1, nthreads)
    cdef char* crow = NULL
    cdef char* pool = NULL
    try:
        if inner == 1:
            pool = scratch(nt, 3 * (_CHUNK + k) * isz, "minmax_axis")
            _line_pass(tc, s, d, outer, nsrc, n, k, before, ix, cv, isz, is_max, nthreads,
                       pool)
            return
        crow = _cval_row(cv, inner, isz, "minmax_axis")
        if k <= _DIRECT_K:
            _rows_direct(tc, s, d, outer, nsrc, n, inner, k, ix, crow, isz, is_max, nthreads)
        else:
            pool = scratch(nt, 2 * k * _COLS * isz, "minmax_axis")
            _rows_herk(tc, s, d, outer, nsrc, n, inner, k, ix, crow, isz, is_max, nthreads,
                       pool)
    finally:
        free(crow)
        free(pool)


cdef void _line_pass(int tc, const char* s, char* d, Py_ssize_t outer, Py_ssize_t nsrc,
                     Py_ssize_t n, int k, Py_ssize_t before, const Py_ssize_t* ix, const char* cv,
                     Py_ssize_t isz, bint is_max, int nthreads, char* pool) noexcept nogil:
    # contiguous lines: each (line, chunk of outputs) gathers its padded stretch into a
    # private buffer (the border mode is in ix), then runs the running max/min on it;
    # pool: each thread's 3 (_CHUNK + k) elements
    cdef Py_ssize_t nch = (n + _CHUNK - 1) // _CHUNK
    cdef Py_ssize_t task, o, c, j0, nj, t
    cdef char* buf
    cdef char* g
    cdef char* h
    with nogil, parallel(num_threads=_threads(outer * nch, nthreads)):
        buf = pool + threadid() * 3 * (_CHUNK + k) * isz
        g = buf + (_CHUNK + k) * isz
        h = g + (_CHUNK + k) * isz
        for task in prange(outer * nch, schedule="static"):
            o = task // nch
            c = task % nch
            j0 = c * _CHUNK
            nj = min(_CHUNK, n - j0)
            _gather_line(tc, buf, s + o * nsrc * isz, ix, j0, nj + k - 1, nsrc, before, cv, isz)
            if k <= _DIRECT_K:
                fcr_hrun(tc, d + (o * n + j0) * isz, buf, nj, k, is_max)
            else:
                fcr_herk(tc, buf, d + (o * n + j0) * isz, nj, k, g, h, is_max)


cdef inline void _gather_line(int tc, char* buf, const char* src, const Py_ssize_t* ix,
                              Py_ssize_t p0, Py_ssize_t m, Py_ssize_t nsrc, Py_ssize_t before,
                              const char* cv, Py_ssize_t isz) noexcept nogil:
    # buf[q] = padded position p0 + q of the line; the interior (ix[p] = p - before, the same
    # for every mode) is one memcpy, the borders go through the index map
    cdef Py_ssize_t a, b
    a = max(p0, before)
    b = min(p0 + m, before + nsrc)
    if a >= b:
        fcr_gather(tc, buf, src, ix + p0, m, 1, cv)
        return
    if a > p0:
        fcr_gather(tc, buf, src, ix + p0, a - p0, 1, cv)
    memcpy(buf + (a - p0) * isz, src + (a - before) * isz, (b - a) * isz)
    if b < p0 + m:
        fcr_gather(tc, buf + (b - p0) * isz, src, ix + b, p0 + m - b, 1, cv)


cdef inline const char* _row(const char* s, Py_ssize_t o, Py_ssize_t nsrc, Py_ssize_t inner,
                             Py_ssize_t isz, Py_ssize_t i, const char* crow) noexcept nogil:
    if i < 0:
        return crow
    return s + (o * nsrc + i) * inner * isz


cdef void _rows_direct(int tc, const char* s, char* d, Py_ssize_t outer, Py_ssize_t nsrc,
                       Py_ssize_t n, Py_ssize_t inner, int k, const Py_ssize_t* ix,
                       const char* crow, Py_ssize_t isz, bint is_max,
                       int nthreads) noexcept nogil:
    # strided axis: output line (o, i) = max/min of k source lines, whole lines at a time
    # (crow: a row of cval)
    cdef Py_ssize_t task, o, i, t
    cdef char* dl
    with nogil, parallel(num_threads=_threads(outer * n, nthreads)):
        for task in prange(outer * n, schedule="static"):
            o = task // n
            i = task % n
            dl = d + task * inner * isz
            memcpy(dl, _row(s, o, nsrc, inner, isz, ix[i], crow), inner * isz)
            for t in range(1, k):
                fcr_vext(tc, is_max, dl, _row(s, o, nsrc, inner, isz, ix[i + t], crow), inner)


cdef void _rows_herk(int tc, const char* s, char* d, Py_ssize_t outer, Py_ssize_t nsrc,
                     Py_ssize_t n, Py_ssize_t inner, int k, const Py_ssize_t* ix,
                     const char* crow, Py_ssize_t isz, bint is_max,
                     int nthreads, char* pool) noexcept nogil:
    # strided axis, wide window: van Herk / Gil-Werman on whole rows of up to _COLS columns.
    # Task (o, block b, column chunk): outputs i in [b k, b k + k) need the suffix extremes
    # h of padded rows [b k, b k + k) and the prefix extremes g of rows [b k + k, b k + 2k - 1)
    cdef Py_ssize_t nb = (n + k - 1) // k
    cdef Py_ssize_t ncol = (inner + _COLS - 1) // _COLS
    cdef Py_ssize_t m = n + k - 1
    # (crow: a row of cval; pool: each thread's 2 k _COLS elements)
    cdef Py_ssize_t task, o, b, c, c0, nc, p, s0, e, i
    cdef char* hb
    cdef char* gb
    with nogil, parallel(num_threads=_threads(outer * nb * ncol, nthreads)):
        hb = pool + threadid() * 2 * k * _COLS * isz
        gb = hb + k * _COLS * isz
        for task in prange(outer * nb * ncol, schedule="static"):
            o = task // (nb * ncol)
            b = (task // ncol) % nb
            c = task % ncol
            c0 = c * _COLS
            nc = min(_COLS, inner - c0)
            s0 = b * k
            e = min(s0 + k, m)
            # h[p - s0] = extreme of rows p .. e - 1
            memcpy(hb + (e - 1 - s0) * nc * isz,
                   _row(s, o, nsrc, inner, isz, ix[e - 1], crow) + c0 * isz, nc * isz)
            p = e - 2
            while p >= s0:
                memcpy(hb + (p - s0) * nc * isz,
                       _row(s, o, nsrc, inner, isz, ix[p], crow) + c0 * isz, nc * isz)
                fcr_vext(tc, is_max, hb + (p - s0) * nc * isz, hb + (p + 1 - s0) * nc * isz,
                         nc)
                p = p - 1
            # g[p - e] = extreme of rows e .. p, for p < min(e + k - 1, m)
            p = e
            while p < min(e + k - 1, m):
                memcpy(gb + (p - e) * nc * isz,
                       _row(s, o, nsrc, inner, isz, ix[p], crow) + c0 * isz, nc * isz)
                if p > e:
                    fcr_vext(tc, is_max, gb + (p - e) * nc * isz,
                             gb + (p - 1 - e) * nc * isz, nc)
                p = p + 1
            i = s0
            while i < min(s0 + k, n):
                memcpy(d + ((o * n + i) * inner + c0) * isz, hb + (i - s0) * nc * isz,
                       nc * isz)
                if i > s0:   # i == s0: the window is the whole block, h alone
                    fcr_vext(tc, is_max, d + ((o * n + i) * inner + c0) * isz,
                             gb + (i + k - 1 - e) * nc * isz, nc)
                i = i + 1


def footprint(int tc, const unsigned char[::1] xp, unsigned char[::1] out,
              const Py_ssize_t[::1] bases, Py_ssize_t nlast, const Py_ssize_t[::1] off,
              int rank, int op, Py_ssize_t itemsize, int nthreads):
    cdef Py_ssize_t rows = bases.shape[0]
    cdef int cnt = <int>off.shape[0]
    if rows == 0 or nlast == 0:
        return
    if cnt < 1 or out.shape[0] < rows * nlast * itemsize or not 0 <= rank < cnt:
        raise ValueError("footprint: inconsistent sizes")
    cdef const char* x = <const char*>&xp[0]
    cdef char* d = <char*>&out[0]
    cdef const Py_ssize_t* bs = &bases[0]
    cdef const Py_ssize_t* of = &off[0]
    cdef Py_ssize_t nch = (nlast + _CHUNK - 1) // _CHUNK
    cdef Py_ssize_t task, r, j0, nj
    cdef char* buf
    cdef char* pool = scratch(max(1, nthreads), cnt * itemsize, "footprint")
    try:
        with nogil, parallel(num_threads=_threads(rows * nch, nthreads)):
            buf = pool + threadid() * cnt * itemsize
            for task in prange(rows * nch, schedule="dynamic"):
                r = task // nch
                j0 = (task % nch) * _CHUNK
                nj = min(_CHUNK, nlast - j0)
                if op == 2:
                    fcr_rank(tc, x + (bs[r] + j0) * itemsize, of, cnt, rank,
                             d + (r * nlast + j0) * itemsize, nj, buf)
                else:
                    fcr_fold(tc, d + (r * nlast + j0) * itemsize, x + (bs[r] + j0) * itemsize,
                             of, cnt, nj, op == 1)
    finally:
        free(pool)


def box2d(int tc, const unsigned char[::1] src, unsigned char[::1] dst, Py_ssize_t outer,
          Py_ssize_t H, Py_ssize_t W, int kh, int kw, Py_ssize_t bh, Py_ssize_t bw,
          const Py_ssize_t[::1] idxh, const Py_ssize_t[::1] idxw,
          const unsigned char[::1] cval, bint is_max, int nthreads):
    """A kh x kw box max/min over the last two axes of ``src`` (``outer x H x W``) into
    ``dst``, both passes fused per strip of rows (the row results stay in cache): each
    thread runs the row pass (direct or van Herk, as :func:`minmax_axis`) on the source
    rows its strip needs, then the column pass (direct: ``kh`` up to ``DIRECT_K``) on them.
    ``bh``, ``bw``: the padding before the first row / column (``k // 2 + origin``)."""
    cdef Py_ssize_t isz = cval.shape[0]
    if outer == 0 or H == 0 or W == 0:
        return
    if idxh.shape[0] != H + kh - 1 or idxw.shape[0] != W + kw - 1 or kh > _DIRECT_K \
            or src.shape[0] < outer * H * W * isz or dst.shape[0] < outer * H * W * isz:
        raise ValueError("box2d: inconsistent sizes")
    cdef const char* s = <const char*>&src[0]
    cdef char* d = <char*>&dst[0]
    cdef const Py_ssize_t* ih = &idxh[0]
    cdef const Py_ssize_t* iw = &idxw[0]
    cdef const char* cv = <const char*>&cval[0]
    cdef Py_ssize_t R = 32
    cdef Py_ssize_t ns = (H + R - 1) // R
    cdef Py_ssize_t m = W + kw - 1
    cdef Py_ssize_t ra = kw - 1 - bw   # the padding after the last column
    cdef Py_ssize_t task, o, i0, nr, q, r, t, i
    cdef const char* srow
    cdef char* hrow
    cdef char* hb
    cdef char* line
    cdef char* g
    cdef char* h
    cdef const void** rows
    cdef Py_ssize_t per = ((R + kh - 1) * W + 3 * m) * isz
    cdef char* crow = _cval_row(cv, W, isz, "box2d")
    cdef char* pool = NULL
    cdef char* rpool = NULL
    try:
        pool = scratch(max(1, nthreads), per, "box2d")
        rpool = scratch(max(1, nthreads), 8 * sizeof(void*), "box2d")
        with nogil, parallel(num_threads=_threads(outer * ns, nthreads)):
            hb = pool + threadid() * per
            rows = <const void**>(rpool + threadid() * 8 * sizeof(void*))
            line = hb + (R + kh - 1) * W * isz
            g = line + m * isz
            h = g + m * isz
            for task in prange(outer * ns, schedule="dynamic"):
                o = task // ns
                i0 = (task % ns) * R
                nr = min(R, H - i0)
                for q in range(nr + kh - 1):
                    r = ih[i0 + q]
                    if r < 0:
                        memcpy(hb + q * W * isz, crow, W * isz)
                        continue
                    srow = s + (o * H + r) * W * isz
                    hrow = hb + q * W * isz
                    if kw <= _DIRECT_K and W >= kw:
                        # the windows inside the row read it in place; only the few at each
                        # end read a copy extended by the mode
                        fcr_hrun(tc, hrow + bw * isz, srow, W - kw + 1, kw, is_max)
                        if bw > 0:
                            _gather_line(tc, line, srow, iw, 0, bw + kw - 1, W, bw, cv, isz)
                            fcr_hrun(tc, hrow, line, bw, kw, is_max)
                        if ra > 0:
                            _gather_line(tc, line, srow, iw, W - ra, ra + kw - 1, W, bw, cv, isz)
                            fcr_hrun(tc, hrow + (W - ra) * isz, line, ra, kw, is_max)
                        continue
                    _gather_line(tc, line, srow, iw, 0, m, W, bw, cv, isz)
                    if kw <= _DIRECT_K:
                        fcr_hrun(tc, hrow, line, W, kw, is_max)
                    else:
                        fcr_herk(tc, line, hrow, W, kw, g, h, is_max)
                for i in range(nr):
                    for t in range(kh):
                        rows[t] = hb + (i + t) * W * isz
                    fcr_vrun(tc, d + (o * H + i0 + i) * W * isz, <const void* const*>rows, W, kh,
                             is_max)
    finally:
        free(crow)
        free(pool)
        free(rpool)


def rank2d(int tc, const unsigned char[::1] src, unsigned char[::1] dst, Py_ssize_t outer,
           Py_ssize_t H, Py_ssize_t W, int kh, int kw, Py_ssize_t bh, Py_ssize_t bw,
           const Py_ssize_t[::1] idxh, const Py_ssize_t[::1] idxw,
           const unsigned char[::1] cval, const Py_ssize_t[::1] off, int rank, int op,
           bint box, int nthreads):
    """A footprint filter over the last two axes of ``src`` (``outer x H x W``) into
    ``dst``, with no padded copy of the input: each thread extends the source rows its
    strip of 16 output rows needs into a private buffer (rows of ``W + kw - 1``, the border
    mode from ``idxh``/``idxw``), then runs, per output row, :func:`footprint`'s ``op``
    with the taps ``off`` (offsets in that buffer: ``dy * (W + kw - 1) + dx``). ``box``: the
    footprint is a full kh x kw box; a 3x3 or 5x5 box median (``rank`` the middle one)
    then sorts each column once and runs the network for presorted columns."""
    cdef Py_ssize_t isz = cval.shape[0]
    cdef int cnt = <int>off.shape[0]
    if outer == 0 or H == 0 or W == 0:
        return
    if idxh.shape[0] != H + kh - 1 or idxw.shape[0] != W + kw - 1 or cnt < 1 \
            or not 0 <= rank < cnt or src.shape[0] < outer * H * W * isz \
            or dst.shape[0] < outer * H * W * isz:
        raise ValueError("rank2d: inconsistent sizes")
    cdef const char* s = <const char*>&src[0]
    cdef char* d = <char*>&dst[0]
    cdef const Py_ssize_t* ih = &idxh[0]
    cdef const Py_ssize_t* iw = &idxw[0]
    cdef const Py_ssize_t* of = &off[0]
    cdef const char* cv = <const char*>&cval[0]
    cdef Py_ssize_t R = 16
    cdef Py_ssize_t ns = (H + R - 1) // R
    cdef Py_ssize_t m = W + kw - 1
    cdef Py_ssize_t task, o, i0, nr, q, r, i
    cdef char* sb
    cdef char* sel
    cdef Py_ssize_t per = ((R + kh - 1) * m + cnt + kh * m) * isz
    cdef char* crow = _cval_row(cv, m, isz, "rank2d")
    cdef char* pool = NULL
    try:
        pool = scratch(max(1, nthreads), per, "rank2d")
        with nogil, parallel(num_threads=_threads(outer * ns, nthreads)):
            sb = pool + threadid() * per
            sel = sb + (R + kh - 1) * m * isz
            for task in prange(outer * ns, schedule="dynamic"):
                o = task // ns
                i0 = (task % ns) * R
                nr = min(R, H - i0)
                for q in range(nr + kh - 1):
                    r = ih[i0 + q]
                    if r < 0:
                        memcpy(sb + q * m * isz, crow, m * isz)
                    else:
                        _gather_line(tc, sb + q * m * isz, s + (o * H + r) * W * isz, iw, 0, m,
                                     W, bw, cv, isz)
                for i in range(nr):
                    if op == 2 and box and kh == kw and 2 * rank + 1 == cnt and fcr_cmed(
                            tc, kh, sb + i * m * isz, m, d + (o * H + i0 + i) * W * isz, W,
                            sel + cnt * isz):
                        pass
                    elif op == 2:
                        fcr_rank(tc, sb + i * m * isz, of, cnt, rank,
                                 d + (o * H + i0 + i) * W * isz, W, sel)
                    else:
                        fcr_fold(tc, d + (o * H + i0 + i) * W * isz, sb + i * m * isz, of, cnt, W,
                                 op == 1)
    finally:
        free(crow)
        free(pool)
