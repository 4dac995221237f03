/* fastconv's adaptive pools (issue 17): the global average's row sums in C, compiled once
 * per x86-64 level (target_clones, as fc_kernels.h explains: a release build has no
 * -march=native, and gcc would vectorize for SSE2 only).
 *
 * fc_means_{f,d}(x, P, L, out): out[p] = (x[p * L] + ... + x[p * L + L - 1]) / L for p < P.
 * Each row is added with sixteen running sums (lane k takes the elements i = k mod 16 of
 * the full blocks of 16, lane 0 the rest, in order), then the lanes are added in one fixed
 * tree: the same operations in the same order in every clone, so every CPU gives the same
 * bits. No fast-math: NaN and inf propagate.
 */
#ifndef FASTCONV_FC_ADAPTIVE_H
#define FASTCONV_FC_ADAPTIVE_H

#include <stddef.h>

#if defined(__GNUC__) && defined(__x86_64__) && defined(__ELF__) && !defined(__clang__) \
    && !defined(FASTCONV_NO_CLONES)
#define FCA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FCA_CLONES
#endif

FCA_CLONES static void fc_means_f(const float* x, Py_ssize_t P, Py_ssize_t L, float* out)
{
    for (Py_ssize_t p = 0; p < P; p++) {
        const float* r = x + p * L;
        float a[16];
        Py_ssize_t i = 0;
        for (int k = 0; k < 16; k++) a[k] = 0;
        for (; i + 16 <= L; i += 16)
            for (int k = 0; k < 16; k++) a[k] += r[i + k];
        for (; i < L; i++) a[0] += r[i];
        for (int k = 0; k < 8; k++) a[k] += a[k + 8];
        for (int k = 0; k < 4; k++) a[k] += a[k + 4];
        a[0] += a[2];
        a[1] += a[3];
        out[p] = (a[0] + a[1]) / (float)L;
    }
}

/* fc_means_f's twin for double. */
FCA_CLONES static void fc_means_d(const double* x, Py_ssize_t P, Py_ssize_t L, double* out)
{
    for (Py_ssize_t p = 0; p < P; p++) {
        const double* r = x + p * L;
        double a[16];
        Py_ssize_t i = 0;
        for (int k = 0; k < 16; k++) a[k] = 0;
        for (; i + 16 <= L; i += 16)
            for (int k = 0; k < 16; k++) a[k] += r[i + k];
        for (; i < L; i++) a[0] += r[i];
        for (int k = 0; k < 8; k++) a[k] += a[k + 8];
        for (int k = 0; k < 4; k++) a[k] += a[k + 4];
        a[0] += a[2];
        a[1] += a[3];
        out[p] = (a[0] + a[1]) / (double)L;
    }
}

#endif
