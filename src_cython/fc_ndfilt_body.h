/* fastconv.ndimage's 1-D correlation passes for one element type: the generic body behind
 * fc_ndfilt.h (what each kernel computes is described there).
 *
 * No include guard: fc_ndfilt.h includes this file once per element type, after defining
 *
 *     FC_T          the element type (float, double)
 *     FC_R          the type of the rows fc_ndrow and fc_ndline read (FC_T)
 *     FC_A          the type of the weights and of the sums: double (scipy's), or float
 *                   for float32 passes in float32 (fc_ndrows_ff, fc_ndline_ff)
 *     FC_NAME(n)    the name of function n for that type (fc_ndrow -> fc_ndrow_f, fc_ndrow_d)
 *     FC_ND_ROWS_ONLY  (optional) only the correlation rows, not the box means
 *     FC_ND_NO_LINE    (optional) no fc_ndline
 *
 * and this file undefines them at its end (the convention of fc_kernels_body.h). Everything
 * else (FC_ND_CLONES, FC_ND_RESTRICT, FC_ND_BLOCK, the fp-contract setting) comes from
 * fc_ndfilt.h. Every function here is a plain C function: compiler errors and debuggers
 * point at the lines below.
 */
#if !defined(FC_T) || !defined(FC_R) || !defined(FC_A) || !defined(FC_NAME) || !defined(FASTCONV_FC_NDFILT_H)
#error "fc_ndfilt_body.h is included by fc_ndfilt.h, once per element type"
#endif

#ifdef FC_ND_VEC
/* the sums' vector: 32 bytes of FC_A (four doubles or eight floats: one AVX2 register) */
typedef FC_A FC_NAME(fc_nd_av) __attribute__((vector_size(32)));
#define FC_NL ((Py_ssize_t)(32 / sizeof(FC_A)))

/* the same lanes in the output's type, unaligned */
typedef FC_T FC_NAME(fc_nd_tu)
    __attribute__((vector_size(FC_NL * sizeof(FC_T)), aligned(sizeof(FC_T)), may_alias));

/* 4 * FC_NL consecutive values at p as four vectors of FC_A (v), lane by lane (gcc makes
 * each vector one load, widened where the types differ), and back, as whole-vector
 * conversions and unaligned stores (through pointers: a function returning a vector would
 * change the ABI of the baseline clone, which has no AVX) */
FC_ND_INLINE void FC_NAME(fc_ndld)(FC_NAME(fc_nd_av) *v, const FC_R *p)
{
    int q, e;
    for (q = 0; q < 4; q++)
        for (e = 0; e < FC_NL; e++) v[q][e] = (FC_A)p[FC_NL * q + e];
}

FC_ND_INLINE void FC_NAME(fc_ndst)(FC_T *o, const FC_NAME(fc_nd_av) *v)
{
    int q;
    for (q = 0; q < 4; q++)
        *(FC_NAME(fc_nd_tu) *)(o + FC_NL * q) = __builtin_convertvector(v[q], FC_NAME(fc_nd_tu));
}

#endif

/* columns c0 <= c < c0 + b (b <= FC_ND_BLOCK) of one output row */
FC_ND_INLINE void FC_NAME(fc_ndblk)(FC_T *FC_ND_RESTRICT out, const FC_R *const *rows,
                                     const FC_A *FC_ND_RESTRICT w, Py_ssize_t k,
                                     Py_ssize_t c0, Py_ssize_t b, int sym)
{
    FC_A acc[FC_ND_BLOCK];
    Py_ssize_t c, j;
    if (sym == 1 || sym == -1) {
        const Py_ssize_t h = k / 2;
        const FC_R *FC_ND_RESTRICT rh = rows[h] + c0;
        const FC_A wh = w[h];
        for (c = 0; c < b; c++) acc[c] = (FC_A)rh[c] * wh;
        for (j = 0; j < h; j++) {
            const FC_R *FC_ND_RESTRICT ra = rows[j] + c0;
            const FC_R *FC_ND_RESTRICT rb = rows[k - 1 - j] + c0;
            const FC_A a = w[j];
            if (sym > 0)
                for (c = 0; c < b; c++) acc[c] += ((FC_A)ra[c] + (FC_A)rb[c]) * a;
            else
                for (c = 0; c < b; c++) acc[c] += ((FC_A)ra[c] - (FC_A)rb[c]) * a;
        }
    } else {
        /* sym 0: scipy's 1-D order, the last tap first; 2: in order (n-D) */
        const Py_ssize_t first = sym == 2 ? 0 : k - 1;
        const Py_ssize_t j0 = sym == 2 ? 1 : 0, j1 = sym == 2 ? k : k - 1;
        const FC_R *FC_ND_RESTRICT r0 = rows[first] + c0;
        const FC_A w0 = w[first];
        for (c = 0; c < b; c++) acc[c] = (FC_A)r0[c] * w0;
        for (j = j0; j < j1; j++) {
            const FC_R *FC_ND_RESTRICT r = rows[j] + c0;
            const FC_A a = w[j];
            for (c = 0; c < b; c++) acc[c] += (FC_A)r[c] * a;
        }
    }
    for (c = 0; c < b; c++) out[c0 + c] = (FC_T)acc[c];
}

