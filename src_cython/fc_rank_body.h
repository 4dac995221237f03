/* fastconv's rank-filter loops for one element type: the generic body behind fc_rank.h
 * (what each kernel computes is described there).
 *
 * No include guard: fc_rank.h includes this file once per element type, after defining
 *
 *     FCR_T         the element type (float, double, int8_t ... uint64_t)
 *     FCR_NAME(n)   the name of function n for that type (fcr_vmax -> fcr_vmax_f32, ...)
 *
 * and this file undefines them at its end (the convention of fc_kernels_body.h). Everything
 * else (FCR_CLONES, FCR_RESTRICT, FCR_INLINE, FCR_MAX, FCR_MIN) comes from fc_rank.h. Every
 * function here is a plain C function; the FCR_INLINE ones (always_inline) are called with
 * constant sizes, so gcc unrolls their loops and keeps their values in registers, and the
 * loops around them vectorize across output positions.
 */
#if !defined(FCR_T) || !defined(FCR_NAME) || !defined(FASTCONV_FC_RANK_H)
#error "fc_rank_body.h is included by fc_rank.h, once per element type"
#endif

/* compare-exchange: *a becomes the smaller, *b the larger (FCR_MIN and FCR_MAX) */
FCR_INLINE void FCR_NAME(fcr_sort2)(FCR_T* a, FCR_T* b)
{
    FCR_T t = FCR_MIN(*a, *b);
    *b = FCR_MAX(*a, *b);
    *a = t;
}

/* the median networks (generated): fcr_net9, fcr_net25, fcr_sort3, fcr_cnet3x3, fcr_sort5,
 * fcr_cnet5x5 */
#include "fc_rank_nets.h"

FCR_CLONES static void FCR_NAME(fcr_vmax)(FCR_T* FCR_RESTRICT o, const FCR_T* FCR_RESTRICT a,
                                          ptrdiff_t n)
{
    for (ptrdiff_t j = 0; j < n; j++) o[j] = FCR_MAX(o[j], a[j]);
}

FCR_CLONES static void FCR_NAME(fcr_vmin)(FCR_T* FCR_RESTRICT o, const FCR_T* FCR_RESTRICT a,
                                          ptrdiff_t n)
{
    for (ptrdiff_t j = 0; j < n; j++) o[j] = FCR_MIN(o[j], a[j]);
}

static void FCR_NAME(fcr_fold)(FCR_T* FCR_RESTRICT o, const FCR_T* x, const ptrdiff_t* off,
                               int cnt, ptrdiff_t n, int is_max)
{
    const FCR_T* x0 = x + off[0];
    for (ptrdiff_t j = 0; j < n; j++) o[j] = x0[j];
    for (int t = 1; t < cnt; t++) {
        if (is_max) FCR_NAME(fcr_vmax)(o, x + off[t], n); else FCR_NAME(fcr_vmin)(o, x + off[t], n);
    }
}

FCR_CLONES static void FCR_NAME(fcr_med9)(const FCR_T* FCR_RESTRICT x, const ptrdiff_t* off,
                                          FCR_T* FCR_RESTRICT o, ptrdiff_t n)
{
    const FCR_T* FCR_RESTRICT r0 = x + off[0]; const FCR_T* FCR_RESTRICT r1 = x + off[1];
    const FCR_T* FCR_RESTRICT r2 = x + off[2]; const FCR_T* FCR_RESTRICT r3 = x + off[3];
    const FCR_T* FCR_RESTRICT r4 = x + off[4]; const FCR_T* FCR_RESTRICT r5 = x + off[5];
    const FCR_T* FCR_RESTRICT r6 = x + off[6]; const FCR_T* FCR_RESTRICT r7 = x + off[7];
    const FCR_T* FCR_RESTRICT r8 = x + off[8];
#pragma GCC ivdep
    for (ptrdiff_t j = 0; j < n; j++)
        o[j] = FCR_NAME(fcr_net9)(r0[j], r1[j], r2[j], r3[j], r4[j], r5[j], r6[j], r7[j], r8[j]);
}

