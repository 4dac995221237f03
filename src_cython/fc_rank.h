/* fastconv's rank-filter loops (issue 18: maximum/minimum/median filters), one set per
 * element type, the vector loops compiled per x86-64 level (target_clones) as in
 * fc_kernels.h. All loops run over j = 0..n-1 with a run-time set of row offsets, so gcc
 * vectorizes them across output positions:
 *   fcr_vmax_S / fcr_vmin_S   o[j] = max/min(o[j], a[j])
 *   fcr_fold_S                o[j] = max/min over t of x[off[t] + j]
 *   fcr_med9_S / fcr_med25_S  o[j] = median of x[off[t] + j], t < 9 / 25 (a selection network)
 *   fcr_rank_S                o[j] = the rank-th smallest of x[off[t] + j], t < cnt (Wirth's
 *                             selection on a gathered copy; scalar)
 *   fcr_herk_S                van Herk / Gil-Werman running max/min of width k on a line
 * max is "b > a ? b : a" and min "b < a ? b : a" (a the running value): as maxps/minps. */
#ifndef FASTCONV_FC_RANK_H
#define FASTCONV_FC_RANK_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) && defined(__x86_64__) && defined(__ELF__) && !defined(__clang__) \
    && !defined(FASTCONV_NO_CLONES)
#define FCR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FCR_CLONES
#endif
#if defined(__GNUC__)
#define FCR_RESTRICT __restrict__
#else
#define FCR_RESTRICT
#endif

#define FCR_MAX(a, b) ((b) > (a) ? (b) : (a))
#define FCR_MIN(a, b) ((b) < (a) ? (b) : (a))
#define FCR_SWAP(a, b) do { __typeof__(a) fcr_t_ = FCR_MIN(a, b); \
    (b) = FCR_MAX(a, b); (a) = fcr_t_; } while (0)

#include "fc_rank_nets.h"

