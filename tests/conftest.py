"""Shared test machinery: the (op, backend) registry, the input generator, tolerances.

* ``BACKENDS`` is read from :func:`fastconv.backends`, so a backend that becomes importable
  (the Cython extension once it is built) is tested by every parametrized test at once.
  ``FASTCONV_REQUIRE_BACKENDS=numpy,cython,numba`` makes a named backend that is missing
  stop the session at start instead (:func:`required_backends_problem`).
* ``REGISTRY`` lists every (public function, backend) pair; the tests parametrize over it
  or over the ``backend`` fixture.
* :func:`layouts` turns an array into the memory layouts a caller may hand us, all with the
  same values.
* :func:`assert_close` compares a result with the reference in shape, dtype and value, with
  a tolerance chosen by dtype (scaled by the number of terms summed and their size).
"""

from __future__ import annotations

import os
import sys
import zlib

import numpy as np
from hypothesis import settings as _hyp_settings

# CI (CI=true) draws the same examples every run, so a red build is reproducible and a
# rare example found once is not lost to chance; elsewhere hypothesis explores freely.
_hyp_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    _hyp_settings.load_profile("ci")
import pytest

try:
    import fastconv
except ImportError:  # not installed: test the source checkout this folder belongs to
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import fastconv

BACKENDS = tuple(fastconv.backends())

# ``FASTCONV_REQUIRE_BACKENDS=numpy,cython,numba`` (set by .ci/run): a backend that fails to
# import is otherwise left out of every parametrized test without a word. With the variable
# set, the session stops before collecting anything when a named backend is missing.
REQUIRE_VAR = "FASTCONV_REQUIRE_BACKENDS"


def required_backends_problem(value):
    """Why the backends named in ``value`` (a comma-separated list, the value of
    ``FASTCONV_REQUIRE_BACKENDS``) cannot be tested here, or None when all of them are
    available. An unknown name is a problem too (a typo must not pass as "nothing missing")."""
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in fastconv._dispatch.BACKENDS]
    if unknown:
        return (f"{REQUIRE_VAR}={value!r} names unknown backend(s) {', '.join(unknown)}; "
                f"fastconv's backends are {', '.join(fastconv._dispatch.BACKENDS)}")
    why = fastconv._dispatch.unavailable()
    missing = [n for n in names if n not in BACKENDS]
    if missing:
        reasons = [f"backend {n!r} is not available ({why.get(n, 'reason unknown')})"
                   for n in missing]
        return f"{REQUIRE_VAR}={value!r}, but " + "; ".join(reasons)
    return None


def pytest_configure(config):
    value = os.environ.get(REQUIRE_VAR, "")
    problem = required_backends_problem(value) if value.strip() else None
    if problem:
        raise pytest.UsageError(problem)


# ``FASTCONV_TEST_BACKENDS=cython`` (set by tools/debug_tests.sh): only the cases of the named
# backends among those parametrized by a ``backend`` argument; the others are deselected
# (and reported as such). The debug build changes the Cython kernels only, so its run leaves
# out the NumPy and Numba cases, which the normal run covers; unparametrized tests all run.
ONLY_VAR = "FASTCONV_TEST_BACKENDS"
# ``FASTCONV_TEST_SAMPLE=f`` (0 < f <= 1; tools/debug_tests.sh in CI): a fixed sample of the
# parametrized cases, about a fraction f of them, chosen by a hash of each case's id (the
# same cases in every run), and always the first case of every test function, so that
# every test still runs; the rest are deselected.
SAMPLE_VAR = "FASTCONV_TEST_SAMPLE"


