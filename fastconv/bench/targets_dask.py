"""fastconv.dask's speed target (issue 18), for the paired bench: ``fastconv.dask.correlate``
against dask-image's ``ndfilters.correlate`` (which runs ``scipy.ndimage.correlate`` on
each block, through ``map_overlap``), on the same Dask array.

The array: 16384 x 16384 float32 (1 GiB), made once in memory and wrapped in 2048-square
chunks; a 5x5 kernel, mode ``reflect``. One call computes the filtered array's mean
absolute value (a float64 reduction, the same on both sides, so no 1 GiB result is
gathered) on Dask's threaded scheduler with 2 workers; every fastconv task runs on one
thread (fastconv.dask's default), every scipy task on one. Needs the ``dask`` extra, and
``dask-image`` (the ``peers`` extra) for the peer; without them the pair skips.
"""

import functools

import numpy as np

from fastconv import ndimage

SIZE, CHUNK, K = 16384, 2048, 5
PEER = "dask_image"


@functools.lru_cache(maxsize=1)
def _arrays():
    import pytest

    da = pytest.importorskip("dask.array")
    x = np.random.default_rng(0).standard_normal((SIZE, SIZE), dtype=np.float32)
    w = np.random.default_rng(1).standard_normal((K, K)).astype(np.float32)
    return x, da.from_array(x, chunks=CHUNK), w


def _mean_abs(y):
    return abs(y).mean(dtype=np.float64).compute(scheduler="threads", num_workers=2)


def make(impl):
    import pytest

    x, xd, w = _arrays()
    if impl == PEER:
        ndfilters = pytest.importorskip("dask_image.ndfilters")
        return lambda: _mean_abs(ndfilters.correlate(xd, w, mode="reflect"))
    import fastconv.dask as fd

    return lambda: _mean_abs(fd.correlate(xd, w, mode="reflect", backend=impl))


def reference():
    x, _, w = _arrays()
    return np.abs(ndimage.correlate(x, w, mode="reflect", backend="numpy")).mean(
        dtype=np.float64)


PAIRED = {
    f"dask-correlate-{K}x{K}-{SIZE}x{SIZE}-float32": dict(
        what=f"fastconv.dask.correlate, {K}x{K} kernel, {SIZE}x{SIZE} float32 in {CHUNK}-square "
             f"chunks, reflect (threaded scheduler, 2 workers)",
        bound=0.5, peer=PEER, make=make, reference=reference),
}