FCR_CLONES static void FCR_NAME(fcr_med25)(const FCR_T* FCR_RESTRICT x, const ptrdiff_t* off,
                                           FCR_T* FCR_RESTRICT o, ptrdiff_t n)
{
    const FCR_T* FCR_RESTRICT r0 = x + off[0]; const FCR_T* FCR_RESTRICT r1 = x + off[1];
    const FCR_T* FCR_RESTRICT r2 = x + off[2]; const FCR_T* FCR_RESTRICT r3 = x + off[3];
    const FCR_T* FCR_RESTRICT r4 = x + off[4]; const FCR_T* FCR_RESTRICT r5 = x + off[5];
    const FCR_T* FCR_RESTRICT r6 = x + off[6]; const FCR_T* FCR_RESTRICT r7 = x + off[7];
    const FCR_T* FCR_RESTRICT r8 = x + off[8]; const FCR_T* FCR_RESTRICT r9 = x + off[9];
    const FCR_T* FCR_RESTRICT r10 = x + off[10]; const FCR_T* FCR_RESTRICT r11 = x + off[11];
    const FCR_T* FCR_RESTRICT r12 = x + off[12]; const FCR_T* FCR_RESTRICT r13 = x + off[13];
    const FCR_T* FCR_RESTRICT r14 = x + off[14]; const FCR_T* FCR_RESTRICT r15 = x + off[15];
    const FCR_T* FCR_RESTRICT r16 = x + off[16]; const FCR_T* FCR_RESTRICT r17 = x + off[17];
    const FCR_T* FCR_RESTRICT r18 = x + off[18]; const FCR_T* FCR_RESTRICT r19 = x + off[19];
    const FCR_T* FCR_RESTRICT r20 = x + off[20]; const FCR_T* FCR_RESTRICT r21 = x + off[21];
    const FCR_T* FCR_RESTRICT r22 = x + off[22]; const FCR_T* FCR_RESTRICT r23 = x + off[23];
    const FCR_T* FCR_RESTRICT r24 = x + off[24];
#pragma GCC ivdep
    for (ptrdiff_t j = 0; j < n; j++)
        o[j] = FCR_NAME(fcr_net25)(r0[j], r1[j], r2[j], r3[j], r4[j], r5[j], r6[j], r7[j],
                                   r8[j], r9[j], r10[j], r11[j], r12[j], r13[j], r14[j],
                                   r15[j], r16[j], r17[j], r18[j], r19[j], r20[j], r21[j],
                                   r22[j], r23[j], r24[j]);
}

/* the k-th smallest of a[0 .. cnt - 1] (Wirth's selection; reorders a) */
static FCR_T FCR_NAME(fcr_select)(FCR_T* a, int cnt, int k)
{
    int l = 0, m = cnt - 1;
    while (l < m) {
        FCR_T v = a[k]; int i = l, j = m;
        do {
            while (a[i] < v) i++;
            while (v < a[j]) j--;
            if (i <= j) { FCR_T t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; }
        } while (i <= j);
        if (j < k) l = i;
        if (k < i) m = j;
    }
    return a[k];
}

static void FCR_NAME(fcr_rank)(const FCR_T* x, const ptrdiff_t* off, int cnt, int rank,
                               FCR_T* o, ptrdiff_t n, FCR_T* buf)
{
    for (ptrdiff_t j = 0; j < n; j++) {
        for (int t = 0; t < cnt; t++) buf[t] = x[off[t] + j];
        o[j] = FCR_NAME(fcr_select)(buf, cnt, rank);
    }
}

/* running max/min of width k over line[0 .. n + k - 2] into o[0 .. n - 1]; g and h hold
 * n + k - 1 values each: g the prefix and h the suffix extremes within blocks of k */
static void FCR_NAME(fcr_herk)(const FCR_T* line, FCR_T* o, ptrdiff_t n, int k, FCR_T* g,
                               FCR_T* h, int is_max)
{
    ptrdiff_t m = n + k - 1;
    for (ptrdiff_t s = 0; s < m; s += k) {
        ptrdiff_t e = s + k < m ? s + k : m;
        g[s] = line[s];
        for (ptrdiff_t p = s + 1; p < e; p++)
            g[p] = is_max ? FCR_MAX(g[p - 1], line[p]) : FCR_MIN(g[p - 1], line[p]);
        h[e - 1] = line[e - 1];
        for (ptrdiff_t p = e - 2; p >= s; p--)
            h[p] = is_max ? FCR_MAX(h[p + 1], line[p]) : FCR_MIN(h[p + 1], line[p]);
    }
    for (ptrdiff_t j = 0; j < n; j++) o[j] = h[j];
    if (is_max) FCR_NAME(fcr_vmax)(o, g + k - 1, n); else FCR_NAME(fcr_vmin)(o, g + k - 1, n);
}

static void FCR_NAME(fcr_gather)(FCR_T* FCR_RESTRICT line, const FCR_T* src, const ptrdiff_t* idx,
                                 ptrdiff_t m, ptrdiff_t stride, FCR_T cval)
{
    for (ptrdiff_t p = 0; p < m; p++) line[p] = idx[p] >= 0 ? src[idx[p] * stride] : cval;
}

