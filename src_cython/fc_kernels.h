/* fastconv's innermost loops in C, compiled once per x86-64 level (target_clones).
 *
 * Included by the .pyx files that use them (``cdef extern from "fc_kernels.h"``). Everything
 * here is ``static``: each extension module gets its own copy and nothing is exported.
 *
 * Why C: a release build must run on any x86-64, so it is compiled without -march=native,
 * and gcc then vectorizes for SSE2 only. ``target_clones`` compiles these few functions for
 * x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA) and the baseline, and the dynamic loader picks
 * one for the CPU at hand (an ifunc). BUILD-NOTES.md measured this as fast as -march=native,
 * and it never dies with SIGILL on an older CPU. The accumulators are GCC vector types
 * (``vector_size(64)``), which gcc lowers to one zmm, two ymm or four xmm registers per
 * clone, so the register blocking below is explicit rather than left to the vectorizer.
 * Other compilers (MSVC) get the same arithmetic in plain loops.
 *
 * fc_taps_{f,d}: the register-blocked direct convolution
 *
 *     acc[f * L + q] = bias[f] + sum_{t < R} w[f * ldw + t] * src[off[t] + q]
 *
 * for filters f < nk and positions q < L. ``src`` is a flat line (image rows laid end to
 * end, ``Wp`` apart, so a kernel tap at (c, i, j) is the fixed offset ``off[t]``), and
 * ``acc`` holds the outputs on the same flat grid. Filters go four (or two, or one) at a
 * time: one load of the input feeds four multiply-adds, and the accumulators of a block of
 * positions stay in registers over all R taps. Each output receives its taps in the order
 * t = 0, 1, ..., R - 1 after the bias, whatever the blocking: results do not depend on the
 * thread count or on where a block starts.
 *
 * The caller guarantees that every ``src[off[t] + q]`` (t < R, q < L) is readable.
 */
#ifndef FASTCONV_FC_KERNELS_H
#define FASTCONV_FC_KERNELS_H

#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__) && defined(__ELF__) && !defined(__clang__) \
    && !defined(FASTCONV_NO_CLONES)
#define FC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FC_CLONES
#endif

#if defined(__GNUC__)
#define FC_VECTOR 1
#define FC_INLINE static inline __attribute__((always_inline))
#define FC_RESTRICT __restrict__
#else
#define FC_VECTOR 0
#define FC_INLINE static __inline
#define FC_RESTRICT
#endif

#define FC_VBYTES 64

/* FC_WIDE: the AVX-512 build of the kernels with eight accumulators, taken when the CPU has
 * all of x86-64-v4 (as the target_clones resolver checks it; gcc >= 12 names the level) and
 * FASTCONV_NO_WIDE is not set in the environment (the tests use it to run both builds on
 * one machine). Checked once; elsewhere fc_wide() is 0. */
#if defined(__GNUC__) && __GNUC__ >= 12 && defined(__x86_64__) && defined(__ELF__) \
    && !defined(__clang__) && !defined(FASTCONV_NO_CLONES)
#include <stdlib.h>
#define FC_WIDE __attribute__((target("arch=x86-64-v4")))
static int fc_wide(void)
{
    static int wide = -1; /* threads may race to fill it in: all store the same answer */
    int w = __atomic_load_n(&wide, __ATOMIC_RELAXED);
    if (w < 0) {
        const char* no = getenv("FASTCONV_NO_WIDE");
        __builtin_cpu_init();
        w = __builtin_cpu_supports("x86-64-v4") && !(no && *no && *no != '0');
        __atomic_store_n(&wide, w, __ATOMIC_RELAXED);
    }
    return w;
}
#else
#define FC_WIDE
static int fc_wide(void) { return 0; }
#endif

#if FC_VECTOR
typedef float fc_vf __attribute__((vector_size(FC_VBYTES)));
typedef float fc_vf_u __attribute__((vector_size(FC_VBYTES), aligned(4), may_alias));
typedef double fc_vd __attribute__((vector_size(FC_VBYTES)));
typedef double fc_vd_u __attribute__((vector_size(FC_VBYTES), aligned(8), may_alias));
#endif

