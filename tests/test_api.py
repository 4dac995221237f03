"""The library's surface: backends, threads, info and the CLI, the dtype rule, inputs never
modified, results fresh, and the docstring examples."""

from __future__ import annotations

import asyncio
import doctest
import importlib
import io
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastconv
from fastconv import _dispatch

from conftest import BACKENDS, OPS, REGISTRY, Unchanged

# the package's parent folder: subprocesses import the same fastconv as this process
PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))


def _python(code, tmp_path, **env):
    """Run ``python -c code`` in a clean folder; return the CompletedProcess."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("FASTCONV_")}
    e["PYTHONPATH"] = PKG_PARENT + os.pathsep + e.get("PYTHONPATH", "")
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=e,
                          capture_output=True, text=True, timeout=120)


# --------------------------------------------------------------------------------------------
# backends
# --------------------------------------------------------------------------------------------
def test_backends_is_a_tuple_of_known_names():
    b = fastconv.backends()
    assert isinstance(b, tuple)
    assert "numpy" in b
    assert set(b) <= {"numpy", "cython", "numba"}
    assert len(set(b)) == len(b)
    assert b == BACKENDS


def test_all_three_backends_are_built():
    """The installation under test has the compiled Cython and the Numba backends."""
    assert set(fastconv.backends()) >= {"numpy", "cython", "numba"}, (
        f"available: {fastconv.backends()}, unavailable: {_dispatch.unavailable()}")


def test_registry_covers_every_public_function():
    public = {n for n in fastconv.__all__ if callable(getattr(fastconv, n))}
    assert set(OPS) <= public
    assert {"conv1d", "conv2d", "max_pool1d", "max_pool2d", "avg_pool2d", "convolve",
            "correlate", "convolve2d", "correlate2d"} <= set(OPS)
    assert len(REGISTRY) == len(OPS) * len(BACKENDS)


def test_default_backend_is_auto_and_auto_prefers_compiled():
    assert fastconv.get_backend() == "auto"
    expected = next(b for b in ("cython", "numba", "numpy") if b in BACKENDS)
    assert _dispatch.resolve("auto") == expected
    assert _dispatch.resolve(None) == expected


def test_set_backend_and_get_backend(backend):
    fastconv.set_backend(backend)
    assert fastconv.get_backend() == backend
    assert _dispatch.resolve(None) == backend
    # a call without backend= now runs there, and gives the reference result
    x = np.arange(12.0).reshape(1, 1, 3, 4)
    np.testing.assert_allclose(fastconv.conv2d(x, np.ones((1, 1, 2, 2))),
                               fastconv.conv2d(x, np.ones((1, 1, 2, 2)), backend="numpy"))
    fastconv.set_backend("auto")
    assert fastconv.get_backend() == "auto"


@pytest.mark.parametrize("bad", ["nope", "NUMPY", "", None, 1])
def test_set_backend_rejects_unknown_names_and_keeps_the_old_one(bad):
    fastconv.set_backend("numpy")
    with pytest.raises(ValueError, match="backend") as info:
        fastconv.set_backend(bad)
    for b in BACKENDS:
        assert repr(b) in str(info.value)
    assert fastconv.get_backend() == "numpy"


def test_use_backend_restores_even_on_error(backend):
    fastconv.set_backend("numpy")
    with fastconv.use_backend(backend):
        assert fastconv.get_backend() == backend
        with fastconv.use_backend("auto"):
            assert fastconv.get_backend() == "auto"
        assert fastconv.get_backend() == backend
    assert fastconv.get_backend() == "numpy"
    with pytest.raises(RuntimeError):
        with fastconv.use_backend(backend):
            raise RuntimeError("boom")
    assert fastconv.get_backend() == "numpy"


def test_use_backend_rejects_unknown_names():
    with pytest.raises(ValueError, match="backend"):
        with fastconv.use_backend("nope"):
            pass  # pragma: no cover
    assert fastconv.get_backend() == "auto"


def test_use_backend_is_thread_local():
    seen = {}
    started, release = threading.Event(), threading.Event()

    def worker():
        seen["before"] = fastconv.get_backend()
        with fastconv.use_backend(BACKENDS[-1]):
            started.set()
            release.wait(10)
            seen["inside"] = fastconv.get_backend()

    with fastconv.use_backend("numpy"):
        t = threading.Thread(target=worker)
        t.start()
        started.wait(10)
        assert fastconv.get_backend() == "numpy"  # the other thread's block does not leak
        release.set()
        t.join()
    assert seen == {"before": "auto", "inside": BACKENDS[-1]}
    assert fastconv.get_backend() == "auto"


def test_use_backend_is_task_local():
    async def task(name, results):
        with fastconv.use_backend(name):
            await asyncio.sleep(0.01)
            results[name] = fastconv.get_backend()

    async def main():
        results = {}
        await asyncio.gather(*(task(b, results) for b in BACKENDS))
        return results

    assert asyncio.run(main()) == {b: b for b in BACKENDS}
    assert fastconv.get_backend() == "auto"


@pytest.mark.parametrize("value", BACKENDS + ("auto",))
def test_fastconv_backend_environment_variable(value, tmp_path):
    r = _python("import fastconv; print(fastconv.get_backend())", tmp_path,
                FASTCONV_BACKEND=value)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == value


def test_fastconv_backend_environment_variable_invalid(tmp_path):
    r = _python("import fastconv", tmp_path, FASTCONV_BACKEND="nope")
    assert r.returncode != 0
    assert "ValueError" in r.stderr and "FASTCONV_BACKEND" in r.stderr


def test_subprocess_imports_the_same_fastconv(tmp_path):
    r = _python("import fastconv; print(fastconv.__file__); print(fastconv.backends())",
                tmp_path)
    assert r.returncode == 0, r.stderr
    path, backends = r.stdout.strip().splitlines()
    assert os.path.samefile(path, fastconv.__file__)
    assert backends == str(BACKENDS)


# --------------------------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------------------------
def test_num_threads_default_and_set(threads):
    assert isinstance(threads, int) and threads >= 1
    if "FASTCONV_NUM_THREADS" not in os.environ:
        assert threads == len(os.sched_getaffinity(0))
    fastconv.set_num_threads(1)
    assert fastconv.get_num_threads() == 1
    fastconv.set_num_threads(np.int64(3))
    assert fastconv.get_num_threads() == 3
    assert type(fastconv.get_num_threads()) is int


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError),
                                      ("2", TypeError), (True, TypeError), (None, TypeError)])
def test_set_num_threads_validation(threads, bad, exc):
    with pytest.raises(exc, match="n must"):
        fastconv.set_num_threads(bad)
    assert fastconv.get_num_threads() == threads


def test_fastconv_num_threads_environment_variable(tmp_path):
    r = _python("import fastconv; print(fastconv.get_num_threads())", tmp_path,
                FASTCONV_NUM_THREADS="3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "3"
    r = _python("import fastconv", tmp_path, FASTCONV_NUM_THREADS="zero")
    assert r.returncode != 0 and "FASTCONV_NUM_THREADS" in r.stderr


def test_more_threads_than_cpus_is_fine(backend, threads):
    fastconv.set_num_threads(64)
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9))
    w = np.ones((4, 3, 3, 3))
    np.testing.assert_allclose(fastconv.conv2d(x, w, backend=backend),
                               fastconv.conv2d(x, w, backend="numpy"), rtol=1e-10)


_CONCURRENT = """
import threading, numpy as np, fastconv
be = {backend!r}
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 8, 40, 40)).astype(np.float32)
w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
calls = [lambda: fastconv.conv2d(x, w, padding=1, backend=be),
         lambda: fastconv.conv2d(x, w, stride=2, backend=be),
         lambda: fastconv.max_pool2d(x, 3, 2, 1, return_indices=True, backend=be)[1],
         lambda: fastconv.avg_pool2d(x, 2, backend=be)]
