/* The machine's multiply-add peak, measured by the benchmark suite (fastconv._peak).
 *
 * Included by _cy_peak.pyx only. fc_peak_run_{f,d}(level, n, m, c) runs FC_PEAK_ACC
 * independent chains ``a = a * m + c`` on SIMD vectors for n iterations and returns the sum
 * of the final lanes (so the compiler must compute them). Each chain waits for its own
 * previous multiply-add only, so FC_PEAK_ACC chains hide the FMA latency of FC_PEAK_ACC / 2
 * cycles on two FMA units (4-5 cycles on current x86 cores: 8-10 chains needed). With
 * 0 < m < 1 the chains converge to c / (1 - m): no overflow, no subnormal.
 *
 * One build per x86-64 level, chosen at run time like the kernels' target_clones (see
 * fc_kernels.h), so the same wheel measures the widest FMA the CPU has:
 *
 *     level 3  x86-64-v4: AVX-512, one zmm (64 bytes) per chain
 *     level 2  x86-64-v3: AVX2 + FMA, one ymm (32 bytes) per chain
 *     level 1  x86-64 baseline: SSE2, one xmm (16 bytes) per chain, multiply then add
 *     level 0  another compiler or CPU: GNU C vectors of 16 bytes (or plain C loops), as
 *              the compiler builds them
 *
 * 12 chains of one register each fit in the 16 registers of SSE2 and AVX2 with the two
 * constants m and c. fc_peak_level() is the highest level the CPU supports;
 * fc_peak_lanes(level, is_double) the lanes of one chain, so one iteration does
 * 2 * FC_PEAK_ACC * lanes floating-point operations (a multiply and an add, fused or not).
 */
#ifndef FC_PEAK_H
#define FC_PEAK_H

#include <stddef.h>

#define FC_PEAK_ACC 12

#if defined(__GNUC__) && __GNUC__ >= 12 && defined(__x86_64__) && defined(__ELF__) \
    && !defined(__clang__) && !defined(FASTCONV_NO_CLONES)
#define FC_PEAK_X86 1
#else
#define FC_PEAK_X86 0
#endif

#if defined(__GNUC__)
#define FC_PEAK_VECTOR 1
#else
#define FC_PEAK_VECTOR 0
#endif

static int fc_peak_level(void)
{
#if FC_PEAK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return 3;
    if (__builtin_cpu_supports("x86-64-v3")) return 2;
    return 1;
#else
    return 0;
#endif
}

/* bytes of one chain's vector at ``level`` */
static int fc_peak_bytes(int level)
{
#if FC_PEAK_X86
    return level == 3 ? 64 : level == 2 ? 32 : 16;
#else
    (void)level;
    return 16;
#endif
}

static int fc_peak_lanes(int level, int is_double)
{
    return fc_peak_bytes(level) / (is_double ? (int)sizeof(double) : (int)sizeof(float));
}

#if FC_PEAK_VECTOR
typedef float fc_pv16f __attribute__((vector_size(16)));
typedef double fc_pv16d __attribute__((vector_size(16)));
#if FC_PEAK_X86
typedef float fc_pv32f __attribute__((vector_size(32)));
typedef double fc_pv32d __attribute__((vector_size(32)));
typedef float fc_pv64f __attribute__((vector_size(64)));
typedef double fc_pv64d __attribute__((vector_size(64)));
#endif
#endif

/* The builds: fc_peak_body.h once per (element type, level). */
#if FC_PEAK_VECTOR
#define FC_PT float
#define FC_PV fc_pv16f
#define FC_PNAME fc_peak_16f
#define FC_PATTR
#include "fc_peak_body.h"
#define FC_PT double
#define FC_PV fc_pv16d
#define FC_PNAME fc_peak_16d
#define FC_PATTR
#include "fc_peak_body.h"
#endif

#if FC_PEAK_X86
#define FC_PT float
#define FC_PV fc_pv32f
#define FC_PNAME fc_peak_32f
#define FC_PATTR __attribute__((target("arch=x86-64-v3")))
#include "fc_peak_body.h"
#define FC_PT double
#define FC_PV fc_pv32d
#define FC_PNAME fc_peak_32d
#define FC_PATTR __attribute__((target("arch=x86-64-v3")))
#include "fc_peak_body.h"
#define FC_PT float
#define FC_PV fc_pv64f
#define FC_PNAME fc_peak_64f
#define FC_PATTR __attribute__((target("arch=x86-64-v4")))
#include "fc_peak_body.h"
#define FC_PT double
#define FC_PV fc_pv64d
#define FC_PNAME fc_peak_64d
#define FC_PATTR __attribute__((target("arch=x86-64-v4")))
#include "fc_peak_body.h"
#endif

#if !FC_PEAK_VECTOR
/* Without GNU C vectors (MSVC): the same chains as arrays of 16 bytes, in plain loops that
 * the compiler may vectorize. */
static double fc_peak_16f(long long n, float m, float c)
{
    float a[FC_PEAK_ACC][4];
    double s = 0;
    long long i;
    int k, l;
    for (k = 0; k < FC_PEAK_ACC; k++)
        for (l = 0; l < 4; l++) a[k][l] = c * (float)(k + 1);
    for (i = 0; i < n; i++)
        for (k = 0; k < FC_PEAK_ACC; k++)
            for (l = 0; l < 4; l++) a[k][l] = a[k][l] * m + c;
    for (k = 0; k < FC_PEAK_ACC; k++)
        for (l = 0; l < 4; l++) s += a[k][l];
    return s;
}

static double fc_peak_16d(long long n, double m, double c)
{
    double a[FC_PEAK_ACC][2];
    double s = 0;
    long long i;
    int k, l;
    for (k = 0; k < FC_PEAK_ACC; k++)
        for (l = 0; l < 2; l++) a[k][l] = c * (double)(k + 1);
    for (i = 0; i < n; i++)
        for (k = 0; k < FC_PEAK_ACC; k++)
            for (l = 0; l < 2; l++) a[k][l] = a[k][l] * m + c;
    for (k = 0; k < FC_PEAK_ACC; k++)
        for (l = 0; l < 2; l++) s += a[k][l];
    return s;
}
#endif

/* n iterations of the chains at ``level`` (which the caller checked the CPU supports) */
static double fc_peak_run_f(int level, long long n, float m, float c)
{
#if FC_PEAK_X86
    if (level == 3) return fc_peak_64f(n, m, c);
    if (level == 2) return fc_peak_32f(n, m, c);
#endif
    (void)level;
    return fc_peak_16f(n, m, c);
}

static double fc_peak_run_d(int level, long long n, double m, double c)
{
#if FC_PEAK_X86
    if (level == 3) return fc_peak_64d(n, m, c);
    if (level == 2) return fc_peak_32d(n, m, c);
#endif
    (void)level;
    return fc_peak_16d(n, m, c);
}

#endif /* FC_PEAK_H */
