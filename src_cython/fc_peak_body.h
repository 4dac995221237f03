/* One build of fc_peak's multiply-add chains: the generic body behind fc_peak.h.
 *
 * No include guard: fc_peak.h includes this file once per (element type, x86-64 level),
 * after defining
 *
 *     FC_PT     the element type (float, double)
 *     FC_PV     the GNU C vector of that type, one register of the level
 *     FC_PNAME  the function's name
 *     FC_PATTR  its target attribute (empty for the baseline build)
 *
 * and this file undefines them at its end. The twelve chains are named variables (not an
 * array) so that each one stays in its register.
 */
#if !defined(FC_PT) || !defined(FC_PV) || !defined(FC_PNAME) || !defined(FC_PATTR)
#error "fc_peak_body.h is included by fc_peak.h, once per element type and level"
#endif

FC_PATTR static double FC_PNAME(long long n, FC_PT m, FC_PT c)
{
    const FC_PV vm = (FC_PV){0} + m, vc = (FC_PV){0} + c;
    FC_PV a0 = vc, a1 = vc * 2, a2 = vc * 3, a3 = vc * 4, a4 = vc * 5, a5 = vc * 6;
    FC_PV a6 = vc * 7, a7 = vc * 8, a8 = vc * 9, a9 = vc * 10, a10 = vc * 11, a11 = vc * 12;
    FC_PV s;
    double total = 0;
    long long i;
    int l;
    for (i = 0; i < n; i++) {
        a0 = a0 * vm + vc;
        a1 = a1 * vm + vc;
        a2 = a2 * vm + vc;
        a3 = a3 * vm + vc;
        a4 = a4 * vm + vc;
        a5 = a5 * vm + vc;
        a6 = a6 * vm + vc;
        a7 = a7 * vm + vc;
        a8 = a8 * vm + vc;
        a9 = a9 * vm + vc;
        a10 = a10 * vm + vc;
        a11 = a11 * vm + vc;
    }
    s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11));
    for (l = 0; l < (int)(sizeof(FC_PV) / sizeof(FC_PT)); l++) total += s[l];
    return total;
}

#undef FC_PT
#undef FC_PV
#undef FC_PNAME
#undef FC_PATTR
