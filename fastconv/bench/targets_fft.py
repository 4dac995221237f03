"""Speed targets of the FFT / overlap-save paths (issue 19), for the paired bench: fastconv
``backend="auto"`` (method "auto") against a peer per row, 2 threads on both sides where the
peer has threads (cv2: ``cv2.setNumThreads(2)``; scipy.signal and numpy have none).

``PAIRED[group]``: ``what`` (the workload), ``bound`` (the target: auto / peer at most this),
``peer`` (the peer's name), ``make(impl)`` for impl in ("auto", peer) returning a
zero-argument callable that does one call on prebuilt inputs, and ``reference()`` returning
the NumPy backend's result (direct) for the check.
"""

import numpy as np

import fastconv

_CACHE = {}


def _arrays(shape1, shape2, dtype):
    key = (shape1, shape2, dtype)
    if key not in _CACHE:
        rng = np.random.default_rng(0)
        _CACHE[key] = (rng.standard_normal(shape1).astype(dtype),
                       rng.standard_normal(shape2).astype(dtype))
    return _CACHE[key]


def _corr2d(n, k, dtype, peer):
    def make(impl):
        x, w = _arrays((n, n), (k, k), dtype)
        if impl == "auto":
            return lambda: fastconv.correlate2d(x, w, "same", backend="auto")
        if impl == "cv2.filter2D":
            import pytest

            cv2 = pytest.importorskip("cv2")
            cv2.setNumThreads(2)
            # filter2D correlates with the anchor at the kernel's centre: the same
            # alignment as correlate2d(mode="same") for odd kernels, zero border
            return lambda: cv2.filter2D(x, -1, w, borderType=cv2.BORDER_CONSTANT)
        if impl == "scipy.signal.fftconvolve":
            import scipy.signal as ss

            wf = np.ascontiguousarray(w[::-1, ::-1])
            return lambda: ss.fftconvolve(x, wf, "same")
        raise ValueError(impl)

    def reference():
        x, w = _arrays((n, n), (k, k), dtype)
        return fastconv.correlate2d(x, w, "same", backend="numpy", method="direct")

    return make, reference


def _conv1d(n, k, dtype, peer):
    def make(impl):
        x, w = _arrays((n,), (k,), dtype)
        if impl == "auto":
            return lambda: fastconv.convolve(x, w, backend="auto")
        if impl == "scipy.signal.oaconvolve":
            import scipy.signal as ss

            return lambda: ss.oaconvolve(x, w)
        if impl == "numpy.convolve":
            return lambda: np.convolve(x, w)
        raise ValueError(impl)

    def reference():
        x, w = _arrays((n,), (k,), dtype)
        return fastconv.convolve(x, w, backend="numpy", method="direct")

    return make, reference


def _conv2d_filters(dtype):
    def make(impl):
        x, w = _arrays((1, 1, 1024, 1024), (8, 1, 31, 31), dtype)
        if impl == "auto":
            return lambda: fastconv.conv2d(x, w, padding="same", backend="auto")
        if impl == "torch":
            import pytest

            torch = pytest.importorskip("torch")
            torch.set_num_threads(2)
            xt, wt = torch.from_numpy(x), torch.from_numpy(w)

            def run():
                with torch.no_grad():
                    return torch.nn.functional.conv2d(xt, wt, padding="same")
            return run
        raise ValueError(impl)

    def reference():
        x, w = _arrays((1, 1, 1024, 1024), (8, 1, 31, 31), dtype)
        return fastconv.conv2d(x, w, padding="same", backend="numpy")

    return make, reference


PAIRED = {}
for _dt in ("float32", "float64"):
    for _k in (31, 63):
        for _peer, _bound in (("cv2.filter2D", 1.0), ("scipy.signal.fftconvolve", 0.5)):
            _make, _ref = _corr2d(2048, _k, _dt, _peer)
            PAIRED[f"correlate2d-same-2048x2048-{_k}x{_k}-{_dt}-vs-{_peer}"] = dict(
                what=f"correlate2d mode same, 2048x2048, {_k}x{_k}, {_dt}", bound=_bound,
                peer=_peer, make=_make, reference=_ref)
    for _k, _peer, _bound in ((1001, "scipy.signal.oaconvolve", 0.7),
                              (10001, "scipy.signal.oaconvolve", 0.7),
                              (11, "numpy.convolve", 0.5), (101, "numpy.convolve", 0.5)):
        _make, _ref = _conv1d(10**6, _k, _dt, _peer)
        PAIRED[f"convolve-1e6-{_k}taps-{_dt}-vs-{_peer}"] = dict(
            what=f"convolve mode full, 10^6 samples, {_k} taps, {_dt}", bound=_bound,
            peer=_peer, make=_make, reference=_ref)
    _make, _ref = _conv2d_filters(_dt)
    PAIRED[f"conv2d-1x1x1024x1024-8x31x31-same-{_dt}-vs-torch"] = dict(
        what=f"conv2d 1x1x1024x1024 -> 8 filters 31x31, padding same, {_dt}", bound=0.2,
        peer="torch", make=_make, reference=_ref)
del _dt, _k, _peer, _bound, _make, _ref
