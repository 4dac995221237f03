"""The speed targets' ratios, measured in interleaved pairs.

A target is the ratio of two timings. A shared machine's load drifts over seconds: two rows of
the suite timed a minute apart can differ by tens of percent for nothing (an example:
docs/guide/performance-notes.md). Here the two sides of each target take turns in short bursts
(A B, then B A, ...); each burst gives the median time of its calls, each round the ratio
A / B, and the target's value is the median of the rounds' ratios: both sides run under the
same load. The rounds are spread over the whole paired run, one round of every selected pair
per pass (ROUNDS passes), so that a spell of load lasting a few seconds touches one or two of
a pair's rounds, not all of them. The report (:mod:`fastconv._benchreport`) checks the targets
on these paired ratios and shows the ratio of the plain rows' medians next to them.

Pairs: ``auto`` against torch (both with THREADS threads) for the conv2d, max_pool2d and
backward targets and the other families' (:mod:`fastconv.bench.targets`), and against the
peer each SciPy-namespace, FFT and rank-filter target names (SciPy, OpenCV, numpy); the Cython backend on one thread against THREADS threads for the 1 -> 2
thread speed-up (a target for the large conv2d shapes, shown for depthwise); and the backend
``auto`` picks against each other compiled backend on every conv2d, pool and backward
shape, for "auto picks within 10% of the best backend". Each side is checked against the
NumPy reference first.
"""

import time

import numpy as np
import pytest

import fastconv
from fastconv import _dispatch
from fastconv._benchreport import LARGE_SHAPES, SCALING_SHOWN

from .cases import CONV_SHAPES, POOL_SHAPES, QUICK
from .targets import CHECKED_PEERS, FAMILY_TARGETS, SCALING_TARGETS, paired, peer_targets
from .conftest import SETTLE, THREADS, _set_all
from .test_peers import (BACKWARD_SHAPES, _case, backward_case, backward_impl, conv_impl,
                         pool_impl)

ROUNDS = 15
BURST_S = 0.04  # at least this long, and at least 3 calls, per burst
# Seconds of quiet before each burst: after a burst, the OpenMP threads of its side spin on
# for a while (docs/guide/performance-notes.md), and they would take a core from the start
# of the next burst, the other side's.
GAP_S = 0.06

# (target group, impl A, impl B): A / B is the target's ratio. The 1 -> 2 thread pairs
# compare "cython-1t" with "cython" (the report's names for its rows).
CONV_TARGETS = ["lenet1", "lenet2", "single_image", "depthwise", "resnet3x3", "deep",
                "pointwise", "small_batch1"]
# the report's speed-up target shapes, and depthwise's speed-up, shown with no bound
SCALING_SHAPES = list(LARGE_SHAPES + SCALING_SHOWN)
# "auto" runs the first compiled backend; its target is to be within 10% of the best one, so
# it is paired with each other compiled backend on every conv2d, pool and backward shape.
PICK = _dispatch.resolve("auto")
OTHERS = [b for b in fastconv.backends() if b not in ("numpy", PICK)]
PICK_GROUPS = ([f"conv2d-{s}-float32" for s in CONV_SHAPES]
               + [f"{op}-2x2s2-{s}-float32" for s in POOL_SHAPES
                  for op in ("max_pool2d", "avg_pool2d")]
               + [f"conv2d_backward-{s}-float32" for s in BACKWARD_SHAPES])
PAIRS = ([(f"conv2d-{s}-float32", "auto", "torch") for s in CONV_TARGETS]
         + [(f"max_pool2d-2x2s2-{s}-float32", "auto", "torch") for s in POOL_SHAPES]
         + [(f"conv2d_backward-{s}-float32", "auto", "torch")
            for s in ("resnet3x3", "lenet2", "depthwise")]
         + [(group, "auto", "torch") for _, group, _ in FAMILY_TARGETS]
         + [(group, "auto", peer) for _, group, _, peer in peer_targets()]
         + [(f"conv2d-{s}-float32", "cython-1t", "cython") for s in SCALING_SHAPES]
         + [(group, "auto-1t", "auto") for _, group, _ in SCALING_TARGETS]
         + [(g, PICK, other) for g in PICK_GROUPS for other in OTHERS])


def _callables(group, impls):
    """[a zero-argument callable per impl], and the NumPy reference's result, for ``group``."""
    family = paired()
    if group in family:
        make, reference = family[group]
        return [make(i) for i in impls], reference()
    workload, rest = group.split("-", 1)
    if workload == "conv2d":
        shape = rest.removesuffix("-float32")
        x, w, s, p, g = _case(shape)
        return ([conv_impl(i, x, w, s, p, g) for i in impls],
                fastconv.conv2d(x, w, stride=s, padding=p, groups=g, backend="numpy"))
    if workload in ("max_pool2d", "avg_pool2d"):
        shape = rest.removeprefix("2x2s2-").removesuffix("-float32")
        x = np.random.default_rng(0).standard_normal(POOL_SHAPES[shape], dtype=np.float32)
        return ([pool_impl(i, workload, x) for i in impls],
                getattr(fastconv, workload)(x, 2, backend="numpy"))
    shape = rest.removesuffix("-float32")
    x, w, gy, s, p, g = backward_case(shape)
    kw = dict(stride=s, padding=p, groups=g)
    return ([backward_impl(i, x, w, gy, s, p, g) for i in impls],
            (fastconv.grad.conv2d_input(x.shape, w, gy, backend="numpy", **kw),
             fastconv.grad.conv2d_weight(x, w.shape, gy, backend="numpy", **kw)))