/* fcr_hrun's and fcr_vrun's loops for one window width k (a constant at every call: the t
 * loop unrolls), max when is_max (a constant too), else min: o[j] = the extreme of
 * l[j .. j + k - 1], or of rows[0][j] .. rows[k - 1][j] */
FCR_INLINE void FCR_NAME(fcr_hk)(FCR_T* FCR_RESTRICT o, const FCR_T* FCR_RESTRICT l, ptrdiff_t n,
                                 int k, int is_max)
{
    for (ptrdiff_t j = 0; j < n; j++) {
        FCR_T v = l[j];
        for (int t = 1; t < k; t++) v = is_max ? FCR_MAX(v, l[j + t]) : FCR_MIN(v, l[j + t]);
        o[j] = v;
    }
}

FCR_INLINE void FCR_NAME(fcr_vk)(FCR_T* FCR_RESTRICT o, const FCR_T* const* rows, ptrdiff_t n,
                                 int k, int is_max)
{
    for (ptrdiff_t j = 0; j < n; j++) {
        FCR_T v = rows[0][j];
        for (int t = 1; t < k; t++)
            v = is_max ? FCR_MAX(v, rows[t][j]) : FCR_MIN(v, rows[t][j]);
        o[j] = v;
    }
}

/* o[j] = max/min(l[j .. j + k - 1]): one pass, one store per output for k = 2..8 (vector
 * loops), else the running fcr_vmax/fcr_vmin folds */
FCR_CLONES static void FCR_NAME(fcr_hrun)(FCR_T* FCR_RESTRICT o, const FCR_T* FCR_RESTRICT l,
                                          ptrdiff_t n, int k, int is_max)
{
    if (is_max) {
        switch (k) {
        case 2: FCR_NAME(fcr_hk)(o, l, n, 2, 1); break;
        case 3: FCR_NAME(fcr_hk)(o, l, n, 3, 1); break;
        case 4: FCR_NAME(fcr_hk)(o, l, n, 4, 1); break;
        case 5: FCR_NAME(fcr_hk)(o, l, n, 5, 1); break;
        case 6: FCR_NAME(fcr_hk)(o, l, n, 6, 1); break;
        case 7: FCR_NAME(fcr_hk)(o, l, n, 7, 1); break;
        case 8: FCR_NAME(fcr_hk)(o, l, n, 8, 1); break;
        default:
            for (ptrdiff_t j = 0; j < n; j++) o[j] = l[j];
            for (int t = 1; t < k; t++) FCR_NAME(fcr_vmax)(o, l + t, n);
        }
    } else {
        switch (k) {
        case 2: FCR_NAME(fcr_hk)(o, l, n, 2, 0); break;
        case 3: FCR_NAME(fcr_hk)(o, l, n, 3, 0); break;
        case 4: FCR_NAME(fcr_hk)(o, l, n, 4, 0); break;
        case 5: FCR_NAME(fcr_hk)(o, l, n, 5, 0); break;
        case 6: FCR_NAME(fcr_hk)(o, l, n, 6, 0); break;
        case 7: FCR_NAME(fcr_hk)(o, l, n, 7, 0); break;
        case 8: FCR_NAME(fcr_hk)(o, l, n, 8, 0); break;
        default:
            for (ptrdiff_t j = 0; j < n; j++) o[j] = l[j];
            for (int t = 1; t < k; t++) FCR_NAME(fcr_vmin)(o, l + t, n);
        }
    }
}

