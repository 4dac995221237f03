/* conv3d's float32 weight-gradient register tiles (issue 17): included by _cy_conv3d.pyx only.
 *
 * fc3_wgrad_f: the weight gradient of a stride-1 conv3d on one work item, as a direct
 * kernel: for filters f < nk and taps t < R
 *
 *     part[(f * R + t) * 16 + v] += sum_{q = v mod 16, q < Lp} gy[f * Lp + q] * src[off[t] + q]
 *
 * (16 lanes of partial sums per weight, so no horizontal sum per work item; the caller
 * adds the lanes in order at the end). A block of kb filters x tb taps keeps its kb * tb
 * accumulators in registers over the whole line: per vector of positions, kb + tb loads
 * feed kb * tb multiply-adds (4 x 6 on AVX-512; 3 x 4 elsewhere, one 8-lane half of the
 * 16 lanes at a time). The lane sums depend only on the shapes, not on the build.
 */
#ifndef FASTCONV_FC_CONV3D_H
#define FASTCONV_FC_CONV3D_H

#include "fc_kernels.h"

#define FC3_VL 16

/* ---------------------------------------------------------------------------------------
 * fc3_wgrad_f
 * --------------------------------------------------------------------------------------- */
#if FC_VECTOR
/* one kb x tb tile over the whole line: the wide build's 16 lanes as one zmm vector
 * (``wide``), the narrow build's as two ymm halves (lanes 0-7 and 8-15; gcc keeps a 64-byte
 * vector in memory outside AVX-512, see fc_kernels_body.h). Lane v sums the same products
 * in the same order either way. */
FC_INLINE void fc3_wblk(const float* FC_RESTRICT gy, ptrdiff_t Lp, const float* src,
                        const ptrdiff_t* off, ptrdiff_t R, float* FC_RESTRICT part, int kb,
                        int tb)
{
    fc_vf a[4][6];
    const float* xs[6];
    ptrdiff_t q;
    int f, u;
    for (u = 0; u < tb; u++) xs[u] = src + off[u];
    for (f = 0; f < kb; f++)
        for (u = 0; u < tb; u++) a[f][u] = (fc_vf){0};
    for (q = 0; q < Lp; q += FC3_VL) {
        fc_vf g[4];
        for (f = 0; f < kb; f++) g[f] = *(const fc_vf_u*)(gy + f * Lp + q);
        for (u = 0; u < tb; u++) {
            fc_vf x = *(const fc_vf_u*)(xs[u] + q);
            for (f = 0; f < kb; f++) a[f][u] += g[f] * x;
        }
    }
    for (f = 0; f < kb; f++)
        for (u = 0; u < tb; u++) {
            fc_vf_u* p = (fc_vf_u*)(part + ((ptrdiff_t)f * R + u) * FC3_VL);
            *p = *p + a[f][u];
        }
}

/* the narrow build: each 8-lane half of the 16 lanes in a pass of its own over the line
 * (lane v of half h sums positions h * 8 + v + 16 m in increasing m, as the wide build's
 * lane h * 8 + v does), so a tile of kb x tb single-ymm accumulators fits AVX2's registers */
FC_INLINE void fc3_wblk_n(const float* FC_RESTRICT gy, ptrdiff_t Lp, const float* src,
                          const ptrdiff_t* off, ptrdiff_t R, float* FC_RESTRICT part, int kb,
                          int tb)
{
    enum { H = FC3_VL / 2 };
    fc_nf a[4][6];
    const float* xs[6];
    ptrdiff_t q;
    int f, u, h;
    for (u = 0; u < tb; u++) xs[u] = src + off[u];
    for (h = 0; h < 2; h++) {
        for (f = 0; f < kb; f++)
            for (u = 0; u < tb; u++) a[f][u] = (fc_nf){0};
        for (q = h * H; q < Lp; q += FC3_VL) {
            fc_nf g[4];
            for (f = 0; f < kb; f++) g[f] = *(const fc_nf_u*)(gy + f * Lp + q);
            for (u = 0; u < tb; u++) {
                fc_nf x = *(const fc_nf_u*)(xs[u] + q);
                for (f = 0; f < kb; f++) a[f][u] += g[f] * x;
            }
        }
        for (f = 0; f < kb; f++)
            for (u = 0; u < tb; u++) {
                fc_nf_u* p = (fc_nf_u*)(part + ((ptrdiff_t)f * R + u) * FC3_VL + h * H);
                *p = *p + a[f][u];
            }
    }
}

/* every filter x tap of one work item, in register tiles of kb filters x tb taps (the edges
 * one at a time); inlined into each build below with its constant tile and width */
#define FC3_WBLK(...) (wide ? fc3_wblk(__VA_ARGS__) : fc3_wblk_n(__VA_ARGS__))
FC_INLINE void fc3_wgrad_tiles(const float* gy, ptrdiff_t Lp, ptrdiff_t nk, const float* src,
                               const ptrdiff_t* off, ptrdiff_t R, float* part, int kb, int tb,
                               int wide)
{
    ptrdiff_t f = 0, t;
    for (; f + kb <= nk; f += kb) {  /* kb and tb are constants here: the tile stays in */
        for (t = 0; t + tb <= R; t += tb)  /* registers */
            FC3_WBLK(gy + f * Lp, Lp, src, off + t, R, part + (f * R + t) * FC3_VL, kb, tb);
        for (; t < R; t++)
            FC3_WBLK(gy + f * Lp, Lp, src, off + t, R, part + (f * R + t) * FC3_VL, kb, 1);
    }
    for (; f < nk; f++) {
        for (t = 0; t + tb <= R; t += tb)
            FC3_WBLK(gy + f * Lp, Lp, src, off + t, R, part + (f * R + t) * FC3_VL, 1, tb);
        for (; t < R; t++)
            FC3_WBLK(gy + f * Lp, Lp, src, off + t, R, part + (f * R + t) * FC3_VL, 1, 1);
    }
}
#undef FC3_WBLK

FC_WIDE static void fc3_wgrad8_f(const float* gy, ptrdiff_t Lp, ptrdiff_t nk, const float* src,
                                 const ptrdiff_t* off, ptrdiff_t R, float* part)
{
    fc3_wgrad_tiles(gy, Lp, nk, src, off, R, part, 4, 6, 1);
}

/* 3 x 4 tiles: 12 ymm accumulators, 3 + 1 for the loads, of AVX2's 16 */
FC_CLONES static void fc3_wgrad4_f(const float* gy, ptrdiff_t Lp, ptrdiff_t nk,
                                   const float* src, const ptrdiff_t* off, ptrdiff_t R,
                                   float* part)
{
    fc3_wgrad_tiles(gy, Lp, nk, src, off, R, part, 3, 4, 0);
}
#endif

/* gy: nk lines of Lp (a multiple of 16) positions; src readable at
 * off[t] + q for q < Lp */
static void fc3_wgrad_f(const float* gy, ptrdiff_t Lp, ptrdiff_t nk, const float* src,
                        const ptrdiff_t* off, ptrdiff_t R, float* part)
{
#if FC_VECTOR
    if (fc_wide())
        fc3_wgrad8_f(gy, Lp, nk, src, off, R, part);
    else
        fc3_wgrad4_f(gy, Lp, nk, src, off, R, part);
#else
    ptrdiff_t f, t, q;
    for (f = 0; f < nk; f++)
        for (t = 0; t < R; t++)
            for (q = 0; q < Lp; q++)
                part[(f * R + t) * FC3_VL + q % FC3_VL] += gy[f * Lp + q] * src[off[t] + q];
#endif
}

#endif /* FASTCONV_FC_CONV3D_H */
