/* fastconv's C kernels for one element type: the generic body behind fc_kernels.h.
 *
 * No include guard: fc_kernels.h includes this file twice per element type, a wide pass
 * and a narrow pass, after defining
 *
 *     FC_T          the element type (float, double)
 *     FC_BODY_WIDE  1 in the wide pass (AVX-512 only: FC_WIDE functions on 64-byte
 *                   vectors), 0 in the narrow pass (everything else, and every function
 *                   the .pyx files call, on 32-byte vectors)
 *     FC_VBYTES     the pass's vector bytes (64 wide, 32 narrow)
 *     FC_NAME(n)    the name of function n in this pass (narrow: fc_taps_out4 ->
 *                   fc_taps_out4_f, fc_taps_out4_d; wide: fc_taps_out8_fw, fc_taps_out8_dw)
 *     FC_WNAME(n)   the name of the wide pass's function n (the narrow pass's dispatchers
 *                   call it when fc_wide())
 *     FC_VT, FC_VTU the GNU C vector of FC_VBYTES bytes of FC_T (aligned; element-aligned
 *                   for unaligned loads and stores), or FC_T itself without GNU C vectors
 *     FC_MT         the integer vector of the same shape (masks, shuffles; GNU C only)
 *
 * and this file undefines them at its end. Why two widths: gcc gives a GNU C vector wider
 * than the target's registers no machine mode, so a 64-byte vector in an AVX2 (or SSE2)
 * function lives in memory and every operation on it goes through the stack, piece by
 * piece; the register blocks below then run at a few GFLOP/s (fc_taps_out on AVX2 measured
 * 7x slower than with 32-byte vectors, on an AMD Zen 2). So the AVX-512 kernels (FC_WIDE)
 * take 64-byte vectors and all others (FC_CLONES: their x86-64-v4, v3 and baseline builds)
 * 32-byte ones: one ymm register, or two xmm in the baseline build. Every kernel's sums keep
 * their order whatever the width (see each one), so both passes give the same bits.
 * Everything else (FC_CLONES, FC_WIDE, fc_wide, FC_INLINE, FC_RESTRICT, FC_VECTOR,
 * FC_WBYTES, FC_PLANE_MAX_KW) comes from fc_kernels.h. Every function here is a
 * plain C function. Register-block sizes (filters x vectors in fc_oblk, rows x vectors in
 * fc_pblk) are arguments of ``FC_INLINE`` (always_inline) helpers, passed as constants by
 * every caller, so gcc unrolls the block loops and keeps the accumulators in registers;
 * compiler errors and debuggers point at the lines below.
 */
#if !defined(FC_T) || !defined(FC_NAME) || !defined(FC_VT) || !defined(FC_VTU)
#error "fc_kernels_body.h is included by fc_kernels.h, twice per element type"
#endif

/* ---------------------------------------------------------------------------------------
 * fc_taps_out: the register-blocked direct convolution (see fc_kernels.h for the formula),
 * its sums written straight from the registers to the output:
 *
 *     out[f * ldo + (q / Wp) * ldr + (q % Wp) * ldc] = bias[f] + sum_{t < R} w[f, t] * src[off[t] + q]
 *
 * for filters f < nk and flat positions q < L whose column q % Wp is below Wo (the others,
 * the Wp - Wo columns between rows, are computed and dropped); geometry in ``fc_ogeo``
 * (fc_kernels.h). A vector of positions inside one row's columns is one store (ldc == 1).
 * In the AVX-512 build, where the output's rows follow each other (ldr == Wo, ldc == 1), a
 * vector that crosses row ends has its output lanes packed together and stored at once
 * (fc_cplan, fc_cstore); otherwise (column segments, the transposed convolution's strided
 * phases) it goes a row segment at a time, by a masked store or scatter in the AVX-512
 * build and lane by lane elsewhere. No accumulator
 * line and no per-row copy, and the output may be strided: the transposed convolution's
 * phases write their own places of its output.
 *
 * Rows of 4 to 12 outputs (AVX-512, ldr == Wo, ldc == 1) go first to fc_taps_rows, the
 * filters in the vector lanes (below), for as many whole vectors of filters as there are.
 * Register tiles: in the AVX-512 build (fc_wide()) eight filters x three vectors (24 zmm
 * accumulators; per tap, three loads of the input and eight weights, packed next to each
 * other by fc_pack so each multiply-add takes its weight as an embedded broadcast, feed 24
 * multiply-adds), the filters left over six x three (24 taps or more) and four x two;
 * elsewhere four filters x three vectors
 * (12 of AVX2's 16 ymm), then smaller tiles. Each output receives the bias and then its
 * taps in the order t = 0 .. R - 1: the same value for any tile, block start or thread
 * count.
 *
 * ``wp``: fc_pack's packing of ``w`` (``nk / 8`` blocks), or NULL (no eight-filter tiles).
 * --------------------------------------------------------------------------------------- */

/* wp[(b * R + t) * 8 + f] = w[(8 * b + f) * ldw + t] for the nk / 8 full blocks of eight */
#if !FC_BODY_WIDE
static void FC_NAME(fc_pack)(const FC_T* w, ptrdiff_t ldw, ptrdiff_t R, ptrdiff_t nk,
                             FC_T* wp)
{
    ptrdiff_t b, t, f;
    for (b = 0; b < nk / FC_OKB; b++)
        for (t = 0; t < R; t++)
            for (f = 0; f < FC_OKB; f++)
                wp[(b * R + t) * FC_OKB + f] = w[(b * FC_OKB + f) * ldw + t];
}
#endif

/* one value at flat position q */
FC_INLINE void FC_NAME(fc_oput)(FC_T* o, const fc_ogeo* g, ptrdiff_t q, FC_T v)
{
    ptrdiff_t r = q / g->Wp, c = q - r * g->Wp;
    if (c < g->Wo) o[r * g->ldr + c * g->ldc] = v;
}

#if FC_VECTOR
#if FC_BODY_WIDE
/* lanes [l0, l1) of v to p[(l - l0) * ldc]: a masked store, two of the lanes spread to
 * every other place for ldc 2 (the stride-2 transposed convolution's phases: a scatter
 * took an eighth of their time on a Zen 4), else a scatter; AVX-512 only */
FC_WIDE_STORE void FC_NAME(fc_mstore)(FC_T* p, int l0, int l1, ptrdiff_t ldc, FC_VT v)
{
    unsigned m = fc_lanes(l0, l1); /* l0 < l1 <= VL <= 16 */
    FC_T* base = p - l0 * ldc; /* lane l's place; masked-off lanes are never touched */
#if FC_IS_FLOAT
    if (ldc == 1)
        _mm512_mask_storeu_ps(base, (__mmask16)m, (__m512)v);
    else if (ldc == 2) { /* each half spread to the even lanes of a vector: two stores */
        __m512i lo = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
        __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
        _mm512_mask_storeu_ps(base, (__mmask16)_pdep_u32(m & 0xffu, 0x5555u),
                              _mm512_permutexvar_ps(lo, (__m512)v));
        _mm512_mask_storeu_ps(base + 16, (__mmask16)_pdep_u32(m >> 8, 0x5555u),
                              _mm512_permutexvar_ps(hi, (__m512)v));
    } else {
        __m512i ix = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6,
                                                         5, 4, 3, 2, 1, 0),
                                        _mm512_set1_epi32((int)ldc));
        _mm512_mask_i32scatter_ps(base, (__mmask16)m, ix, (__m512)v, 4);
    }
#else
    if (ldc == 1)
        _mm512_mask_storeu_pd(base, (__mmask8)m, (__m512d)v);
    else if (ldc == 2) {
        __m512i lo = _mm512_set_epi64(3, 3, 2, 2, 1, 1, 0, 0);
        __m512i hi = _mm512_add_epi64(lo, _mm512_set1_epi64(4));
        _mm512_mask_storeu_pd(base, (__mmask8)_pdep_u32(m & 0xfu, 0x55u),
                              _mm512_permutexvar_pd(lo, (__m512d)v));
        _mm512_mask_storeu_pd(base + 8, (__mmask8)_pdep_u32(m >> 4, 0x55u),
                              _mm512_permutexvar_pd(hi, (__m512d)v));
    } else {
        __m256i ix = _mm256_mullo_epi32(_mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0),
                                        _mm256_set1_epi32((int)ldc));
        _mm512_mask_i32scatter_pd(base, (__mmask8)m, ix, (__m512d)v, 8);
    }
#endif
}

/* Output rows that follow each other in memory (ldr == Wo, ldc == 1): the lanes of a
 * vector of positions that are outputs (column below Wo) go to consecutive places, however
 * many row ends the vector crosses. fc_cplan finds, for the positions [q, q + VL), those
 * lanes (*m), their count (*n) and the first one's place (*d, from the block's out); it is
 * the same for every filter of a block. fc_cstore then packs the lanes together in a
 * register (vcompressps) and writes them by one masked store, where fc_ovec takes a masked
 * store and the row arithmetic per row segment (two or more a vector on rows narrower
 * than two vectors). AVX-512 only. */
FC_INLINE void FC_NAME(fc_cplan)(const fc_ogeo* g, ptrdiff_t q, unsigned* m, ptrdiff_t* d,
                                 int* n)
{
    enum { VL = FC_VBYTES / sizeof(FC_T) };
    const ptrdiff_t Wp = g->Wp, Wo = g->Wo;
    ptrdiff_t r = q / Wp, c = q - r * Wp, s, e;
    unsigned mm = 0;
    int l;
    *d = r * Wo + (c < Wo ? c : Wo);
    if (Wp >= VL) {
        /* at most one row end: lanes [0, Wo - c) of this row, then [s, s + Wo) of the
         * next from lane s = Wp - c */
        e = Wo - c < 0 ? 0 : Wo - c < VL ? Wo - c : VL;
        mm = (1u << e) - 1u;
        s = Wp - c;
        if (s < VL) {
            e = s + Wo < VL ? s + Wo : VL;
            mm |= fc_lanes(s, e);
        }
    } else
        for (l = 0; l < VL; l++) {
            if (c < Wo) mm |= 1u << l;
            if (++c == Wp) c = 0;
        }
    *m = mm;
    *n = __builtin_popcount(mm);
}

FC_WIDE_STORE void FC_NAME(fc_cstore)(FC_T* p, unsigned m, int n, FC_VT v)
{
    enum { VL = FC_VBYTES / sizeof(FC_T) };
    if (n == VL) {
        *(FC_VTU*)p = v;
        return;
    }
#if FC_IS_FLOAT
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1u),
                          _mm512_maskz_compress_ps((__mmask16)m, (__m512)v));
#else
    _mm512_mask_storeu_pd(p, (__mmask8)((1u << n) - 1u),
                          _mm512_maskz_compress_pd((__mmask8)m, (__m512d)v));
#endif
}
#endif

/* the vector v of positions q .. q + VL - 1 (row r, column c of the first) */
FC_INLINE void FC_NAME(fc_ovec)(FC_T* o, const fc_ogeo* g, ptrdiff_t r, ptrdiff_t c, FC_VT v,
                                int wide)
{
    enum { VL = FC_VBYTES / sizeof(FC_T) };
    ptrdiff_t l0 = 0;
    if (g->ldc == 1 && c + VL <= g->Wo) {
        *(FC_VTU*)(o + r * g->ldr + c) = v;
        return;
    }
    while (l0 < VL) {
        ptrdiff_t n = g->Wo - c, l1;
        if (n > 0) {
            FC_T* p = o + r * g->ldr + c * g->ldc;
            l1 = l0 + n < VL ? l0 + n : VL;
#if FC_BODY_WIDE
            if (wide)
                FC_NAME(fc_mstore)(p, (int)l0, (int)l1, g->ldc, v);
            else
#endif
            {
                ptrdiff_t l;
                for (l = l0; l < l1; l++) p[(l - l0) * g->ldc] = v[l];
            }
        }
        l0 += g->Wp - c;
        c = 0;
        r++;
    }
    (void)wide;
}
#endif

