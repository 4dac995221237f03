/* fastconv.ndimage's 1-D correlation passes (issue 18), compiled per x86-64 level
 * (target_clones, as fc_kernels.h): the innermost loops of fastconv._cy_ndfilt.
 *
 * Every sum runs in double with double weights (as scipy's line buffers): a float32 pass
 * differs from scipy's only in the rounding of the sum's order, not in its precision.
 *
 * fc_ndrow_{f,d}(out, rows, w, k, m, sym): out[c] = sum_j w[j] * rows[j][c], c < m: one
 *   output row from the k input rows its taps read (row pointers: for a pass along a
 *   non-last axis, the boundary rows point at the mode's source row or at a row of cval;
 *   for the n-D correlation, rows of the padded input shifted by each tap's offset).
 * fc_ndline_{f,d}(out, ext, w, k, n, sym): out[i] = sum_j w[j] * ext[i + j], i < n: one line
 *   of a pass along the last axis, from its extended (padded) copy ext of n + k - 1 values.
 * sym (as scipy's NI_Correlate1D): 1 for odd k with symmetric weights (w[j] == w[k-1-j]),
 *   -1 antisymmetric: the centre tap, then (x[j] +- x[k-1-j]) * w[j] for j < k/2 (half the
 *   products); 0: the last tap, then the others in order (scipy's 1-D order); 2 (fc_ndrow
 *   only): every tap in order (scipy's n-D NI_Correlate).
 * fc_ndbox_{f,d}(out, os, cs, rows, size, n, m, tmp): scipy's uniform_filter1d running
 *   sum, in double, for m lines at once: tmp[c] = sum_{l < size} rows[l][c] (in order),
 *   then tmp[c] += rows[i + size - 1][c] - rows[i - 1][c] for each next output i; output i
 *   of line c is tmp[c] / size, stored at out[i * os + c * cs]. The same operations in the
 *   same order as scipy's NI_UniformFilter1D, so the results are scipy's to the bit
 *   (integer outputs then truncate alike).
 * The correlations vectorize over the outputs; their sums run over j in order (tap 0
 * first).
 */
#ifndef FASTCONV_FC_NDFILT_H
#define FASTCONV_FC_NDFILT_H

#include <stddef.h>

#if defined(__GNUC__) && defined(__x86_64__) && defined(__ELF__) && !defined(__clang__) \
    && !defined(FASTCONV_NO_CLONES)
#define FC_ND_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FC_ND_CLONES
#endif
#if defined(__GNUC__)
#define FC_ND_RESTRICT __restrict__
#else
#define FC_ND_RESTRICT
#endif

#define FC_ND_BLOCK 256

