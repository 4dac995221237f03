"""Issue 18's speed targets for the rank filters, for the paired bench: ``auto / peer`` on
2 threads, where ``peer`` (the added key) names the comparison (``"cv2"`` or ``"scipy"``):
``make(peer)`` runs the peer, ``make(impl)`` fastconv on ``impl`` in ("auto", "cython",
"numba").
"""

from __future__ import annotations

import functools

import numpy as np

import fastconv
from fastconv import _ndrank

__all__ = ["PAIRED"]

MAX_SHAPE = (2048, 2048)
MED_SHAPE = (1024, 1024)


@functools.lru_cache(maxsize=None)
def _input(shape, dtype):
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    if dtype == "uint8":
        x = (x * 40 + 128).clip(0, 255).astype(np.uint8)
    x.flags.writeable = False
    return x


def _cv2():
    import pytest

    cv2 = pytest.importorskip("cv2")  # the same thread count as fastconv (2 in the bench)
    cv2.setNumThreads(fastconv.get_num_threads())
    return cv2


def _maker(fc_call, peer_call, shape, dtype, peer):
    def make(impl):
        x = _input(shape, dtype)
        if impl == peer:
            return functools.partial(peer_call, x)
        return functools.partial(fc_call, x, backend=impl)
    return make


def _max5(x, backend):
    return _ndrank.maximum_filter(x, 5, backend=backend)


def _med5(x, backend):
    return _ndrank.median_filter(x, 5, backend=backend)


def _cv2_dilate(x):
    cv2 = _cv2()
    return cv2.dilate(x, np.ones((5, 5), np.uint8), borderType=cv2.BORDER_REFLECT)


def _cv2_median(x):
    return _cv2().medianBlur(x, 5)


def _scipy_median(x):
    from scipy import ndimage
    return ndimage.median_filter(x, 5)


PAIRED = {}
PAIRED["maximum_filter-5x5-2048x2048-float32"] = dict(
    what="maximum_filter size 5 on 2048x2048 vs cv2.dilate 5x5", bound=1.0, peer="cv2",
    make=_maker(_max5, _cv2_dilate, MAX_SHAPE, "float32", "cv2"),
    reference=lambda: _max5(_input(MAX_SHAPE, "float32"), "numpy"))
for _dt in ("uint8", "float32"):
    PAIRED[f"median_filter-5x5-1024x1024-{_dt}"] = dict(
        what=f"median_filter size 5 on 1024x1024 {_dt} vs cv2.medianBlur 5", bound=1.0,
        peer="cv2", make=_maker(_med5, _cv2_median, MED_SHAPE, _dt, "cv2"),
        reference=functools.partial(lambda d: _med5(_input(MED_SHAPE, d), "numpy"), _dt))
    PAIRED[f"median_filter-5x5-1024x1024-{_dt}-scipy"] = dict(
        what=f"median_filter size 5 on 1024x1024 {_dt} vs scipy.ndimage", bound=0.2,
        peer="scipy", make=_maker(_med5, _scipy_median, MED_SHAPE, _dt, "scipy"),
        reference=functools.partial(lambda d: _med5(_input(MED_SHAPE, d), "numpy"), _dt))
