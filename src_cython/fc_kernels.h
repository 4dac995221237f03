/* fastconv's innermost loops in C, compiled once per x86-64 level (target_clones).
 *
 * Included by the .pyx files that use them (``cdef extern from "fc_kernels.h"``). Everything
 * here is ``static``: each extension module gets its own copy and nothing is exported.
 *
 * Layout: this file holds what does not depend on the element type (the compiler switches
 * below, fc_wide, the vector types) and includes the kernels' one generic body,
 * fc_kernels_body.h, once for float (names ending in _f) and once for double (_d). The body
 * is plain C written in terms of the element type FC_T and the name macro FC_NAME; no
 * kernel is defined inside a macro, so compiler errors and debuggers point at its lines.
 *
 * Why C: a release build must run on any x86-64, so it is compiled without -march=native,
 * and gcc then vectorizes for SSE2 only. ``target_clones`` compiles the outer kernels for
 * x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA) and the baseline, and the dynamic loader picks
 * one for the CPU at hand (an ifunc). On the Zen 4 dev machine a target_clones row kernel
 * built with plain -O3 ran a 2048 x 2048 float32 correlation with a 7 x 7 kernel in 11.3 ms,
 * against 14.9 ms for -march=native and 20.5 ms for plain -O3; and unlike a -march=native
 * build it does not die with SIGILL on a CPU without AVX-512. The accumulators are GCC
 * vector types, so the register blocking is explicit rather than left to the vectorizer:
 * 64 bytes (one zmm) in the AVX-512 kernels (FC_WIDE), 32 bytes (one ymm, or two xmm in the
 * baseline clone) in all others. A vector wider than the target's registers would live in
 * memory (fc_kernels_body.h says why and what it cost on AVX2). Other compilers (MSVC) get
 * the same arithmetic in plain loops.
 *
 * fc_taps_out_{f,d}: the register-blocked direct convolution
 *
 *     out(f, q) = bias[f] + sum_{t < R} w[f * ldw + t] * src[off[t] + q]
 *
 * for filters f < nk and positions q < L. ``src`` is a flat line (image rows laid end to
 * end, ``Wp`` apart, so a kernel tap at (c, i, j) is the fixed offset ``off[t]``); the sums
 * go from the registers straight to their places in the output (``fc_ogeo`` below; the
 * ``Wp - Wo`` positions between rows are computed and dropped). Filters go eight, four, two
 * or one at a time: one load of the input feeds several multiply-adds, and the
 * accumulators of a block of positions stay in registers over all R taps. Each output
 * receives its taps in the order t = 0, 1, ..., R - 1 after the bias, whatever the
 * blocking: results do not depend on the thread count or on where a block starts.
 *
 * The caller guarantees that every ``src[off[t] + q]`` (t < R, q < L) is readable.
 *
 * The other kernels, for both types: fc_frame_{f,d} (rows of a plane framed by zeros),
 * fc_plane_{f,d} (depthwise: one plane with one kernel, read in place), fc_wino_weights_{f,d}
 * (Winograd F(2x2, 3x3)'s weight transform) and fc_absmax_{f,d} (the largest |x|,
 * NaN-aware). Each is described at its definition in
 * fc_kernels_body.h.
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

/* FC_NO_MEMSET: gcc turns a loop that zeroes a few elements into a call of memset; in
 * fc_frame, whose rows' margins are a few elements wide (a 13 x 13 plane padded by 2),
 * those calls cost 6% of a small layer's time */
#if defined(__GNUC__) && !defined(__clang__)
#define FC_NO_MEMSET __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define FC_NO_MEMSET
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

/* vector bytes: the AVX-512 kernels' (FC_WIDE) and all others' (see fc_kernels_body.h) */
#define FC_WBYTES 64
#define FC_NBYTES 32

/* FC_PLANE_VECTOR: fc_plane's vector build shifts lanes by a run-time mask
 * (__builtin_shuffle), which only gcc has; clang (Apple's included) builds its plain loop. */
#if FC_VECTOR && !defined(__clang__)
#define FC_PLANE_VECTOR 1
#else
#define FC_PLANE_VECTOR 0
#endif

/* FC_WIDE: the AVX-512 build of the kernels with eight accumulators, taken when the CPU has
 * all of x86-64-v4 (as the target_clones resolver checks it; gcc >= 12 names the level) and
 * FASTCONV_NO_WIDE is not set in the environment (the tests use it to run both builds on
 * one machine). Checked once; elsewhere fc_wide() is 0. */
#if defined(__GNUC__) && __GNUC__ >= 12 && defined(__x86_64__) && defined(__ELF__) \
    && !defined(__clang__) && !defined(FASTCONV_NO_CLONES)
#include <stdlib.h>
#include <immintrin.h>
#define FC_WIDE __attribute__((target("arch=x86-64-v4")))
/* FC_WIDE_FLAT: a FC_WIDE function whose calls are all inlined (fc_taps_out's AVX-512
 * build: its masked stores are FC_WIDE_STORE helpers, which a target_clones default build
 * may not inline, so they cannot be always_inline) */
#define FC_WIDE_FLAT __attribute__((target("arch=x86-64-v4"), flatten))
#define FC_WIDE_STORE static inline __attribute__((target("arch=x86-64-v4")))
#define FC_HAVE_WIDE 1
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
#define FC_WIDE_FLAT
#define FC_HAVE_WIDE 0
static int fc_wide(void) { return 0; }
#endif