/* m (<= qb) positions from q0 for kb filters, plain loops (short lines, and the fallback) */
FC_INLINE void FC_NAME(fc_oblk_loop)(const FC_T* src, const ptrdiff_t* off, ptrdiff_t R,
                                     const FC_T* w, ptrdiff_t ldw, int packed,
                                     const FC_T* bias, FC_T* out, const fc_ogeo* g,
                                     ptrdiff_t q0, int kb, ptrdiff_t qb, ptrdiff_t m)
{
    FC_T a[FC_OKB * 4 * 16]; /* kb <= FC_OKB filters x qb <= 4 vectors of <= 16 lanes */
    ptrdiff_t f, v, t;
    for (f = 0; f < kb; f++)
        for (v = 0; v < m; v++) a[f * qb + v] = bias[f];
    for (t = 0; t < R; t++) {
        const FC_T* xs = src + off[t] + q0;
        for (f = 0; f < kb; f++) {
            FC_T wv = packed ? w[t * kb + f] : w[f * ldw + t];
            for (v = 0; v < m; v++) a[f * qb + v] += wv * xs[v];
        }
    }
    for (f = 0; f < kb; f++)
        for (v = 0; v < m; v++) FC_NAME(fc_oput)(out + f * g->ldo, g, q0 + v, a[f * qb + v]);
}

#if FC_VECTOR
/* kb filters x nv vectors (constants at every call; kb * nv <= 24, kb <= 8, nv <= 4) over
 * the positions [q0, L), accumulators in registers over all taps; weights packed
 * (w[t * kb + f], ``packed``) or not (w[f * ldw + t]) */
FC_INLINE void FC_NAME(fc_oblk)(const FC_T* FC_RESTRICT src, const ptrdiff_t* off,
                                ptrdiff_t R, const FC_T* FC_RESTRICT w, ptrdiff_t ldw,
                                int packed, const FC_T* bias, FC_T* FC_RESTRICT out,
                                const fc_ogeo* g, ptrdiff_t q0, ptrdiff_t L, int kb, int nv,
                                int wide)
{
    enum { VL = FC_VBYTES / sizeof(FC_T) };
    const ptrdiff_t qb = nv * VL;
    ptrdiff_t t;
    int f, v;
    if (L - q0 < qb) {
        FC_NAME(fc_oblk_loop)(src, off, R, w, ldw, packed, bias, out, g, q0, kb, qb, L - q0);
        return;
    }
    for (;;) {
        FC_VT a[FC_OKB][4];
        ptrdiff_t r[4], c[4];
        for (f = 0; f < kb; f++)
            for (v = 0; v < nv; v++) a[f][v] = (FC_VT){0} + bias[f];
        for (t = 0; t < R; t++) {
            const FC_T* xs = src + off[t] + q0;
            FC_VT xv[4];
            for (v = 0; v < nv; v++) xv[v] = *(const FC_VTU*)(xs + v * VL);
            for (f = 0; f < kb; f++) {
                FC_T wv = packed ? w[t * kb + f] : w[f * ldw + t];
                for (v = 0; v < nv; v++) a[f][v] += wv * xv[v];
            }
        }
#if FC_BODY_WIDE
        if (wide && g->ldc == 1 && g->ldr == g->Wo) { /* rows back to back: fc_cplan */
            unsigned m[4];
            ptrdiff_t d[4];
            int n[4];
            for (v = 0; v < nv; v++) FC_NAME(fc_cplan)(g, q0 + v * VL, &m[v], &d[v], &n[v]);
            for (f = 0; f < kb; f++)
                for (v = 0; v < nv; v++)
                    FC_NAME(fc_cstore)(out + f * g->ldo + d[v], m[v], n[v], a[f][v]);
        } else
#endif
        {
            for (v = 0; v < nv; v++) {
                r[v] = (q0 + v * VL) / g->Wp;
                c[v] = q0 + v * VL - r[v] * g->Wp;
            }
            for (f = 0; f < kb; f++)
                for (v = 0; v < nv; v++)
                    FC_NAME(fc_ovec)(out + f * g->ldo, g, r[v], c[v], a[f][v], wide);
        }
        if (q0 + qb >= L) break;
        /* the last block ends at L, overlapping the one before: positions computed twice get
         * the same value (same taps, same order) */
        q0 = q0 + 2 * qb <= L ? q0 + qb : L - qb;
    }
}

/* filters f .. nk - 1 in unpacked tiles of four x nv4 vectors, then 2 x 2, then 1 x 4 (each
 * tile shape falls back to plain loops on lines shorter than itself) */
FC_INLINE void FC_NAME(fc_orest)(const FC_T* src, const ptrdiff_t* off, ptrdiff_t R,
                                 const FC_T* w, ptrdiff_t ldw, const FC_T* bias, ptrdiff_t f,
                                 ptrdiff_t nk, FC_T* out, const fc_ogeo* g, ptrdiff_t L,
                                 int wide)
{
    enum { VL = FC_VBYTES / sizeof(FC_T) };
    if (wide && L >= 2 * VL)
        for (; f + 4 <= nk; f += 4)
            FC_NAME(fc_oblk)(src, off, R, w + f * ldw, ldw, 0, bias + f, out + f * g->ldo, g,
                             0, L, 4, 2, wide);
    /* the narrow build: 12 ymm accumulators of 16 (FMA latency x two FMA units needs ten
     * multiply-adds in flight), then 8 */
    if (!wide && L >= 3 * VL)
        for (; f + 4 <= nk; f += 4)
            FC_NAME(fc_oblk)(src, off, R, w + f * ldw, ldw, 0, bias + f, out + f * g->ldo, g,
                             0, L, 4, 3, wide);
    if (!wide && L >= 2 * VL)
        for (; f + 4 <= nk; f += 4)
            FC_NAME(fc_oblk)(src, off, R, w + f * ldw, ldw, 0, bias + f, out + f * g->ldo, g,
                             0, L, 4, 2, wide);
    for (; f + 4 <= nk; f += 4)
        FC_NAME(fc_oblk)(src, off, R, w + f * ldw, ldw, 0, bias + f, out + f * g->ldo, g, 0,
                         L, 4, 1, wide);
    for (; f + 2 <= nk; f += 2)
        FC_NAME(fc_oblk)(src, off, R, w + f * ldw, ldw, 0, bias + f, out + f * g->ldo, g, 0,
                         L, 2, 2, wide);
    for (; f < nk; f++)
        FC_NAME(fc_oblk)(src, off, R, w + f * ldw, ldw, 0, bias + f, out + f * g->ldo, g, 0,
                         L, 1, 4, wide);
}

#if FC_BODY_WIDE
/* kb filters (weights packed or not, as fc_oblk) over the whole line [0, L): blocks of
 * FC_ONV vectors, then the last (up to FC_ONV) vectors of the line as a block of their own
 * ending at L (overlapping by less than a vector) */
FC_INLINE void FC_NAME(fc_oline)(const FC_T* src, const ptrdiff_t* off, ptrdiff_t R,
                                 const FC_T* w, ptrdiff_t ldw, int packed, const FC_T* bias,
                                 FC_T* out, const fc_ogeo* g, ptrdiff_t L, int kb)
{
    enum { VL = FC_VBYTES / sizeof(FC_T) };
    const ptrdiff_t L3 = L / (FC_ONV * VL) * (FC_ONV * VL), nt = (L - L3 + VL - 1) / VL;
    ptrdiff_t q0;
    int nv;
    if (L3)
        FC_NAME(fc_oblk)(src, off, R, w, ldw, packed, bias, out, g, 0, L3, kb, FC_ONV, 1);
    if (L3 == L)
        return;
    /* the tail [L3, L): nv vectors ending at L, or from 0 on a line shorter than nt
     * vectors (blocks of nv, the last one ending at L; plain loops under VL) */
    nv = L < VL ? 1 : L3 == 0 && nt * VL > L ? nt - 1 : nt;
    q0 = L3 == 0 && nt * VL > L ? 0 : L - nt * VL;
    if (nv == 1)
        FC_NAME(fc_oblk)(src, off, R, w, ldw, packed, bias, out, g, q0, L, kb, 1, 1);
    else if (nv == 2)
        FC_NAME(fc_oblk)(src, off, R, w, ldw, packed, bias, out, g, q0, L, kb, 2, 1);
    else
        FC_NAME(fc_oblk)(src, off, R, w, ldw, packed, bias, out, g, q0, L, kb, FC_ONV, 1);
}

/* fc_taps_rows (below): the filters it takes (a multiple of a vector), 0 where it does not
 * apply */
FC_WIDE static ptrdiff_t FC_NAME(fc_taps_rows)(const FC_T* src, const ptrdiff_t* off,
                                               ptrdiff_t R, const FC_T* wp, const FC_T* bias,
                                               ptrdiff_t nk, FC_T* out, const fc_ogeo* g,
                                               ptrdiff_t L);

FC_WIDE_FLAT static void FC_NAME(fc_taps_out8)(const FC_T* src, const ptrdiff_t* off,
                                               ptrdiff_t R, const FC_T* w, ptrdiff_t ldw,
                                               const FC_T* wp, const FC_T* bias, ptrdiff_t nk,
                                               FC_T* out, const fc_ogeo* g, ptrdiff_t L)
{
    ptrdiff_t f = 0;
    /* short rows: the filters in the vector lanes, as many vectors of them as there are
     * (fc_taps_rows); then eight filters at a time (packed weights), then six x three
     * vectors (unpacked) where there are many taps, then fc_orest's tiles (four x two,
     * two x two, ...). Six filters of 144 taps (lenet2's input gradient) ran 10% faster
     * in the six-filter tile than in four x two and two x two, 27 taps 4%, 18 taps the
     * same, and 9 taps (lenet1) 7% slower: its tile's stores weigh more than its taps
     * (Zen 4, float32) */
    if (wp)
        f = FC_NAME(fc_taps_rows)(src, off, R, wp, bias, nk, out, g, L);
    if (wp)
        for (; f + FC_OKB <= nk; f += FC_OKB)
            FC_NAME(fc_oline)(src, off, R, wp + f * R, 0, 1, bias + f, out + f * g->ldo, g, L,
                              FC_OKB);
    if (R >= 24)
        for (; f + 6 <= nk; f += 6)
            FC_NAME(fc_oline)(src, off, R, w + f * ldw, ldw, 0, bias + f, out + f * g->ldo, g,
                              L, 6);
    FC_NAME(fc_orest)(src, off, R, w, ldw, bias, f, nk, out, g, L, 1);
}
#else
FC_CLONES static void FC_NAME(fc_taps_out4)(const FC_T* src, const ptrdiff_t* off,
                                            ptrdiff_t R, const FC_T* w, ptrdiff_t ldw,
                                            const FC_T* bias, ptrdiff_t nk, FC_T* out,
                                            const fc_ogeo* g, ptrdiff_t L)
{
    FC_NAME(fc_orest)(src, off, R, w, ldw, bias, 0, nk, out, g, L, 0);
}
#endif
#endif

#if !FC_BODY_WIDE
static void FC_NAME(fc_taps_out)(const FC_T* src, const ptrdiff_t* off, ptrdiff_t R,
                                 const FC_T* w, ptrdiff_t ldw, const FC_T* wp,
                                 const FC_T* bias, ptrdiff_t nk, FC_T* out, const fc_ogeo* g,
                                 ptrdiff_t L)
{
#if FC_VECTOR
#if FC_HAVE_WIDE
    if (fc_wide()) {
        FC_WNAME(fc_taps_out8)(src, off, R, w, ldw, wp, bias, nk, out, g, L);
        return;
    }
#endif
    (void)wp;
    FC_NAME(fc_taps_out4)(src, off, R, w, ldw, bias, nk, out, g, L);
#else
    ptrdiff_t f, q0;
    (void)wp;
    for (f = 0; f < nk; f++)
        for (q0 = 0; q0 < L; q0 += 16)
            FC_NAME(fc_oblk_loop)(src, off, R, w + f * ldw, ldw, 0, bias + f,
                                  out + f * g->ldo, g, q0, 1, 16, L - q0 < 16 ? L - q0 : 16);
#endif
}
#endif

