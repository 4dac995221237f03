"""fastconv.ndimage's speed targets (issue 18, the linear filters), for the paired bench:
fastconv ``backend="auto"`` against a peer (scipy.ndimage or OpenCV), both sides on 2
threads (OpenCV: ``cv2.setNumThreads(2)``; scipy.ndimage runs on one), float32 and float64.

``PAIRED[group]``: ``what`` (the workload), ``bound`` (the target: at most this ratio of
the peer's time), ``peer`` (``"scipy.ndimage"`` or ``"cv2"``), ``make(impl)`` for impl in
("auto", "cython", "numba", "numpy") returning a zero-argument callable doing one fastconv
call on prebuilt inputs, and for impl equal to ``peer`` one call of the peer
(``pytest.importorskip`` of scipy or cv2);
``reference()`` the NumPy backend's result for the check.

What is compared:

- ``correlate`` with a 5x5 kernel on 2048x2048 and 5x5x5 on 128^3, mode ``reflect``,
  against ``scipy.ndimage.correlate`` (bound 0.15 and 0.2);
- ``gaussian_filter`` sigma 2 (truncate 4: radius 8, 17 taps per axis) on 2048x2048,
  against ``cv2.GaussianBlur(x, (17, 17), 2, borderType=cv2.BORDER_REFLECT)`` (the same
  17x17 work and border; bound 1.0) and against ``scipy.ndimage.gaussian_filter`` (0.2);
- ``uniform_filter`` size 15 on 2048x2048 against ``cv2.blur(x, (15, 15),
  borderType=cv2.BORDER_REFLECT)`` (bound 1.0).
"""

import functools

import numpy as np

from fastconv import ndimage

DTYPES = ("float32", "float64")


@functools.lru_cache(maxsize=None)
def _arrays(shape, wshape, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(wshape) if wshape else None
    return x, w


def _peer_module(name):
    import pytest

    if name == "cv2":
        cv2 = pytest.importorskip("cv2")
        cv2.setNumThreads(2)
        return cv2
    return pytest.importorskip("scipy.ndimage")


def _correlate(shape, wshape, dtype):
    def make(impl):
        x, w = _arrays(shape, wshape, dtype)
        if impl == "scipy.ndimage":
            sn = _peer_module("scipy.ndimage")
            return lambda: sn.correlate(x, w)
        return lambda: ndimage.correlate(x, w, backend=impl)

    def reference():
        x, w = _arrays(shape, wshape, dtype)
        return ndimage.correlate(x, w, backend="numpy")
    return make, reference


def _gaussian(shape, dtype, peer):
    def make(impl):
        x, _ = _arrays(shape, None, dtype)
        if impl == peer:
            mod = _peer_module(peer)
            if peer == "cv2":
                return lambda: mod.GaussianBlur(x, (17, 17), 2, borderType=mod.BORDER_REFLECT)
            return lambda: mod.gaussian_filter(x, 2)
        return lambda: ndimage.gaussian_filter(x, 2, backend=impl)

    def reference():
        x, _ = _arrays(shape, None, dtype)
        return ndimage.gaussian_filter(x, 2, backend="numpy")
    return make, reference


def _uniform(shape, dtype):
    def make(impl):
        x, _ = _arrays(shape, None, dtype)
        if impl == "cv2":
            cv2 = _peer_module("cv2")
            return lambda: cv2.blur(x, (15, 15), borderType=cv2.BORDER_REFLECT)
        return lambda: ndimage.uniform_filter(x, 15, backend=impl)

    def reference():
        x, _ = _arrays(shape, None, dtype)
        return ndimage.uniform_filter(x, 15, backend="numpy")
    return make, reference


PAIRED = {}
for _dt in DTYPES:
    _make, _ref = _correlate((2048, 2048), (5, 5), _dt)
    PAIRED[f"nd-correlate-5x5-2048x2048-{_dt}"] = dict(
        what=f"ndimage.correlate, 5x5 kernel, 2048x2048 {_dt}, reflect",
        bound=0.15, peer="scipy.ndimage", make=_make, reference=_ref)
    _make, _ref = _correlate((128, 128, 128), (5, 5, 5), _dt)
    PAIRED[f"nd-correlate-5x5x5-128x128x128-{_dt}"] = dict(
        what=f"ndimage.correlate, 5x5x5 kernel, 128^3 {_dt}, reflect",
        bound=0.2, peer="scipy.ndimage", make=_make, reference=_ref)
    _make, _ref = _gaussian((2048, 2048), _dt, "cv2")
    PAIRED[f"nd-gaussian-s2-2048x2048-{_dt}-cv2"] = dict(
        what=f"ndimage.gaussian_filter sigma 2 (17 taps/axis) vs cv2.GaussianBlur 17x17, "
             f"2048x2048 {_dt}", bound=1.0, peer="cv2", make=_make, reference=_ref)
    _make, _ref = _gaussian((2048, 2048), _dt, "scipy.ndimage")
    PAIRED[f"nd-gaussian-s2-2048x2048-{_dt}-scipy"] = dict(
        what=f"ndimage.gaussian_filter sigma 2, 2048x2048 {_dt}", bound=0.2,
        peer="scipy.ndimage", make=_make, reference=_ref)
    _make, _ref = _uniform((2048, 2048), _dt)
    PAIRED[f"nd-uniform-15-2048x2048-{_dt}-cv2"] = dict(
        what=f"ndimage.uniform_filter size 15 vs cv2.blur 15x15, 2048x2048 {_dt}",
        bound=1.0, peer="cv2", make=_make, reference=_ref)
del _dt, _make, _ref
