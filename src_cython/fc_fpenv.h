/* Flush-to-zero for fastconv's kernel threads (fastconv.set_flush_denormal).
 *
 * On x86-64 the SSE control register MXCSR holds two modes that make subnormal floats cost
 * nothing: FTZ (bit 15: a subnormal result is written as zero) and DAZ (bit 6: a subnormal
 * input is read as zero). The register belongs to one thread, and the threads of an OpenMP
 * region are libgomp's pool threads, shared with every other OpenMP user in the process
 * (torch, Numba), so the modes are set where the work runs and put back when it ends:
 *
 *     for item in prange(...):
 *         fc_ftz_enter()     # first statement of the work item
 *         ...
 *         fc_ftz_exit()      # last statement (the body must not `continue` past it)
 *
 * fc_ftz_enter saves the thread's MXCSR (in a thread-local slot) and sets FTZ and DAZ when
 * the module's flag is on; fc_ftz_exit writes the saved value back. With the flag off both
 * are one branch. (Max-pooling only compares and moves values: a subnormal maximum stays as
 * it is, as in torch's max_pool2d with indices.) The flag is one C global per extension module (a static in this header),
 * set through each module's ``_set_flush_denormal`` by fastconv._threads, which owns the
 * setting. Elsewhere than x86-64 everything here is a no-op and fc_ftz_supported() is 0.
 */
#ifndef FC_FPENV_H
#define FC_FPENV_H

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define FC_FPENV_X86 1
#else
#define FC_FPENV_X86 0
#endif

#if defined(_MSC_VER)
#define FC_THREAD_LOCAL __declspec(thread)
#else
#define FC_THREAD_LOCAL __thread
#endif

#define FC_FTZ_BITS 0x8040u /* FTZ (bit 15) | DAZ (bit 6) */

static int fc_ftz_flag = 0;                     /* this module's copy of the setting */
static FC_THREAD_LOCAL unsigned fc_ftz_saved = 0; /* MXCSR before fc_ftz_enter */
static FC_THREAD_LOCAL int fc_ftz_active = 0;     /* fc_ftz_enter changed MXCSR */

static inline int fc_ftz_supported(void) { return FC_FPENV_X86; }

static inline void fc_ftz_set(int on) { fc_ftz_flag = on != 0; }

static inline int fc_ftz_get(void) { return fc_ftz_flag; }

/* The calling thread's MXCSR (0 where there is none); for the tests and fastconv.info. */
static inline unsigned fc_fpenv_get(void) {
#if FC_FPENV_X86
    return _mm_getcsr();
#else
    return 0;
#endif
}

static inline void fc_fpenv_set(unsigned csr) {
#if FC_FPENV_X86
    _mm_setcsr(csr);
#else
    (void)csr;
#endif
}

static inline void fc_ftz_enter(void) {
#if FC_FPENV_X86
    if (fc_ftz_flag) {
        unsigned old = _mm_getcsr();
        fc_ftz_saved = old;
        fc_ftz_active = (old & FC_FTZ_BITS) != FC_FTZ_BITS;
        if (fc_ftz_active)
            _mm_setcsr(old | FC_FTZ_BITS);
    }
#endif
}

static inline void fc_ftz_exit(void) {
#if FC_FPENV_X86
    if (fc_ftz_active) {
        _mm_setcsr(fc_ftz_saved);
        fc_ftz_active = 0;
    }
#endif
}

#endif /* FC_FPENV_H */