expected = [f() for f in calls]
errors = []
def work():
    try:
        for _ in range(10):
            for f, e in zip(calls, expected):
                np.testing.assert_allclose(f(), e, rtol=1e-5, atol=1e-5)
    except BaseException as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print("errors:", errors)
"""


def test_concurrent_calls_from_python_threads(backend, tmp_path):
    """Several Python threads calling at once (the kernels release the GIL) get the
    single-threaded results; run in a subprocess, since a threading-layer failure aborts."""
    r = _python(_CONCURRENT.format(backend=backend), tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "errors: []", r.stdout


# --------------------------------------------------------------------------------------------
# info and the command line
# --------------------------------------------------------------------------------------------
def test_info_prints_versions_backends_threads_and_blas():
    buf = io.StringIO()
    fastconv.info(file=buf)
    text = buf.getvalue()
    assert fastconv.__version__ in text
    assert np.__version__ in text
    for b in BACKENDS:
        assert b in text
    assert "num_threads" in text and str(fastconv.get_num_threads()) in text
    assert "blas" in text


def test_info_goes_to_stdout_by_default(capsys):
    fastconv.info()
    assert fastconv.__version__ in capsys.readouterr().out


def test_python_m_fastconv_info(tmp_path):
    e = {k: v for k, v in os.environ.items() if not k.startswith("FASTCONV_")}
    e["PYTHONPATH"] = PKG_PARENT
    r = subprocess.run([sys.executable, "-m", "fastconv", "info"], cwd=tmp_path, env=e,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert fastconv.__version__ in r.stdout
    for b in BACKENDS:
        assert b in r.stdout
    assert "import_time" in r.stdout and "first_call" in r.stdout
    for b in BACKENDS:
        if b != "numpy":
            assert f"{b} conv2d: " in r.stdout and f"{b} max_pool2d: " in r.stdout


def test_first_call_times_count_real_calls_only(tmp_path):
    """An empty batch or a raising call is not the first call (Numba compiles later)."""
    if "cython" not in BACKENDS:
        pytest.skip("the Cython backend is not built")
    r = _python(
        "import numpy as np, fastconv\n"
        "from fastconv import _dispatch\n"
        "w = np.ones((3, 2, 3, 3), np.float32)\n"
        "fastconv.conv2d(np.zeros((0, 2, 8, 8), np.float32), w, backend='cython')\n"
        "try:\n"
        "    fastconv.conv2d(np.zeros((1, 2, 2, 2), np.float32), w, backend='cython')\n"
        "except ValueError:\n"
        "    pass\n"
        "print(_dispatch.first_call_seconds())\n"
        "fastconv.conv2d(np.zeros((1, 2, 8, 8), np.float32), w, backend='cython')\n"
        "print(sorted(_dispatch.first_call_seconds()))\n", tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["{}", "[('cython', 'conv2d')]"]


def test_python_m_fastconv_rejects_unknown_commands(tmp_path):
    r = _python("import sys; sys.argv = ['fastconv', 'frobnicate']; "
                "import runpy; runpy.run_module('fastconv', run_name='__main__')", tmp_path)
    assert r.returncode == 2
    assert "frobnicate" in r.stderr


# --------------------------------------------------------------------------------------------
# the dtype rule: result dtype == numpy.result_type(inputs..., numpy.float32)
# --------------------------------------------------------------------------------------------
DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint64, np.float16,
          np.float32, np.float64]


def _calls(xd, wd, bd=None):
    """(op, args, kwargs, the inputs the dtype rule names) for each public function."""
    x4 = np.ones((1, 2, 4, 4), xd)
    w4 = np.ones((2, 2, 2, 2), wd)
    x3 = np.ones((1, 2, 6), xd)
    w3 = np.ones((2, 2, 3), wd)
    b = None if bd is None else np.ones(2, bd)
    return [
        ("conv2d", (x4, w4, b), {}, (x4, w4) if b is None else (x4, w4, b)),
        ("conv1d", (x3, w3, b), {}, (x3, w3) if b is None else (x3, w3, b)),
        ("max_pool2d", (x4, 2), {}, (x4,)),
        ("max_pool1d", (x3, 2), {}, (x3,)),
        ("avg_pool2d", (x4, 2), {}, (x4,)),
        ("convolve", (x3[0, 0], w3[0, 0]), {}, (x3, w3)),
        ("correlate", (x3[0, 0], w3[0, 0]), dict(mode="same"), (x3, w3)),
        ("convolve2d", (x4[0, 0], w4[0, 0]), dict(boundary="wrap"), (x4, w4)),
        ("correlate2d", (x4[0, 0], w4[0, 0]), dict(mode="valid"), (x4, w4)),
    ]


@pytest.mark.parametrize("xd", DTYPES, ids=lambda d: np.dtype(d).name)
def test_dtype_rule(backend, xd):
    for wd, bd in [(xd, None), (np.float32, None), (np.float64, None), (xd, np.float32),
                   (np.float16, np.int64)]:
        for op, args, kw, named in _calls(xd, wd, bd):
            expected = np.result_type(*named, np.float32)
            res = getattr(fastconv, op)(*args, backend=backend, **kw)
            assert res.dtype == expected, (op, xd, wd, bd)
            # the value: all-ones inputs, computed again in the result dtype by the reference
            ref = getattr(fastconv, op)(*(a.astype(expected) if isinstance(a, np.ndarray)
                                          else a for a in args), backend="numpy", **kw)
            np.testing.assert_allclose(res, ref)


def test_dtype_rule_examples(backend):
    """The rule's consequences, spelled out."""
    w = np.ones((1, 1, 1, 1), np.float32)
    f = lambda x, w=w: fastconv.conv2d(x, w, backend=backend).dtype  # noqa: E731
    assert f(np.ones((1, 1, 2, 2), np.float32)) == np.float32  # float32 stays float32
    assert f(np.ones((1, 1, 2, 2), np.float16)) == np.float32  # float16 gives float32
    assert f(np.ones((1, 1, 2, 2), np.float64)) == np.float64
    assert f(np.ones((1, 1, 2, 2), np.int64)) == np.float64  # (default) ints give float64
    assert f(np.ones((1, 1, 2, 2), np.int32)) == np.float64
    i = np.ones((1, 1, 1, 1), np.int64)
    assert f(np.ones((1, 1, 2, 2), np.int64), i) == np.float64
    assert fastconv.convolve([1, 2, 3], [1, 2], backend=backend).dtype == np.float64
    assert fastconv.correlate2d([[True, False]], [[True]], backend=backend).dtype == \
        np.result_type(np.bool_, np.float32)