def _sample(config, items):
    value = os.environ.get(SAMPLE_VAR, "").strip()
    if not value:
        return
    try:
        frac = float(value)
    except ValueError:
        frac = -1.0
    if not 0 < frac <= 1:
        raise pytest.UsageError(f"{SAMPLE_VAR} must be a fraction in (0, 1], got {value!r}")
    import zlib

    seen, selected, deselected = set(), [], []
    for item in items:
        func = item.nodeid.split("[", 1)[0]
        first = func not in seen
        seen.add(func)
        # the id without the file's path: scipy's test files live in the venv's folder
        h = zlib.crc32(item.nodeid.split("::", 1)[-1].encode()) / 2**32
        (selected if first or h < frac else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


def pytest_collection_modifyitems(config, items):
    _only_backends(config, items)
    _sample(config, items)


def _only_backends(config, items):
    value = os.environ.get(ONLY_VAR, "")
    keep = {n.strip() for n in value.split(",") if n.strip()}
    if not keep:
        return
    unknown = keep - set(fastconv._dispatch.BACKENDS)
    if unknown:
        raise pytest.UsageError(f"{ONLY_VAR}={value!r} names unknown backend(s) "
                                f"{', '.join(sorted(unknown))}")
    drop = set(fastconv._dispatch.BACKENDS) - keep
    selected, deselected = [], []
    for item in items:
        spec = getattr(item, "callspec", None)
        named = spec.params.get("backend") if spec is not None else None
        (deselected if isinstance(named, str) and named in drop else selected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


def bench_cases():
    """``fastconv.bench.cases`` (the benchmark shapes), from the package under test: the
    suite ships inside fastconv, so this works from a source checkout and from an installed
    wheel alike."""
    from fastconv.bench import cases

    return cases

# every public op, with the family it belongs to (the test module that covers it)
OPS = {
    "conv1d": "conv",
    "conv2d": "conv",
    "max_pool1d": "pool",
    "max_pool2d": "pool",
    "avg_pool2d": "pool",
    "convolve": "signal",
    "correlate": "signal",
    "convolve2d": "signal",
    "correlate2d": "signal",
}
REGISTRY = [(op, b) for op in OPS for b in BACKENDS]

FLOATS = (np.float32, np.float64)

# per-dtype tolerances for a result that sums ``terms`` products of magnitude ~``scale``
_TOL = {
    np.dtype(np.float32): (1e-4, 1e-5),
    np.dtype(np.float64): (1e-10, 1e-12),
}


def tol(dtype, terms=1, scale=1.0):
    """``dict(rtol=, atol=)`` for a result of ``dtype`` accumulating ``terms`` products."""
    rtol, atol = _TOL[np.dtype(dtype)]
    grow = max(1.0, float(np.sqrt(terms)))
    return dict(rtol=rtol * grow, atol=atol * grow * max(1.0, scale))


def assert_close(actual, expected, *, terms=1, scale=1.0, dtype=None):
    """``actual`` is a fresh C-contiguous array equal to ``expected`` in shape, dtype, value.

    ``dtype`` (default: ``expected.dtype``) is the dtype ``actual`` must have. NaN matches
    NaN, infinities must match exactly.
    """
    expected = np.asarray(expected)
    dtype = np.dtype(expected.dtype if dtype is None else dtype)
    assert isinstance(actual, np.ndarray), type(actual)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == dtype, (actual.dtype, dtype)
    assert actual.flags.c_contiguous
    np.testing.assert_allclose(actual, expected.astype(dtype, copy=False), equal_nan=True,
                               **tol(dtype, terms, scale))


# --------------------------------------------------------------------------------------------
# the input generator
# --------------------------------------------------------------------------------------------
LAYOUTS = ("contiguous", "fortran", "strided", "negative", "readonly")


def layout(arr, kind):
    """``arr``'s values in the memory layout ``kind`` (one of :data:`LAYOUTS`)."""
    arr = np.asarray(arr)
    if kind == "contiguous":
        res = np.ascontiguousarray(arr)
    elif kind == "fortran":
        res = np.asfortranarray(arr)
    elif kind == "strided":
        # every axis strided: a view of every other element of a larger array
        big = np.zeros(tuple(2 * s for s in arr.shape), arr.dtype)
        view = big[tuple(slice(None, None, 2) for _ in arr.shape)]
        view[...] = arr
        res = view
    elif kind == "negative":
        # every axis walked backwards: a reversed view of a reversed copy
        rev = tuple(slice(None, None, -1) for _ in arr.shape)
        res = np.ascontiguousarray(arr[rev])[rev]
    elif kind == "readonly":
        res = np.array(arr)
        res.flags.writeable = False
    else:  # pragma: no cover - a typo in a test
        raise ValueError(kind)
    np.testing.assert_array_equal(res, arr)
    return res


def layouts(arr):
    """Yield ``(kind, variant)`` for every layout in :data:`LAYOUTS`, same values each."""
    for kind in LAYOUTS:
        yield kind, layout(arr, kind)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
class Unchanged:
    """Snapshot arrays; :meth:`check` asserts they still hold the same values and flags."""

    def __init__(self, *arrays):
        self.items = [(a, np.array(a, copy=True), a.flags.writeable)
                      for a in arrays if isinstance(a, np.ndarray)]

    def check(self):
        for a, copy, writeable in self.items:
            np.testing.assert_array_equal(a, copy, strict=True)
            assert a.flags.writeable == writeable


def call(op, *args, **kwargs):
    """``fastconv.<op>(*args, **kwargs)``."""
    return getattr(fastconv, op)(*args, **kwargs)


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Every available backend."""
    return request.param


@pytest.fixture
def rng(request):
    """A generator seeded by the test's name: reproducible and different per test."""
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)


@pytest.fixture
def threads():
    """Restore fastconv's thread count after the test."""
    before = fastconv.get_num_threads()
    yield before
    fastconv.set_num_threads(before)


_REAL_GRAINS = (fastconv._threads.GRAIN_FLOPS, fastconv._threads.GRAIN_ELEMENTS)


@pytest.fixture(autouse=True)
def _every_thread(request, monkeypatch):
    """The tests' inputs are small, and fastconv gives a call below two grains of work one
    thread (fastconv._threads): with the grains at 0 every call runs on every thread, so the
    whole suite exercises the multi-threaded kernels. Tests of the grain itself are marked
    ``real_grains``."""
    if request.node.get_closest_marker("real_grains") is None:
        monkeypatch.setattr(fastconv._threads, "GRAIN_FLOPS", 0)
        monkeypatch.setattr(fastconv._threads, "GRAIN_ELEMENTS", 0)
    else:
        monkeypatch.setattr(fastconv._threads, "GRAIN_FLOPS", _REAL_GRAINS[0])
        monkeypatch.setattr(fastconv._threads, "GRAIN_ELEMENTS", _REAL_GRAINS[1])


@pytest.fixture(autouse=True)
def _fresh_call_plans():
    """Each test starts with no planned calls (fastconv._fastcall): a plan made under
    another test's grains or spies would skip this test's (its own calls plan as usual)."""
    fastconv._fastcall.clear()
    yield


@pytest.fixture(autouse=True)
def _restore_backend():
    """No test leaks a default backend into another."""
    before = fastconv.get_backend()
    yield
    fastconv.set_backend(before)


def collect_bench_suite(tmp_path, pytest_args):
    """The output of ``fastconv bench``'s pytest command run from ``tmp_path`` (quick subset,
    with ``pytest_args``) against the fastconv under test; fails if pytest fails."""
    import argparse
    import subprocess

    from fastconv import cli

    suite = cli._find_suite(None)
    args = argparse.Namespace(max_time="0.01", quick=True, pytest_args=list(pytest_args))
    cmd = cli._pytest_command(suite, str(tmp_path / "bench.json"), args)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    return suite, out
