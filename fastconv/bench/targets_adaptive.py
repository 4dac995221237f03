"""Speed targets of the adaptive pools (issue 17), for the paired bench
(:mod:`fastconv.bench.test_paired`, rows in :data:`fastconv.bench.targets.FAMILY_TARGETS`):
``auto / torch``, float32, both sides on the bench's thread count (2).

``PAIRED[group]``: ``what`` (the workload in words), ``bound`` (the target: at most this
ratio), ``make(impl)`` for impl in ("auto", "torch", "cython", "numba") returning a
zero-argument callable that does one call on prebuilt inputs, and ``reference()`` returning
the NumPy backend's result for the check.
"""

import numpy as np

import fastconv

# group -> ((N, C, H, W), output_size)
SHAPES = {
    "adaptive_avg_pool2d-1x1-32x512x7x7-float32": ((32, 512, 7, 7), 1),
    "adaptive_avg_pool2d-7x7-8x256x13x13-float32": ((8, 256, 13, 13), 7),
}


def _input(shape):
    return np.random.default_rng(0).standard_normal(shape, dtype=np.float32)


def _maker(shape, output_size):
    x = _input(shape)

    def make(impl):
        if impl == "torch":
            import pytest

            torch = pytest.importorskip("torch")
            xt = torch.from_numpy(x)
            f = torch.nn.functional.adaptive_avg_pool2d

            def run():
                with torch.no_grad():
                    return f(xt, output_size)
            return run
        return lambda: fastconv.adaptive_avg_pool2d(x, output_size, backend=impl)

    def reference():
        return fastconv.adaptive_avg_pool2d(x, output_size, backend="numpy")

    return make, reference


PAIRED = {}
for _group, (_shape, _osize) in SHAPES.items():
    _make, _ref = _maker(_shape, _osize)
    PAIRED[_group] = dict(
        what=f"adaptive_avg_pool2d to {_osize}x{_osize} on {'x'.join(map(str, _shape))}",
        bound=1.0, make=_make, reference=_ref)
del _group, _shape, _osize, _make, _ref