/* M (<= QB) positions from q0, in plain loops on a stack block: the tail of the vector
 * kernels, and the whole of the fallback. */
#define FC_BLOCK(T, KB, QB, M)                                                               \
    do {                                                                                     \
        T a_[(KB) * (QB)];                                                                   \
        ptrdiff_t m_ = (M), f_, v_, t_;                                                      \
        for (f_ = 0; f_ < (KB); f_++)                                                        \
            for (v_ = 0; v_ < m_; v_++) a_[f_ * (QB) + v_] = bias[f_];                       \
        for (t_ = 0; t_ < R; t_++) {                                                         \
            const T* xs_ = src + off[t_] + q0;                                               \
            for (f_ = 0; f_ < (KB); f_++) {                                                  \
                T wv_ = w[f_ * ldw + t_];                                                    \
                for (v_ = 0; v_ < m_; v_++) a_[f_ * (QB) + v_] += wv_ * xs_[v_];             \
            }                                                                                \
        }                                                                                    \
        for (f_ = 0; f_ < (KB); f_++)                                                        \
            for (v_ = 0; v_ < m_; v_++) acc[f_ * L + q0 + v_] = a_[f_ * (QB) + v_];          \
    } while (0)

#if FC_VECTOR
/* KB filters x NV vectors of positions, accumulators in registers. */
#define FC_DEFINE_BLOCK(T, SUF, VT, VTU, KB, NV)                                             \
    FC_INLINE void fc_blk##KB##x##NV##_##SUF(const T* FC_RESTRICT src, const ptrdiff_t* off,        \
                                      ptrdiff_t R, const T* FC_RESTRICT w, ptrdiff_t ldw,    \
                                      const T* bias, T* FC_RESTRICT acc, ptrdiff_t L)        \
    {                                                                                        \
        enum { VL = FC_VBYTES / sizeof(T), QB = (NV) * VL };                                 \
        ptrdiff_t q0 = 0, t;                                                                 \
        int f, v;                                                                            \
        if (L < QB) {                                                                        \
            FC_BLOCK(T, KB, QB, L);                                                          \
            return;                                                                          \
        }                                                                                    \
        for (;;) {                                                                           \
            VT a[KB][NV];                                                                    \
            for (f = 0; f < (KB); f++)                                                       \
                for (v = 0; v < (NV); v++) a[f][v] = (VT){0} + bias[f];                      \
            for (t = 0; t < R; t++) {                                                        \
                const T* xs = src + off[t] + q0;                                             \
                VT xv[NV];                                                                   \
                for (v = 0; v < (NV); v++) xv[v] = *(const VTU*)(xs + v * VL);               \
                for (f = 0; f < (KB); f++) {                                                 \
                    T wv = w[f * ldw + t];                                                   \
                    for (v = 0; v < (NV); v++) a[f][v] += wv * xv[v];                        \
                }                                                                            \
            }                                                                                \
            for (f = 0; f < (KB); f++)                                                       \
                for (v = 0; v < (NV); v++) *(VTU*)(acc + f * L + q0 + v * VL) = a[f][v];     \
            if (q0 + QB >= L) break;                                                         \
            /* the last block ends at L, overlapping the one before: positions computed */   \
            /* twice get the same value (same taps, same order) */                           \
            q0 = q0 + 2 * QB <= L ? q0 + QB : L - QB;                                        \
        }                                                                                    \
    }
#else
#define FC_DEFINE_BLOCK(T, SUF, VT, VTU, KB, NV)                                             \
    FC_INLINE void fc_blk##KB##x##NV##_##SUF(const T* src, const ptrdiff_t* off, ptrdiff_t R,       \
                                      const T* w, ptrdiff_t ldw, const T* bias, T* acc,      \
                                      ptrdiff_t L)                                           \
    {                                                                                        \
        enum { QB = 16 * (NV) };                                                             \
        ptrdiff_t q0;                                                                        \
        for (q0 = 0; q0 < L; q0 += QB)                                                       \
            FC_BLOCK(T, KB, QB, (L - q0 < QB ? L - q0 : QB));                                \
    }
