/* fastconv._cy_pool's innermost loop of max pooling with indices: one tap along an output
 * row, compiled per x86-64 level (target_clones, as fc_kernels.h), with restrict pointers
 * and no branch in the loop body, so that gcc vectorizes it. Written in Cython, the loop
 * compiled to compares and conditional jumps: on random data they mispredicted, and a 3x3
 * stride-1 pool of 8x64x56x56 float32 with indices took 53 ms on one core of an AMD EPYC
 * (Zen 2); 9.6 ms here. (Without indices, the Cython loop stays: its one select compiles
 * branch-free, and a call per tap cost more than it saved on the rows of small planes.)
 *
 * fc_maxtap_idx_{f,d}(o, t, x, n, s, pos): for i < n, the tap v = x[i * s] is taken where it
 *   is greater than o[i], or NaN, or t[i] < 0 (no tap inside the input yet); where taken,
 *   o[i] = v and t[i] = pos + i * s (the tap's flat input position).
 *
 * The rule is _cy_pool's (the first maximum wins, a NaN beats any number, the last NaN
 * wins); compiled without fast-math, so the NaN compares are kept. A stride of 1 has a loop
 * of its own (contiguous loads); other strides run the strided loop.
 */
#ifndef FASTCONV_FC_POOL_H
#define FASTCONV_FC_POOL_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) && defined(__x86_64__) && defined(__ELF__) && !defined(__clang__) \
    && !defined(FASTCONV_NO_CLONES)
#define FC_POOL_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FC_POOL_CLONES
#endif
#if defined(__GNUC__)
#define FC_POOL_RESTRICT __restrict__
#define FC_POOL_INLINE static inline __attribute__((always_inline))
#else
#define FC_POOL_RESTRICT
#define FC_POOL_INLINE static inline
#endif

/* The kernel: one generic body, fc_pool_body.h, included once for float (fc_maxtap_idx_f)
 * and once for double (_d); it undefines FC_T and FC_NAME at its end. */
#define FC_T float
#define FC_NAME(name) name##_f
#include "fc_pool_body.h"

#define FC_T double
#define FC_NAME(name) name##_d
#include "fc_pool_body.h"

#endif
