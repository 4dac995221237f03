"""The speed targets of the op families beyond conv2d and the 2-D pools (and issue 20's
per-call and 1-D scaling rows), named once.

Each row of FAMILY_TARGETS is ``(what, group, bound)``: the paired suite
(:mod:`fastconv.bench.test_paired`) times ``auto`` against torch on ``group`` (both with THREADS threads) and the report
(:mod:`fastconv._benchreport`) checks ``auto / torch <= bound``. The callables live with
their family, in ``fastconv/bench/targets_<family>.py``: a dict ``PAIRED`` from group to
``make(impl)`` (a zero-argument callable doing one call of ``impl``, "auto", "torch" or a
backend's name, on inputs it builds when first asked) and ``reference()`` (the NumPy
backend's result, that both sides are checked against before they are timed).
"""

import importlib

FAMILY_TARGETS = [
    ("conv_transpose2d 8x64x28x28 -> 32, k4 s2 p1", "conv_transpose2d-8x64x28x28-float32", 1.0),
    ("conv_transpose2d 64x128x7x7 -> 64, k4 s2 p1", "conv_transpose2d-64x128x7x7-float32", 1.0),
    ("conv3d 2x16x16x64x64 -> 32, 3x3x3, pad 1", "conv3d-2x16x16x64x64-float32", 1.25),
    ("conv3d 8x1x16x32x32 -> 8, 3x3x3", "conv3d-8x1x16x32x32-float32", 0.5),
    ("max_pool3d 2x2x2 on 4x32x32x64x64", "max_pool3d-2x2x2s2-4x32x32x64x64-float32", 0.5),
    ("adaptive_avg_pool2d to 1x1 on 32x512x7x7",
     "adaptive_avg_pool2d-1x1-32x512x7x7-float32", 1.0),
    ("adaptive_avg_pool2d to 7x7 on 8x256x13x13",
     "adaptive_avg_pool2d-7x7-8x256x13x13-float32", 1.0),
    ("avg_pool1d k4 s4 on 64x128x4096", "avg_pool1d-k4s4-64x128x4096-float32", 0.5),
    ("unfold 3x3 pad 1 on 8x64x56x56", "unfold-3x3p1-8x64x56x56-float32", 1.0),
    ("fold, unfold's adjoint, back to 8x64x56x56", "fold-3x3p1-8x64x56x56-float32", 1.0),
    ("conv3d backward (input + weight) 2x16x16x64x64",
     "conv3d_backward-2x16x16x64x64-float32", 1.5),
    ("conv_transpose2d backward (input + weight) 8x64x28x28",
     "conv_transpose2d_backward-8x64x28x28-float32", 1.5),
    # issue 20 (targets_calls.py)
    ("per-call time: conv2d 1x1x8x8 with a 3x3 filter, against F.conv2d on tensors",
     "conv2d-call-1x1x8x8-float32", 1.0),
]
FAMILIES = ("conv3d", "transpose", "pool3d", "adaptive", "fold", "calls")
# 1 -> 2 thread speed-ups of auto (issue 20, targets_calls.py): ``(what, group, bound)``,
# paired as ``auto-1t / auto >= bound``
SCALING_TARGETS = [
    ("conv1d 1x16x10^6 -> 16 filters, 9 taps: 1 -> 2 threads speed-up (auto-1t / auto)",
     "conv1d-1x16x1000000-k9-float32", 1.7),
]

# The SciPy-namespace, FFT, rank-filter and Dask targets are paired with the peer each entry of
# their module's PAIRED names (``peer``: "scipy", "cv2", "numpy.convolve", "torch", ...),
# ``make(peer)`` giving the peer's call; their ``what`` and ``bound`` live with the entry.
PEER_FAMILIES = ("signal", "fft", "ndimage", "rank", "dask")
# peers that compute what fastconv computes (the same border, the same kernel): the paired
# suite checks them against the reference too; the others (OpenCV's borders and Gaussian
# taps, conv2d's reflect padding) are timed only
CHECKED_PEERS = {"torch", "scipy", "scipy.ndimage", "scipy.signal.fftconvolve",
                 "scipy.signal.oaconvolve", "numpy.convolve", "dask_image"}


def entry(what, bound, pair):
    """A family module's PAIRED entry from ``what``, ``bound`` and ``(make, reference)``."""
    make, reference = pair
    return dict(what=what, bound=bound, make=make, reference=reference)


def _entries(families):
    for fam in families:
        mod = importlib.import_module(f"{__package__}.targets_{fam}")
        yield from mod.PAIRED.items()


def peer_targets() -> list:
    """[(what, group, bound, peer)] of the PEER_FAMILIES: ``auto / peer <= bound``."""
    return [(f"{e['what']} (auto / {e['peer']})", group, e["bound"], e["peer"])
            for group, e in _entries(PEER_FAMILIES)]


def paired() -> dict:
    """{group: (make, reference)} over every family module."""
    return {group: (e["make"], e["reference"])
            for group, e in _entries(FAMILIES + PEER_FAMILIES)}