#endif

/* fc_taps: all nk filters, four at a time, then two, then one. Four filters take one vector
 * of positions (4 accumulators) on AVX2 and older, where 16 ymm registers hold no more, and
 * two vectors (8 accumulators: twice the independent multiply-adds in flight, half the weight
 * broadcasts per multiply-add) with AVX-512's 32 zmm registers. */
#define FC_DEFINE_TAPS(T, SUF, VT, VTU)                                                      \
    FC_DEFINE_BLOCK(T, SUF, VT, VTU, 4, 1)                                                   \
    FC_DEFINE_BLOCK(T, SUF, VT, VTU, 4, 2)                                                   \
    FC_DEFINE_BLOCK(T, SUF, VT, VTU, 2, 2)                                                   \
    FC_DEFINE_BLOCK(T, SUF, VT, VTU, 1, 4)                                                   \
    /* filters f.. nk - 1 (fewer than four), two at a time, then one */                      \
    FC_INLINE void fc_rest_##SUF(const T* src, const ptrdiff_t* off, ptrdiff_t R,            \
                                 const T* w, ptrdiff_t ldw, const T* bias, ptrdiff_t f,      \
                                 ptrdiff_t nk, T* acc, ptrdiff_t L)                          \
    {                                                                                        \
        for (; f + 2 <= nk; f += 2)                                                          \
            fc_blk2x2_##SUF(src, off, R, w + f * ldw, ldw, bias + f, acc + f * L, L);        \
        for (; f < nk; f++)                                                                  \
            fc_blk1x4_##SUF(src, off, R, w + f * ldw, ldw, bias + f, acc + f * L, L);        \
    }                                                                                        \
    FC_CLONES static void fc_taps4_##SUF(const T* src, const ptrdiff_t* off, ptrdiff_t R,    \
                                         const T* w, ptrdiff_t ldw, const T* bias,           \
                                         ptrdiff_t nk, T* acc, ptrdiff_t L)                  \
    {                                                                                        \
        ptrdiff_t f = 0;                                                                     \
        for (; f + 4 <= nk; f += 4)                                                          \
            fc_blk4x1_##SUF(src, off, R, w + f * ldw, ldw, bias + f, acc + f * L, L);        \
        fc_rest_##SUF(src, off, R, w, ldw, bias, f, nk, acc, L);                             \
    }                                                                                        \
    FC_WIDE static void fc_taps8_##SUF(const T* src, const ptrdiff_t* off, ptrdiff_t R,      \
                                       const T* w, ptrdiff_t ldw, const T* bias,             \
                                       ptrdiff_t nk, T* acc, ptrdiff_t L)                    \
    {                                                                                        \
        ptrdiff_t f = 0;                                                                     \
        if (L < 2 * (ptrdiff_t)(FC_VBYTES / sizeof(T))) /* too short for two vectors */      \
            for (; f + 4 <= nk; f += 4)                                                      \
                fc_blk4x1_##SUF(src, off, R, w + f * ldw, ldw, bias + f, acc + f * L, L);    \
        for (; f + 4 <= nk; f += 4)                                                          \
            fc_blk4x2_##SUF(src, off, R, w + f * ldw, ldw, bias + f, acc + f * L, L);        \
        fc_rest_##SUF(src, off, R, w, ldw, bias, f, nk, acc, L);                             \
    }                                                                                        \
    static void fc_taps_##SUF(const T* src, const ptrdiff_t* off, ptrdiff_t R, const T* w,   \
                              ptrdiff_t ldw, const T* bias, ptrdiff_t nk, T* acc,            \
                              ptrdiff_t L)                                                   \
    {                                                                                        \
        if (fc_wide())                                                                       \
            fc_taps8_##SUF(src, off, R, w, ldw, bias, nk, acc, L);                           \
        else                                                                                 \
            fc_taps4_##SUF(src, off, R, w, ldw, bias, nk, acc, L);                           \
    }