/* ---------------------------------------------------------------------------------------
 * fc_taps_fv: direct-convolution sums with the filters in the vector lanes, for planes
 * whose outputs fill vectors of positions badly (the transposed convolution's phases on
 * small planes: a 7 x 7 phase is 49 outputs), over some of each channel's ``ku`` taps:
 *
 *     out[po[i] + f] = bias[f] + sum_{c < Cg} sum_{k < ne}
 *                        wv[((f / FV) * Cg * ku + c * ku + ev[k]) * FV + f % FV]
 *                        * src[c * plane + dv[k] + q[i]]
 *
 * for filters f < nk, whole blocks of FV = FC_FV_NV AVX-512 vectors of them (64 float32
 * or 32 float64 filters; the weights packed block by block, tap by tap, Cg * ku taps a
 * filter), and the ``n`` positions i; tap ev[k] is at offset dv[k] in a channel of
 * ``src``. The taps may be a few of the ku: _cy_conv's caller reads the input in place,
 * each class of outputs with only its taps inside the input, so every c * plane + dv[k]
 * + q[i] lies in it (q[i] alone may not). The outputs are position-major (a position's
 * filters contiguous: plain vector stores, no scatter); fc_fv_unstage puts them in planes.
 * The AVX-512 build runs blocks of FC_FV_NV vectors of filters x up to FC_FV_NP
 * positions, 24 accumulators and 4 weights in registers: per tap FC_FV_NV weight loads
 * and FC_FV_NP broadcasts feed 24 multiply-adds. The narrow build (AVX2) runs it in slices
 * of FC_FVN_NV ymm vectors of filters x FC_FVN_NP positions, 12 accumulators of its 16
 * registers (2 + 6 loads feed 12 multiply-adds). The positions go in the fewest blocks, as
 * equal as can be (each size compiled apart): none is computed twice. Each output gets its
 * bias and then its taps in the order above (t = c * ku + ev[k] ascending): the same bits
 * in the AVX2 and AVX-512 builds, and fc_taps_out's on a zero frame, whose extra taps add
 * only zeros (the sign of a zero sum aside; callers send it finite weights). Without GNU
 * C vectors, plain loops (fc_fv_positions says 0 there: callers take fc_taps_out instead).
 * --------------------------------------------------------------------------------------- */
#define FC_FV_NV 4
#define FC_FV_NP 6
#define FC_FVN_NV 2
#define FC_FVN_NP 6
/* fc_fv_blk's arrays hold the wide build's block: the narrow one must fit in them */
_Static_assert(FC_FVN_NV <= FC_FV_NV && FC_FVN_NP <= FC_FV_NP, "fc_fv_blk's block sizes");

#if !FC_BODY_WIDE
static ptrdiff_t FC_NAME(fc_fv_filters)(void)
{
    return FC_FV_NV * (FC_WBYTES / sizeof(FC_T));
}

static ptrdiff_t FC_NAME(fc_fv_positions)(void)
{
#if FC_VECTOR
    return fc_wide() ? FC_FV_NP : FC_FVN_NP;
#else
    return 0;
#endif
}
#endif

#if FC_VECTOR
/* one block: nv vectors of filters (their weights at wb, FV a tap; their biases bv; their
 * outputs contiguous from out + po[i]) x np positions (nv, np constants at every call) */
FC_INLINE void FC_NAME(fc_fv_blk)(const FC_T* src, ptrdiff_t plane, ptrdiff_t Cg,
                                  ptrdiff_t ku, const ptrdiff_t* ev, const ptrdiff_t* dv,
                                  ptrdiff_t ne, const FC_T* wb, const FC_VT* bv, FC_T* out,
                                  const ptrdiff_t* q, const ptrdiff_t* po, int nv, int np)
{
    enum { VL = FC_VBYTES / sizeof(FC_T), FV = FC_FV_NV * (FC_WBYTES / sizeof(FC_T)) };
    FC_VT a[FC_FV_NP][FC_FV_NV];
    ptrdiff_t qi[FC_FV_NP], c, k;
    int i, v;
    for (i = 0; i < np; i++) qi[i] = q[i];
    for (i = 0; i < np; i++)
        for (v = 0; v < nv; v++) a[i][v] = bv[v];
    for (c = 0; c < Cg; c++) {
        const FC_T* pc = src + c * plane;
        const FC_T* wc = wb + c * ku * FV;
        for (k = 0; k < ne; k++) {
            const FC_T* p = pc + dv[k];
            const FC_T* wt = wc + ev[k] * FV;
            FC_VT wk[FC_FV_NV];
            for (v = 0; v < nv; v++) wk[v] = *(const FC_VTU*)(wt + v * VL);
            for (i = 0; i < np; i++) {
                FC_T xi = p[qi[i]];
                for (v = 0; v < nv; v++) a[i][v] += xi * wk[v];
            }
        }
    }
    for (i = 0; i < np; i++)
        for (v = 0; v < nv; v++) *(FC_VTU*)(out + po[i] + v * VL) = a[i][v];
}

/* the n positions in the fewest blocks of at most NP (nv, NP constants) */
FC_INLINE void FC_NAME(fc_fv_run)(const FC_T* src, ptrdiff_t plane, ptrdiff_t Cg,
                                  ptrdiff_t ku, const ptrdiff_t* ev, const ptrdiff_t* dv,
                                  ptrdiff_t ne, const FC_T* wb, const FC_VT* bv, FC_T* out,
                                  const ptrdiff_t* q, const ptrdiff_t* po, ptrdiff_t n,
                                  int nv, int NP)
{
    /* nblk blocks as equal as can be: the first (n % nblk) of size + 1 positions */
    ptrdiff_t nblk = (n + NP - 1) / NP, size = nblk ? n / nblk : 0, i0 = 0, b;
    for (b = 0; b < nblk; b++) {
        ptrdiff_t m = size + (b < n % nblk);
        const ptrdiff_t *qb = q + i0, *pb = po + i0;
        /* each size a constant: its accumulators stay in registers */
        if (m >= NP)
            FC_NAME(fc_fv_blk)(src, plane, Cg, ku, ev, dv, ne, wb, bv, out, qb, pb, nv, NP);
        else if (m == 6)
            FC_NAME(fc_fv_blk)(src, plane, Cg, ku, ev, dv, ne, wb, bv, out, qb, pb, nv, 6);
        else if (m == 5)
            FC_NAME(fc_fv_blk)(src, plane, Cg, ku, ev, dv, ne, wb, bv, out, qb, pb, nv, 5);
        else if (m == 4)
            FC_NAME(fc_fv_blk)(src, plane, Cg, ku, ev, dv, ne, wb, bv, out, qb, pb, nv, 4);
        else if (m == 3)
            FC_NAME(fc_fv_blk)(src, plane, Cg, ku, ev, dv, ne, wb, bv, out, qb, pb, nv, 3);
        else if (m == 2)
            FC_NAME(fc_fv_blk)(src, plane, Cg, ku, ev, dv, ne, wb, bv, out, qb, pb, nv, 2);
        else
            FC_NAME(fc_fv_blk)(src, plane, Cg, ku, ev, dv, ne, wb, bv, out, qb, pb, nv, 1);
        i0 += m;
    }
}

/* the nk / FV blocks of FV filters, each in slices of nv vectors (a slice is the whole
 * block when nv vectors hold FV filters: the AVX-512 build) (nv, NP constants) */
FC_INLINE void FC_NAME(fc_fv_blocks)(const FC_T* src, ptrdiff_t plane, ptrdiff_t Cg,
                                     ptrdiff_t ku, const ptrdiff_t* ev, const ptrdiff_t* dv,
                                     ptrdiff_t ne, const FC_T* wv, const FC_T* bias,
                                     ptrdiff_t nk, FC_T* out, const ptrdiff_t* q,
                                     const ptrdiff_t* po, ptrdiff_t n, int nv, int NP)
{
    enum { VL = FC_VBYTES / sizeof(FC_T), FV = FC_FV_NV * (FC_WBYTES / sizeof(FC_T)) };
    ptrdiff_t b, s;
    int v;
    for (b = 0; b < nk / FV; b++)
        for (s = 0; s < FV / (nv * VL); s++) {
            const ptrdiff_t f0 = b * FV + s * nv * VL;
            FC_VT bv[FC_FV_NV];
            for (v = 0; v < nv; v++) bv[v] = *(const FC_VTU*)(bias + f0 + v * VL);
            FC_NAME(fc_fv_run)(src, plane, Cg, ku, ev, dv, ne,
                               wv + b * Cg * ku * FV + s * nv * VL, bv, out + f0, q, po, n,
                               nv, NP);
        }
}
#endif

#if FC_BODY_WIDE
FC_WIDE_FLAT static void FC_NAME(fc_taps_fv)(const FC_T* src, ptrdiff_t plane, ptrdiff_t Cg,
                                             ptrdiff_t ku, const ptrdiff_t* ev,
                                             const ptrdiff_t* dv, ptrdiff_t ne,
                                             const FC_T* wv, const FC_T* bias, ptrdiff_t nk,
                                             FC_T* out, const ptrdiff_t* q,
                                             const ptrdiff_t* po, ptrdiff_t n)
{
    FC_NAME(fc_fv_blocks)(src, plane, Cg, ku, ev, dv, ne, wv, bias, nk, out, q, po, n,
                          FC_FV_NV, FC_FV_NP);
}

/* fc_fv_unstage's wide build: tiles of VL positions x VL filters transposed in registers
 * (unpacks, then 128-bit lane shuffles), the last tile's positions by masked stores */
FC_WIDE static void FC_NAME(fc_fv_unstage)(const FC_T* st, ptrdiff_t nk, ptrdiff_t np,
                                           FC_T* out, ptrdiff_t ldo)
{
    ptrdiff_t p0, f0;
    int i, j;
#if FC_IS_FLOAT
    for (f0 = 0; f0 < nk; f0 += 16)
        for (p0 = 0; p0 < np; p0 += 16) {
            const int m = np - p0 < 16 ? (int)(np - p0) : 16;
            const __mmask16 mk = (__mmask16)((1u << m) - 1);
            __m512 r[16], t[16], u[16];
            for (i = 0; i < 16; i++)  /* r[i]: position p0 + i, filters f0.. */
                r[i] = i < m ? _mm512_loadu_ps(st + (p0 + i) * nk + f0) : _mm512_setzero_ps();
            for (i = 0; i < 8; i++) {
                t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            /* u[4 * g + j], 128-bit lane k: filter 4 * k + j of positions 4 * g .. + 3 */
            for (i = 0; i < 4; i++) {
                const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
                const __m512d c = _mm512_castps_pd(t[4 * i + 2]);
                const __m512d d = _mm512_castps_pd(t[4 * i + 3]);
                u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
                u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
                u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
                u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
            }
            for (j = 0; j < 4; j++) {
                const __m512 v = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);
                const __m512 w = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);
                const __m512 v2 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
                const __m512 w2 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
                FC_T* o = out + (f0 + j) * ldo + p0;
                _mm512_mask_storeu_ps(o, mk, _mm512_shuffle_f32x4(v, v2, 0x88));
                _mm512_mask_storeu_ps(o + 4 * ldo, mk, _mm512_shuffle_f32x4(w, w2, 0x88));
                _mm512_mask_storeu_ps(o + 8 * ldo, mk, _mm512_shuffle_f32x4(v, v2, 0xDD));
                _mm512_mask_storeu_ps(o + 12 * ldo, mk, _mm512_shuffle_f32x4(w, w2, 0xDD));
            }
        }
#else
    for (f0 = 0; f0 < nk; f0 += 8)
        for (p0 = 0; p0 < np; p0 += 8) {
            const int m = np - p0 < 8 ? (int)(np - p0) : 8;
            const __mmask8 mk = (__mmask8)((1u << m) - 1);
            __m512d r[8], t[8];
            for (i = 0; i < 8; i++)
                r[i] = i < m ? _mm512_loadu_pd(st + (p0 + i) * nk + f0) : _mm512_setzero_pd();
            /* t[2 * g + j], 128-bit lane k: filter 2 * k + j of positions 2 * g, 2 * g + 1 */
            for (i = 0; i < 4; i++) {
                t[2 * i] = _mm512_unpacklo_pd(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm512_unpackhi_pd(r[2 * i], r[2 * i + 1]);
            }
            for (j = 0; j < 2; j++) {
                const __m512d v = _mm512_shuffle_f64x2(t[j], t[2 + j], 0x88);
                const __m512d w = _mm512_shuffle_f64x2(t[j], t[2 + j], 0xDD);
                const __m512d v2 = _mm512_shuffle_f64x2(t[4 + j], t[6 + j], 0x88);
                const __m512d w2 = _mm512_shuffle_f64x2(t[4 + j], t[6 + j], 0xDD);
                FC_T* o = out + (f0 + j) * ldo + p0;
                _mm512_mask_storeu_pd(o, mk, _mm512_shuffle_f64x2(v, v2, 0x88));
                _mm512_mask_storeu_pd(o + 2 * ldo, mk, _mm512_shuffle_f64x2(w, w2, 0x88));
                _mm512_mask_storeu_pd(o + 4 * ldo, mk, _mm512_shuffle_f64x2(v, v2, 0xDD));
                _mm512_mask_storeu_pd(o + 6 * ldo, mk, _mm512_shuffle_f64x2(w, w2, 0xDD));
            }
        }
#endif
}

