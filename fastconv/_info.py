"""``fastconv.info()``: what this installation is and how it was built."""

from __future__ import annotations

import platform
import sys

from . import _dispatch, _threads
from ._version import __version__


def openmp_status(build_info: dict) -> str:
    """One line on the Cython kernels' OpenMP, from ``_cy_conv.build_info()``."""
    if build_info.get("openmp"):
        return f"yes (_OPENMP {build_info.get('openmp_version')})"
    return ("no - kernels run serially (built without OpenMP: FASTCONV_NO_OPENMP=1 or a "
            "compiler without it)")


def flush_denormal_status() -> str:
    """One line on :func:`fastconv.set_flush_denormal`: the setting, and whether it can work."""
    if not _threads.flush_denormal_supported():
        return "off (not supported on this CPU: no x86-64 FTZ/DAZ)"
    return ("on (FTZ/DAZ in the kernel threads)" if _threads.get_flush_denormal()
            else "off (subnormals kept)")


def info_dict() -> dict:
    """The facts :func:`info` prints, as a dict."""
    import numpy

    d = {
        "fastconv": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": numpy.__version__,
        "backends": list(_dispatch.backends()),
        "unavailable": _dispatch.unavailable(),
        "default_backend": _dispatch.get_backend(),
        "auto_resolves_to": _dispatch.resolve("auto"),
        "num_threads": _threads.get_num_threads(),
        "flush_denormal": flush_denormal_status(),
        "import_time": f"{sys.modules['fastconv']._import_seconds:.3f} s",
    }
    try:
        import scipy

        d["scipy"] = scipy.__version__
    except ImportError:  # pragma: no cover - scipy is a dependency
        d["scipy"] = None
    if "numba" in d["backends"]:
        import numba

        from ._numba import _common

        d["numba"] = numba.__version__
        d["numba_max_threads"] = numba.config.NUMBA_NUM_THREADS
        d["numba_cache"] = (f"{_common.CACHE_DIR} ({_common.CACHE_SOURCE})"
                            if _common.CACHE else "none: no private folder could be made, "
                            "kernels compile in every process")
        if _common.REFUSED:  # folders that were not private, or not writeable
            d["numba_cache_refused"] = dict(_common.REFUSED)
    d["openmp"] = "n/a (no compiled Cython kernels)"
    if "cython" in d["backends"]:
        from . import _cy_conv

        d["cython_build"] = _cy_conv.build_info()
        d["openmp"] = openmp_status(d["cython_build"])
    d["blas_and_openmp"] = [
        {k: lib.get(k) for k in ("internal_api", "version", "num_threads", "architecture",
                                  "threading_layer", "filepath")}
        for lib in _threads.blas_info()
    ]
    return d


def first_calls() -> dict:
    """{"backend op": "seconds"}: the first call of conv2d and max_pool2d on each compiled
    backend in this process (made here, on a small input, unless the process made it
    already). For Numba that is its JIT compilation, or the load of its on-disk cache."""
    import numpy as np

    from . import functional

    x = np.zeros((1, 2, 8, 8), np.float32)
    w = np.zeros((3, 2, 3, 3), np.float32)
    done = _dispatch.first_call_seconds()
    for b in ("cython", "numba"):
        if b not in _dispatch.backends():
            continue
        if (b, "conv2d") not in done:
            functional.conv2d(x, w, backend=b)
        if (b, "max_pool2d") not in done:
            functional.max_pool2d(x, 2, backend=b)
    return {f"{b} {op}": f"{t:.3f} s" for (b, op), t in
            sorted(_dispatch.first_call_seconds().items())}


def info(file=None, first_call=False) -> None:
    """Print the version, backends, threads, BLAS in use and the extension's build flags,
    and (``first_call``) the time of the first call of each compiled kernel run in this
    process: Numba's compile time (:func:`first_calls`). That runs the kernels (see
    fastconv._threads for what that means to a process forked afterwards).

    Also available as ``python -m fastconv info``, which prints the first calls.
    """
    d = info_dict()
    if first_call:
        d["first_call"] = first_calls()
    out = file or sys.stdout
    w = max(len(k) for k in d)
    for k, v in d.items():
        if isinstance(v, list) and v and isinstance(v[0], dict):
            print(f"{k:<{w}} :", file=out)
            for item in v:
                print("    " + ", ".join(f"{a}={b}" for a, b in item.items()), file=out)
        elif isinstance(v, dict):
            print(f"{k:<{w}} :", file=out)
            for a, b in v.items():
                print(f"    {a}: {b}", file=out)
        else:
            print(f"{k:<{w}} : {v}", file=out)
