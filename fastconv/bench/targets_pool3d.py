"""Issue 17's speed targets for max_pool3d and avg_pool1d, for the paired bench
(:mod:`fastconv.bench.test_paired`): ``auto / torch`` on 2 threads, float32, forward.

``PAIRED[group]``: ``what`` the workload, ``bound`` the target ratio, ``make(impl)`` a
zero-argument callable doing one call on prebuilt float32 inputs for ``impl`` in ``("auto",
"torch", "cython", "numba")`` (torch: under ``torch.no_grad()``), and ``reference()`` the
NumPy backend's result, to check each side against first.
"""

from __future__ import annotations

import functools

import numpy as np

import fastconv

__all__ = ["PAIRED"]

MAX_POOL3D_SHAPE = (4, 32, 32, 64, 64)
AVG_POOL1D_SHAPE = (64, 128, 4096)


@functools.lru_cache(maxsize=None)
def _input(shape):
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    x.flags.writeable = False  # shared between the sides: nobody writes it
    return x


def _maker(fc_call, torch_call, shape):
    def make(impl):
        x = _input(shape)
        if impl == "torch":
            import pytest

            torch = pytest.importorskip("torch")
            tx = torch.from_numpy(x.copy())

            def run():
                with torch.no_grad():
                    return torch_call(torch.nn.functional, tx)
            return run
        return functools.partial(fc_call, x, backend=impl)
    return make


def _max_pool3d(x, backend):
    return fastconv.max_pool3d(x, 2, backend=backend)


def _avg_pool1d(x, backend):
    return fastconv.avg_pool1d(x, 4, 4, backend=backend)


PAIRED = {
    "max_pool3d-2x2x2s2-4x32x32x64x64-float32": dict(
        what="max_pool3d 2x2x2 (stride 2) on 4x32x32x64x64",
        bound=0.5,
        make=_maker(_max_pool3d, lambda F, t: F.max_pool3d(t, 2), MAX_POOL3D_SHAPE),
        reference=lambda: _max_pool3d(_input(MAX_POOL3D_SHAPE), "numpy"),
    ),
    "avg_pool1d-k4s4-64x128x4096-float32": dict(
        what="avg_pool1d kernel 4, stride 4, on 64x128x4096",
        bound=0.5,
        make=_maker(_avg_pool1d, lambda F, t: F.avg_pool1d(t, 4, 4), AVG_POOL1D_SHAPE),
        reference=lambda: _avg_pool1d(_input(AVG_POOL1D_SHAPE), "numpy"),
    ),
}
