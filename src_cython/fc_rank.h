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
 *   fcr_hrun_S / fcr_vrun_S   running max/min of width k along a line / across k rows
 *   fcr_cmed3_S / fcr_cmed5_S 3x3 / 5x5 box medians of a strip (columns sorted once)
 *   fcr_gather_S              a line gathered through an index map (-1: cval)
 * max is "b > a ? b : a" and min "b < a ? b : a" (a the running value): as maxps/minps.
 * Below them, one dispatcher per kernel (fcr_hrun, fcr_vext, ...) picks the type by its
 * code: 0 f32, 1 f64, 2 i8, 3 u8, 4 i16, 5 u16, 6 i32, 7 u32, 8 i64, 9 u64.
 *
 * Layout: this file holds the compiler switches and the dispatchers; the kernels are plain C
 * functions in fc_rank_body.h (with the median networks that tools/gen_rank_nets.py writes
 * to fc_rank_nets.h), included once per element type, as fc_kernels.h includes
 * fc_kernels_body.h. */
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

#if defined(__GNUC__)
#define FCR_INLINE static inline __attribute__((always_inline))
#else
#define FCR_INLINE static __inline
#endif

/* a is the running value: a NaN in a is kept, a NaN in b is passed over */
#define FCR_MAX(a, b) ((b) > (a) ? (b) : (a))
#define FCR_MIN(a, b) ((b) < (a) ? (b) : (a))

/* The kernels of each element type: one generic body, fc_rank_body.h (with the generated
 * median networks of fc_rank_nets.h), included once per type; it is written in terms of the
 * element type FCR_T and the name macro FCR_NAME, and undefines both at its end. */
#define FCR_T float
#define FCR_NAME(name) name##_f32
#include "fc_rank_body.h"

#define FCR_T double
#define FCR_NAME(name) name##_f64
#include "fc_rank_body.h"

#define FCR_T int8_t
#define FCR_NAME(name) name##_i8
#include "fc_rank_body.h"

#define FCR_T uint8_t
#define FCR_NAME(name) name##_u8
#include "fc_rank_body.h"

#define FCR_T int16_t
#define FCR_NAME(name) name##_i16
#include "fc_rank_body.h"

#define FCR_T uint16_t
#define FCR_NAME(name) name##_u16
#include "fc_rank_body.h"

#define FCR_T int32_t
#define FCR_NAME(name) name##_i32
#include "fc_rank_body.h"

#define FCR_T uint32_t
#define FCR_NAME(name) name##_u32
#include "fc_rank_body.h"

#define FCR_T int64_t
#define FCR_NAME(name) name##_i64
#include "fc_rank_body.h"

#define FCR_T uint64_t
#define FCR_NAME(name) name##_u64
#include "fc_rank_body.h"

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