#if FC_VECTOR
typedef float fc_vf __attribute__((vector_size(FC_WBYTES)));
typedef float fc_vf_u __attribute__((vector_size(FC_WBYTES), aligned(4), may_alias));
typedef double fc_vd __attribute__((vector_size(FC_WBYTES)));
typedef double fc_vd_u __attribute__((vector_size(FC_WBYTES), aligned(8), may_alias));
typedef int fc_vi __attribute__((vector_size(FC_WBYTES)));
typedef long long fc_vl __attribute__((vector_size(FC_WBYTES)));
/* the narrow pass's: one ymm (two xmm in the baseline build) */
typedef float fc_nf __attribute__((vector_size(FC_NBYTES)));
typedef float fc_nf_u __attribute__((vector_size(FC_NBYTES), aligned(4), may_alias));
typedef double fc_nd __attribute__((vector_size(FC_NBYTES)));
typedef double fc_nd_u __attribute__((vector_size(FC_NBYTES), aligned(8), may_alias));
typedef int fc_ni __attribute__((vector_size(FC_NBYTES)));
typedef long long fc_nl __attribute__((vector_size(FC_NBYTES)));
#endif

/* fc_taps_out's output geometry: flat position q (rows Wp apart) is output row q / Wp,
 * column q % Wp when that column is below Wo; filter f's output (row r, column c) is at
 * out[f * ldo + r * ldr + c * ldc]. */
typedef struct {
    ptrdiff_t ldo, ldr, ldc, Wo, Wp;
} fc_ogeo;

/* fc_taps_out's wide register tile: FC_OKB filters (weights packed by fc_pack) x FC_ONV
 * vectors of positions (24 of AVX-512's 32 zmm registers) */
#define FC_OKB 8
#define FC_ONV 3
/* fc_taps_rows (short rows, filters in the vector lanes): rows of FC_RV_MINW to FC_RV_MAXW
 * outputs, at most FC_RV_ACC accumulators a block, a stage of FC_RV_STAGE positions */
#define FC_RV_MINW 4
#define FC_RV_MAXW 12
#define FC_RV_ACC 24
#define FC_RV_STAGE 240

/* fc_plane's vector build handles kernels up to this many columns wide (fc_plane_vec) */
#define FC_PLANE_MAX_KW 16
/* fc_row's register block: this many vectors of outputs (eight ymm accumulators of AVX2's
 * 16); fc_row_block: the outputs of a block (elements of ``itemsize`` bytes), and
 * fc_row_scratch: the scratch (elements) fc_row needs for C channels and a kernel of kw
 * taps dw apart: the zero-framed windows of an edge block (the span they cover, or each
 * tap's block of values when that is shorter), and one block of outputs */
#define FC_ROW_NV 8
/* the mask of a vector's lanes [a, b) (0 <= a <= b <= 16) */
FC_INLINE unsigned fc_lanes(ptrdiff_t a, ptrdiff_t b)
{
    return ((1u << b) - 1u) & ~((1u << a) - 1u);
}

static inline ptrdiff_t fc_row_block(ptrdiff_t itemsize)
{
    return FC_ROW_NV * (FC_NBYTES / itemsize);
}
static inline ptrdiff_t fc_row_scratch(ptrdiff_t C, ptrdiff_t kw, ptrdiff_t dw,
                                       ptrdiff_t itemsize)
{
    const ptrdiff_t tb = fc_row_block(itemsize), span = tb + (kw - 1) * dw;
    return C * (kw * tb < span ? kw * tb : span) + tb;
}

/* Each element type twice (see fc_kernels_body.h): the wide pass (AVX-512's FC_WIDE
 * kernels on 64-byte vectors, names ending in _fw and _dw; only where FC_HAVE_WIDE), then the
 * narrow pass (everything the .pyx files call, on 32-byte vectors: fc_taps_out_f, fc_frame_f,
 * fc_plane_f, fc_wino_weights_f, fc_wino_in_f, fc_absmax_f, ... and the same names ending in
 * _d), whose dispatchers call the wide pass's kernels when fc_wide(). */
#if FC_HAVE_WIDE
#define FC_T float
#define FC_BODY_WIDE 1
#define FC_VBYTES FC_WBYTES
#define FC_NAME(name) name##_fw
#define FC_WNAME(name) name##_fw
#define FC_IS_FLOAT 1
#define FC_VT fc_vf
#define FC_VTU fc_vf_u
#define FC_MT fc_vi
#include "fc_kernels_body.h"

#define FC_T double
#define FC_BODY_WIDE 1
#define FC_VBYTES FC_WBYTES
#define FC_NAME(name) name##_dw
#define FC_WNAME(name) name##_dw
#define FC_IS_FLOAT 0
#define FC_VT fc_vd
#define FC_VTU fc_vd_u
#define FC_MT fc_vl
#include "fc_kernels_body.h"
#endif

#define FC_T float
#define FC_BODY_WIDE 0
#define FC_VBYTES FC_NBYTES
#define FC_NAME(name) name##_f
#define FC_WNAME(name) name##_fw
#define FC_IS_FLOAT 1
#if FC_VECTOR
#define FC_VT fc_nf
#define FC_VTU fc_nf_u
#define FC_MT fc_ni
#else
#define FC_VT float
#define FC_VTU float
#endif
#include "fc_kernels_body.h"

#define FC_T double
#define FC_BODY_WIDE 0
#define FC_VBYTES FC_NBYTES
#define FC_NAME(name) name##_d
#define FC_WNAME(name) name##_dw
#define FC_IS_FLOAT 0
#if FC_VECTOR
#define FC_VT fc_nd
#define FC_VTU fc_nd_u
#define FC_MT fc_nl
#else
#define FC_VT double
#define FC_VTU double
#endif
#include "fc_kernels_body.h"

#endif /* FASTCONV_FC_KERNELS_H */
