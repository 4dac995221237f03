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

#include <math.h>
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

/* fc_plane: rows [oh0, oh1) of the stride-1 correlation of one H x W plane with one kh x kw
 * kernel (dilation dh, dw; padding pt on top, pl on the left; zeros outside the plane), plus
 * ``bias``, written to ``out`` (rows ``Wo`` apart, ``out`` at row oh0). The input is read in
 * place: no framed copy and no accumulator buffer, so the plane is read once and the output
 * written once. This is the depthwise kernel, one filter per input plane.
 *
 * Register blocking: RB output rows x NV vectors of columns stay in registers while the
 * block's input rows stream past; each input row's vector load feeds the up to RB output
 * rows it belongs to (a 3x3 kernel and RB = 4: 6 input rows x 3 taps of loads for 36
 * multiply-adds per vector, against 9 loads for 9 done row by row). The vectors cover
 * [0, Wo) at columns 0, VL, 2 VL, ... and the last one ends at Wo (overlapping the one
 * before, computed twice alike). A vector whose window crosses the plane's left or right
 * edge loads VL columns inside the plane and shifts them into place with zeros
 * (``__builtin_shuffle``), so padding costs no scalar loop. Taps on input rows outside the
 * plane are skipped: the caller sends only finite kernels (an infinite weight times the
 * zero padding must give NaN). Each output gets the bias, then its taps in (i, j) order:
 * the same sum for any row blocking, any wide or narrow build. Needs W >= VL, Wo >= VL
 * and kw <= FC_PLANE_MAX_KW; otherwise (and without GNU C vectors) plain loops. */
#define FC_PLANE_MAX_KW 16

/* rows oh .. oh + nr - 1 (nr <= RB) at the NV vector columns pos[]. A clean block (EDGE 0)
 * has every tap of every vector inside the plane's columns and loads at pos[v] - pl + j dw;
 * an edge block loads at base[v * FC_PLANE_MAX_KW + j] and shifts the lanes by
 * sft[v * FC_PLANE_MAX_KW + j] (idx[sft + VL] is that shift's shuffle, zeros coming in). */
