"""Issue 20's per-call and 1-D scaling targets, for the paired bench.

``PAIRED[group]``: ``what``, ``bound``, ``make(impl)`` (a zero-argument callable doing one
call on prebuilt float32 inputs; impl "auto", "auto-1t" (the same call, timed on one
thread), "torch" or a backend's name) and ``reference()`` (the NumPy backend's result).

* ``conv2d-call-1x1x8x8-float32``: the per-call time of a tiny layer (1x1x8x8 input, one
  3x3 filter), against ``torch.nn.functional.conv2d`` on tensors made once (torch's own
  per-call cost, without ``from_numpy``): ``auto / torch <= bound``.
* ``conv1d-1x16x1000000-k9-float32``: one long signal, 16 channels -> 16 filters of 9 taps,
  timed on one thread and on the suite's two (``auto-1t / auto >= bound``: the speed-up).
"""

from __future__ import annotations

import numpy as np

import fastconv

from .targets import entry

_CACHE = {}


def _arrays(key, xs, ws):
    if key not in _CACHE:
        rng = np.random.default_rng(0)
        _CACHE[key] = (rng.standard_normal(xs, dtype=np.float32),
                       rng.standard_normal(ws, dtype=np.float32))
    return _CACHE[key]


def _case(op, xs, ws):
    """(make, reference) of ``fastconv.<op>`` (conv1d or conv2d) on inputs of shapes ``xs``
    and ``ws``, against torch's functional op of the same name."""
    def make(impl):
        x, w = _arrays(op, xs, ws)
        if impl == "torch":
            import pytest

            torch = pytest.importorskip("torch")
            tx, tw = torch.from_numpy(x), torch.from_numpy(w)
            fn = getattr(torch.nn.functional, op)

            def call():
                with torch.no_grad():
                    return fn(tx, tw)
            return call
        backend = None if impl in ("auto", "auto-1t") else impl.removesuffix("-1t")
        fc = getattr(fastconv, op)
        return lambda: fc(x, w, backend=backend)

    def reference():
        x, w = _arrays(op, xs, ws)
        return getattr(fastconv, op)(x, w, backend="numpy")

    return make, reference


PAIRED = {
    "conv2d-call-1x1x8x8-float32": entry(
        "per-call time: conv2d 1x1x8x8 with a 3x3 filter, against F.conv2d on tensors", 1.0,
        _case("conv2d", (1, 1, 8, 8), (1, 1, 3, 3))),
    "conv1d-1x16x1000000-k9-float32": entry(
        "conv1d 1x16x10^6 -> 16 filters, 9 taps: 1 -> 2 threads speed-up", 1.7,
        _case("conv1d", (1, 16, 10**6), (16, 16, 9))),
}
