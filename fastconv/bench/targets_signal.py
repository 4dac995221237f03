"""fastconv.signal's speed target (issue 18), for the paired bench: ``signal.correlate2d``,
mode 'same', boundary 'symm', a 5x5 kernel on a 512x512 image, float32 and float64,
fastconv with 2 threads.

Two bounds on the same workload, so two groups per dtype, each naming its ``peer``:

- ``auto / scipy <= 0.1``: ``scipy.signal.correlate2d`` (one thread);
- ``auto / conv2d <= 1.0``: ``fastconv.conv2d`` on the same data with ``padding=2,
  padding_mode='reflect'`` (torch's 'reflect' omits the edge; scipy's 'symm' repeats it, so
  the numbers differ at the border while the work is the same).

``PAIRED[group]``: ``what``, ``bound``, ``peer``, ``make(impl)`` for impl in ("auto",
"scipy", "conv2d", and the backends' names "numpy", "cython", "numba"): a zero-argument
callable doing one call on prebuilt inputs, and ``reference()``: the NumPy backend's
result for the check (the "conv2d" side is checked against conv2d's own NumPy result,
:func:`conv2d_reference`).
"""

from __future__ import annotations

import functools

import numpy as np

import fastconv
from fastconv import signal

SHAPE, K = (512, 512), 5


@functools.lru_cache(maxsize=None)
def _arrays(dtype, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(SHAPE).astype(dtype)
    k = rng.standard_normal((K, K)).astype(dtype)
    return a, k


def make(dtype, impl):
    a, k = _arrays(dtype)
    if impl == "scipy":
        import scipy.signal
        return lambda: scipy.signal.correlate2d(a, k, mode="same", boundary="symm")
    if impl == "conv2d":
        x4, w4 = a[None, None], k[None, None]
        return lambda: fastconv.conv2d(x4, w4, padding=K // 2, padding_mode="reflect")
    return lambda: signal.correlate2d(a, k, mode="same", boundary="symm", backend=impl)


def reference(dtype):
    return make(dtype, "numpy")()


def conv2d_reference(dtype):
    a, k = _arrays(dtype)
    return fastconv.conv2d(a[None, None], k[None, None], padding=K // 2,
                           padding_mode="reflect", backend="numpy")


PAIRED = {}
for _dt in ("float32", "float64"):
    PAIRED[f"signal.correlate2d-same-symm-5x5-512x512-{_dt}"] = dict(
        what=f"signal.correlate2d mode same, symm, 5x5 on 512x512, {_dt}, vs scipy.signal",
        bound=0.1, peer="scipy", make=functools.partial(make, _dt),
        reference=functools.partial(reference, _dt))
    PAIRED[f"signal.correlate2d-same-symm-5x5-512x512-vs-conv2d-{_dt}"] = dict(
        what=f"signal.correlate2d mode same, symm, 5x5 on 512x512, {_dt}, vs fastconv.conv2d "
             "reflect padding",
        bound=1.0, peer="conv2d", make=functools.partial(make, _dt),
        reference=functools.partial(reference, _dt))