#define FC_DEFINE_PLANE_BLOCK(T, SUF, VT, VTU, MT, RB, NV, EDGE)                             \
    FC_INLINE void fc_pblk##RB##x##NV##e##EDGE##_##SUF(                                      \
        const T* FC_RESTRICT x, ptrdiff_t H, ptrdiff_t W, const T* FC_RESTRICT w,            \
        ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t pt, ptrdiff_t pl,  \
        T bias, T* FC_RESTRICT out, ptrdiff_t Wo, ptrdiff_t oh, ptrdiff_t nr,                \
        const ptrdiff_t* pos, const ptrdiff_t* base, const int* sft, const MT* idx)          \
    {                                                                                        \
        enum { VL = FC_VBYTES / sizeof(T) };                                                 \
        VT a[RB][NV], xv[NV];                                                                \
        const VT zero = (VT){0};                                                             \
        ptrdiff_t wrow[RB], p[NV], ih, ihlo = oh - pt;                                       \
        ptrdiff_t ihhi = oh + nr - 1 - pt + (kh - 1) * dh, j;                                \
        int r, v;                                                                            \
        for (v = 0; v < (NV); v++) p[v] = pos[v] - pl;                                       \
        for (r = 0; r < (RB); r++)                                                           \
            for (v = 0; v < (NV); v++) a[r][v] = zero + bias;                                \
        if (ihlo < 0) ihlo = 0;                                                              \
        if (ihhi > H - 1) ihhi = H - 1;                                                      \
        for (ih = ihlo; ih <= ihhi; ih++) {                                                  \
            const T* xr = x + ih * W;                                                        \
            /* the kernel row each output row of the block takes from input row ih */        \
            for (r = 0; r < (RB); r++) {                                                     \
                ptrdiff_t d = ih - (oh + r - pt);                                            \
                wrow[r] = (r < nr && d >= 0 && d % dh == 0 && d / dh < kh)                   \
                              ? d / dh * kw : -1;                                            \
            }                                                                                \
            for (j = 0; j < kw; j++) {                                                       \
                for (v = 0; v < (NV); v++) {                                                 \
                    if (EDGE) {                                                              \
                        int m = sft[v * FC_PLANE_MAX_KW + j];                                \
                        VT u = *(const VTU*)(xr + base[v * FC_PLANE_MAX_KW + j]);            \
                        xv[v] = m == 0 ? u : __builtin_shuffle(u, zero, idx[m + VL]);        \
                    } else {                                                                 \
                        xv[v] = *(const VTU*)(xr + p[v] + j * dw);                           \
                    }                                                                        \
                }                                                                            \
                for (r = 0; r < (RB); r++) {                                                 \
                    if (wrow[r] < 0) continue;                                               \
                    T wv = w[wrow[r] + j];                                                   \
                    for (v = 0; v < (NV); v++) a[r][v] += wv * xv[v];                        \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
        for (r = 0; r < (RB); r++) {                                                         \
            if (r >= nr) break;                                                              \
            for (v = 0; v < (NV); v++) *(VTU*)(out + r * Wo + pos[v]) = a[r][v];             \
        }                                                                                    \
    }

/* all rows [oh0, oh1) of the vectors k0 ... k0 + nv - 1 (nv <= NV; the last repeated to
 * fill the block) */
#define FC_PLANE_RUN(SUF, RB, NV, EDGE)                                                      \
    do {                                                                                     \
        ptrdiff_t oh_;                                                                       \
        int v_;                                                                              \
        for (v_ = 0; v_ < (NV); v_++) {                                                      \
            ptrdiff_t kv_ = k0 + (v_ < nv ? v_ : nv - 1);                                    \
            pos[v_] = kv_ * VL < Wo - VL ? kv_ * VL : Wo - VL;                               \
            if (EDGE)                                                                        \
                for (j = 0; j < kw; j++) {                                                   \
                    c = pos[v_] - pl + j * dw; /* the first column this tap reads */         \
                    b = c < 0 ? 0 : c > W - VL ? W - VL : c;                                 \
                    base[v_ * FC_PLANE_MAX_KW + j] = b;                                      \
                    c -= b; /* a shift of VL or more leaves only zeros */                    \
                    sft[v_ * FC_PLANE_MAX_KW + j] = (int)(c < -VL ? -VL : c > VL ? VL : c);  \
                }                                                                            \
        }                                                                                    \
        for (oh_ = oh0; oh_ < oh1; oh_ += (RB))                                              \
            fc_pblk##RB##x##NV##e##EDGE##_##SUF(                                             \
                x, H, W, w, kh, kw, dh, dw, pt, pl, bias, out + (oh_ - oh0) * Wo, Wo, oh_,   \
                oh1 - oh_ < (RB) ? oh1 - oh_ : (RB), pos, base, sft, idx);                   \
    } while (0)

/* the vectors NV at a time (three left of four: one computed twice; then two, one), each
 * block clean when all its vectors are, [kc0, kc1) */
#define FC_PLANE_PICK(SUF, RB, NB)                                                           \
    do {                                                                                     \
        if (k0 >= kc0 && k0 + nv <= kc1)                                                     \
            FC_PLANE_RUN(SUF, RB, NB, 0);                                                    \
        else                                                                                 \
            FC_PLANE_RUN(SUF, RB, NB, 1);                                                    \
    } while (0)

#define FC_DEFINE_PLANE_VEC(T, SUF, VT, VTU, MT, ATTR, RB, NV)                               \
    FC_DEFINE_PLANE_BLOCK(T, SUF, VT, VTU, MT, RB, NV, 0)                                    \
    FC_DEFINE_PLANE_BLOCK(T, SUF, VT, VTU, MT, RB, NV, 1)                                    \
    FC_DEFINE_PLANE_BLOCK(T, SUF, VT, VTU, MT, RB, 1, 0)                                     \
    FC_DEFINE_PLANE_BLOCK(T, SUF, VT, VTU, MT, RB, 1, 1)                                     \
    ATTR static void fc_plane##RB##_##SUF(const T* x, ptrdiff_t H, ptrdiff_t W, const T* w,  \
                                        ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t dh,            \
                                        ptrdiff_t dw, ptrdiff_t pt, ptrdiff_t pl, T bias,    \
                                        T* out, ptrdiff_t Wo, ptrdiff_t oh0, ptrdiff_t oh1)  \
    {                                                                                        \
        enum { VL = FC_VBYTES / sizeof(T) };                                                 \
        MT idx[2 * VL + 1];                                                                  \
        ptrdiff_t pos[NV], base[(NV) * FC_PLANE_MAX_KW], nvec = (Wo + VL - 1) / VL;          \
        ptrdiff_t k0, kc0 = nvec, kc1 = nvec, j, c, b, span = (kw - 1) * dw;                 \
        int sft[(NV) * FC_PLANE_MAX_KW], l, nv;                                              \
        /* idx[m + VL]: lane l takes lane l + m, zero when that is outside the vector */     \
        for (c = 0; c < 2 * VL + 1; c++)                                                     \
            for (l = 0; l < VL; l++) {                                                       \
                ptrdiff_t src = l + c - VL;                                                  \
                idx[c][l] = src >= 0 && src < VL ? src : VL;                                 \
            }                                                                                \
        /* clean: pos >= pl and pos - pl + span + VL <= W; pos grows with the index */       \
        for (k0 = 0; k0 < nvec; k0++) {                                                      \
            c = k0 * VL < Wo - VL ? k0 * VL : Wo - VL;                                       \
            if (c >= pl && c - pl + span + VL <= W) {                                        \
                if (kc0 == nvec) kc0 = k0;                                                   \
                kc1 = k0 + 1;                                                                \
            }                                                                                \
        }                                                                                    \
        if (kc0 == nvec) kc0 = kc1 = 0;                                                      \
        for (k0 = 0; k0 < nvec; k0 += nv) {                                                  \
            nv = nvec - k0 >= (NV) ? (NV) : (int)(nvec - k0);                                \
            if (nv > 2 || nv == (NV))                                                        \
                FC_PLANE_PICK(SUF, RB, NV);                                                  \
            else if (nv == 2)                                                                \
                FC_PLANE_PICK(SUF, RB, 2);                                                   \
            else                                                                             \
                FC_PLANE_PICK(SUF, RB, 1);                                                   \
        }                                                                                    \
    }

/* plain loops: any size, and the build without GNU C vectors */
#define FC_DEFINE_PLANE_LOOP(T, SUF)                                                         \
    static void fc_plane_loop_##SUF(const T* x, ptrdiff_t H, ptrdiff_t W, const T* w,        \
                                    ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t dh, ptrdiff_t dw,  \
                                    ptrdiff_t pt, ptrdiff_t pl, T bias, T* out,              \
                                    ptrdiff_t Wo, ptrdiff_t oh0, ptrdiff_t oh1)              \
    {                                                                                        \
        ptrdiff_t oh, ow, i, j;                                                              \
        for (oh = oh0; oh < oh1; oh++)                                                       \
            for (ow = 0; ow < Wo; ow++) {                                                    \
                T a = bias;                                                                  \
                for (i = 0; i < kh; i++) {                                                   \
                    ptrdiff_t ih = oh - pt + i * dh;                                         \
                    if (ih < 0 || ih >= H) continue;                                         \
                    for (j = 0; j < kw; j++) {                                               \
                        ptrdiff_t iw = ow - pl + j * dw;                                     \
                        if (iw >= 0 && iw < W) a += w[i * kw + j] * x[ih * W + iw];          \
                    }                                                                        \
                }                                                                            \
                out[(oh - oh0) * Wo + ow] = a;                                               \
            }                                                                                \
    }