/* ---------------------------------------------------------------------------------------
 * fc_taps_rows: fc_taps_out's sums for layers of short output rows (FC_RV_MINW to
 * FC_RV_MAXW columns, rows following each other in the output: ldr == Wo, ldc == 1), with
 * the filters in the vector lanes. The flat kernel computes a vector of positions over the
 * Wp - Wo columns between rows too (lenet2, 11 of 13: 16% of its multiply-adds); here a
 * register block is rb whole rows of Wo positions (rb * Wo <= 24 accumulators) x one vector
 * of filters (16 float32, 8 float64: two and one of fc_pack's eight-filter blocks), each
 * tap one weight vector and rb * Wo broadcasts of the input, at fixed offsets from the
 * tap's row (the row width a constant at every call). The sums go position-major to a
 * stack stage (at most FC_RV_STAGE positions at a time) and then to the planes, transposed
 * in registers (fc_fv_unstage). Each output gets its bias and then its taps in the order
 * t = 0 .. R - 1, as fc_taps_out's: the same bits. AVX-512 only. Zen 4, lenet2
 * (64x6x13x13 -> 16x3x3), one thread: 93% of the FMA peak on the outputs it computes, in a
 * stand-alone test.
 * --------------------------------------------------------------------------------------- */
/* *v = tap weights of VL filters packed by fc_pack: float32's sixteen from two blocks of
 * eight (at w and w + next), float64's eight from one */
FC_WIDE_STORE void FC_NAME(fc_rv_wload)(FC_VT* v, const FC_T* w, ptrdiff_t next)
{
#if FC_IS_FLOAT
    *v = (FC_VT)_mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(w)),
                                   _mm256_loadu_ps(w + next), 1);
#else
    (void)next;
    *v = *(const FC_VTU*)w;
#endif
}

/* rb rows x S positions (constants at every call) from the row at src, VL filters whose
 * weights are packed at wa (fc_rv_wload: float32's second eight R * 8 further on) */
FC_INLINE void FC_NAME(fc_rv_blk)(const FC_T* src, const ptrdiff_t* off, ptrdiff_t R,
                                  const FC_T* wa, const FC_T* bias, ptrdiff_t Wp, FC_T* st,
                                  int rb, int S)
{
    enum { VL = FC_VBYTES / sizeof(FC_T) };
    FC_VT a[FC_RV_ACC], wv;
    const FC_VT bv = *(const FC_VTU*)bias;
    ptrdiff_t t;
    int r, i;
    /* (unrolled whatever the count: gcc peels at most 16 iterations of a loop by itself,
     * and a loop left rolled keeps the sums in memory, at half the speed) */
#pragma GCC unroll 24
    for (i = 0; i < rb * S; i++) a[i] = (FC_VT){0} + bv; /* fc_oblk's start: -0 -> +0 */
    for (t = 0; t < R; t++) {
        FC_NAME(fc_rv_wload)(&wv, wa + t * 8, R * 8);
#pragma GCC unroll 4
        for (r = 0; r < rb; r++) {
            const FC_T* p = src + off[t] + r * Wp;
            /* opaque: each broadcast is then this row's register plus a constant, where
             * gcc otherwise keeps every (row, position) offset in a register of its own
             * and runs out of them */
            __asm__("" : "+r"(p));
#pragma GCC unroll 24
            for (i = 0; i < S; i++) a[r * S + i] += p[i] * wv;
        }
    }
#pragma GCC unroll 24
    for (i = 0; i < rb * S; i++) { /* (opaque: gcc made these stores a stack copy and a
                                     * memcpy, 3% of lenet2's time) */
        FC_T* d = st + i * VL;
        __asm__("" : "+r"(d));
        *(FC_VTU*)d = a[i];
    }
}

/* rows [r0, r1), rb at a time and the rest (fewer) in one block, S positions each (rb, S
 * constants at every call) */
FC_INLINE void FC_NAME(fc_rv_rows)(const FC_T* src, const ptrdiff_t* off, ptrdiff_t R,
                                   const FC_T* wa, const FC_T* bias, ptrdiff_t Wp, FC_T* st,
                                   ptrdiff_t r0, ptrdiff_t r1, int rb, int S)
{
    ptrdiff_t r;
    enum { VL = FC_VBYTES / sizeof(FC_T) };
    for (r = r0; r + rb <= r1; r += rb)
        FC_NAME(fc_rv_blk)(src + r * Wp, off, R, wa, bias, Wp, st + (r - r0) * S * VL, rb, S);
    if (rb > 3 && r1 - r == 3) /* (rb > n: no block above rb rows is compiled) */
        FC_NAME(fc_rv_blk)(src + r * Wp, off, R, wa, bias, Wp, st + (r - r0) * S * VL, 3, S);
    else if (rb > 2 && r1 - r == 2)
        FC_NAME(fc_rv_blk)(src + r * Wp, off, R, wa, bias, Wp, st + (r - r0) * S * VL, 2, S);
    else if (r1 - r == 1)
        FC_NAME(fc_rv_blk)(src + r * Wp, off, R, wa, bias, Wp, st + (r - r0) * S * VL, 1, S);
}

FC_WIDE static ptrdiff_t FC_NAME(fc_taps_rows)(const FC_T* src, const ptrdiff_t* off,
                                               ptrdiff_t R, const FC_T* wp, const FC_T* bias,
                                               ptrdiff_t nk, FC_T* out, const fc_ogeo* g,
                                               ptrdiff_t L)
{
    enum { VL = FC_VBYTES / sizeof(FC_T) };
    const ptrdiff_t Wo = g->Wo, Wp = g->Wp, nf = nk / VL * VL;
    ptrdiff_t rows, ch, r0, r1, f0;
    FC_T st[FC_RV_STAGE * VL];
    if (nf == 0 || Wo < FC_RV_MINW || Wo > FC_RV_MAXW || g->ldc != 1 || g->ldr != Wo)
        return 0;
    rows = (L - Wo) / Wp + 1;
    ch = FC_RV_STAGE / Wo; /* rows a stage holds */
    for (r0 = 0; r0 < rows; r0 = r1) {
        r1 = r0 + ch < rows ? r0 + ch : rows;
        for (f0 = 0; f0 < nf; f0 += VL) {
            const FC_T* wa = wp + f0 * R; /* fc_pack's blocks f0 / 8 (and f0 / 8 + 1) */
            switch (Wo) { /* rb rows of Wo: rb * Wo <= FC_RV_ACC accumulators */
            case 4:
                FC_NAME(fc_rv_rows)(src, off, R, wa, bias + f0, Wp, st, r0, r1, 4, 4);
                break;
            case 5:
                FC_NAME(fc_rv_rows)(src, off, R, wa, bias + f0, Wp, st, r0, r1, 4, 5);
                break;
            case 6:
                FC_NAME(fc_rv_rows)(src, off, R, wa, bias + f0, Wp, st, r0, r1, 4, 6);
                break;
            case 7:
                FC_NAME(fc_rv_rows)(src, off, R, wa, bias + f0, Wp, st, r0, r1, 3, 7);
                break;
            case 8:
                FC_NAME(fc_rv_rows)(src, off, R, wa, bias + f0, Wp, st, r0, r1, 3, 8);
                break;
            case 9:
                FC_NAME(fc_rv_rows)(src, off, R, wa, bias + f0, Wp, st, r0, r1, 2, 9);
                break;
            case 10:
                FC_NAME(fc_rv_rows)(src, off, R, wa, bias + f0, Wp, st, r0, r1, 2, 10);
                break;
            case 11:
                FC_NAME(fc_rv_rows)(src, off, R, wa, bias + f0, Wp, st, r0, r1, 2, 11);
                break;
            default:
                FC_NAME(fc_rv_rows)(src, off, R, wa, bias + f0, Wp, st, r0, r1, 2, 12);
            }
            FC_NAME(fc_fv_unstage)(st, VL, (r1 - r0) * Wo, out + f0 * g->ldo + r0 * Wo,
                                   g->ldo);
        }
    }
    return nf;
}
#else

#if FC_VECTOR
/* the narrow build: each block of FV filters in slices of FC_FVN_NV vectors */
FC_CLONES static void FC_NAME(fc_taps_fvn)(const FC_T* src, ptrdiff_t plane, ptrdiff_t Cg,
                                           ptrdiff_t ku, const ptrdiff_t* ev,
                                           const ptrdiff_t* dv, ptrdiff_t ne,
                                           const FC_T* wv, const FC_T* bias, ptrdiff_t nk,
                                           FC_T* out, const ptrdiff_t* q,
                                           const ptrdiff_t* po, ptrdiff_t n)
{
    FC_NAME(fc_fv_blocks)(src, plane, Cg, ku, ev, dv, ne, wv, bias, nk, out, q, po, n,
                          FC_FVN_NV, FC_FVN_NP);
}
#endif

/* the wide build on fc_wide() machines, the narrow one elsewhere; plain loops without GNU C
 * vectors, the same sums */
static void FC_NAME(fc_taps_fv)(const FC_T* src, ptrdiff_t plane, ptrdiff_t Cg, ptrdiff_t ku,
                                const ptrdiff_t* ev, const ptrdiff_t* dv, ptrdiff_t ne,
                                const FC_T* wv, const FC_T* bias, ptrdiff_t nk, FC_T* out,
                                const ptrdiff_t* q, const ptrdiff_t* po, ptrdiff_t n)
{
#if FC_VECTOR
#if FC_HAVE_WIDE
    if (fc_wide()) {
        FC_WNAME(fc_taps_fv)(src, plane, Cg, ku, ev, dv, ne, wv, bias, nk, out, q, po, n);
        return;
    }
#endif
    FC_NAME(fc_taps_fvn)(src, plane, Cg, ku, ev, dv, ne, wv, bias, nk, out, q, po, n);
#else
    enum { FV = FC_FV_NV * (FC_WBYTES / sizeof(FC_T)) };
    ptrdiff_t f, i, c, k;
    for (f = 0; f < nk / FV * FV; f++)
        for (i = 0; i < n; i++) {
            FC_T a = bias[f];
            for (c = 0; c < Cg; c++)
                for (k = 0; k < ne; k++)
                    a += wv[((f / FV) * Cg * ku + c * ku + ev[k]) * FV + f % FV]
                         * src[c * plane + dv[k] + q[i]];
            out[po[i] + f] = a;
        }
#endif
}

/* ---------------------------------------------------------------------------------------
 * fc_fv_unstage: fc_taps_fv's outputs, stored position-major (``st[p * nk + f]``, the
 * ``nk`` filters of a position contiguous), to planes: ``out[f * ldo + p] = st[p * nk + f]``
 * for f < nk (a multiple of fc_fv_filters()) and p < np. The wide build transposes tiles in
 * registers; elsewhere a plain loop, a filter's plane at a time.
 * --------------------------------------------------------------------------------------- */
static void FC_NAME(fc_fv_unstage)(const FC_T* st, ptrdiff_t nk, ptrdiff_t np, FC_T* out,
                                   ptrdiff_t ldo)
{
    ptrdiff_t f, p;
#if FC_HAVE_WIDE
    if (fc_wide()) {
        FC_WNAME(fc_fv_unstage)(st, nk, np, out, ldo);
        return;
    }
#endif
    for (f = 0; f < nk; f++)
        for (p = 0; p < np; p++) out[f * ldo + p] = st[p * nk + f];
}
#endif

/* ---------------------------------------------------------------------------------------
 * fc_frame: ``rin`` rows of ``Wp`` elements from an H x W plane, framed by zeros: dst row r
 * holds src row r + ih0 shifted right by pl (zero where that falls outside the plane).
 * --------------------------------------------------------------------------------------- */
#if FC_BODY_WIDE
/* fc_frame's AVX-512 build: each row a vector at a time, by one load masked to the input's
 * columns (the other lanes read nothing and give zeros) and one store masked to the frame's
 * width, where the narrow build copies the row's tail and writes the margins' zeros an
 * element at a time (12% of a layer of 13-wide planes padded by 2, Zen 4). The same values. */
