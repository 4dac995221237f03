"""Issue 18: scipy's own tests of the rank filters (the installed scipy's
scipy/ndimage/tests/test_filters.py), run with fastconv's maximum/minimum/median filters in
place of scipy's: the test module's ``ndimage`` is swapped for a namespace holding ours
(every other name stays scipy's), scipy function objects in parametrizations are mapped to
ours, and ``xp`` is NumPy. SKIP lists the tests that cannot pass, with the reason."""

import inspect
import itertools
import types

import numpy as np
import pytest

from fastconv import _ndrank
from fastconv import ndimage as fc_ndimage

# scipy's test module uses markers of its own conftest (skip_xp_backends, ...), unknown under
# this project's strict markers: its import runs with the marker check off
_config, pytest.mark._config = pytest.mark._config, None
try:
    tf = pytest.importorskip("scipy.ndimage.tests.test_filters")
finally:
    pytest.mark._config = _config
from scipy import ndimage  # noqa: E402

OURS = {name: getattr(fc_ndimage, name) for name in _ndrank.__all__}  # as exported
SHIM = types.SimpleNamespace(**{n: getattr(ndimage, n) for n in dir(ndimage)
                                if not n.startswith("_")})
for _n, _f in OURS.items():
    setattr(SHIM, _n, _f)
TO_OURS = {getattr(ndimage, n): f for n, f in OURS.items()}

SKIP = {
    "test_minimum_filter07": "asserts RuntimeError for a mode sequence with a non-separable "
                             "footprint; fastconv accepts per-axis modes there",
    "test_maximum_filter07": "as test_minimum_filter07",
    "test_rank08": "asserts RuntimeError for a mode sequence in median_filter; fastconv "
                   "accepts per-axis modes there",
}

CLASS_TESTS = [("TestNdimageFilters", n) for n in dir(tf.TestNdimageFilters)
               if n.startswith(("test_minimum_filter", "test_maximum_filter", "test_rank",
                                "test_minmax_nonseparable_axes"))]
CLASS_TESTS += [("TestThreading", "test_median_filter"), ("TestThreading", "test_minmax_filter")]
MODULE_TESTS = [n for n in ("test_minmaximum_filter1d", "test_footprint_all_zeros",
                            "test_byte_order_median", "test_median_filter_lim2",
                            "test_gh_22250", "test_gh_23075", "test_gh_23075_constant")
                if hasattr(tf, n)]


def _calls(fn):
    """Every argument set of ``fn``'s parametrize marks (scipy's functions mapped to ours)."""
    marks = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"]
    params = [p for p in inspect.signature(fn).parameters if p not in ("self",)]
    axes = []
    for m in marks:
        names = m.args[0]
        names = [s.strip() for s in names.split(",")] if isinstance(names, str) else list(names)
        values = []
        for v in m.args[1]:
            v = getattr(v, "values", v)          # pytest.param(...)
            v = v if len(names) > 1 else (v,)
            values.append(dict(zip(names, (TO_OURS.get(a, a) if callable(a) else a
                                           for a in v))))
        axes.append(values)
    for combo in itertools.product(*axes) if axes else [()]:
        kw = {}
        for d in combo:
            kw.update(d)
        if "xp" in params:
            kw["xp"] = np
        yield kw


@pytest.fixture(autouse=True)
def _fastconv_ndimage(monkeypatch):
    monkeypatch.setattr(tf, "ndimage", SHIM)


@pytest.mark.parametrize("cls,name", CLASS_TESTS)
def test_scipy_class_tests(cls, name):
    if name in SKIP:
        pytest.skip(SKIP[name])
    fn = getattr(getattr(tf, cls), name)
    for kw in _calls(fn):
        getattr(getattr(tf, cls)(), name)(**kw)


@pytest.mark.parametrize("name", MODULE_TESTS)
def test_scipy_module_tests(name):
    if name in SKIP:
        pytest.skip(SKIP[name])
    fn = getattr(tf, name)
    for kw in _calls(fn):
        fn(**kw)


def test_the_shim_is_used():
    """The swapped namespace reaches the tests (else they would test scipy)."""
    assert tf.ndimage.median_filter is _ndrank.median_filter