#if FC_VECTOR
typedef int fc_vi __attribute__((vector_size(FC_VBYTES)));
typedef long long fc_vl __attribute__((vector_size(FC_VBYTES)));
/* the narrow build: 2 rows x 2 vectors (eight ymm accumulators in AVX2); the wide one,
 * AVX-512 only: 4 rows x 4 vectors (16 of the 32 zmm registers) */
#define FC_DEFINE_PLANE(T, SUF, VT, VTU, MT)                                                 \
    FC_DEFINE_PLANE_LOOP(T, SUF)                                                             \
    FC_DEFINE_PLANE_VEC(T, SUF, VT, VTU, MT, FC_CLONES, 2, 2)                                \
    FC_DEFINE_PLANE_BLOCK(T, SUF, VT, VTU, MT, 4, 2, 0)                                      \
    FC_DEFINE_PLANE_BLOCK(T, SUF, VT, VTU, MT, 4, 2, 1)                                      \
    FC_DEFINE_PLANE_VEC(T, SUF, VT, VTU, MT, FC_WIDE, 4, 4)                                  \
    static void fc_plane_##SUF(const T* x, ptrdiff_t H, ptrdiff_t W, const T* w,             \
                               ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t dh, ptrdiff_t dw,       \
                               ptrdiff_t pt, ptrdiff_t pl, T bias, T* out, ptrdiff_t Wo,     \
                               ptrdiff_t oh0, ptrdiff_t oh1)                                 \
    {                                                                                        \
        enum { VL = FC_VBYTES / sizeof(T) };                                                 \
        if (W < VL || Wo < VL || kw > FC_PLANE_MAX_KW)                                       \
            fc_plane_loop_##SUF(x, H, W, w, kh, kw, dh, dw, pt, pl, bias, out, Wo, oh0,     \
                                oh1);                                                        \
        else if (fc_wide())                                                                  \
            fc_plane4_##SUF(x, H, W, w, kh, kw, dh, dw, pt, pl, bias, out, Wo, oh0, oh1);    \
        else                                                                                 \
            fc_plane2_##SUF(x, H, W, w, kh, kw, dh, dw, pt, pl, bias, out, Wo, oh0, oh1);    \
    }
