/* fastconv's adaptive pools (issue 17): the global average's row sums in C, compiled once
 * per x86-64 level (target_clones, as fc_kernels.h explains: a release build has no
 * -march=native, and gcc would vectorize for SSE2 only).
 *
 * fc_means_{f,d}(x, P, L, out): out[p] = (x[p * L] + ... + x[p * L + L - 1]) / L for p < P.
 * Each row is added with sixteen running sums (lane k takes the elements i = k mod 16 of
 * the full blocks of 16) and one for the rest, in order, then these are added in one fixed
 * tree: the same operations in the same order in every clone, so every CPU gives the same
 * bits. No fast-math: NaN and inf propagate.
 */
#ifndef FASTCONV_FC_ADAPTIVE_H
#define FASTCONV_FC_ADAPTIVE_H

#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__) && defined(__ELF__) && !defined(__clang__) \
    && !defined(FASTCONV_NO_CLONES)
#define FCA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FCA_CLONES
#endif

#if defined(__GNUC__) && (__GNUC__ >= 12 || defined(__clang__))
/* The 16 lanes as 32-byte GCC vectors (one ymm per clone, two xmm in the baseline one),
 * and the tree's first two levels as vector adds (gcc scalarizes them when written on an
 * array). */
#define FCA_VECTOR 1
typedef float fca_f8 __attribute__((vector_size(32)));
typedef float fca_f4 __attribute__((vector_size(16)));
typedef double fca_d4 __attribute__((vector_size(32)));
#else
#define FCA_VECTOR 0
#endif

/* out[p] = the mean of row p; the tree: s8[k] = a[k] + a[k + 8], s4[k] = s8[k] + s8[k + 4],
 * then ((s4[0] + s4[2]) + (s4[1] + s4[3])) + the rest, divided by L. */
FCA_CLONES static void fc_means_f(const float* x, Py_ssize_t P, Py_ssize_t L, float* out)
{
    for (Py_ssize_t p = 0; p < P; p++) {
        const float* r = x + p * L;
        float t = 0, s4[4];
        Py_ssize_t i = 0;
#if FCA_VECTOR
        /* the 16 lanes as two 8-lane halves: a vector wider than the clone's registers
         * would live in memory (fc_kernels_body.h) */
        fca_f8 a0 = {0}, a1 = {0}, v0, v1;
        for (; i + 16 <= L; i += 16) {
            memcpy(&v0, r + i, sizeof v0);
            memcpy(&v1, r + i + 8, sizeof v1);
            a0 += v0;
            a1 += v1;
        }
        fca_f8 s8 = a0 + a1;
        fca_f4 q = __builtin_shufflevector(s8, s8, 0, 1, 2, 3)
                   + __builtin_shufflevector(s8, s8, 4, 5, 6, 7);
        memcpy(s4, &q, sizeof q);
#else
        float a[16] = {0};
        for (; i + 16 <= L; i += 16)
            for (int k = 0; k < 16; k++) a[k] += r[i + k];
        for (int k = 0; k < 4; k++) s4[k] = (a[k] + a[k + 8]) + (a[k + 4] + a[k + 12]);
#endif
        for (; i < L; i++) t += r[i];
        out[p] = (((s4[0] + s4[2]) + (s4[1] + s4[3])) + t) / (float)L;
    }
}

/* fc_means_f's twin for double. */
FCA_CLONES static void fc_means_d(const double* x, Py_ssize_t P, Py_ssize_t L, double* out)
{
    for (Py_ssize_t p = 0; p < P; p++) {
        const double* r = x + p * L;
        double t = 0, s4[4];
        Py_ssize_t i = 0;
#if FCA_VECTOR
        /* the 16 lanes as four quarters (see fc_means_f) */
        fca_d4 a[4] = {{0}}, v;
        for (; i + 16 <= L; i += 16)
            for (int k = 0; k < 4; k++) {
                memcpy(&v, r + i + 4 * k, sizeof v);
                a[k] += v;
            }
        fca_d4 q = (a[0] + a[2]) + (a[1] + a[3]);
        memcpy(s4, &q, sizeof q);
#else
        double a[16] = {0};
        for (; i + 16 <= L; i += 16)
            for (int k = 0; k < 16; k++) a[k] += r[i + k];
        for (int k = 0; k < 4; k++) s4[k] = (a[k] + a[k + 8]) + (a[k + 4] + a[k + 12]);
#endif
        for (; i < L; i++) t += r[i];
        out[p] = (((s4[0] + s4[2]) + (s4[1] + s4[3])) + t) / (double)L;
    }
}

#endif