FC_WIDE static void FC_NAME(fc_framew)(FC_T* FC_RESTRICT dst, ptrdiff_t Wp,
                                       const FC_T* FC_RESTRICT src, ptrdiff_t H, ptrdiff_t W,
                                       ptrdiff_t ih0, ptrdiff_t rin, ptrdiff_t pl)
{
    enum { VL = FC_VBYTES / sizeof(FC_T) };
    const unsigned full = (1u << VL) - 1u;
    ptrdiff_t lo = pl > 0 ? pl : 0, hi = pl + W < Wp ? pl + W : Wp, r, q;
    if (lo > Wp) lo = Wp;
    if (hi < lo) hi = lo;
    for (r = 0; r < rin; r++) {
        FC_T* d = dst + r * Wp;
        ptrdiff_t ih = ih0 + r;
        int inside = ih >= 0 && ih < H;
        for (q = 0; q < Wp; q += VL) {
            ptrdiff_t a = lo - q, b = hi - q;
            unsigned sm = Wp - q < VL ? (1u << (Wp - q)) - 1u : full, lm = 0;
            a = a < 0 ? 0 : a > VL ? VL : a;
            b = b < 0 ? 0 : b > VL ? VL : b;
            if (inside && b > a)
                lm = fc_lanes(a, b);
#if FC_IS_FLOAT
            __m512 v = lm ? _mm512_maskz_loadu_ps((__mmask16)lm, src + (ih * W - pl + q))
                          : _mm512_setzero_ps();
            _mm512_mask_storeu_ps(d + q, (__mmask16)sm, v);
#else
            __m512d v = lm ? _mm512_maskz_loadu_pd((__mmask8)lm, src + (ih * W - pl + q))
                           : _mm512_setzero_pd();
            _mm512_mask_storeu_pd(d + q, (__mmask8)sm, v);
#endif
        }
    }
}
#endif

#if !FC_BODY_WIDE
FC_CLONES FC_NO_MEMSET static void FC_NAME(fc_frame)(FC_T* FC_RESTRICT dst, ptrdiff_t Wp,
                                        const FC_T* FC_RESTRICT src, ptrdiff_t H,
                                        ptrdiff_t W, ptrdiff_t ih0, ptrdiff_t rin,
                                        ptrdiff_t pl)
{
    enum { VL = FC_VBYTES / sizeof(FC_T) };
    ptrdiff_t lo = pl > 0 ? pl : 0, hi = pl + W < Wp ? pl + W : Wp, r, q;
#if FC_HAVE_WIDE
    if (fc_wide()) {
        FC_WNAME(fc_framew)(dst, Wp, src, H, W, ih0, rin, pl);
        return;
    }
#endif
    if (lo > Wp) lo = Wp; /* a padding wider than the frame (a segment of a long row) */
    if (hi < lo) hi = lo;
    for (r = 0; r < rin; r++) {
        FC_T* d = dst + r * Wp;
        ptrdiff_t ih = ih0 + r;
        if (ih < 0 || ih >= H) {
            for (q = 0; q < Wp; q++) d[q] = 0;
            continue;
        }
        const FC_T* s = src + ih * W - pl;
        for (q = 0; q < lo; q++) d[q] = 0;
        q = lo;
        if (FC_VECTOR)
            for (; q + VL <= hi; q += VL) *(FC_VTU*)(d + q) = *(const FC_VTU*)(s + q);
        for (; q < hi; q++) d[q] = s[q];
        for (q = hi; q < Wp; q++) d[q] = 0;
    }
}

/* ---------------------------------------------------------------------------------------
 * fc_phases: the sh x sw stride phases of ``rin`` phase rows of an H x W plane, framed by
 * zeros. Phase (a, c)'s row r, at dst + (a * sw + c) * pstride + r * Wp, holds
 * src[ih0 + r * sh + a][q * sw + c - pl] for q < Wp (zero where that falls outside the
 * plane): the direct kernel's input at a stride above 1 (_cy_conv._flat_block). Each source
 * row is read once per column phase while in cache; a stride of 2, the common one, is a
 * constant-stride loop the compiler vectorizes with lane shuffles.
 * --------------------------------------------------------------------------------------- */
FC_CLONES static void FC_NAME(fc_phases)(FC_T* FC_RESTRICT dst, ptrdiff_t pstride,
                                         ptrdiff_t Wp, const FC_T* FC_RESTRICT src,
                                         ptrdiff_t H, ptrdiff_t W, ptrdiff_t ih0,
                                         ptrdiff_t rin, ptrdiff_t sh, ptrdiff_t sw,
                                         ptrdiff_t pl)
{
    ptrdiff_t a, c, r, q, lo, hi, ih, e;
    for (a = 0; a < sh; a++)
        for (r = 0; r < rin; r++) {
            ih = ih0 + r * sh + a;
            for (c = 0; c < sw; c++) {
                FC_T* d = dst + (a * sw + c) * pstride + r * Wp;
                if (ih < 0 || ih >= H) {
                    for (q = 0; q < Wp; q++) d[q] = 0;
                    continue;
                }
                /* q * sw + c - pl in [0, W) for q in [lo, hi) */
                e = pl - c;
                lo = e > 0 ? (e + sw - 1) / sw : 0;
                e = W + pl - c;
                hi = e > 0 ? (e + sw - 1) / sw : 0;
                if (hi > Wp) hi = Wp;
                if (lo > Wp) lo = Wp;
                if (hi < lo) hi = lo;
                const FC_T* s = src + ih * W + c - pl;
                for (q = 0; q < lo; q++) d[q] = 0;
                if (sw == 2)
                    for (q = lo; q < hi; q++) d[q] = s[2 * q];
                else
                    for (q = lo; q < hi; q++) d[q] = s[q * sw];
                for (q = hi; q < Wp; q++) d[q] = 0;
            }
        }
}
#endif

/* ---------------------------------------------------------------------------------------
 * fc_plane: rows [oh0, oh1) of the stride-1 correlation of one H x W plane with one kh x kw
 * kernel (dilation dh, dw; padding pt on top, pl on the left; zeros outside the plane),
 * plus ``bias``, written to ``out`` (rows ``Wo`` apart, ``out`` at row oh0). The input is
 * read in place: no framed copy and no accumulator buffer, so the plane is read once and
 * the output written once. This is the depthwise kernel, one filter per input plane.
 *
 * Register blocking: rb output rows x nv vectors of columns stay in registers while the
 * block's input rows stream past; each input row's vector load feeds the up to rb output
 * rows it belongs to (a 3x3 kernel and rb = 4: 6 input rows x 3 taps of loads for 36
 * multiply-adds per vector, against 9 loads for 9 done row by row). The vectors cover
 * [0, Wo) at columns 0, VL, 2 VL, ... and the last one ends at Wo (overlapping the one
 * before, computed twice alike). A vector whose window crosses the plane's left or right
 * edge loads VL columns inside the plane and shifts them into place with zeros
 * (``__builtin_shuffle``), so padding costs no scalar loop. Taps on input rows outside the
 * plane are skipped: the caller sends only finite kernels (an infinite weight times the
 * zero padding must give NaN). Each output gets the bias, then its taps in (i, j) order:
 * the same sum for any row blocking, any wide or narrow build. Needs W >= VL, Wo >= VL
 * and kw <= FC_PLANE_MAX_KW; otherwise (and without GNU C vectors) plain loops. The
 * AVX-512 build loads an edge vector's taps masked to the plane's columns instead of
 * shifting them, and streams a 3 x 3 kernel's inner rows (fc_p3rows).
 * --------------------------------------------------------------------------------------- */

/* plain loops: any size, and the build without GNU C vectors */
#if !FC_BODY_WIDE
static void FC_NAME(fc_plane_loop)(const FC_T* x, ptrdiff_t H, ptrdiff_t W, const FC_T* w,
                                   ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t dh, ptrdiff_t dw,
                                   ptrdiff_t pt, ptrdiff_t pl, FC_T bias, FC_T* out,
                                   ptrdiff_t Wo, ptrdiff_t oh0, ptrdiff_t oh1)
{
    ptrdiff_t oh, ow, i, j;
    for (oh = oh0; oh < oh1; oh++)
        for (ow = 0; ow < Wo; ow++) {
            FC_T a = bias;
            for (i = 0; i < kh; i++) {
                ptrdiff_t ih = oh - pt + i * dh;
                if (ih < 0 || ih >= H) continue;
                for (j = 0; j < kw; j++) {
                    ptrdiff_t iw = ow - pl + j * dw;
                    if (iw >= 0 && iw < W) a += w[i * kw + j] * x[ih * W + iw];
                }
            }
            out[(oh - oh0) * Wo + ow] = a;
        }
}
#endif

#if FC_PLANE_VECTOR
#if FC_BODY_WIDE
/* *v = the lanes in m from p, zeros in the others (masked-off lanes read nothing: they
 * may lie outside the array); AVX-512 only. Through a pointer: a returned 64-byte vector
 * would change the ABI of the callers built without AVX-512 (gcc's -Wpsabi) */
FC_WIDE_STORE void FC_NAME(fc_mload)(FC_VT* v, const FC_T* p, unsigned m)
{
#if FC_IS_FLOAT
    *v = (FC_VT)_mm512_maskz_loadu_ps((__mmask16)m, p);
#else
    *v = (FC_VT)_mm512_maskz_loadu_pd((__mmask8)m, p);
#endif
}

#endif

/* rows oh .. oh + nr - 1 (nr <= rb) at the nv vector columns pos[] (rb, nv <= 4 and edge
 * constants at every call). ``edge`` has a bit per vector: a clean vector (bit 0) has
 * every tap inside the plane's columns and loads at pos[v] - pl + j dw; an edge vector
 * loads at base[v * FC_PLANE_MAX_KW + j] and shifts the lanes by
 * sft[v * FC_PLANE_MAX_KW + j] (idx[sft + VL] is that shift's shuffle, zeros coming in),
 * or in the AVX-512 build loads at pos[v] - pl + j dw only the lanes of the mask
 * lm[v * FC_PLANE_MAX_KW + j] (those inside the plane's columns; zeros elsewhere). */
FC_INLINE void FC_NAME(fc_pblk)(const FC_T* FC_RESTRICT x, ptrdiff_t H, ptrdiff_t W,
                                const FC_T* FC_RESTRICT w, ptrdiff_t kh, ptrdiff_t kw,
                                ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t pt, ptrdiff_t pl,
                                FC_T bias, FC_T* FC_RESTRICT out, ptrdiff_t Wo, ptrdiff_t oh,
                                ptrdiff_t nr, const ptrdiff_t* pos, const ptrdiff_t* base,
                                const int* sft, const FC_MT* idx, const unsigned* lm, int rb,
                                int nv, int edge)
{
    enum { VL = FC_VBYTES / sizeof(FC_T) };
    FC_VT a[4][4], xv[4];
    const FC_VT zero = (FC_VT){0};
    ptrdiff_t wrow[4], p[4], ih, ihlo = oh - pt;
    ptrdiff_t ihhi = oh + nr - 1 - pt + (kh - 1) * dh, j;
    int r, v;
    for (v = 0; v < nv; v++) p[v] = pos[v] - pl;
    for (r = 0; r < rb; r++)
        for (v = 0; v < nv; v++) a[r][v] = zero + bias;
    if (ihlo < 0) ihlo = 0;
    if (ihhi > H - 1) ihhi = H - 1;
    for (ih = ihlo; ih <= ihhi; ih++) {
        const FC_T* xr = x + ih * W;
        /* the kernel row each output row of the block takes from input row ih */
        for (r = 0; r < rb; r++) {
            ptrdiff_t d = ih - (oh + r - pt);
            wrow[r] = (r < nr && d >= 0 && d % dh == 0 && d / dh < kh) ? d / dh * kw : -1;
        }
        for (j = 0; j < kw; j++) {
            for (v = 0; v < nv; v++) {
                if (edge >> v & 1) {
#if FC_BODY_WIDE
                    FC_NAME(fc_mload)(&xv[v], xr + p[v] + j * dw,
                                      lm[v * FC_PLANE_MAX_KW + j]);
#else
                    int m = sft[v * FC_PLANE_MAX_KW + j];
                    FC_VT u = *(const FC_VTU*)(xr + base[v * FC_PLANE_MAX_KW + j]);
                    xv[v] = m == 0 ? u : __builtin_shuffle(u, zero, idx[m + VL]);
#endif
                } else {
                    xv[v] = *(const FC_VTU*)(xr + p[v] + j * dw);
                }
            }
            for (r = 0; r < rb; r++) {
                if (wrow[r] < 0) continue;
                FC_T wv = w[wrow[r] + j];
                for (v = 0; v < nv; v++) a[r][v] += wv * xv[v];
            }
        }
    }
    for (r = 0; r < rb; r++) {
        if (r >= nr) break;
        for (v = 0; v < nv; v++) *(FC_VTU*)(out + r * Wo + pos[v]) = a[r][v];
    }
}

