"""Build the compiled kernels of fastconv (metadata lives in pyproject.toml).

    python setup.py build_ext --inplace      # or: pip install -e . --no-build-isolation

Environment switches:

FASTCONV_DEBUG=1
    Bounds, wraparound and initialization checks on, ``-O0 -g``.
FASTCONV_NO_OPENMP=1
    Build without OpenMP: the kernels run serially (a warning says so).
FASTCONV_BUILD_JOBS=n
    Translate (Cython) and compile n extension modules at once (default: the CPUs this
    process may use).

Release builds use ``-O3 -g0 -fopenmp`` and no ``-march=native`` (a wheel must run on any
x86-64); on macOS ``-Xpreprocessor -fopenmp -lomp`` (Homebrew's libomp), with MSVC ``/O2
/openmp``. The Cython directives live here and nowhere else. Switching mode or flags forces a
full rebuild: cythonize compares file times only, and build_ext would keep the old .so.
"""

import json
import os
import sys
from pathlib import Path

import numpy
from Cython import __version__ as cython_version
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
SRC = "src_cython"
# extension module -> its .pyx (the .pxd files next to them are cimported)
MODULES = {
    "fastconv._blas": f"{SRC}/_blas.pyx",
    "fastconv._cy_conv": f"{SRC}/_cy_conv.pyx",
    "fastconv._cy_pool": f"{SRC}/_cy_pool.pyx",
    "fastconv._cy_grad": f"{SRC}/_cy_grad.pyx",
    "fastconv._cy_local": f"{SRC}/_cy_local.pyx",
    "fastconv._cy_pool3d": f"{SRC}/_cy_pool3d.pyx",
    "fastconv._cy_conv3d": f"{SRC}/_cy_conv3d.pyx",
    "fastconv._fpenv": f"{SRC}/_fpenv.pyx",
    "fastconv._cy_fold": f"{SRC}/_cy_fold.pyx",
    "fastconv._cy_adaptive": f"{SRC}/_cy_adaptive.pyx",
    "fastconv._cy_ndfilt": f"{SRC}/_cy_ndfilt.pyx",
    "fastconv._cy_rank": f"{SRC}/_cy_rank.pyx",
    "fastconv._cy_peak": f"{SRC}/_cy_peak.pyx",
}

DEBUG = os.environ.get("FASTCONV_DEBUG", "0") == "1"
OPENMP = os.environ.get("FASTCONV_NO_OPENMP", "0") != "1"

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
}
MSVC = sys.platform == "win32"
if MSVC:
    compile_args = ["/Od", "/Zi"] if DEBUG else ["/O2"]
else:
    compile_args = ["-O0", "-g"] if DEBUG else ["-O3", "-g0"]
link_args = []
if OPENMP and MSVC:
    compile_args.append("/openmp")  # MSVC links its OpenMP runtime (vcomp) by itself
elif OPENMP and sys.platform == "darwin":
    # Apple clang has no -fopenmp driver flag: libomp (Homebrew) through the preprocessor;
    # its include and lib folders come from CPPFLAGS/LDFLAGS (see [tool.cibuildwheel.macos]).
    compile_args += ["-Xpreprocessor", "-fopenmp"]
    link_args.append("-lomp")
elif OPENMP:
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")
else:
    print("WARNING: FASTCONV_NO_OPENMP=1: building fastconv WITHOUT OpenMP; the Cython "
          "kernels will run on one thread whatever nthreads says.", file=sys.stderr)


def _c_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


macros = [
    ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
    ("FASTCONV_DEBUG", "1" if DEBUG else "0"),
    ("FASTCONV_COMPILE_ARGS", _c_string(" ".join(compile_args))),
    ("FASTCONV_LINK_ARGS", _c_string(" ".join(link_args))),
    ("FASTCONV_CYTHON_VERSION", _c_string(cython_version)),
]

# Guard: without its .pyx sources (an sdist made without MANIFEST.in) the build must fail,
# not install a package without kernels.
missing = [src for src in MODULES.values() if not (HERE / src).is_file()]
if missing:
    sys.exit(f"fastconv setup.py: missing Cython sources {missing}; the sdist must ship "
             f"{SRC}/*.pyx and *.pxd (see MANIFEST.in)")

# A stamp of everything that changes the generated C or the objects: when it differs from
# the last build's, regenerate and recompile everything.
STAMP = HERE / "build" / "fastconv-build-mode.json"
stamp = json.dumps({"debug": DEBUG, "openmp": OPENMP, "compile_args": compile_args,
                    "link_args": link_args, "directives": DIRECTIVES,
                    "cython": cython_version, "python": sys.version}, sort_keys=True)
try:
    changed = STAMP.read_text() != stamp
except OSError:
    changed = True

extensions = [
    Extension(name, [src], include_dirs=[numpy.get_include(), SRC], define_macros=macros,
              depends=[f"{SRC}/fc_kernels.h", f"{SRC}/fc_kernels_body.h", f"{SRC}/fc_fpenv.h",
                       f"{SRC}/fc_adaptive.h", f"{SRC}/fc_conv3d.h",
                       f"{SRC}/fc_ndfilt.h", f"{SRC}/fc_ndfilt_body.h",
                       f"{SRC}/fc_rank.h", f"{SRC}/fc_rank_body.h", f"{SRC}/fc_rank_nets.h",
                       f"{SRC}/fc_peak.h", f"{SRC}/fc_peak_body.h", f"{SRC}/fc_pool.h",
                       f"{SRC}/fc_pool_body.h"],
              extra_compile_args=compile_args, extra_link_args=link_args)
    for name, src in MODULES.items()
]
def _jobs():
    """Compiler processes at once: FASTCONV_BUILD_JOBS, else the CPUs this process may use."""
    env = os.environ.get("FASTCONV_BUILD_JOBS", "")
    if env.strip():
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# Cython translates the modules in parallel too (serially, 28 s of a build on 2 cores)
ext_modules = cythonize(
    extensions,
    compiler_directives=DIRECTIVES,
    include_path=[SRC],
    build_dir="build/cython",  # generated C stays out of the source tree and the sdist
    force=changed,
    quiet=True,
    nthreads=_jobs() if _jobs() > 1 else 0,
)
for ext in ext_modules:
    if not ext.sources:
        sys.exit(f"fastconv setup.py: extension {ext.name} has no sources")


class BuildExt(build_ext):
    """build_ext that rebuilds everything when the mode stamp changed, then records it, and
    compiles the extension modules in parallel (``-j``/``--parallel`` when given, else
    :func:`_jobs`): each is one gcc process, and a release build of all of them takes
    minutes on one core."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            self.parallel = _jobs()

    def run(self):
        if changed:
            self.force = True
        super().run()
        STAMP.parent.mkdir(parents=True, exist_ok=True)
        STAMP.write_text(stamp)


setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExt})
