"""The test run itself is strict (issue 16).

* pyproject.toml's pytest configuration makes every warning an error, an unregistered
  marker an error, and an xfail test that passes a failure. Checked by running pytest with
  that configuration on small test files in a subprocess.
* ``FASTCONV_REQUIRE_BACKENDS=numpy,cython,numba`` (set by ``.ci/run``) makes a missing
  backend stop the session before any test runs, naming the backend and why it did not
  import; an unknown name in it is an error too (tests/conftest.py). The child runs this
  folder's conftest with numba made unimportable (a ``numba`` module on ``PYTHONPATH`` that
  raises ImportError).
* The NumPy reference computes without RuntimeWarnings on non-finite input, which every
  op accepts (inf * 0 and inf - inf inside its sums are legal, and give NaN as in torch).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import fastconv
from conftest import BACKENDS, ONLY_VAR, REQUIRE_VAR, SAMPLE_VAR

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
PYPROJECT = os.path.join(ROOT, "pyproject.toml")
USAGE_ERROR = 4  # pytest.ExitCode.USAGE_ERROR


def _pytest(args, cwd, env=None):
    """Run pytest in a child process from ``cwd`` (not the source tree, so ``python -m``
    cannot import an uncompiled in-tree fastconv); return (returncode, stdout + stderr)."""
    full = dict(os.environ)
    full.pop(REQUIRE_VAR, None)
    full.pop(ONLY_VAR, None)  # set by the debug-build run (tools/debug_tests.sh)
    full.pop(SAMPLE_VAR, None)  # and this, in CI
    full.pop("PYTEST_ADDOPTS", None)  # CI's --durations
    full.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=cwd, env=full, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


# --------------------------------------------------------------------------------------------
# pyproject.toml: filterwarnings = error, --strict-markers, xfail_strict
# --------------------------------------------------------------------------------------------
needs_pyproject = pytest.mark.skipif(
    not os.path.exists(PYPROJECT),
    reason="no pyproject.toml next to tests/ (the installed-wheel run copies tests/ only)")


@needs_pyproject
def test_issue16_a_warning_and_an_unexpected_pass_fail_the_run(tmp_path):
    (tmp_path / "test_child.py").write_text(textwrap.dedent("""
        import warnings
        import pytest

        def test_warns():
            warnings.warn("a stray warning", UserWarning)

        @pytest.mark.xfail(reason="expected to fail")
        def test_passes_unexpectedly():
            pass

        def test_plain():
            pass
    """))
    rc, out = _pytest(["-c", PYPROJECT, "--rootdir", str(tmp_path), "-q", "test_child.py"],
                      cwd=tmp_path)
    assert rc == 1, out
    assert "2 failed, 1 passed" in out, out
    assert "UserWarning: a stray warning" in out, out
    assert "[XPASS(strict)]" in out, out


@needs_pyproject
def test_issue16_an_unregistered_marker_is_an_error(tmp_path):
    (tmp_path / "test_child.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.no_such_marker
        def test_marked():
            pass
    """))
    rc, out = _pytest(["-c", PYPROJECT, "--rootdir", str(tmp_path), "-q", "test_child.py"],
                      cwd=tmp_path)
    assert rc != 0, out
    assert "'no_such_marker' not found in `markers` configuration option" in out, out


# --------------------------------------------------------------------------------------------
# FASTCONV_REQUIRE_BACKENDS
# --------------------------------------------------------------------------------------------
def _collect_this_file(tmp_path, value, extra_env=None):
    env = {REQUIRE_VAR: value, **(extra_env or {})}
    return _pytest(["--collect-only", "-q", os.path.join(TESTS, "test_strict.py")],
                   cwd=tmp_path, env=env)


@pytest.mark.skipif("numba" not in BACKENDS, reason="the numba backend is not available here")
def test_issue16_required_backend_that_does_not_import_stops_the_session(tmp_path):
    # with every named backend available the child collects as usual
    rc, out = _collect_this_file(tmp_path, "numpy,numba")
    assert rc == 0, out
    assert "test_issue16_required_backend_that_does_not_import_stops_the_session" in out
    # numba made unimportable in the child: the session stops at start, naming it and why
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "numba.py").write_text('raise ImportError("numba blocked by test_strict")\n')
    path = os.pathsep.join(p for p in (str(fake), os.environ.get("PYTHONPATH")) if p)
    rc, out = _collect_this_file(tmp_path, "numpy,numba", {"PYTHONPATH": path})
    assert rc == USAGE_ERROR, out
    assert (f"{REQUIRE_VAR}='numpy,numba', but backend 'numba' is not available "
            "(ImportError: numba blocked by test_strict)") in out, out
    assert "collected" not in out, out
    # without the variable, the same child runs without numba (the backend is left out)
    rc, out = _pytest(["--collect-only", "-q", os.path.join(TESTS, "test_strict.py")],
                      cwd=tmp_path, env={"PYTHONPATH": path})
    assert rc == 0, out