@pytest.mark.parametrize("op", list(OPS))
def test_float32_is_computed_in_float32(backend, op, monkeypatch):
    """Every array a kernel receives for float32 input is float32: no float64 detour."""
    seen = []
    real = _dispatch.run

    def spy(name, be, spec, out, **kwargs):
        args = spec.kernel_args(out)
        seen.extend(a.dtype for a in args if isinstance(a, np.ndarray) and a.dtype.kind == "f")
        return real(name, be, spec, out, **kwargs)

    monkeypatch.setattr(_dispatch, "run", spy)
    f32 = np.float32
    calls = {
        "conv1d": lambda: fastconv.conv1d(np.ones((1, 2, 6), f32), np.ones((2, 2, 3), f32),
                                          np.ones(2, f32), padding=1, padding_mode="reflect",
                                          backend=backend),
        "conv2d": lambda: fastconv.conv2d(np.ones((1, 2, 6, 6), f32),
                                          np.ones((2, 2, 3, 3), f32), np.ones(2, f32),
                                          padding="same", padding_mode="circular",
                                          backend=backend),
        "max_pool1d": lambda: fastconv.max_pool1d(np.ones((1, 2, 6), f32), 2,
                                                  return_indices=True, backend=backend),
        "max_pool2d": lambda: fastconv.max_pool2d(np.ones((1, 2, 6, 6), f32), 2, padding=1,
                                                  backend=backend),
        "avg_pool2d": lambda: fastconv.avg_pool2d(np.ones((1, 2, 6, 6), f32), 3, padding=1,
                                                  backend=backend),
        "convolve": lambda: fastconv.convolve(np.ones(5, f32), np.ones(7, f32), "same",
                                              backend=backend),
        "correlate": lambda: fastconv.correlate(np.ones(5, f32), np.ones(3, f32), "full",
                                                backend=backend),
        "convolve2d": lambda: fastconv.convolve2d(np.ones((4, 5), f32), np.ones((2, 3), f32),
                                                  "same", "symm", backend=backend),
        "correlate2d": lambda: fastconv.correlate2d(np.ones((4, 5), f32), np.ones((2, 3), f32),
                                                    "full", "fill", fillvalue=2.5,
                                                    backend=backend),
    }
    res = calls[op]()
    res = res[0] if isinstance(res, tuple) else res
    assert res.dtype == np.float32
    assert seen and all(d == np.float32 for d in seen), seen