def _burst(fn, threads):
    """The median time of one call over a burst of at least BURST_S and 3 calls, after GAP_S
    of quiet."""
    _set_all(threads)
    time.sleep(GAP_S)
    times = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < BURST_S:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def interleave(fns, results, rounds, threads_of):
    """``rounds`` passes over the pairs ``fns`` ({(group, a, b): (fa, fb)}), each timing one
    burst of either side (in alternating order), appended to ``results[pair]`` (ratios,
    a's times, b's times, ...); the thread count is restored afterwards."""
    try:
        for r in range(rounds):
            for (group, a, b), (fa, fb) in fns.items():
                if r % 2 == 0:
                    x, y = _burst(fa, threads_of(a)), _burst(fb, threads_of(b))
                else:
                    y, x = _burst(fb, threads_of(b)), _burst(fa, threads_of(a))
                ratios, ta, tb, _ = results[group, a, b]
                ta.append(x)
                tb.append(y)
                ratios.append(x / y)
    finally:
        _set_all(THREADS)


# fastconv's own sides (and torch's), always checked
_KNOWN_IMPLS = {"auto", "torch", *fastconv.backends()} | {f"{b}-1t" for b in
                                                          ("auto", "cython", "numba",
                                                           "torch")}


def _threads(impl):
    return 1 if impl.endswith("-1t") else THREADS


def _param(group, a, b):
    shape = group.removesuffix("-float32").rsplit("-", 1)[1]
    marks = [pytest.mark.quick] if shape in QUICK else []
    return pytest.param(group, a, b, marks=marks, id=f"{group}-{a}/{b}")


def _check(fns, expected, impls):
    """Run each callable once (JIT, work buffers) and check it against the NumPy reference,
    unless it is a peer that computes something else (targets.CHECKED_PEERS)."""
    for fn, impl in zip(fns, impls):
        got = fn()
        if impl not in CHECKED_PEERS and impl not in _KNOWN_IMPLS:
            continue
        for g_, e_ in zip(got if isinstance(got, tuple) else (got,),
                          expected if isinstance(expected, tuple) else (expected,)):
            np.testing.assert_allclose(g_, e_, rtol=1e-3, atol=1e-2 * max(1.0, np.abs(e_).max()
                                                                           * 1e-3))


@pytest.fixture(scope="session")
def paired_rounds(request):
    """{(group, a, b): (ratios, A's times, B's times, A's callable), or the exception its set-up
    or check raised} for every selected pair, measured in ROUNDS passes over all of them: each
    pass times one round of each pair (A then B in even passes, B then A in odd ones). With
    ``--benchmark-disable`` (CI: nothing is judged) one pass only."""
    pairs = [tuple(item.callspec.params[k] for k in ("group", "a", "b"))
             for item in request.session.items
             if getattr(item, "function", None) is test_paired_ratio]
    fns, results = {}, {}
    for pair in pairs:
        try:
            both, expected = _callables(pair[0], pair[1:])  # one case and reference for both
            _check(both, expected, pair[1:])
        except (Exception, pytest.skip.Exception) as exc:  # that pair's test reports it
            # (a peer that is not installed skips: the callables call pytest.importorskip)
            results[pair] = exc
            continue
        fns[pair] = both
        results[pair] = ([], [], [], both[0])
    time.sleep(SETTLE)  # the reference's BLAS threads spin for a while after it
    rounds = 1 if request.config.getoption("benchmark_disable", False) else ROUNDS
    interleave(fns, results, rounds, _threads)
    return results


@pytest.mark.parametrize(("group", "a", "b"), [_param(*p) for p in PAIRS])
def test_paired_ratio(benchmark, paired_rounds, group, a, b):
    got = paired_rounds[group, a, b]
    if isinstance(got, BaseException):
        raise got
    ratios, ta, tb, fa = got
    benchmark.group = "paired"
    benchmark.extra_info.update(impl=f"{a} / {b}", target_group=group, a=a, b=b,
                                ratio=float(np.median(ratios)), ratios=ratios,
                                a_median_s=float(np.median(ta)),
                                b_median_s=float(np.median(tb)))
    # pytest-benchmark needs one timed call to record the entry; the ratios are above
    benchmark.pedantic(fa, rounds=1, iterations=1)