@pytest.mark.parametrize("value", ["numpy,nosuch", "numpy, Numba"])
def test_issue16_required_backend_unknown_name_is_an_error(tmp_path, value):
    rc, out = _collect_this_file(tmp_path, value)
    assert rc == USAGE_ERROR, out
    bad = value.split(",")[1].strip()
    assert f"{REQUIRE_VAR}={value!r} names unknown backend(s) {bad}" in out, out
    assert "numpy, cython, numba" in out, out


def test_only_backends_deselects_the_other_backends_cases(tmp_path):
    # FASTCONV_TEST_BACKENDS=cython (the debug-build run): the cases parametrized for the
    # other backends are deselected, the Cython ones and unparametrized tests stay
    target = os.path.join(TESTS, "test_postconditions.py")
    rc, every = _pytest(["--collect-only", "-q", target], cwd=tmp_path)
    assert rc == 0, every
    rc, out = _pytest(["--collect-only", "-q", target], cwd=tmp_path, env={ONLY_VAR: "cython"})
    assert rc == 0, out
    kept = {line for line in out.splitlines() if "::" in line}
    assert kept and kept < {line for line in every.splitlines() if "::" in line}, out
    assert any("cython" in line for line in kept), out
    assert not any("numba" in line or "[numpy" in line for line in kept), out
    assert "deselected" in out, out
    rc, out = _pytest(["--collect-only", "-q", target], cwd=tmp_path, env={ONLY_VAR: "cuda"})
    assert rc == USAGE_ERROR, out
    assert f"{ONLY_VAR}='cuda' names unknown backend(s) cuda" in out, out


# --------------------------------------------------------------------------------------------
# the NumPy reference on non-finite input: no RuntimeWarning
# --------------------------------------------------------------------------------------------
def _nonfinite(shape, rng, dtype):
    """Random values with inf, -inf and NaN at a few places, and zeros (inf * 0); the first
    plane starts with inf, -inf (a window or a sum that meets both: inf - inf)."""
    a = rng.standard_normal(shape).astype(dtype)
    flat = a.reshape(-1)
    idx = rng.permutation(flat.size)
    flat[idx[:3]] = np.inf
    flat[idx[3:6]] = -np.inf
    flat[idx[6:8]] = np.nan
    flat[idx[8:12]] = 0
    flat[:2] = np.inf, -np.inf
    return a


def _gy(x):
    """A (2, 4, 6, 6) output gradient for x (2, 3, 8, 8) and a (4, 3, 3, 3) weight, with
    x's non-finite values."""
    return np.concatenate([x[:, :, :6, :6], x[:, :1, :6, :6]], axis=1)


def _max_pool_backward(x, k):
    x = np.zeros_like(x)
    x[..., 4, 4] = 10  # the max of the four 2x2 windows that hold it, at stride 1
    y, idx = fastconv.max_pool2d(x, 2, 1, return_indices=True, backend="numpy")
    gy = np.full_like(y, np.inf)
    gy[..., 3, 3] = -np.inf  # their gradients sum at (4, 4): inf - inf
    return fastconv.grad.max_pool2d(gy, idx, x.shape, backend=k)


NONFINITE_CALLS = {
    "conv2d": lambda x, w, k: fastconv.conv2d(x, w, padding=1, backend=k),
    "conv2d_grouped": lambda x, w, k: fastconv.conv2d(x, w[:3, :1], groups=3, backend=k),
    "avg_pool2d": lambda x, w, k: fastconv.avg_pool2d(x, 3, 2, padding=1, backend=k),
    "conv2d_input": lambda x, w, k: fastconv.grad.conv2d_input(x.shape, w, _gy(x),
                                                               backend=k),
    "conv2d_weight": lambda x, w, k: fastconv.grad.conv2d_weight(x, w.shape, _gy(x),
                                                                 backend=k),
    "locally_connected2d": lambda x, w, k: fastconv.locally_connected2d(
        x, np.repeat(np.repeat(w[None, None], 6, 0), 6, 1), backend=k),
    "convolve2d": lambda x, w, k: fastconv.convolve2d(x[0, 0], w[0, 0], backend=k),
    "avg_pool2d_backward": lambda x, w, k: fastconv.grad.avg_pool2d(
        x[:, :, :6, :6], x.shape, 3, 1, backend=k),
    "max_pool2d_backward": lambda x, w, k: _max_pool_backward(x, k),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(NONFINITE_CALLS))
def test_issue16_reference_nonfinite_input_warns_nothing(name, dtype, rng):
    x = _nonfinite((2, 3, 8, 8), rng, dtype)
    w = _nonfinite((4, 3, 3, 3), rng, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="warn"):
            got = NONFINITE_CALLS[name](x, w, "numpy")
    res = got[0] if isinstance(got, tuple) else got
    assert res.dtype == dtype
    assert not np.isfinite(res).all()  # the non-finite values did reach the result
