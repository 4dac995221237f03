"""Speed targets of issue 17 for unfold and fold (helper ``fold``), for the paired bench.

``PAIRED[group]``: ``what`` (the workload), ``bound`` (auto / torch time, at most),
``make(impl)`` for impl in ("auto", "torch", "cython", "numba"): a zero-argument callable
doing one call on prebuilt float32 inputs, and ``reference()``: the NumPy backend's result,
to check the others against. Inputs are built once, on first use, with a fixed seed.
"""

from __future__ import annotations

import functools

import numpy as np

SHAPE = (8, 64, 56, 56)
KERNEL, PADDING = 3, 1


@functools.lru_cache(maxsize=None)
def _inputs():
    import fastconv

    x = np.random.default_rng(17).standard_normal(SHAPE).astype(np.float32)
    cols = fastconv.unfold(x, KERNEL, padding=PADDING, backend="numpy")
    return x, cols


def _torch():
    import pytest

    return pytest.importorskip("torch")


def _make_unfold(impl):
    x, _ = _inputs()
    if impl == "torch":
        torch = _torch()
        xt = torch.from_numpy(x)

        def run():
            with torch.no_grad():
                return torch.nn.functional.unfold(xt, KERNEL, padding=PADDING)
        return run
    import fastconv

    return lambda: fastconv.unfold(x, KERNEL, padding=PADDING, backend=impl)


def _make_fold(impl):
    _, cols = _inputs()
    size = SHAPE[2:]
    if impl == "torch":
        torch = _torch()
        ct = torch.from_numpy(cols)

        def run():
            with torch.no_grad():
                return torch.nn.functional.fold(ct, size, KERNEL, padding=PADDING)
        return run
    import fastconv

    return lambda: fastconv.fold(cols, size, KERNEL, padding=PADDING, backend=impl)


def _ref_unfold():
    import fastconv

    return fastconv.unfold(_inputs()[0], KERNEL, padding=PADDING, backend="numpy")


def _ref_fold():
    import fastconv

    return fastconv.fold(_inputs()[1], SHAPE[2:], KERNEL, padding=PADDING, backend="numpy")


PAIRED = {
    "unfold-3x3p1-8x64x56x56-float32": dict(
        what="unfold 3x3 (padding 1) on 8x64x56x56", bound=1.0, make=_make_unfold,
        reference=_ref_unfold),
    "fold-3x3p1-8x64x56x56-float32": dict(
        what="fold, unfold's adjoint: 8x576x3136 back to 8x64x56x56", bound=1.0,
        make=_make_fold, reference=_ref_fold),
}