/* nr consecutive output rows (row r at out + r * os) from the k + nr - 1 input rows their
 * taps read: row r from rows[r .. r + k - 1]. Each block of columns is done for every row
 * before the next block, so the k - 1 input rows two outputs share are read from memory
 * (L2) once, and again from L1: a pass along a non-last axis with a long kernel reads
 * (k + nr - 1) / nr rows per output row instead of k. Each output's sums are one
 * fc_ndrow's, to the bit. */
FC_ND_CLONES static void FC_NAME(fc_ndrows)(FC_T *out, Py_ssize_t os, const FC_R *const *rows,
                                            const FC_A *FC_ND_RESTRICT w, Py_ssize_t k,
                                            Py_ssize_t m, Py_ssize_t nr, int sym)
{
    Py_ssize_t c0 = 0, r;
#ifdef FC_ND_VEC
    /* 4 * FC_NL columns at a time, their sums in four vector registers (fc_ndblk keeps them
     * in memory: a load and a store per tap); each sum's terms and operations (products,
     * then sums: no fused multiply-adds) are fc_ndblk's */
    for (; c0 + 4 * FC_NL <= m; c0 += 4 * FC_NL)
        for (r = 0; r < nr; r++) {
            const FC_R *const *rr = rows + r;
            /* av = w - 0: the weight in every lane (-0.0 kept; w + 0 would be +0.0), written
             * here: from an inline helper, gcc built the vector lane by lane even in the
             * AVX2 and AVX-512 clones, and the float kernels ran at half speed */
            const FC_NAME(fc_nd_av) zero = {0};
            FC_NAME(fc_nd_av) t[4], xa[4], xb[4], av;
            Py_ssize_t j;
            int q;
            if (sym == 1 || sym == -1) {
                const Py_ssize_t h = k / 2;
                av = w[h] - zero;
                FC_NAME(fc_ndld)(xa, rr[h] + c0);
                for (q = 0; q < 4; q++) t[q] = xa[q] * av;
                for (j = 0; j < h; j++) {
                    av = w[j] - zero;
                    FC_NAME(fc_ndld)(xa, rr[j] + c0);
                    FC_NAME(fc_ndld)(xb, rr[k - 1 - j] + c0);
                    if (sym > 0)
                        for (q = 0; q < 4; q++) t[q] += (xa[q] + xb[q]) * av;
                    else
                        for (q = 0; q < 4; q++) t[q] += (xa[q] - xb[q]) * av;
                }
            } else {
                const Py_ssize_t first = sym == 2 ? 0 : k - 1;
                const Py_ssize_t j0 = sym == 2 ? 1 : 0, j1 = sym == 2 ? k : k - 1;
                av = w[first] - zero;
                FC_NAME(fc_ndld)(xa, rr[first] + c0);
                for (q = 0; q < 4; q++) t[q] = xa[q] * av;
                for (j = j0; j < j1; j++) {
                    av = w[j] - zero;
                    FC_NAME(fc_ndld)(xa, rr[j] + c0);
                    for (q = 0; q < 4; q++) t[q] += xa[q] * av;
                }
            }
            FC_NAME(fc_ndst)(out + r * os + c0, t);
        }
#endif
    for (; c0 < m; c0 += FC_ND_BLOCK) {
        const Py_ssize_t b = m - c0 < FC_ND_BLOCK ? m - c0 : FC_ND_BLOCK;
        for (r = 0; r < nr; r++) FC_NAME(fc_ndblk)(out + r * os, rows + r, w, k, c0, b, sym);
    }
}

/* one output row from the k input rows its taps read */
static inline void FC_NAME(fc_ndrow)(FC_T *out, const FC_R *const *rows,
                                     const FC_A *FC_ND_RESTRICT w, Py_ssize_t k,
                                     Py_ssize_t m, int sym)
{
    FC_NAME(fc_ndrows)(out, 0, rows, w, k, m, 1, sym);
}