#define FCR_DEFINE(T, S) \
FCR_CLONES static void fcr_vmax_##S(T* FCR_RESTRICT o, const T* FCR_RESTRICT a, ptrdiff_t n) \
{ for (ptrdiff_t j = 0; j < n; j++) o[j] = FCR_MAX(o[j], a[j]); } \
FCR_CLONES static void fcr_vmin_##S(T* FCR_RESTRICT o, const T* FCR_RESTRICT a, ptrdiff_t n) \
{ for (ptrdiff_t j = 0; j < n; j++) o[j] = FCR_MIN(o[j], a[j]); } \
static void fcr_fold_##S(T* FCR_RESTRICT o, const T* x, const ptrdiff_t* off, int cnt, \
                         ptrdiff_t n, int is_max) \
{ \
    const T* x0 = x + off[0]; \
    for (ptrdiff_t j = 0; j < n; j++) o[j] = x0[j]; \
    for (int t = 1; t < cnt; t++) { \
        if (is_max) fcr_vmax_##S(o, x + off[t], n); else fcr_vmin_##S(o, x + off[t], n); \
    } \
} \
FCR_CLONES static void fcr_med9_##S(const T* FCR_RESTRICT x, const ptrdiff_t* off, \
                                    T* FCR_RESTRICT o, ptrdiff_t n) \
{ \
    const T* FCR_RESTRICT r0 = x + off[0]; const T* FCR_RESTRICT r1 = x + off[1]; const T* FCR_RESTRICT r2 = x + off[2]; const T* FCR_RESTRICT r3 = x + off[3]; const T* FCR_RESTRICT r4 = x + off[4]; const T* FCR_RESTRICT r5 = x + off[5]; const T* FCR_RESTRICT r6 = x + off[6]; const T* FCR_RESTRICT r7 = x + off[7]; const T* FCR_RESTRICT r8 = x + off[8]; \
    _Pragma("GCC ivdep") \
    for (ptrdiff_t j = 0; j < n; j++) { FCR_NET9(T, r, j); } \
} \
FCR_CLONES static void fcr_med25_##S(const T* FCR_RESTRICT x, const ptrdiff_t* off, \
                                    T* FCR_RESTRICT o, ptrdiff_t n) \
{ \
    const T* FCR_RESTRICT r0 = x + off[0]; const T* FCR_RESTRICT r1 = x + off[1]; const T* FCR_RESTRICT r2 = x + off[2]; const T* FCR_RESTRICT r3 = x + off[3]; const T* FCR_RESTRICT r4 = x + off[4]; const T* FCR_RESTRICT r5 = x + off[5]; const T* FCR_RESTRICT r6 = x + off[6]; const T* FCR_RESTRICT r7 = x + off[7]; const T* FCR_RESTRICT r8 = x + off[8]; const T* FCR_RESTRICT r9 = x + off[9]; const T* FCR_RESTRICT r10 = x + off[10]; const T* FCR_RESTRICT r11 = x + off[11]; const T* FCR_RESTRICT r12 = x + off[12]; const T* FCR_RESTRICT r13 = x + off[13]; const T* FCR_RESTRICT r14 = x + off[14]; const T* FCR_RESTRICT r15 = x + off[15]; const T* FCR_RESTRICT r16 = x + off[16]; const T* FCR_RESTRICT r17 = x + off[17]; const T* FCR_RESTRICT r18 = x + off[18]; const T* FCR_RESTRICT r19 = x + off[19]; const T* FCR_RESTRICT r20 = x + off[20]; const T* FCR_RESTRICT r21 = x + off[21]; const T* FCR_RESTRICT r22 = x + off[22]; const T* FCR_RESTRICT r23 = x + off[23]; const T* FCR_RESTRICT r24 = x + off[24]; \
    _Pragma("GCC ivdep") \
    for (ptrdiff_t j = 0; j < n; j++) { FCR_NET25(T, r, j); } \
} \
static T fcr_select_##S(T* a, int cnt, int k) \
{ \
    int l = 0, m = cnt - 1; \
    while (l < m) { \
        T v = a[k]; int i = l, j = m; \
        do { \
            while (a[i] < v) i++; \
            while (v < a[j]) j--; \
            if (i <= j) { T t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; } \
        } while (i <= j); \
        if (j < k) l = i; \
        if (k < i) m = j; \
    } \
    return a[k]; \
} \
static void fcr_rank_##S(const T* x, const ptrdiff_t* off, int cnt, int rank, \
                         T* o, ptrdiff_t n, T* buf) \
{ \
    for (ptrdiff_t j = 0; j < n; j++) { \
        for (int t = 0; t < cnt; t++) buf[t] = x[off[t] + j]; \
        o[j] = fcr_select_##S(buf, cnt, rank); \
    } \
} \
/* running max/min of width k over line[0 .. n + k - 2] into o[0 .. n - 1]; g and h hold \
 * n + k - 1 values each: g the prefix and h the suffix extremes within blocks of k */ \
static void fcr_herk_##S(const T* line, T* o, ptrdiff_t n, int k, T* g, T* h, int is_max) \
{ \
    ptrdiff_t m = n + k - 1; \
    for (ptrdiff_t s = 0; s < m; s += k) { \
        ptrdiff_t e = s + k < m ? s + k : m; \
        g[s] = line[s]; \
        for (ptrdiff_t p = s + 1; p < e; p++) \
            g[p] = is_max ? FCR_MAX(g[p - 1], line[p]) : FCR_MIN(g[p - 1], line[p]); \
        h[e - 1] = line[e - 1]; \
        for (ptrdiff_t p = e - 2; p >= s; p--) \
            h[p] = is_max ? FCR_MAX(h[p + 1], line[p]) : FCR_MIN(h[p + 1], line[p]); \
    } \
    for (ptrdiff_t j = 0; j < n; j++) o[j] = h[j]; \
    if (is_max) fcr_vmax_##S(o, g + k - 1, n); else fcr_vmin_##S(o, g + k - 1, n); \
}

#define FCR_GATHER(T, S) \
static void fcr_gather_##S(T* FCR_RESTRICT line, const T* src, const ptrdiff_t* idx, \
                           ptrdiff_t m, ptrdiff_t stride, T cval) \
{ for (ptrdiff_t p = 0; p < m; p++) line[p] = idx[p] >= 0 ? src[idx[p] * stride] : cval; }