/* fc_rows: copy ``rows`` rows of ``n`` elements, ``sld`` apart in src and ``dld`` in dst: one
 * call per block instead of a memcpy per row (the rows are short: a call and its size
 * dispatch cost as much as the copy). */
#define FC_DEFINE_ROWS(T, SUF, VT, VTU)                                                      \
    FC_CLONES static void fc_rows_##SUF(T* FC_RESTRICT dst, ptrdiff_t dld,                   \
                                        const T* FC_RESTRICT src, ptrdiff_t sld,             \
                                        ptrdiff_t rows, ptrdiff_t n)                         \
    {                                                                                        \
        enum { VL = FC_VBYTES / sizeof(T) };                                                 \
        ptrdiff_t r, q;                                                                      \
        for (r = 0; r < rows; r++) {                                                         \
            T* d = dst + r * dld;                                                            \
            const T* s = src + r * sld;                                                      \
            q = 0;                                                                           \
            if (FC_VECTOR)                                                                   \
                for (; q + VL <= n; q += VL) *(VTU*)(d + q) = *(const VTU*)(s + q);          \
            for (; q < n; q++) d[q] = s[q];                                                  \
        }                                                                                    \
    }

/* fc_frame: ``rin`` rows of ``Wp`` elements from an H x W plane, framed by zeros: dst row r
 * holds src row r + ih0 shifted right by pl (zero where that falls outside the plane). */
#define FC_DEFINE_FRAME(T, SUF, VT, VTU)                                                     \
    FC_CLONES static void fc_frame_##SUF(T* FC_RESTRICT dst, ptrdiff_t Wp,                   \
                                         const T* FC_RESTRICT src, ptrdiff_t H, ptrdiff_t W, \
                                         ptrdiff_t ih0, ptrdiff_t rin, ptrdiff_t pl)         \
    {                                                                                        \
        enum { VL = FC_VBYTES / sizeof(T) };                                                 \
        ptrdiff_t lo = pl > 0 ? pl : 0, hi = pl + W < Wp ? pl + W : Wp, r, q;                \
        if (hi < lo) hi = lo;                                                                \
        for (r = 0; r < rin; r++) {                                                          \
            T* d = dst + r * Wp;                                                             \
            ptrdiff_t ih = ih0 + r;                                                          \
            if (ih < 0 || ih >= H) {                                                         \
                for (q = 0; q < Wp; q++) d[q] = 0;                                           \
                continue;                                                                    \
            }                                                                                \
            const T* s = src + ih * W - pl;                                                  \
            for (q = 0; q < lo; q++) d[q] = 0;                                               \
            q = lo;                                                                          \
            if (FC_VECTOR)                                                                   \
                for (; q + VL <= hi; q += VL) *(VTU*)(d + q) = *(const VTU*)(s + q);         \
            for (; q < hi; q++) d[q] = s[q];                                                 \
            for (q = hi; q < Wp; q++) d[q] = 0;                                              \
        }                                                                                    \
    }

/* every kernel above, for one element type */
#define FC_DEFINE_ALL(T, SUF, VT, VTU)                                                       \
    FC_DEFINE_FRAME(T, SUF, VT, VTU)                                                         \
    FC_DEFINE_ROWS(T, SUF, VT, VTU)                                                          \
    FC_DEFINE_TAPS(T, SUF, VT, VTU)

#if FC_VECTOR
FC_DEFINE_ALL(float, f, fc_vf, fc_vf_u)
FC_DEFINE_ALL(double, d, fc_vd, fc_vd_u)
#else
FC_DEFINE_ALL(float, f, float, float)
FC_DEFINE_ALL(double, d, double, double)
#endif

#endif /* FASTCONV_FC_KERNELS_H */