/* o[j] = max/min over t < k of rows[t][j], as fcr_hrun */
FCR_CLONES static void FCR_NAME(fcr_vrun)(FCR_T* FCR_RESTRICT o, const FCR_T* const* rows,
                                          ptrdiff_t n, int k, int is_max)
{
    if (is_max) {
        switch (k) {
        case 2: FCR_NAME(fcr_vk)(o, rows, n, 2, 1); break;
        case 3: FCR_NAME(fcr_vk)(o, rows, n, 3, 1); break;
        case 4: FCR_NAME(fcr_vk)(o, rows, n, 4, 1); break;
        case 5: FCR_NAME(fcr_vk)(o, rows, n, 5, 1); break;
        case 6: FCR_NAME(fcr_vk)(o, rows, n, 6, 1); break;
        case 7: FCR_NAME(fcr_vk)(o, rows, n, 7, 1); break;
        case 8: FCR_NAME(fcr_vk)(o, rows, n, 8, 1); break;
        default:
            for (ptrdiff_t j = 0; j < n; j++) o[j] = rows[0][j];
            for (int t = 1; t < k; t++) FCR_NAME(fcr_vmax)(o, rows[t], n);
        }
    } else {
        switch (k) {
        case 2: FCR_NAME(fcr_vk)(o, rows, n, 2, 0); break;
        case 3: FCR_NAME(fcr_vk)(o, rows, n, 3, 0); break;
        case 4: FCR_NAME(fcr_vk)(o, rows, n, 4, 0); break;
        case 5: FCR_NAME(fcr_vk)(o, rows, n, 5, 0); break;
        case 6: FCR_NAME(fcr_vk)(o, rows, n, 6, 0); break;
        case 7: FCR_NAME(fcr_vk)(o, rows, n, 7, 0); break;
        case 8: FCR_NAME(fcr_vk)(o, rows, n, 8, 0); break;
        default:
            for (ptrdiff_t j = 0; j < n; j++) o[j] = rows[0][j];
            for (int t = 1; t < k; t++) FCR_NAME(fcr_vmin)(o, rows[t], n);
        }
    }
}

/* median of the 3x3 box at (row 0, column j) of the strip rows sb (row stride m) for
 * j < n: the 3 columns sorted once into cs (3 rows of n + 2), then the columns network */
FCR_CLONES static void FCR_NAME(fcr_cmed3)(const FCR_T* FCR_RESTRICT sb, ptrdiff_t m,
                                           FCR_T* FCR_RESTRICT o, ptrdiff_t n,
                                           FCR_T* FCR_RESTRICT cs)
{
    const ptrdiff_t w = n + 3 - 1;
    for (ptrdiff_t j = 0; j < w; j++) {
        FCR_T p0 = sb[j], p1 = sb[m + j], p2 = sb[2 * m + j];
        FCR_NAME(fcr_sort3)(&p0, &p1, &p2);
        cs[j] = p0; cs[w + j] = p1; cs[2 * w + j] = p2;
    }
    const FCR_T* FCR_RESTRICT c0 = cs;
    const FCR_T* FCR_RESTRICT c1 = cs + w;
    const FCR_T* FCR_RESTRICT c2 = cs + 2 * w;
    for (ptrdiff_t j = 0; j < n; j++)
        o[j] = FCR_NAME(fcr_cnet3x3)(c0[j], c1[j], c2[j], c0[j + 1], c1[j + 1], c2[j + 1],
                                     c0[j + 2], c1[j + 2], c2[j + 2]);
}

/* the same for the 5x5 box (5 rows of n + 4 in cs) */
FCR_CLONES static void FCR_NAME(fcr_cmed5)(const FCR_T* FCR_RESTRICT sb, ptrdiff_t m,
                                           FCR_T* FCR_RESTRICT o, ptrdiff_t n,
                                           FCR_T* FCR_RESTRICT cs)
{
    const ptrdiff_t w = n + 5 - 1;
    for (ptrdiff_t j = 0; j < w; j++) {
        FCR_T p0 = sb[j], p1 = sb[m + j], p2 = sb[2 * m + j], p3 = sb[3 * m + j],
              p4 = sb[4 * m + j];
        FCR_NAME(fcr_sort5)(&p0, &p1, &p2, &p3, &p4);
        cs[j] = p0; cs[w + j] = p1; cs[2 * w + j] = p2; cs[3 * w + j] = p3; cs[4 * w + j] = p4;
    }
    const FCR_T* FCR_RESTRICT c0 = cs;
    const FCR_T* FCR_RESTRICT c1 = cs + w;
    const FCR_T* FCR_RESTRICT c2 = cs + 2 * w;
    const FCR_T* FCR_RESTRICT c3 = cs + 3 * w;
    const FCR_T* FCR_RESTRICT c4 = cs + 4 * w;
    for (ptrdiff_t j = 0; j < n; j++)
        o[j] = FCR_NAME(fcr_cnet5x5)(
            c0[j], c1[j], c2[j], c3[j], c4[j],
            c0[j + 1], c1[j + 1], c2[j + 1], c3[j + 1], c4[j + 1],
            c0[j + 2], c1[j + 2], c2[j + 2], c3[j + 2], c4[j + 2],
            c0[j + 3], c1[j + 3], c2[j + 3], c3[j + 3], c4[j + 3],
            c0[j + 4], c1[j + 4], c2[j + 4], c3[j + 4], c4[j + 4]);
}

/* this body's parameters, for the next element type */
#undef FCR_T
#undef FCR_NAME