FC_DEFINE_PLANE(float, f, fc_vf, fc_vf_u, fc_vi)
FC_DEFINE_PLANE(double, d, fc_vd, fc_vd_u, fc_vl)
#else
#define FC_DEFINE_PLANE(T, SUF)                                                              \
    FC_DEFINE_PLANE_LOOP(T, SUF)                                                             \
    static void fc_plane_##SUF(const T* x, ptrdiff_t H, ptrdiff_t W, const T* w,             \
                               ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t dh, ptrdiff_t dw,       \
                               ptrdiff_t pt, ptrdiff_t pl, T bias, T* out, ptrdiff_t Wo,     \
                               ptrdiff_t oh0, ptrdiff_t oh1)                                 \
    {                                                                                        \
        fc_plane_loop_##SUF(x, H, W, w, kh, kw, dh, dw, pt, pl, bias, out, Wo, oh0, oh1);   \
    }
FC_DEFINE_PLANE(float, f)
FC_DEFINE_PLANE(double, d)
#endif

/* fc_wino_weights: Winograd F(2x2, 3x3)'s transform of one filter's C kernels,
 * U[xi * ld + c] = (G g_c G^T)[xi] for g_c = g[9 c .. 9 c + 8] (xi = 4 i + j), with
 * G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]. VL channels at a time:
 * their 9 x VL weights transposed through a stack block, then the transform on vectors
 * and 16 vector stores (gcc does not vectorize the stride-9 loads by itself); the same
 * arithmetic, in the same order, for the last channels in plain loops. */
#define FC_WINO_G(T, q, e) /* (G g G^T), row i, column j, from q(e) = g[e] */              \
    do {                                                                                     \
        int i_, j_;                                                                          \
        T t_[4][3];                                                                          \
        for (j_ = 0; j_ < 3; j_++) {                                                         \
            t_[0][j_] = q(j_);                                                               \
            t_[1][j_] = (q(j_) + q(3 + j_) + q(6 + j_)) * h;                                 \
            t_[2][j_] = (q(j_) - q(3 + j_) + q(6 + j_)) * h;                                 \
            t_[3][j_] = q(6 + j_);                                                           \
        }                                                                                    \
        for (i_ = 0; i_ < 4; i_++) {                                                         \
            e(4 * i_, t_[i_][0]);                                                            \
            e(4 * i_ + 1, (t_[i_][0] + t_[i_][1] + t_[i_][2]) * h);                          \
            e(4 * i_ + 2, (t_[i_][0] - t_[i_][1] + t_[i_][2]) * h);                          \
            e(4 * i_ + 3, t_[i_][2]);                                                        \
        }                                                                                    \
    } while (0)