#if FC_BODY_WIDE
/* One input row's step of fc_p3rows: input row xr (its column -pl) at the vectors pos[]
 * feeds kernel row 0 to s0 (an output row starting here, from the bias), row 1 to s1 and
 * row 2 to s2, which is then complete and goes to o2; a flag off skips its row. */
FC_INLINE void FC_NAME(fc_p3step)(const FC_T* FC_RESTRICT xr, const FC_T* FC_RESTRICT w,
                                  FC_T bias, const ptrdiff_t* pos, const unsigned* lm,
                                  int nv, int edge, FC_VT* s0, FC_VT* s1, FC_VT* s2, int f0,
                                  int f1, int f2, FC_T* FC_RESTRICT o2)
{
    const FC_VT zero = (FC_VT){0};
    FC_VT xv[4];
    int j, v;
    /* the row's address opaque to the optimizer: each load is then this register plus
     * pos[v] (scaled) plus j, where gcc 12 otherwise kept every (step, vector, tap)
     * address live across the loop and spilled them (and the accumulators) */
    __asm__("" : "+r"(xr));
    if (f0)
        for (v = 0; v < nv; v++) s0[v] = zero + bias;
    for (j = 0; j < 3; j++) {
        for (v = 0; v < nv; v++) {
            if (edge >> v & 1)
                FC_NAME(fc_mload)(&xv[v], xr + pos[v] + j, lm[v * FC_PLANE_MAX_KW + j]);
            else
                xv[v] = *(const FC_VTU*)(xr + pos[v] + j);
        }
        if (f0)
            for (v = 0; v < nv; v++) s0[v] += w[j] * xv[v];
        if (f1)
            for (v = 0; v < nv; v++) s1[v] += w[3 + j] * xv[v];
        if (f2)
            for (v = 0; v < nv; v++) s2[v] += w[6 + j] * xv[v];
    }
    if (f2)
        for (v = 0; v < nv; v++) *(FC_VTU*)(o2 + pos[v]) = s2[v];
}

/* Output rows [a, b) of a 3 x 3 kernel at dilation 1 whose windows' rows all lie inside
 * the plane (a >= pt, b - 1 - pt + 2 < H), at the vectors pos[] (nv and edge constants
 * at every call): the input rows stream past once, each feeding the three output rows it
 * belongs to, whose accumulators (3 x nv vectors) stay in registers from the row's first
 * tap to its store; an edge vector takes each tap by one load masked to the plane's
 * columns (lm[v * FC_PLANE_MAX_KW + j]). Against fc_pblk's blocks of four rows: each
 * input row loaded once, not 1.5 times, and no kernel-row arithmetic per input row. The
 * same sums in the same order: the bias, then the taps in (i, j) order, zeros where a
 * window leaves the plane's columns. AVX-512 only. */
FC_INLINE void FC_NAME(fc_p3rows)(const FC_T* FC_RESTRICT x, ptrdiff_t W,
                                  const FC_T* FC_RESTRICT w, ptrdiff_t pt, ptrdiff_t pl,
                                  FC_T bias, FC_T* FC_RESTRICT out, ptrdiff_t Wo,
                                  ptrdiff_t a, ptrdiff_t b, const ptrdiff_t* pos,
                                  const unsigned* lm, int nv, int edge)
{
    FC_VT A[4], B[4], C[4];
    const ptrdiff_t n = b - a; /* >= 3 */
    ptrdiff_t s; /* step s reads input row a + s - pt, starts output row a + s */
    const FC_T* xr = x + (a - pt) * W - pl;
    FC_T* o2 = out - 2 * Wo; /* output row a + s - 2, which step s completes */
    /* the accumulators rotate through A, B, C with period three: step s starts
     * X[s % 3], adds kernel row 1 to X[(s - 1) % 3] and row 2 to X[(s - 2) % 3] */
    FC_NAME(fc_p3step)(xr, w, bias, pos, lm, nv, edge, A, C, B, 1, 0, 0, o2);
    FC_NAME(fc_p3step)(xr + W, w, bias, pos, lm, nv, edge, B, A, C, 1, 1, 0, o2 + Wo);
    for (s = 2; s < n; s += 3) { /* the steady state: all three rows in */
        FC_NAME(fc_p3step)(xr + s * W, w, bias, pos, lm, nv, edge, C, B, A, 1, 1, 1,
                           o2 + s * Wo);
        if (s + 1 == n) break;
        FC_NAME(fc_p3step)(xr + (s + 1) * W, w, bias, pos, lm, nv, edge, A, C, B, 1, 1, 1,
                           o2 + (s + 1) * Wo);
        if (s + 2 == n) break;
        FC_NAME(fc_p3step)(xr + (s + 2) * W, w, bias, pos, lm, nv, edge, B, A, C, 1, 1, 1,
                           o2 + (s + 2) * Wo);
    }
    /* the last two rows: step n adds row 1 to X[(n - 1) % 3] and row 2 to X[(n - 2) % 3],
     * step n + 1 row 2 to X[(n - 1) % 3] */
    xr += n * W;
    o2 += n * Wo;
    switch (n % 3) {
    case 0:
        FC_NAME(fc_p3step)(xr, w, bias, pos, lm, nv, edge, A, C, B, 0, 1, 1, o2);
        FC_NAME(fc_p3step)(xr + W, w, bias, pos, lm, nv, edge, B, A, C, 0, 0, 1, o2 + Wo);
        break;
    case 1:
        FC_NAME(fc_p3step)(xr, w, bias, pos, lm, nv, edge, B, A, C, 0, 1, 1, o2);
        FC_NAME(fc_p3step)(xr + W, w, bias, pos, lm, nv, edge, C, B, A, 0, 0, 1, o2 + Wo);
        break;
    default:
        FC_NAME(fc_p3step)(xr, w, bias, pos, lm, nv, edge, C, B, A, 0, 1, 1, o2);
        FC_NAME(fc_p3step)(xr + W, w, bias, pos, lm, nv, edge, A, C, B, 0, 0, 1, o2 + Wo);
    }
}
#endif

/* rows [oh0, oh1) of the block of vectors pos[], rb at a time (rb, nv and edge constants
 * at every call: fc_pblk's). An earlier form of this helper made gcc 12 spill vectors in
 * the hot loop of the AVX-512 float build (a third slower on a padded 56 x 56 plane); this
 * one measured the same as the loops written out in fc_plane_vec (0.97-1.03 of their time,
 * depthwise 3x3 and 5x5 layers, float32 and float64, 1 and 2 threads, gcc 12.2, Zen 4).
 * In the AVX-512 build a 3 x 3 kernel at dilation 1 streams the rows whose windows lie
 * inside the plane (fc_p3rows); the others take blocks of rb rows. */
FC_INLINE void FC_NAME(fc_pblk_rows)(const FC_T* x, ptrdiff_t H, ptrdiff_t W, const FC_T* w,
                                     ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t dh, ptrdiff_t dw,
                                     ptrdiff_t pt, ptrdiff_t pl, FC_T bias, FC_T* out,
                                     ptrdiff_t Wo, ptrdiff_t oh0, ptrdiff_t oh1,
                                     const ptrdiff_t* pos, const ptrdiff_t* base,
                                     const int* sft, const FC_MT* idx, const unsigned* lm,
                                     int rb, int nv, int edge)
{
    ptrdiff_t oh;
#if FC_BODY_WIDE
    /* the rows whose windows lie inside the plane: [a, b) */
    ptrdiff_t a = oh0 > pt ? oh0 : pt, b = oh1 < H - 2 + pt ? oh1 : H - 2 + pt;
    if (kh == 3 && kw == 3 && dh == 1 && dw == 1 && b - a >= 3) {
        for (oh = oh0; oh < a; oh += rb)
            FC_NAME(fc_pblk)(x, H, W, w, kh, kw, dh, dw, pt, pl, bias, out + (oh - oh0) * Wo,
                             Wo, oh, a - oh < rb ? a - oh : rb, pos, base, sft, idx, lm, rb,
                             nv, edge);
        FC_NAME(fc_p3rows)(x, W, w, pt, pl, bias, out + (a - oh0) * Wo, Wo, a, b, pos, lm, nv,
                           edge);
        for (oh = b; oh < oh1; oh += rb)
            FC_NAME(fc_pblk)(x, H, W, w, kh, kw, dh, dw, pt, pl, bias, out + (oh - oh0) * Wo,
                             Wo, oh, oh1 - oh < rb ? oh1 - oh : rb, pos, base, sft, idx, lm,
                             rb, nv, edge);
        return;
    }
#endif
    for (oh = oh0; oh < oh1; oh += rb)
        FC_NAME(fc_pblk)(x, H, W, w, kh, kw, dh, dw, pt, pl, bias, out + (oh - oh0) * Wo, Wo,
                         oh, oh1 - oh < rb ? oh1 - oh : rb, pos, base, sft, idx, lm, rb, nv,
                         edge);
}

/* the whole plane in blocks of rb output rows x NV vectors of columns (rb, NV constants at
 * every call). The vectors go NV at a time (three left of four run as four, the last one
 * computed twice; then two, then one); a vector is clean when it lies inside [kc0, kc1). */
