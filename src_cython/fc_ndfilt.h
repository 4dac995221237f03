/* fastconv.ndimage's 1-D correlation passes (issue 18), compiled per x86-64 level
 * (target_clones, as fc_kernels.h): the innermost loops of fastconv._cy_ndfilt.
 *
 * The sums run in FC_A: double with double weights (as scipy's line buffers) in the _f
 * and _d kernels, float with the weights rounded to float in the _ff kernels (the float32
 * correlation passes of nd_correlate1d and nd_sepcorr: eight lanes a vector, against four
 * doubles). No fused multiply-adds anywhere: each result is the NumPy reference's to the
 * bit (fastconv.reference.nd_correlate1d), and where the sums run in double, scipy's.
 *
 * fc_ndrow_{f,d}(out, rows, w, k, m, sym): out[c] = sum_j w[j] * rows[j][c], c < m: one
 *   output row from the k input rows its taps read (row pointers: for a pass along a
 *   non-last axis, the boundary rows point at the mode's source row or at a row of cval;
 *   for the n-D correlation, rows of the padded input shifted by each tap's offset).
 * fc_ndrows_{f,d,ff}(out, os, rows, w, k, m, nr, sym): fc_ndrow for nr consecutive output
 *   rows at once (row r at out + r * os, from rows[r .. r + k - 1]: k + nr - 1 pointers),
 *   block of columns by block of columns, so that the k - 1 input rows two outputs share
 *   are read from memory once; each output's sums are fc_ndrow's, to the bit.
 * fc_ndline_{ff,d}(out, ext, w, k, n, sym): out[i] = sum_j w[j] * ext[i + j], i < n: one line
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
 * fc_ndboxrun_{f,d}(out, os, xb, rs, idx, crow, size, i0, i1, m, tmp): fc_ndbox's outputs
 *   i0 <= i < i1 of m lines (one line per column), continuing the running sums in tmp from
 *   output i0 - 1: consecutive runs give one fc_ndbox call's results, to the bit; row p of
 *   the extended input is xb + idx[p] * rs, or crow (the cval row) where idx[p] is -1.
 * fc_ndboxline_{f,d}(out, ext, size, n): fc_ndbox's running sum along one extended line (ext:
 *   n + size - 1 values), the same operations in the same order.
 * fc_ndboxline4_{f,d}(out, os, ext, es, size, n, tmp): fc_ndboxline on four lines at once
 *   (line l from ext + l * es into out + l * os), their sums in one vector; tmp holds
 *   4 * (n + size - 1) doubles.
 * The correlations vectorize over the outputs; their sums run in the order sym gives.
 *
 * Layout: this file holds the compiler switches; the kernels are plain C functions in
 * fc_ndfilt_body.h, included below once per element type (as fc_kernels.h includes
 * fc_kernels_body.h).
 */
#ifndef FASTCONV_FC_NDFILT_H
#define FASTCONV_FC_NDFILT_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

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

/* the helpers of a cloned kernel: inlined into each clone, so compiled for its level (a
 * helper left out of line is compiled for the baseline, and its vectors of four doubles
 * then go through memory: fc_ndrows ran 7x slower so) */
#if defined(__GNUC__)
#define FC_ND_INLINE static inline __attribute__((always_inline))
#else
#define FC_ND_INLINE static inline
#endif

/* FC_ND_VEC: fc_ndrows's register tile is GNU C vectors of 32 bytes (fc_nd_av in the body:
 * four doubles or eight floats, one AVX2 register; two SSE2 registers in the baseline
 * clone); fc_nd_v4, four doubles, is fc_ndboxline4's */
#if defined(__GNUC__)
#define FC_ND_VEC 1
typedef double fc_nd_v4 __attribute__((vector_size(32)));
#endif

/* No fused multiply-adds: scipy's sums are separate products and sums (its baseline
 * x86-64 build has no FMA), and so are these, so that results match scipy's to the bit
 * where the order of the terms is scipy's. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* The kernels: one generic body, fc_ndfilt_body.h, included once for float data summed in
 * double (names ending in _f: the n-D correlation and the box means), once for double (_d)
 * and once for float data summed in float (_ff: the correlation rows and lines only); it is
 * written in terms of the element type FC_T, the row type FC_R, the sum type FC_A and the
 * name macro FC_NAME, and undefines them at its end. */
#define FC_T float
#define FC_R float
#define FC_A double
#define FC_NAME(name) name##_f
#define FC_ND_NO_LINE
#include "fc_ndfilt_body.h"

#define FC_T double
#define FC_R double
#define FC_A double
#define FC_NAME(name) name##_d
#include "fc_ndfilt_body.h"

#define FC_T float
#define FC_R float
#define FC_A float
#define FC_NAME(name) name##_ff
#define FC_ND_ROWS_ONLY
#include "fc_ndfilt_body.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

/* Every thread of the enclosing OpenMP team waits here for the others (an orphaned barrier:
 * Cython's prange inside a parallel block is an `omp for nowait`, so a loop whose items
 * read what the previous loop wrote needs one between them). Without OpenMP, one thread:
 * nothing to wait for. */
static inline void fc_nd_barrier(void)
{
#ifdef _OPENMP
#pragma omp barrier
#endif
}

#endif
