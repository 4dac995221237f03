"""What every Numba kernel module shares: the decorator and the thread hand-off."""

import numba

# nopython, parallel over prange, cached on disk, GIL released. No fastmath anywhere: it
# assumes no NaN/inf, and max-pool must propagate NaN.
jit = numba.njit(parallel=True, cache=True, nogil=True)


def use_threads(nthreads):
    """Give the calling thread's next parallel region ``nthreads`` threads (Numba's cap)."""
    numba.set_num_threads(max(1, min(int(nthreads), numba.config.NUMBA_NUM_THREADS)))