#ifndef FC_ND_NO_LINE
/* one line of a pass along the last axis, from its extended copy: fc_ndrow over the k
 * copies of the line shifted by each tap (the same sums, in the same order). gcc cannot see
 * that fc_ndrows reads only the k pointers set here, and warns that the rest of the stack
 * array may be uninitialized: silenced, rather than zeroing 2 KB for every line. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
FC_ND_CLONES static void FC_NAME(fc_ndline)(FC_T *FC_ND_RESTRICT out,
                                            const FC_R *FC_ND_RESTRICT ext,
                                            const FC_A *FC_ND_RESTRICT w, Py_ssize_t k,
                                            Py_ssize_t n, int sym)
{
    const FC_R *stack[256];
    const FC_R **rows = k <= 256 ? stack : (const FC_R **)malloc(k * sizeof(FC_R *));
    Py_ssize_t j, i0, i;
    if (rows != NULL) {
        for (j = 0; j < k; j++) rows[j] = ext + j;
        FC_NAME(fc_ndrows)(out, 0, rows, w, k, n, 1, sym);
        if (rows != stack) free((void *)rows);
        return;
    }
    /* no memory for the pointers of a very long kernel: one output at a time */
    for (i0 = 0; i0 < n; i0++) {
        const FC_R *e = ext + i0;
        FC_A acc;
        if (sym == 1 || sym == -1) {
            const Py_ssize_t h = k / 2;
            acc = (FC_A)e[h] * w[h];
            for (i = 0; i < h; i++)
                acc += (sym > 0 ? (FC_A)e[i] + (FC_A)e[k - 1 - i]
                                : (FC_A)e[i] - (FC_A)e[k - 1 - i]) * w[i];
        } else {
            acc = (FC_A)e[k - 1] * w[k - 1];
            for (i = 0; i < k - 1; i++) acc += (FC_A)e[i] * w[i];
        }
        out[i0] = (FC_T)acc;
    }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif /* FC_ND_NO_LINE */

#ifndef FC_ND_ROWS_ONLY
/* scipy's running-sum box mean, m lines at once */
FC_ND_CLONES static void FC_NAME(fc_ndbox)(FC_T *out, Py_ssize_t os, Py_ssize_t cs,
                                           const FC_T *const *rows, Py_ssize_t size,
                                           Py_ssize_t n, Py_ssize_t m,
                                           double *FC_ND_RESTRICT tmp)
{
    Py_ssize_t c, l, i;
    const double fs = (double)size;
    for (c = 0; c < m; c++) tmp[c] = 0.0;
    for (l = 0; l < size; l++) {
        const FC_T *FC_ND_RESTRICT r = rows[l];
        for (c = 0; c < m; c++) tmp[c] += (double)r[c];
    }
    for (c = 0; c < m; c++) out[c * cs] = (FC_T)(tmp[c] / fs);
    for (i = 1; i < n; i++) {
        const FC_T *FC_ND_RESTRICT a = rows[i + size - 1];
        const FC_T *FC_ND_RESTRICT b = rows[i - 1];
        FC_T *o = out + i * os;
        if (cs == 1) {
            FC_T *FC_ND_RESTRICT o1 = o;
            for (c = 0; c < m; c++) {
                tmp[c] += (double)a[c] - (double)b[c];
                o1[c] = (FC_T)(tmp[c] / fs);
            }
        } else {
            for (c = 0; c < m; c++) {
                tmp[c] += (double)a[c] - (double)b[c];
                o[c * cs] = (FC_T)(tmp[c] / fs);
            }
        }
    }
}

/* fc_ndbox (cs 1) for the outputs i0 <= i < i1 only, continuing the sums in tmp from output
 * i0 - 1 (from scratch when i0 is 0); input row p is xb + idx[p] * rs, or crow (cval) when
 * idx[p] is -1; output i is stored at out + (i - i0) * os. Called for consecutive runs of
 * outputs, the same operations in the same order as one fc_ndbox call. */