# --------------------------------------------------------------------------------------------
# inputs are never modified, results are new C-contiguous arrays
# --------------------------------------------------------------------------------------------
def _registry_call(op, rng):
    x4 = rng.standard_normal((2, 2, 5, 6))
    if op == "conv2d":
        return (x4, rng.standard_normal((2, 1, 3, 3)), rng.standard_normal(2)), \
            dict(groups=2, padding=1, padding_mode="replicate")
    if op == "conv1d":
        return (x4[:, :, 0], rng.standard_normal((4, 2, 2)), rng.standard_normal(4)), \
            dict(padding="same", padding_mode="reflect")
    if op == "max_pool2d":
        return (x4, 3), dict(stride=2, padding=1, return_indices=True)
    if op == "max_pool1d":
        return (x4[:, :, 0], 2), dict(return_indices=True, ceil_mode=True)
    if op == "avg_pool2d":
        return (x4, 2), dict(padding=1, count_include_pad=False)
    if op in ("convolve", "correlate"):
        return (x4[0, 0, 0], x4[1, 1, 1, :4]), dict(mode="same")
    return (x4[0, 0], x4[1, 1, :2, :3]), dict(mode="full", boundary="symm")


@pytest.mark.parametrize("op, backend_name", REGISTRY)
def test_inputs_unmodified_and_results_fresh(op, backend_name):
    args, kw = _registry_call(op, np.random.default_rng(5))
    keep = Unchanged(*args)
    res = getattr(fastconv, op)(*args, backend=backend_name, **kw)
    keep.check()
    for r in res if isinstance(res, tuple) else (res,):
        assert isinstance(r, np.ndarray)
        assert r.flags.c_contiguous and r.flags.writeable
        for a in args:
            if isinstance(a, np.ndarray):
                assert not np.shares_memory(r, a)
    # read-only inputs are accepted as they are
    ro = []
    for a in args:
        if isinstance(a, np.ndarray):
            a = a.copy()
            a.flags.writeable = False
        ro.append(a)
    res2 = getattr(fastconv, op)(*ro, backend=backend_name, **kw)
    for r, r2 in zip(res if isinstance(res, tuple) else (res,),
                     res2 if isinstance(res2, tuple) else (res2,)):
        np.testing.assert_array_equal(r, r2)


def test_results_do_not_alias_between_calls(backend):
    x = np.ones((1, 1, 4, 4))
    a = fastconv.max_pool2d(x, 2, backend=backend)
    b = fastconv.max_pool2d(x, 2, backend=backend)
    assert not np.shares_memory(a, b)
    a[...] = 7
    np.testing.assert_array_equal(b, 1)


# --------------------------------------------------------------------------------------------
# docstring examples
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("module", ["fastconv.functional", "fastconv._dispatch"])
def test_doctests(module, backend):
    """The examples pass, on every backend (each run as the default backend)."""
    mod = importlib.import_module(module)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(mod, module) if t.examples]
    assert tests, f"no examples in {module}"
    out = io.StringIO()
    with fastconv.use_backend(backend):
        for t in tests:
            runner.run(t, out=out.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, out.getvalue()
    if module == "fastconv.functional":
        names = {t.name.rsplit(".", 1)[-1] for t in tests}
        assert set(OPS) <= names, f"functions without an example: {set(OPS) - names}"