FCR_DEFINE(float, f32)
FCR_DEFINE(double, f64)
FCR_DEFINE(int8_t, i8)
FCR_DEFINE(uint8_t, u8)
FCR_DEFINE(int16_t, i16)
FCR_DEFINE(uint16_t, u16)
FCR_DEFINE(int32_t, i32)
FCR_DEFINE(uint32_t, u32)
FCR_DEFINE(int64_t, i64)
FCR_DEFINE(uint64_t, u64)

/* fcr_hrun_S: o[j] = max/min(l[j .. j + k - 1]); fcr_vrun_S: o[j] = max/min over t < k of
 * rows[t][j]. One pass, one store per output; k = 2..8 unrolled (vector loops), else the
 * running vext folds. */
#define FCR_HK(K, OP) case K: \
    for (ptrdiff_t j = 0; j < n; j++) { __typeof__(o[0]) v = l[j]; \
        for (int t = 1; t < K; t++) v = OP(v, l[j + t]); o[j] = v; } break;
#define FCR_VK(K, OP) case K: \
    for (ptrdiff_t j = 0; j < n; j++) { __typeof__(o[0]) v = rows[0][j]; \
        for (int t = 1; t < K; t++) v = OP(v, rows[t][j]); o[j] = v; } break;
#define FCR_DEFINE_RUN(T, S) \
FCR_CLONES static void fcr_hrun_##S(T* FCR_RESTRICT o, const T* FCR_RESTRICT l, ptrdiff_t n, \
                                    int k, int is_max) \
{ \
    if (is_max) { switch (k) { FCR_HK(2, FCR_MAX) FCR_HK(3, FCR_MAX) FCR_HK(4, FCR_MAX) \
        FCR_HK(5, FCR_MAX) FCR_HK(6, FCR_MAX) FCR_HK(7, FCR_MAX) FCR_HK(8, FCR_MAX) \
        default: for (ptrdiff_t j = 0; j < n; j++) o[j] = l[j]; \
                 for (int t = 1; t < k; t++) fcr_vmax_##S(o, l + t, n); } } \
    else { switch (k) { FCR_HK(2, FCR_MIN) FCR_HK(3, FCR_MIN) FCR_HK(4, FCR_MIN) \
        FCR_HK(5, FCR_MIN) FCR_HK(6, FCR_MIN) FCR_HK(7, FCR_MIN) FCR_HK(8, FCR_MIN) \
        default: for (ptrdiff_t j = 0; j < n; j++) o[j] = l[j]; \
                 for (int t = 1; t < k; t++) fcr_vmin_##S(o, l + t, n); } } \
} \
FCR_CLONES static void fcr_vrun_##S(T* FCR_RESTRICT o, const T* const* rows, ptrdiff_t n, \
                                    int k, int is_max) \
{ \
    if (is_max) { switch (k) { FCR_VK(2, FCR_MAX) FCR_VK(3, FCR_MAX) FCR_VK(4, FCR_MAX) \
        FCR_VK(5, FCR_MAX) FCR_VK(6, FCR_MAX) FCR_VK(7, FCR_MAX) FCR_VK(8, FCR_MAX) \
        default: for (ptrdiff_t j = 0; j < n; j++) o[j] = rows[0][j]; \
                 for (int t = 1; t < k; t++) fcr_vmax_##S(o, rows[t], n); } } \
    else { switch (k) { FCR_VK(2, FCR_MIN) FCR_VK(3, FCR_MIN) FCR_VK(4, FCR_MIN) \
        FCR_VK(5, FCR_MIN) FCR_VK(6, FCR_MIN) FCR_VK(7, FCR_MIN) FCR_VK(8, FCR_MIN) \
        default: for (ptrdiff_t j = 0; j < n; j++) o[j] = rows[0][j]; \
                 for (int t = 1; t < k; t++) fcr_vmin_##S(o, rows[t], n); } } \
}

FCR_DEFINE_RUN(float, f32)
FCR_DEFINE_RUN(double, f64)
FCR_DEFINE_RUN(int8_t, i8)
FCR_DEFINE_RUN(uint8_t, u8)
FCR_DEFINE_RUN(int16_t, i16)
FCR_DEFINE_RUN(uint16_t, u16)
FCR_DEFINE_RUN(int32_t, i32)
FCR_DEFINE_RUN(uint32_t, u32)
FCR_DEFINE_RUN(int64_t, i64)
FCR_DEFINE_RUN(uint64_t, u64)

static void fcr_hrun(int tc, void* o, const void* l, ptrdiff_t n, int k, int is_max)
{
    switch (tc) {
    case 0: fcr_hrun_f32((float*)o, (const float*)l, n, k, is_max); break;
    case 1: fcr_hrun_f64((double*)o, (const double*)l, n, k, is_max); break;
    case 2: fcr_hrun_i8((int8_t*)o, (const int8_t*)l, n, k, is_max); break;
    case 3: fcr_hrun_u8((uint8_t*)o, (const uint8_t*)l, n, k, is_max); break;
    case 4: fcr_hrun_i16((int16_t*)o, (const int16_t*)l, n, k, is_max); break;
    case 5: fcr_hrun_u16((uint16_t*)o, (const uint16_t*)l, n, k, is_max); break;
    case 6: fcr_hrun_i32((int32_t*)o, (const int32_t*)l, n, k, is_max); break;
    case 7: fcr_hrun_u32((uint32_t*)o, (const uint32_t*)l, n, k, is_max); break;
    case 8: fcr_hrun_i64((int64_t*)o, (const int64_t*)l, n, k, is_max); break;
    case 9: fcr_hrun_u64((uint64_t*)o, (const uint64_t*)l, n, k, is_max); break;
    }
}
static void fcr_vrun(int tc, void* o, const void* const* rows, ptrdiff_t n, int k, int is_max)
{
    switch (tc) {
    case 0: fcr_vrun_f32((float*)o, (const float* const*)rows, n, k, is_max); break;
    case 1: fcr_vrun_f64((double*)o, (const double* const*)rows, n, k, is_max); break;
    case 2: fcr_vrun_i8((int8_t*)o, (const int8_t* const*)rows, n, k, is_max); break;
    case 3: fcr_vrun_u8((uint8_t*)o, (const uint8_t* const*)rows, n, k, is_max); break;
    case 4: fcr_vrun_i16((int16_t*)o, (const int16_t* const*)rows, n, k, is_max); break;
    case 5: fcr_vrun_u16((uint16_t*)o, (const uint16_t* const*)rows, n, k, is_max); break;
    case 6: fcr_vrun_i32((int32_t*)o, (const int32_t* const*)rows, n, k, is_max); break;
    case 7: fcr_vrun_u32((uint32_t*)o, (const uint32_t* const*)rows, n, k, is_max); break;
    case 8: fcr_vrun_i64((int64_t*)o, (const int64_t* const*)rows, n, k, is_max); break;
    case 9: fcr_vrun_u64((uint64_t*)o, (const uint64_t* const*)rows, n, k, is_max); break;
    }
}

FCR_GATHER(float, f32)
FCR_GATHER(double, f64)
FCR_GATHER(int8_t, i8)
FCR_GATHER(uint8_t, u8)
FCR_GATHER(int16_t, i16)
FCR_GATHER(uint16_t, u16)
FCR_GATHER(int32_t, i32)
FCR_GATHER(uint32_t, u32)
FCR_GATHER(int64_t, i64)
FCR_GATHER(uint64_t, u64)

#define FCR_DEFINE_CMED(T, S, K) \
/* median of the KxK box at (row 0, column j) of the strip rows sb (row stride m) for \
 * j < n: the K columns sorted once into cs (K rows of m + 0), then the columns network */ \
FCR_CLONES static void fcr_cmed##K##_##S(const T* FCR_RESTRICT sb, ptrdiff_t m, \
                                        T* FCR_RESTRICT o, ptrdiff_t n, T* FCR_RESTRICT cs) \
{ \
    for (ptrdiff_t j = 0; j < n + K - 1; j++) { \
        FCR_LOADCOL##K(T, sb, m, j); FCR_SORT##K(0); FCR_STORECOL##K(cs, n + K - 1, j); \
    } \
    FCR_COLPTRS##K(T, cs, n + K - 1); \
    for (ptrdiff_t j = 0; j < n; j++) { FCR_CNET##K##x##K(T, c, j); } \
}
#define FCR_LOADCOL3(T, b, m, j) T p0 = b[j], p1 = b[(m) + j], p2 = b[2 * (m) + j]
#define FCR_STORECOL3(c, m, j) c[j] = p0; c[(m) + j] = p1; c[2 * (m) + j] = p2
#define FCR_COLPTRS3(T, c, m) const T* FCR_RESTRICT c0 = c; \
    const T* FCR_RESTRICT c1 = c + (m); const T* FCR_RESTRICT c2 = c + 2 * (m)
#define FCR_LOADCOL5(T, b, m, j) T p0 = b[j], p1 = b[(m) + j], p2 = b[2 * (m) + j], \
    p3 = b[3 * (m) + j], p4 = b[4 * (m) + j]
#define FCR_STORECOL5(c, m, j) c[j] = p0; c[(m) + j] = p1; c[2 * (m) + j] = p2; \
    c[3 * (m) + j] = p3; c[4 * (m) + j] = p4
#define FCR_COLPTRS5(T, c, m) const T* FCR_RESTRICT c0 = c; \
    const T* FCR_RESTRICT c1 = c + (m); const T* FCR_RESTRICT c2 = c + 2 * (m); \
    const T* FCR_RESTRICT c3 = c + 3 * (m); const T* FCR_RESTRICT c4 = c + 4 * (m)

FCR_DEFINE_CMED(float, f32, 3)
FCR_DEFINE_CMED(float, f32, 5)
FCR_DEFINE_CMED(double, f64, 3)
FCR_DEFINE_CMED(double, f64, 5)
FCR_DEFINE_CMED(int8_t, i8, 3)
FCR_DEFINE_CMED(int8_t, i8, 5)
FCR_DEFINE_CMED(uint8_t, u8, 3)
FCR_DEFINE_CMED(uint8_t, u8, 5)
FCR_DEFINE_CMED(int16_t, i16, 3)
FCR_DEFINE_CMED(int16_t, i16, 5)
FCR_DEFINE_CMED(uint16_t, u16, 3)
FCR_DEFINE_CMED(uint16_t, u16, 5)
FCR_DEFINE_CMED(int32_t, i32, 3)
FCR_DEFINE_CMED(int32_t, i32, 5)
FCR_DEFINE_CMED(uint32_t, u32, 3)
FCR_DEFINE_CMED(uint32_t, u32, 5)
FCR_DEFINE_CMED(int64_t, i64, 3)
FCR_DEFINE_CMED(int64_t, i64, 5)
FCR_DEFINE_CMED(uint64_t, u64, 3)
FCR_DEFINE_CMED(uint64_t, u64, 5)

/* 1 when k is 3 or 5 and the KxK box median ran, else 0 */
static int fcr_cmed(int tc, int k, const void* sb, ptrdiff_t m, void* o, ptrdiff_t n, void* cs)
{
    if (k != 3 && k != 5) return 0;
    switch (tc) {
    case 0: if (k == 3) fcr_cmed3_f32((const float*)sb, m, (float*)o, n, (float*)cs); else fcr_cmed5_f32((const float*)sb, m, (float*)o, n, (float*)cs); break;
    case 1: if (k == 3) fcr_cmed3_f64((const double*)sb, m, (double*)o, n, (double*)cs); else fcr_cmed5_f64((const double*)sb, m, (double*)o, n, (double*)cs); break;
    case 2: if (k == 3) fcr_cmed3_i8((const int8_t*)sb, m, (int8_t*)o, n, (int8_t*)cs); else fcr_cmed5_i8((const int8_t*)sb, m, (int8_t*)o, n, (int8_t*)cs); break;
    case 3: if (k == 3) fcr_cmed3_u8((const uint8_t*)sb, m, (uint8_t*)o, n, (uint8_t*)cs); else fcr_cmed5_u8((const uint8_t*)sb, m, (uint8_t*)o, n, (uint8_t*)cs); break;
    case 4: if (k == 3) fcr_cmed3_i16((const int16_t*)sb, m, (int16_t*)o, n, (int16_t*)cs); else fcr_cmed5_i16((const int16_t*)sb, m, (int16_t*)o, n, (int16_t*)cs); break;
    case 5: if (k == 3) fcr_cmed3_u16((const uint16_t*)sb, m, (uint16_t*)o, n, (uint16_t*)cs); else fcr_cmed5_u16((const uint16_t*)sb, m, (uint16_t*)o, n, (uint16_t*)cs); break;
    case 6: if (k == 3) fcr_cmed3_i32((const int32_t*)sb, m, (int32_t*)o, n, (int32_t*)cs); else fcr_cmed5_i32((const int32_t*)sb, m, (int32_t*)o, n, (int32_t*)cs); break;
    case 7: if (k == 3) fcr_cmed3_u32((const uint32_t*)sb, m, (uint32_t*)o, n, (uint32_t*)cs); else fcr_cmed5_u32((const uint32_t*)sb, m, (uint32_t*)o, n, (uint32_t*)cs); break;
    case 8: if (k == 3) fcr_cmed3_i64((const int64_t*)sb, m, (int64_t*)o, n, (int64_t*)cs); else fcr_cmed5_i64((const int64_t*)sb, m, (int64_t*)o, n, (int64_t*)cs); break;
    case 9: if (k == 3) fcr_cmed3_u64((const uint64_t*)sb, m, (uint64_t*)o, n, (uint64_t*)cs); else fcr_cmed5_u64((const uint64_t*)sb, m, (uint64_t*)o, n, (uint64_t*)cs); break;
    default: return 0;
    }
    return 1;
}

/* type codes: 0 f32, 1 f64, 2 i8, 3 u8, 4 i16, 5 u16, 6 i32, 7 u32, 8 i64, 9 u64 */
static void fcr_vext(int tc, int is_max, void* o, const void* a, ptrdiff_t n)
{
    if (is_max) {
    switch (tc) {
    case 0: fcr_vmax_f32((float*)o, (const float*)a, n); break;
    case 1: fcr_vmax_f64((double*)o, (const double*)a, n); break;
    case 2: fcr_vmax_i8((int8_t*)o, (const int8_t*)a, n); break;
    case 3: fcr_vmax_u8((uint8_t*)o, (const uint8_t*)a, n); break;
    case 4: fcr_vmax_i16((int16_t*)o, (const int16_t*)a, n); break;
    case 5: fcr_vmax_u16((uint16_t*)o, (const uint16_t*)a, n); break;
    case 6: fcr_vmax_i32((int32_t*)o, (const int32_t*)a, n); break;
    case 7: fcr_vmax_u32((uint32_t*)o, (const uint32_t*)a, n); break;
    case 8: fcr_vmax_i64((int64_t*)o, (const int64_t*)a, n); break;
    case 9: fcr_vmax_u64((uint64_t*)o, (const uint64_t*)a, n); break;
    }
    } else {
    switch (tc) {
    case 0: fcr_vmin_f32((float*)o, (const float*)a, n); break;
    case 1: fcr_vmin_f64((double*)o, (const double*)a, n); break;
    case 2: fcr_vmin_i8((int8_t*)o, (const int8_t*)a, n); break;
    case 3: fcr_vmin_u8((uint8_t*)o, (const uint8_t*)a, n); break;
    case 4: fcr_vmin_i16((int16_t*)o, (const int16_t*)a, n); break;
    case 5: fcr_vmin_u16((uint16_t*)o, (const uint16_t*)a, n); break;
    case 6: fcr_vmin_i32((int32_t*)o, (const int32_t*)a, n); break;
    case 7: fcr_vmin_u32((uint32_t*)o, (const uint32_t*)a, n); break;
    case 8: fcr_vmin_i64((int64_t*)o, (const int64_t*)a, n); break;
    case 9: fcr_vmin_u64((uint64_t*)o, (const uint64_t*)a, n); break;
    }
    }
}
static void fcr_fold(int tc, void* o, const void* x, const ptrdiff_t* off, int cnt, ptrdiff_t n, int is_max)
{
    switch (tc) {
    case 0: fcr_fold_f32((float*)o, (const float*)x, off, cnt, n, is_max); break;
    case 1: fcr_fold_f64((double*)o, (const double*)x, off, cnt, n, is_max); break;
    case 2: fcr_fold_i8((int8_t*)o, (const int8_t*)x, off, cnt, n, is_max); break;
    case 3: fcr_fold_u8((uint8_t*)o, (const uint8_t*)x, off, cnt, n, is_max); break;
    case 4: fcr_fold_i16((int16_t*)o, (const int16_t*)x, off, cnt, n, is_max); break;
    case 5: fcr_fold_u16((uint16_t*)o, (const uint16_t*)x, off, cnt, n, is_max); break;
    case 6: fcr_fold_i32((int32_t*)o, (const int32_t*)x, off, cnt, n, is_max); break;
    case 7: fcr_fold_u32((uint32_t*)o, (const uint32_t*)x, off, cnt, n, is_max); break;
    case 8: fcr_fold_i64((int64_t*)o, (const int64_t*)x, off, cnt, n, is_max); break;
    case 9: fcr_fold_u64((uint64_t*)o, (const uint64_t*)x, off, cnt, n, is_max); break;
    }
}
/* the rank-th smallest of x[off[t] + j] over t < cnt into o[j]; buf holds cnt values */
static void fcr_rank(int tc, const void* x, const ptrdiff_t* off, int cnt, int rank, void* o, ptrdiff_t n, void* buf)
{
    if (cnt == 9 && rank == 4) {
    switch (tc) {
    case 0: fcr_med9_f32((const float*)x, off, (float*)o, n); break;
    case 1: fcr_med9_f64((const double*)x, off, (double*)o, n); break;
    case 2: fcr_med9_i8((const int8_t*)x, off, (int8_t*)o, n); break;
    case 3: fcr_med9_u8((const uint8_t*)x, off, (uint8_t*)o, n); break;
    case 4: fcr_med9_i16((const int16_t*)x, off, (int16_t*)o, n); break;
    case 5: fcr_med9_u16((const uint16_t*)x, off, (uint16_t*)o, n); break;
    case 6: fcr_med9_i32((const int32_t*)x, off, (int32_t*)o, n); break;
    case 7: fcr_med9_u32((const uint32_t*)x, off, (uint32_t*)o, n); break;
    case 8: fcr_med9_i64((const int64_t*)x, off, (int64_t*)o, n); break;
    case 9: fcr_med9_u64((const uint64_t*)x, off, (uint64_t*)o, n); break;
    }
        return;
    }
    if (cnt == 25 && rank == 12) {
    switch (tc) {
    case 0: fcr_med25_f32((const float*)x, off, (float*)o, n); break;
    case 1: fcr_med25_f64((const double*)x, off, (double*)o, n); break;
    case 2: fcr_med25_i8((const int8_t*)x, off, (int8_t*)o, n); break;
    case 3: fcr_med25_u8((const uint8_t*)x, off, (uint8_t*)o, n); break;
    case 4: fcr_med25_i16((const int16_t*)x, off, (int16_t*)o, n); break;
    case 5: fcr_med25_u16((const uint16_t*)x, off, (uint16_t*)o, n); break;
    case 6: fcr_med25_i32((const int32_t*)x, off, (int32_t*)o, n); break;
    case 7: fcr_med25_u32((const uint32_t*)x, off, (uint32_t*)o, n); break;
    case 8: fcr_med25_i64((const int64_t*)x, off, (int64_t*)o, n); break;
    case 9: fcr_med25_u64((const uint64_t*)x, off, (uint64_t*)o, n); break;
    }
        return;
    }
    switch (tc) {
    case 0: fcr_rank_f32((const float*)x, off, cnt, rank, (float*)o, n, (float*)buf); break;
    case 1: fcr_rank_f64((const double*)x, off, cnt, rank, (double*)o, n, (double*)buf); break;
    case 2: fcr_rank_i8((const int8_t*)x, off, cnt, rank, (int8_t*)o, n, (int8_t*)buf); break;
    case 3: fcr_rank_u8((const uint8_t*)x, off, cnt, rank, (uint8_t*)o, n, (uint8_t*)buf); break;
    case 4: fcr_rank_i16((const int16_t*)x, off, cnt, rank, (int16_t*)o, n, (int16_t*)buf); break;
    case 5: fcr_rank_u16((const uint16_t*)x, off, cnt, rank, (uint16_t*)o, n, (uint16_t*)buf); break;
    case 6: fcr_rank_i32((const int32_t*)x, off, cnt, rank, (int32_t*)o, n, (int32_t*)buf); break;
    case 7: fcr_rank_u32((const uint32_t*)x, off, cnt, rank, (uint32_t*)o, n, (uint32_t*)buf); break;
    case 8: fcr_rank_i64((const int64_t*)x, off, cnt, rank, (int64_t*)o, n, (int64_t*)buf); break;
    case 9: fcr_rank_u64((const uint64_t*)x, off, cnt, rank, (uint64_t*)o, n, (uint64_t*)buf); break;
    }
}
static void fcr_herk(int tc, const void* line, void* o, ptrdiff_t n, int k, void* g, void* h, int is_max)
{
    switch (tc) {
    case 0: fcr_herk_f32((const float*)line, (float*)o, n, k, (float*)g, (float*)h, is_max); break;
    case 1: fcr_herk_f64((const double*)line, (double*)o, n, k, (double*)g, (double*)h, is_max); break;
    case 2: fcr_herk_i8((const int8_t*)line, (int8_t*)o, n, k, (int8_t*)g, (int8_t*)h, is_max); break;
    case 3: fcr_herk_u8((const uint8_t*)line, (uint8_t*)o, n, k, (uint8_t*)g, (uint8_t*)h, is_max); break;
    case 4: fcr_herk_i16((const int16_t*)line, (int16_t*)o, n, k, (int16_t*)g, (int16_t*)h, is_max); break;
    case 5: fcr_herk_u16((const uint16_t*)line, (uint16_t*)o, n, k, (uint16_t*)g, (uint16_t*)h, is_max); break;
    case 6: fcr_herk_i32((const int32_t*)line, (int32_t*)o, n, k, (int32_t*)g, (int32_t*)h, is_max); break;
    case 7: fcr_herk_u32((const uint32_t*)line, (uint32_t*)o, n, k, (uint32_t*)g, (uint32_t*)h, is_max); break;
    case 8: fcr_herk_i64((const int64_t*)line, (int64_t*)o, n, k, (int64_t*)g, (int64_t*)h, is_max); break;
    case 9: fcr_herk_u64((const uint64_t*)line, (uint64_t*)o, n, k, (uint64_t*)g, (uint64_t*)h, is_max); break;
    }
}
static void fcr_gather(int tc, void* line, const void* src, const ptrdiff_t* idx, ptrdiff_t m, ptrdiff_t stride, const void* cval)
{
    switch (tc) {
    case 0: fcr_gather_f32((float*)line, (const float*)src, idx, m, stride, *(const float*)cval); break;
    case 1: fcr_gather_f64((double*)line, (const double*)src, idx, m, stride, *(const double*)cval); break;
    case 2: fcr_gather_i8((int8_t*)line, (const int8_t*)src, idx, m, stride, *(const int8_t*)cval); break;
    case 3: fcr_gather_u8((uint8_t*)line, (const uint8_t*)src, idx, m, stride, *(const uint8_t*)cval); break;
    case 4: fcr_gather_i16((int16_t*)line, (const int16_t*)src, idx, m, stride, *(const int16_t*)cval); break;
    case 5: fcr_gather_u16((uint16_t*)line, (const uint16_t*)src, idx, m, stride, *(const uint16_t*)cval); break;
    case 6: fcr_gather_i32((int32_t*)line, (const int32_t*)src, idx, m, stride, *(const int32_t*)cval); break;
    case 7: fcr_gather_u32((uint32_t*)line, (const uint32_t*)src, idx, m, stride, *(const uint32_t*)cval); break;
    case 8: fcr_gather_i64((int64_t*)line, (const int64_t*)src, idx, m, stride, *(const int64_t*)cval); break;
    case 9: fcr_gather_u64((uint64_t*)line, (const uint64_t*)src, idx, m, stride, *(const uint64_t*)cval); break;
    }
}

#endif