FC_INLINE void FC_NAME(fc_plane_vec)(const FC_T* x, ptrdiff_t H, ptrdiff_t W, const FC_T* w,
                                     ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t dh, ptrdiff_t dw,
                                     ptrdiff_t pt, ptrdiff_t pl, FC_T bias, FC_T* out,
                                     ptrdiff_t Wo, ptrdiff_t oh0, ptrdiff_t oh1, int rb,
                                     int NV)
{
    enum { VL = FC_VBYTES / sizeof(FC_T) };
    ptrdiff_t pos[4], nvec = (Wo + VL - 1) / VL;
    ptrdiff_t k0, kc0 = nvec, kc1 = nvec, j, c, span = (kw - 1) * dw;
    int v, nv, nb, emask;
#if FC_BODY_WIDE
    /* the edge vectors' lane masks (AVX-512: masked loads, no shifts) */
    unsigned lm[4 * FC_PLANE_MAX_KW];
    const ptrdiff_t* base = NULL;
    const int* sft = NULL;
    const FC_MT* idx = NULL;
#else
    FC_MT idx[2 * VL + 1];
    ptrdiff_t base[4 * FC_PLANE_MAX_KW], b;
    int sft[4 * FC_PLANE_MAX_KW], l;
    const unsigned* lm = NULL;
    /* idx[m + VL]: lane l takes lane l + m, zero when that is outside the vector */
    for (c = 0; c < 2 * VL + 1; c++)
        for (l = 0; l < VL; l++) {
            ptrdiff_t src = l + c - VL;
            idx[c][l] = src >= 0 && src < VL ? src : VL;
        }
#endif
    /* clean: pos >= pl and pos - pl + span + VL <= W; pos grows with the index */
    for (k0 = 0; k0 < nvec; k0++) {
        c = k0 * VL < Wo - VL ? k0 * VL : Wo - VL;
        if (c >= pl && c - pl + span + VL <= W) {
            if (kc0 == nvec) kc0 = k0;
            kc1 = k0 + 1;
        }
    }
    if (kc0 == nvec) kc0 = kc1 = 0;
    for (k0 = 0; k0 < nvec; k0 += nv) {
        nv = nvec - k0 >= NV ? NV : (int)(nvec - k0);
        nb = nv > 2 || nv == NV ? NV : nv; /* the block's vectors: the last one repeated */
        /* emask: the vectors of the block that reach the padding (a bit each; clean ones
         * read the row in place): in a padded row of NV vectors, typically the first and
         * the last */
        emask = 0;
        for (v = 0; v < nb; v++) {
            ptrdiff_t kv = k0 + (v < nv ? v : nv - 1);
            pos[v] = kv * VL < Wo - VL ? kv * VL : Wo - VL;
            if (!(kv >= kc0 && kv < kc1)) emask |= 1 << v;
        }
        if (emask) /* the edge loads' places, for every vector of a block with an edge */
            for (v = 0; v < nb; v++)
                for (j = 0; j < kw; j++) {
                    c = pos[v] - pl + j * dw; /* the first column this tap reads */
#if FC_BODY_WIDE
                    /* lane l reads column c + l: kept when inside [0, W) */
                    ptrdiff_t lo = c < 0 ? -c : 0, hi = W - c < VL ? W - c : VL;
                    lo = lo > VL ? VL : lo;
                    hi = hi < lo ? lo : hi;
                    lm[v * FC_PLANE_MAX_KW + j] = fc_lanes(lo, hi);
#else
                    b = c < 0 ? 0 : c > W - VL ? W - VL : c;
                    base[v * FC_PLANE_MAX_KW + j] = b;
                    c -= b; /* a shift of VL or more leaves only zeros */
                    sft[v * FC_PLANE_MAX_KW + j] = (int)(c < -VL ? -VL : c > VL ? VL : c);
#endif
                }
        /* rows [oh0, oh1), rb at a time, with the block shape and its edge vectors as
         * constants; the full block with edges first (a padded plane narrower than NV
         * vectors is all that block): in the order clean-first, the AVX-512 float build ran
         * 2% slower on 8 x 64 x 56 x 56. Only the first and last vectors at the edges (a
         * padded 56-wide row): their loads alone go through the shifts, 10% of a depthwise
         * layer's time when every vector did (Zen 4) */
        if (nb == NV && emask == (1 | 1 << (NV - 1)))
            FC_NAME(fc_pblk_rows)(x, H, W, w, kh, kw, dh, dw, pt, pl, bias, out, Wo, oh0, oh1,
                                  pos, base, sft, idx, lm, rb, NV, 1 | 1 << (NV - 1));
        else if (nb == NV && emask)
            FC_NAME(fc_pblk_rows)(x, H, W, w, kh, kw, dh, dw, pt, pl, bias, out, Wo, oh0, oh1,
                                  pos, base, sft, idx, lm, rb, NV, (1 << NV) - 1);
        else if (nb == NV)
            FC_NAME(fc_pblk_rows)(x, H, W, w, kh, kw, dh, dw, pt, pl, bias, out, Wo, oh0, oh1,
                                  pos, base, sft, idx, lm, rb, NV, 0);
        else if (nb == 2 && emask)
            FC_NAME(fc_pblk_rows)(x, H, W, w, kh, kw, dh, dw, pt, pl, bias, out, Wo, oh0, oh1,
                                  pos, base, sft, idx, lm, rb, 2, 3);
        else if (nb == 2)
            FC_NAME(fc_pblk_rows)(x, H, W, w, kh, kw, dh, dw, pt, pl, bias, out, Wo, oh0, oh1,
                                  pos, base, sft, idx, lm, rb, 2, 0);
        else if (emask)
            FC_NAME(fc_pblk_rows)(x, H, W, w, kh, kw, dh, dw, pt, pl, bias, out, Wo, oh0, oh1,
                                  pos, base, sft, idx, lm, rb, 1, 1);
        else
            FC_NAME(fc_pblk_rows)(x, H, W, w, kh, kw, dh, dw, pt, pl, bias, out, Wo, oh0, oh1,
                                  pos, base, sft, idx, lm, rb, 1, 0);
    }
}

#if !FC_BODY_WIDE
/* the narrow build: 4 rows x 2 vectors (eight ymm accumulators of AVX2's 16) */
FC_CLONES static void FC_NAME(fc_plane2)(const FC_T* x, ptrdiff_t H, ptrdiff_t W,
                                         const FC_T* w, ptrdiff_t kh, ptrdiff_t kw,
                                         ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t pt,
                                         ptrdiff_t pl, FC_T bias, FC_T* out, ptrdiff_t Wo,
                                         ptrdiff_t oh0, ptrdiff_t oh1)
{
    FC_NAME(fc_plane_vec)(x, H, W, w, kh, kw, dh, dw, pt, pl, bias, out, Wo, oh0, oh1, 4, 2);
}

#else
/* the wide one, AVX-512 only: 4 rows x 4 vectors (16 of the 32 zmm registers) */
FC_WIDE static void FC_NAME(fc_plane4)(const FC_T* x, ptrdiff_t H, ptrdiff_t W,
                                       const FC_T* w, ptrdiff_t kh, ptrdiff_t kw,
                                       ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t pt, ptrdiff_t pl,
                                       FC_T bias, FC_T* out, ptrdiff_t Wo, ptrdiff_t oh0,
                                       ptrdiff_t oh1)
{
    FC_NAME(fc_plane_vec)(x, H, W, w, kh, kw, dh, dw, pt, pl, bias, out, Wo, oh0, oh1, 4, 4);
}
#endif
#endif /* FC_PLANE_VECTOR */

#if !FC_BODY_WIDE
static void FC_NAME(fc_plane)(const FC_T* x, ptrdiff_t H, ptrdiff_t W, const FC_T* w,
                              ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t dh, ptrdiff_t dw,
                              ptrdiff_t pt, ptrdiff_t pl, FC_T bias, FC_T* out, ptrdiff_t Wo,
                              ptrdiff_t oh0, ptrdiff_t oh1)
{
#if FC_PLANE_VECTOR
    enum { VL = FC_VBYTES / sizeof(FC_T) };
#if FC_HAVE_WIDE
    enum { WL = FC_WBYTES / sizeof(FC_T) };
    if (fc_wide() && W >= WL && Wo >= WL && kw <= FC_PLANE_MAX_KW) {
        FC_WNAME(fc_plane4)(x, H, W, w, kh, kw, dh, dw, pt, pl, bias, out, Wo, oh0, oh1);
        return;
    }
#endif
    if (W < VL || Wo < VL || kw > FC_PLANE_MAX_KW)
        FC_NAME(fc_plane_loop)(x, H, W, w, kh, kw, dh, dw, pt, pl, bias, out, Wo, oh0, oh1);
    else
        FC_NAME(fc_plane2)(x, H, W, w, kh, kw, dh, dw, pt, pl, bias, out, Wo, oh0, oh1);
#else
    FC_NAME(fc_plane_loop)(x, H, W, w, kh, kw, dh, dw, pt, pl, bias, out, Wo, oh0, oh1);
#endif
}
#endif

/* ---------------------------------------------------------------------------------------
 * fc_row: outputs [o0, o1) of one output row that reads one input row per channel (1-D
 * convolution: conv1d, convolve, correlate),
 *     out[o] = bias + sum_{c < C} sum_{j < kw} w[c ws + j] * x[c xs + o - pl + j dw],
 * x[c xs + p] read as zero outside 0 <= p < W. ``ext`` is the caller's scratch of
 * fc_row_scratch(C, kw, dw, sizeof(FC_T)) elements.
 *
 * Blocks of TB = FC_ROW_NV vectors of outputs (eight accumulators in registers) go over the
 * taps channel by channel, each tap one broadcast weight and a load per vector. A block
 * whose windows lie inside the row reads it in place; one that crosses an edge reads a
 * zero-framed copy of its windows in ``ext`` (so an inf or NaN weight meets the padding as
 * inf * 0 = NaN, as everywhere else): the span they cover, TB + (kw - 1) dw per channel, or,
 * when that is longer (a dilated kernel), each tap's TB values on their own, so that a copy
 * never costs more than the block's taps; a block past o1 (the range's last, partial one)
 * is computed whole from its copy and only its first outputs stored. Every output gets the
 * bias, then its taps in (c, j) order, through the same vector operations wherever its
 * block starts: the results are bitwise the same for any split of the row into ranges (the
 * callers split it over threads) and equal fc_plane's for one channel.
 * --------------------------------------------------------------------------------------- */
#if !FC_BODY_WIDE
/* one block of outputs [o, o + NV VL) from C channel rows ``src`` (cs apart), tap j of a
 * window at src[c cs + j dw + lane], stored to out[o .. o + m) (m <= NV VL) */
FC_INLINE void FC_NAME(fc_row_blk)(const FC_T* FC_RESTRICT src, ptrdiff_t cs, ptrdiff_t C,
                                   const FC_T* FC_RESTRICT w, ptrdiff_t ws, ptrdiff_t kw,
                                   ptrdiff_t dw, FC_T bias, FC_T* FC_RESTRICT out,
                                   ptrdiff_t m, FC_T* FC_RESTRICT tmp)
{
    enum { VL = sizeof(FC_VT) / sizeof(FC_T), NV = FC_ROW_NV };
    FC_VT a[NV];
    const FC_VT zero = (FC_VT){0};
    ptrdiff_t c, j;
    int v;
    for (v = 0; v < NV; v++) a[v] = zero + bias;
    for (c = 0; c < C; c++) {
        const FC_T* xc = src + c * cs;
        const FC_T* wc = w + c * ws;
        for (j = 0; j < kw; j++) {
            const FC_VT wv = zero + wc[j];
            const FC_T* p = xc + j * dw;
            for (v = 0; v < NV; v++) a[v] += wv * *(const FC_VTU*)(p + v * VL);
        }
    }
    if (m == NV * VL) {
        for (v = 0; v < NV; v++) *(FC_VTU*)(out + v * VL) = a[v];
    } else {
        for (v = 0; v < NV; v++) *(FC_VTU*)(tmp + v * VL) = a[v];
        memcpy(out, tmp, (size_t)m * sizeof(FC_T));
    }
}

/* the zero-framed copy of the C windows [p0, p0 + span) of the rows (xs apart, W long) */
FC_INLINE void FC_NAME(fc_row_frame)(const FC_T* FC_RESTRICT x, ptrdiff_t xs, ptrdiff_t C,
                                     ptrdiff_t W, ptrdiff_t p0, ptrdiff_t span,
                                     FC_T* FC_RESTRICT ext)
{
    ptrdiff_t c, a = p0 < 0 ? -p0 : 0, b = W - p0 < span ? W - p0 : span;
    for (c = 0; c < C; c++) {
        FC_T* e = ext + c * span;
        if (b <= a) {
            memset(e, 0, (size_t)span * sizeof(FC_T));
            continue;
        }
        memset(e, 0, (size_t)a * sizeof(FC_T));
        memcpy(e + a, x + c * xs + p0 + a, (size_t)(b - a) * sizeof(FC_T));
        memset(e + b, 0, (size_t)(span - b) * sizeof(FC_T));
    }
}

FC_CLONES static void FC_NAME(fc_row)(const FC_T* FC_RESTRICT x, ptrdiff_t xs, ptrdiff_t C,
                                      ptrdiff_t W, const FC_T* FC_RESTRICT w, ptrdiff_t ws,
                                      ptrdiff_t kw, ptrdiff_t dw, ptrdiff_t pl, FC_T bias,
                                      FC_T* FC_RESTRICT out, ptrdiff_t o0, ptrdiff_t o1,
                                      FC_T* FC_RESTRICT ext)
{
    enum { VL = sizeof(FC_VT) / sizeof(FC_T), TB = FC_ROW_NV * VL };
    const ptrdiff_t span = TB + (kw - 1) * dw;
    const int by_tap = kw * TB < span; /* the edge copy: tap by tap, or the whole span */
    FC_T* tmp = ext + C * (by_tap ? kw * TB : span);
    ptrdiff_t o, c, j;
    for (o = o0; o < o1; o += TB) {
        const ptrdiff_t m = o1 - o < TB ? o1 - o : TB, p0 = o - pl;
        if (m == TB && p0 >= 0 && p0 + span <= W) {
            FC_NAME(fc_row_blk)(x + p0, xs, C, w, ws, kw, dw, bias, out + o, TB, tmp);
        } else if (by_tap) {
            /* tap j of channel c at ext[(c kw + j) TB]: channels kw TB apart, taps TB */
            for (c = 0; c < C; c++)
                for (j = 0; j < kw; j++)
                    FC_NAME(fc_row_frame)(x + c * xs, xs, 1, W, p0 + j * dw, TB,
                                          ext + (c * kw + j) * TB);
            FC_NAME(fc_row_blk)(ext, kw * TB, C, w, ws, kw, TB, bias, out + o, m, tmp);
        } else {
            FC_NAME(fc_row_frame)(x, xs, C, W, p0, span, ext);
            FC_NAME(fc_row_blk)(ext, span, C, w, ws, kw, dw, bias, out + o, m, tmp);
        }
    }
}
#endif