FC_ND_CLONES static void FC_NAME(fc_ndboxrun)(FC_T *out, Py_ssize_t os, const FC_T *xb,
                                              Py_ssize_t rs, const long long *idx,
                                              const FC_T *crow, Py_ssize_t size, Py_ssize_t i0,
                                              Py_ssize_t i1, Py_ssize_t m,
                                              double *FC_ND_RESTRICT tmp)
{
    Py_ssize_t c, l, i = i0;
    const double fs = (double)size;
#define FC_ND_ROW(p) (idx[p] >= 0 ? xb + idx[p] * rs : crow)
    if (i0 == 0) {
        for (c = 0; c < m; c++) tmp[c] = 0.0;
        for (l = 0; l < size; l++) {
            const FC_T *FC_ND_RESTRICT r = FC_ND_ROW(l);
            for (c = 0; c < m; c++) tmp[c] += (double)r[c];
        }
        for (c = 0; c < m; c++) out[c] = (FC_T)(tmp[c] / fs);
        i = 1;
    }
    for (; i < i1; i++) {
        const FC_T *FC_ND_RESTRICT a = FC_ND_ROW(i + size - 1);
        const FC_T *FC_ND_RESTRICT b = FC_ND_ROW(i - 1);
        FC_T *FC_ND_RESTRICT o = out + (i - i0) * os;
        for (c = 0; c < m; c++) {
            tmp[c] += (double)a[c] - (double)b[c];
            o[c] = (FC_T)(tmp[c] / fs);
        }
    }
#undef FC_ND_ROW
}

/* fc_ndbox's running sum along one extended line */
static void FC_NAME(fc_ndboxline)(FC_T *FC_ND_RESTRICT out, const FC_T *FC_ND_RESTRICT ext,
                                  Py_ssize_t size, Py_ssize_t n)
{
    Py_ssize_t l, i;
    const double fs = (double)size;
    double tmp = 0.0;
    for (l = 0; l < size; l++) tmp += (double)ext[l];
    out[0] = (FC_T)(tmp / fs);
    for (i = 1; i < n; i++) {
        tmp += (double)ext[i + size - 1] - (double)ext[i - 1];
        out[i] = (FC_T)(tmp / fs);
    }
}

/* fc_ndboxline for four lines at once (line l: ext + l * es, out + l * os), their values
 * interleaved into tmp (4 * (n + size - 1) doubles) so that the four running sums advance
 * together in one vector: one line's sum is a chain of dependent additions, and its
 * divisions, one per output, ran one at a time. Each line's operations are fc_ndboxline's,
 * in its order. */
FC_ND_CLONES static void FC_NAME(fc_ndboxline4)(FC_T *FC_ND_RESTRICT out, Py_ssize_t os,
                                                const FC_T *FC_ND_RESTRICT ext, Py_ssize_t es,
                                                Py_ssize_t size, Py_ssize_t n,
                                                double *FC_ND_RESTRICT tmp)
{
    const Py_ssize_t L = n + size - 1;
    const double fs = (double)size;
    Py_ssize_t i, l;
    for (i = 0; i < L; i++)
        for (l = 0; l < 4; l++) tmp[4 * i + l] = (double)ext[l * es + i];
#ifdef FC_ND_VEC
    {
        /* the four sums in one vector register (gcc left the loop over l scalar) */
        const fc_nd_v4 fv = {fs, fs, fs, fs};
        fc_nd_v4 t = {0.0, 0.0, 0.0, 0.0}, a, b, q;
        for (i = 0; i < size; i++) {
            memcpy(&a, tmp + 4 * i, sizeof a);
            t += a;
        }
        /* the four quotients rounded to FC_T in one conversion (gcc converted them one at
         * a time, each after its own shuffle) */
        typedef FC_T q4_t __attribute__((vector_size(4 * sizeof(FC_T))));
        q4_t r;
        q = t / fv;
        r = __builtin_convertvector(q, q4_t);
        for (l = 0; l < 4; l++) out[l * os] = r[l];
        for (i = 1; i < n; i++) {
            memcpy(&a, tmp + 4 * (i + size - 1), sizeof a);
            memcpy(&b, tmp + 4 * (i - 1), sizeof b);
            t += a - b;
            q = t / fv;
            r = __builtin_convertvector(q, q4_t);
            for (l = 0; l < 4; l++) out[l * os + i] = r[l];
        }
    }
#else
    {
        double t[4] = {0.0, 0.0, 0.0, 0.0};
        for (i = 0; i < size; i++)
            for (l = 0; l < 4; l++) t[l] += tmp[4 * i + l];
        for (l = 0; l < 4; l++) out[l * os] = (FC_T)(t[l] / fs);
        for (i = 1; i < n; i++)
            for (l = 0; l < 4; l++) {
                t[l] += tmp[4 * (i + size - 1) + l] - tmp[4 * (i - 1) + l];
                out[l * os + i] = (FC_T)(t[l] / fs);
            }
    }
#endif
}
#endif /* FC_ND_ROWS_ONLY */

/* this body's parameters, for the next element type */
#undef FC_T
#undef FC_R
#undef FC_A
#undef FC_NAME
#undef FC_NL
#undef FC_ND_ROWS_ONLY
#undef FC_ND_NO_LINE