#define FC_DEFINE_WINO_WEIGHTS(T, SUF, VT, VTU)                                              \
    FC_CLONES static void fc_wino_weights_##SUF(const T* FC_RESTRICT g, ptrdiff_t C,         \
                                                T* FC_RESTRICT U, ptrdiff_t ld)              \
    {                                                                                        \
        enum { VL = FC_VBYTES / sizeof(T) };                                                 \
        typedef VTU fc_vtu_;                                                                 \
        ptrdiff_t c = 0;                                                                     \
        if (FC_VECTOR) {                                                                     \
            const VT h = (VT){0} + (T)0.5;                                                   \
            for (; c + VL <= C; c += VL) {                                                   \
                VT q9[9];                                                                    \
                T tb[9][VL];                                                                 \
                int l, e;                                                                    \
                for (l = 0; l < VL; l++)                                                     \
                    for (e = 0; e < 9; e++) tb[e][l] = g[9 * (c + l) + e];                   \
                for (e = 0; e < 9; e++) memcpy(&q9[e], tb[e], sizeof(q9[e]));                \
                FC_WINO_G(VT, FC_WQV, FC_WEV);                                               \
            }                                                                                \
        }                                                                                    \
        {                                                                                    \
            const T h = (T)0.5;                                                              \
            for (; c < C; c++) {                                                             \
                const T* q1 = g + 9 * c;                                                     \
                FC_WINO_G(T, FC_WQS, FC_WES);                                                \
            }                                                                                \
        }                                                                                    \
    }
#define FC_WQV(k) q9[k]
#define FC_WEV(xi, val) (*(fc_vtu_*)(U + (xi) * ld + c) = (val))
#define FC_WQS(k) q1[k]
#define FC_WES(xi, val) (U[(xi) * ld + c] = (val))
#if FC_VECTOR
FC_DEFINE_WINO_WEIGHTS(float, f, fc_vf, fc_vf_u)
FC_DEFINE_WINO_WEIGHTS(double, d, fc_vd, fc_vd_u)
#else
FC_DEFINE_WINO_WEIGHTS(float, f, float, float)
FC_DEFINE_WINO_WEIGHTS(double, d, double, double)
#endif

/* fc_absmax: the largest |x[i]| of n values (0 when n is 0); +inf if one is infinite, NaN
 * if one is NaN. The scan behind Winograd's run-time check (_cy_conv._wino_fits) and the
 * finite-weights checks: per vector one mask, one compare and one blend, no branch, so it
 * runs at memory speed. A maximum is exact and independent of order, so any split of the
 * array (threads, chunks) gives the same answer. */
#if FC_VECTOR
#define FC_DEFINE_ABSMAX(T, SUF, VT, VTU, MT)                                                \
    FC_CLONES static T fc_absmax_##SUF(const T* x, ptrdiff_t n)                              \
    {                                                                                        \
        enum { VL = FC_VBYTES / sizeof(T) };                                                 \
        const MT sgn = (MT)(-(VT){0}); /* -0.0: the sign bits alone */                       \
        VT vm = {0};                                                                         \
        MT nan = {0};                                                                        \
        T m = 0;                                                                             \
        ptrdiff_t i = 0;                                                                     \
        int l, bad = 0;                                                                      \
        for (; i + VL <= n; i += VL) {                                                       \
            VT a = *(const VTU*)(x + i);                                                     \
            MT gt;                                                                           \
            a = (VT)((MT)a & ~sgn);                                                          \
            gt = a > vm;                                                                     \
            vm = (VT)(((MT)a & gt) | ((MT)vm & ~gt));                                        \
            nan |= a != a;                                                                   \
        }                                                                                    \
        for (l = 0; l < VL; l++) {                                                           \
            bad |= nan[l] != 0;                                                              \
            if (vm[l] > m) m = vm[l];                                                        \
        }                                                                                    \
        for (; i < n; i++) {                                                                 \
            T a = x[i] < 0 ? -x[i] : x[i];                                                   \
            bad |= a != a;                                                                   \
            if (a > m) m = a;                                                                \
        }                                                                                    \
        return bad ? (T)NAN : m;                                                             \
    }
FC_DEFINE_ABSMAX(float, f, fc_vf, fc_vf_u, fc_vi)
FC_DEFINE_ABSMAX(double, d, fc_vd, fc_vd_u, fc_vl)
#else
#define FC_DEFINE_ABSMAX(T, SUF)                                                             \
    static T fc_absmax_##SUF(const T* x, ptrdiff_t n)                                        \
    {                                                                                        \
        T m = 0;                                                                             \
        ptrdiff_t i;                                                                         \
        int bad = 0;                                                                         \
        for (i = 0; i < n; i++) {                                                            \
            T a = x[i] < 0 ? -x[i] : x[i];                                                   \
            bad |= a != a;                                                                   \
            if (a > m) m = a;                                                                \
        }                                                                                    \
        return bad ? (T)NAN : m;                                                             \
    }
FC_DEFINE_ABSMAX(float, f)
FC_DEFINE_ABSMAX(double, d)
#endif

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