/* ---------------------------------------------------------------------------------------
 * fc_wino_weights: Winograd F(2x2, 3x3)'s transform of one filter's C kernels,
 * U[xi * ld + c] = (G g_c G^T)[xi] for g_c = g[9 c .. 9 c + 8] (xi = 4 i + j), with
 * G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]. VL channels at a time:
 * their 9 x VL weights transposed through a stack block, then the transform on vectors
 * and 16 vector stores (gcc does not vectorize the stride-9 loads by itself); the same
 * arithmetic, in the same order, for the last channels one at a time.
 * --------------------------------------------------------------------------------------- */

/* u[(4 i + j) ld] = (G q G^T)[i][j] for the 3 x 3 kernel q[3 i + j], one channel */
FC_INLINE void FC_NAME(fc_wino_g)(const FC_T* q, FC_T* u, ptrdiff_t ld)
{
    const FC_T h = (FC_T)0.5;
    FC_T t[4][3];
    int i, j;
    for (j = 0; j < 3; j++) {
        t[0][j] = q[j];
        t[1][j] = (q[j] + q[3 + j] + q[6 + j]) * h;
        t[2][j] = (q[j] - q[3 + j] + q[6 + j]) * h;
        t[3][j] = q[6 + j];
    }
    for (i = 0; i < 4; i++) {
        u[4 * i * ld] = t[i][0];
        u[(4 * i + 1) * ld] = (t[i][0] + t[i][1] + t[i][2]) * h;
        u[(4 * i + 2) * ld] = (t[i][0] - t[i][1] + t[i][2]) * h;
        u[(4 * i + 3) * ld] = t[i][2];
    }
}

#if FC_VECTOR
/* fc_wino_g on vectors: VL channels, lane by lane, the same arithmetic in the same order */
FC_INLINE void FC_NAME(fc_wino_gv)(const FC_VT* q, FC_T* u, ptrdiff_t ld)
{
    const FC_VT h = (FC_VT){0} + (FC_T)0.5;
    FC_VT t[4][3];
    int i, j;
    for (j = 0; j < 3; j++) {
        t[0][j] = q[j];
        t[1][j] = (q[j] + q[3 + j] + q[6 + j]) * h;
        t[2][j] = (q[j] - q[3 + j] + q[6 + j]) * h;
        t[3][j] = q[6 + j];
    }
    for (i = 0; i < 4; i++) {
        *(FC_VTU*)(u + 4 * i * ld) = t[i][0];
        *(FC_VTU*)(u + (4 * i + 1) * ld) = (t[i][0] + t[i][1] + t[i][2]) * h;
        *(FC_VTU*)(u + (4 * i + 2) * ld) = (t[i][0] - t[i][1] + t[i][2]) * h;
        *(FC_VTU*)(u + (4 * i + 3) * ld) = t[i][2];
    }
}
#endif

#if !FC_BODY_WIDE
FC_CLONES static void FC_NAME(fc_wino_weights)(const FC_T* FC_RESTRICT g, ptrdiff_t C,
                                               FC_T* FC_RESTRICT U, ptrdiff_t ld)
{
    ptrdiff_t c = 0;
#if FC_VECTOR
    enum { VL = FC_VBYTES / sizeof(FC_T) };
    for (; c + VL <= C; c += VL) {
        FC_VT q[9];
        FC_T tb[9][VL];
        int l, e;
        for (l = 0; l < VL; l++)
            for (e = 0; e < 9; e++) tb[e][l] = g[9 * (c + l) + e];
        for (e = 0; e < 9; e++) memcpy(&q[e], tb[e], sizeof(q[e]));
        FC_NAME(fc_wino_gv)(q, U + c, ld);
    }
#endif
    for (; c < C; c++) FC_NAME(fc_wino_g)(g + 9 * c, U + c, ld);
}
#endif

/* ---------------------------------------------------------------------------------------
 * fc_wino_in, fc_wino_out: Winograd F(2x2, 3x3)'s data transforms, one row of tw tiles at a
 * time (the loops over the tiles vectorize; the Cython loops they replace ran scalar, 29%
 * of resnet3x3's time), with the same sums in the same order as those loops: B^T d's
 * rows r0 = d0 - d2, r1 = d1 + d2, r2 = d2 - d1, r3 = d1 - d3, then each row's columns
 * the same way; an output bk + ((s0 + s1) + s2) or bk + ((s1 - s2) - s3), with
 * s_j = (m_j + m_{4+j}) + m_{8+j} in the first row, (m_{4+j} - m_{8+j}) - m_{12+j} in the
 * second.
 *
 * fc_wino_in: V[xi * ldv + j] = (B^T d_j B)[xi], xi = 4 i + c, for the tiles
 * d_j[r][q] = F[r * Wp + 2 j + q] (r, q < 4) of one channel's framed rows (F holds
 * 2 tw + 2 columns),
 * B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]].
 *
 * fc_wino_out: the tiles' outputs A^T m_j A + bias, m_j[xi] = M[xi * ldm + j],
 * A^T = [[1, 1, 1, 0], [0, 1, -1, -1]], into the output rows o0 (columns 2 j and 2 j + 1,
 * below Wo) and o1 (the next row; NULL when the output ends at o0).
 * --------------------------------------------------------------------------------------- */
#if !FC_BODY_WIDE
FC_CLONES static void FC_NAME(fc_wino_in)(const FC_T* FC_RESTRICT F, ptrdiff_t Wp,
                                          ptrdiff_t tw, FC_T* FC_RESTRICT V, ptrdiff_t ldv)
{
    /* B^T d's rows at the even and odd columns of 64 tiles at a time (one more column
     * pair: a tile reads columns 2 j .. 2 j + 3), then (B^T d) B from them: loops gcc
     * vectorizes (the form with four overlapping column loads per tile it did not) */
    enum { NT = 64 };
    FC_T E[4][NT + 1], O[4][NT + 1];
    ptrdiff_t j0, j, n;
    int i;
    for (j0 = 0; j0 < tw; j0 += NT) {
        const FC_T *f0 = F + 2 * j0, *f1 = f0 + Wp, *f2 = f0 + 2 * Wp, *f3 = f0 + 3 * Wp;
        n = tw - j0 < NT ? tw - j0 : NT;
        for (j = 0; j <= n; j++) {
            E[0][j] = f0[2 * j] - f2[2 * j];
            E[1][j] = f1[2 * j] + f2[2 * j];
            E[2][j] = f2[2 * j] - f1[2 * j];
            E[3][j] = f1[2 * j] - f3[2 * j];
            O[0][j] = f0[2 * j + 1] - f2[2 * j + 1];
            O[1][j] = f1[2 * j + 1] + f2[2 * j + 1];
            O[2][j] = f2[2 * j + 1] - f1[2 * j + 1];
            O[3][j] = f1[2 * j + 1] - f3[2 * j + 1];
        }
        for (i = 0; i < 4; i++) {
            const FC_T *e = E[i], *o = O[i];
            FC_T* v = V + (4 * i) * ldv + j0;
            for (j = 0; j < n; j++) {
                v[j] = e[j] - e[j + 1];
                v[ldv + j] = o[j] + e[j + 1];
                v[2 * ldv + j] = e[j + 1] - o[j];
                v[3 * ldv + j] = o[j] - o[j + 1];
            }
        }
    }
}

/* one tile's outputs: even/odd columns of the two rows */
FC_INLINE void FC_NAME(fc_wino_tile)(const FC_T* FC_RESTRICT M, ptrdiff_t ldm, ptrdiff_t j,
                                     FC_T bk, FC_T* e0, FC_T* d0, FC_T* e1, FC_T* d1)
{
    FC_T m[16], s0, s1, s2, s3;
    int xi;
    for (xi = 0; xi < 16; xi++) m[xi] = M[xi * ldm + j];
    s0 = m[0] + m[4] + m[8];
    s1 = m[1] + m[5] + m[9];
    s2 = m[2] + m[6] + m[10];
    s3 = m[3] + m[7] + m[11];
    *e0 = bk + (s0 + s1 + s2);
    *d0 = bk + (s1 - s2 - s3);
    s0 = m[4] - m[8] - m[12];
    s1 = m[5] - m[9] - m[13];
    s2 = m[6] - m[10] - m[14];
    s3 = m[7] - m[11] - m[15];
    *e1 = bk + (s0 + s1 + s2);
    *d1 = bk + (s1 - s2 - s3);
}

FC_CLONES static void FC_NAME(fc_wino_out)(const FC_T* FC_RESTRICT M, ptrdiff_t ldm,
                                           ptrdiff_t tw, FC_T bk, FC_T* FC_RESTRICT o0,
                                           FC_T* FC_RESTRICT o1, ptrdiff_t Wo)
{
    const ptrdiff_t full = Wo / 2; /* tiles with both columns inside the output */
    FC_T e0, d0, e1, d1;
    ptrdiff_t j;
    if (o1 != NULL) {
        for (j = 0; j < full; j++) {
            FC_NAME(fc_wino_tile)(M, ldm, j, bk, &e0, &d0, &e1, &d1);
            o0[2 * j] = e0;
            o0[2 * j + 1] = d0;
            o1[2 * j] = e1;
            o1[2 * j + 1] = d1;
        }
    } else {
        for (j = 0; j < full; j++) {
            FC_NAME(fc_wino_tile)(M, ldm, j, bk, &e0, &d0, &e1, &d1);
            o0[2 * j] = e0;
            o0[2 * j + 1] = d0;
        }
    }
    for (j = full; j < tw; j++) { /* an odd Wo: the last tile's first column */
        FC_NAME(fc_wino_tile)(M, ldm, j, bk, &e0, &d0, &e1, &d1);
        o0[2 * j] = e0;
        if (o1 != NULL) o1[2 * j] = e1;
    }
}
#endif

/* ---------------------------------------------------------------------------------------
 * fc_absmax: the largest |x[i]| of n values (0 when n is 0); +inf if one is infinite, NaN
 * if one is NaN. The scan behind Winograd's run-time range check (in _cy_conv) and the
 * finite-weights checks: per vector one mask, one compare and one blend, no branch, so it
 * runs at memory speed. A maximum is exact and independent of order, so any split of the
 * array (threads, chunks) gives the same answer.
 * --------------------------------------------------------------------------------------- */
#if FC_BODY_WIDE
/* (the scan is public only: see the narrow pass) */
#elif FC_VECTOR
FC_CLONES static FC_T FC_NAME(fc_absmax)(const FC_T* x, ptrdiff_t n)
{
    enum { VL = FC_VBYTES / sizeof(FC_T) };
    const FC_MT sgn = (FC_MT)(-(FC_VT){0}); /* -0.0: the sign bits alone */
    FC_VT vm = {0};
    FC_MT nan = {0};
    FC_T m = 0;
    ptrdiff_t i = 0;
    int l, bad = 0;
    for (; i + VL <= n; i += VL) {
        FC_VT a = *(const FC_VTU*)(x + i);
        FC_MT gt;
        a = (FC_VT)((FC_MT)a & ~sgn);
        gt = a > vm;
        vm = (FC_VT)(((FC_MT)a & gt) | ((FC_MT)vm & ~gt));
        nan |= a != a;
    }
    for (l = 0; l < VL; l++) {
        bad |= nan[l] != 0;
        if (vm[l] > m) m = vm[l];
    }
    for (; i < n; i++) {
        FC_T a = x[i] < 0 ? -x[i] : x[i];
        bad |= a != a;
        if (a > m) m = a;
    }
    return bad ? (FC_T)NAN : m;
}
#else
static FC_T FC_NAME(fc_absmax)(const FC_T* x, ptrdiff_t n)
{
    FC_T m = 0;
    ptrdiff_t i;
    int bad = 0;
    for (i = 0; i < n; i++) {
        FC_T a = x[i] < 0 ? -x[i] : x[i];
        bad |= a != a;
        if (a > m) m = a;
    }
    return bad ? (FC_T)NAN : m;
}
#endif

/* this body's parameters, for the next element type */
#undef FC_T
#undef FC_NAME
#undef FC_WNAME
#undef FC_BODY_WIDE
#undef FC_VBYTES
#undef FC_VT
#undef FC_VTU
#undef FC_MT
#undef FC_IS_FLOAT