/* No fused multiply-adds: scipy's sums are separate products and sums (its baseline
 * x86-64 build has no FMA), and so are these, so that results match scipy's to the bit
 * where the order of the terms is scipy's. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

#define FC_ND_DEFINE(SUF, T)                                                              \
FC_ND_CLONES static void fc_ndrow_##SUF(T *FC_ND_RESTRICT out, const T *const *rows,     \
                                        const double *FC_ND_RESTRICT w, Py_ssize_t k,    \
                                        Py_ssize_t m, int sym)                           \
{                                                                                        \
    Py_ssize_t c0, c, j;                                                                 \
    double acc[FC_ND_BLOCK];                                                             \
    for (c0 = 0; c0 < m; c0 += FC_ND_BLOCK) {                                            \
        Py_ssize_t b = m - c0 < FC_ND_BLOCK ? m - c0 : FC_ND_BLOCK;                      \
        if (sym == 1 || sym == -1) {                                                                  \
            const Py_ssize_t h = k / 2;                                                  \
            const T *FC_ND_RESTRICT rh = rows[h] + c0;                                   \
            const double wh = w[h];                                                      \
            for (c = 0; c < b; c++) acc[c] = (double)rh[c] * wh;                         \
            for (j = 0; j < h; j++) {                                                    \
                const T *FC_ND_RESTRICT ra = rows[j] + c0;                               \
                const T *FC_ND_RESTRICT rb = rows[k - 1 - j] + c0;                       \
                const double a = w[j];                                                   \
                if (sym > 0)                                                             \
                    for (c = 0; c < b; c++) acc[c] += ((double)ra[c] + (double)rb[c]) * a; \
                else                                                                     \
                    for (c = 0; c < b; c++) acc[c] += ((double)ra[c] - (double)rb[c]) * a; \
            }                                                                            \
        } else {                                                                         \
            /* sym 0: scipy's 1-D order, the last tap first; 2: in order (n-D) */        \
            const Py_ssize_t first = sym == 2 ? 0 : k - 1;                               \
            const Py_ssize_t j0 = sym == 2 ? 1 : 0, j1 = sym == 2 ? k : k - 1;           \
            const T *FC_ND_RESTRICT r0 = rows[first] + c0;                               \
            const double w0 = w[first];                                                  \
            for (c = 0; c < b; c++) acc[c] = (double)r0[c] * w0;                         \
            for (j = j0; j < j1; j++) {                                                  \
                const T *FC_ND_RESTRICT r = rows[j] + c0;                                \
                const double a = w[j];                                                   \
                for (c = 0; c < b; c++) acc[c] += (double)r[c] * a;                      \
            }                                                                            \
        }                                                                                \
        for (c = 0; c < b; c++) out[c0 + c] = (T)acc[c];                                 \
    }                                                                                    \
}                                                                                        \
FC_ND_CLONES static void fc_ndline_##SUF(T *FC_ND_RESTRICT out,                          \
                                         const T *FC_ND_RESTRICT ext,                    \
                                         const double *FC_ND_RESTRICT w, Py_ssize_t k,   \
                                         Py_ssize_t n, int sym)                          \
{                                                                                        \
    Py_ssize_t i0, i, j;                                                                 \
    double acc[FC_ND_BLOCK];                                                             \
    for (i0 = 0; i0 < n; i0 += FC_ND_BLOCK) {                                            \
        Py_ssize_t b = n - i0 < FC_ND_BLOCK ? n - i0 : FC_ND_BLOCK;                      \
        const T *FC_ND_RESTRICT e = ext + i0;                                            \
        if (sym == 1 || sym == -1) {                                                                  \
            const Py_ssize_t h = k / 2;                                                  \
            const double wh = w[h];                                                      \
            for (i = 0; i < b; i++) acc[i] = (double)e[i + h] * wh;                      \
            for (j = 0; j < h; j++) {                                                    \
                const double a = w[j];                                                   \
                const T *FC_ND_RESTRICT ea = e + j;                                      \
                const T *FC_ND_RESTRICT eb = e + k - 1 - j;                              \
                if (sym > 0)                                                             \
                    for (i = 0; i < b; i++) acc[i] += ((double)ea[i] + (double)eb[i]) * a; \
                else                                                                     \
                    for (i = 0; i < b; i++) acc[i] += ((double)ea[i] - (double)eb[i]) * a; \
            }                                                                            \
        } else { /* scipy's order: the last tap first, then the others in order */     \
            const double wl = w[k - 1];                                                  \
            const T *FC_ND_RESTRICT el = e + k - 1;                                      \
            for (i = 0; i < b; i++) acc[i] = (double)el[i] * wl;                         \
            for (j = 0; j < k - 1; j++) {                                                \
                const double a = w[j];                                                   \
                const T *FC_ND_RESTRICT ej = e + j;                                      \
                for (i = 0; i < b; i++) acc[i] += (double)ej[i] * a;                     \
            }                                                                            \
        }                                                                                \
        for (i = 0; i < b; i++) out[i0 + i] = (T)acc[i];                                 \
    }                                                                                    \
}                                                                                        \
FC_ND_CLONES static void fc_ndbox_##SUF(T *out, Py_ssize_t os, Py_ssize_t cs,            \
                                        const T *const *rows, Py_ssize_t size,           \
                                        Py_ssize_t n, Py_ssize_t m,                      \
                                        double *FC_ND_RESTRICT tmp)                      \
{                                                                                        \
    Py_ssize_t c, l, i;                                                                  \
    const double fs = (double)size;                                                      \
    for (c = 0; c < m; c++) tmp[c] = 0.0;                                                \
    for (l = 0; l < size; l++) {                                                         \
        const T *FC_ND_RESTRICT r = rows[l];                                             \
        for (c = 0; c < m; c++) tmp[c] += (double)r[c];                                  \
    }                                                                                    \
    for (c = 0; c < m; c++) out[c * cs] = (T)(tmp[c] / fs);                              \
    for (i = 1; i < n; i++) {                                                            \
        const T *FC_ND_RESTRICT a = rows[i + size - 1];                                  \
        const T *FC_ND_RESTRICT b = rows[i - 1];                                         \
        T *o = out + i * os;                                                             \
        if (cs == 1) {                                                                   \
            T *FC_ND_RESTRICT o1 = o;                                                    \
            for (c = 0; c < m; c++) {                                                    \
                tmp[c] += (double)a[c] - (double)b[c];                                   \
                o1[c] = (T)(tmp[c] / fs);                                                \
            }                                                                            \
        } else {                                                                         \
            for (c = 0; c < m; c++) {                                                    \
                tmp[c] += (double)a[c] - (double)b[c];                                   \
                o[c * cs] = (T)(tmp[c] / fs);                                            \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
}

FC_ND_DEFINE(f, float)
FC_ND_DEFINE(d, double)

/* fc_ndboxline_{f,d}(out, ext, size, n): fc_ndbox's running sum along one extended line
 * (ext: n + size - 1 values), the same operations in the same order. */
#define FC_ND_BOXLINE(SUF, T)                                                             \
static void fc_ndboxline_##SUF(T *FC_ND_RESTRICT out, const T *FC_ND_RESTRICT ext,       \
                               Py_ssize_t size, Py_ssize_t n)                            \
{                                                                                        \
    Py_ssize_t l, i;                                                                     \
    const double fs = (double)size;                                                      \
    double tmp = 0.0;                                                                    \
    for (l = 0; l < size; l++) tmp += (double)ext[l];                                    \
    out[0] = (T)(tmp / fs);                                                              \
    for (i = 1; i < n; i++) {                                                            \
        tmp += (double)ext[i + size - 1] - (double)ext[i - 1];                           \
        out[i] = (T)(tmp / fs);                                                          \
    }                                                                                    \
}

FC_ND_BOXLINE(f, float)
FC_ND_BOXLINE(d, double)

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif
