/* fc_maxtap_idx for one element type: the generic body behind fc_pool.h (what it computes
 * is described there).
 *
 * No include guard: fc_pool.h includes this file once per element type, after defining
 * FC_T (float, double) and FC_NAME(n) (the name of function n for that type), and this
 * file undefines them at its end (the convention of fc_kernels_body.h).
 */
#if !defined(FC_T) || !defined(FC_NAME) || !defined(FASTCONV_FC_POOL_H)
#error "fc_pool_body.h is included by fc_pool.h, once per element type"
#endif

/* the loop, for any stride: inlined twice below, once with s == 1 as a constant */
FC_POOL_INLINE void FC_NAME(fc_maxtap_run)(FC_T *FC_POOL_RESTRICT o, int64_t *FC_POOL_RESTRICT t,
                                           const FC_T *FC_POOL_RESTRICT x, Py_ssize_t n,
                                           Py_ssize_t s, int64_t pos)
{
    Py_ssize_t i;
    for (i = 0; i < n; i++) {
        const FC_T v = x[i * s], m = o[i];
        const int64_t ti = t[i];
        const int take = (v > m) | (v != v) | (ti < 0);
        o[i] = take ? v : m;
        t[i] = take ? pos + (int64_t)(i * s) : ti;
    }
}

FC_POOL_CLONES static void FC_NAME(fc_maxtap_idx)(FC_T *FC_POOL_RESTRICT o,
                                                  int64_t *FC_POOL_RESTRICT t,
                                                  const FC_T *FC_POOL_RESTRICT x,
                                                  Py_ssize_t n, Py_ssize_t s, int64_t pos)
{
    if (s == 1)  /* contiguous taps: a loop of their own (vector loads) */
        FC_NAME(fc_maxtap_run)(o, t, x, n, 1, pos);
    else
        FC_NAME(fc_maxtap_run)(o, t, x, n, s, pos);
}

#undef FC_T
#undef FC_NAME
