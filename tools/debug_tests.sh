#!/usr/bin/env bash
# The whole test suite against a debug build of the Cython kernels: FASTCONV_DEBUG=1 turns on
# bounds, wraparound and initialization checks and builds with -O0 -g (see setup.py). An
# out-of-bounds index then raises IndexError instead of reading or writing past an array.
#
# The build happens in a temporary copy of the tree (the files git knows, as they are in the
# working tree), with the active Python environment (which must have fastconv's dependencies
# and test extras; the torch comparisons run if torch is installed), so the release build in
# the tree is untouched. The tests run from the copy with `python -m pytest`, which puts the
# copy first on sys.path; a check makes sure the copy's debug build is what they import.
#
#   tools/debug_tests.sh [pytest args...]      # default: the whole suite, -q
#
# FASTCONV_TEST_SAMPLE=f runs a fixed sample of the parametrized cases (every test function,
# about a fraction f of the cases; tests/conftest.py): CI runs a quarter.
#
# Takes about 5 minutes on the 2-core dev machine (build ~1 min at -O0, the Cython cases
# ~4 min with Numba compiling into the copy's fresh cache).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/_copy_tree.sh
source "$ROOT/tools/_copy_tree.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastconv-debug.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
copy_tree "$ROOT" "$WORK/src"
cd "$WORK/src"

start=$SECONDS
FASTCONV_DEBUG=1 python setup.py -q build_ext --inplace 2>&1 | grep -v "^warning\|Warning" || true
echo "debug build: $((SECONDS - start)) s"
check_import "$WORK/src"
python - <<'PY'
import sys
from fastconv import _cy_conv
info = _cy_conv.build_info()
if not info.get("debug"):
    sys.exit(f"expected a debug build, got {info}")
PY

start=$SECONDS
# NUMBA_CACHE_DIR: the copy's kernels compile once into the temporary folder.
# FASTCONV_TEST_BACKENDS=cython: the debug build changes the Cython kernels only, so the cases
# parametrized for the NumPy and Numba backends (covered by the normal run) are left out.
FASTCONV_TEST_BACKENDS=${FASTCONV_TEST_BACKENDS-cython} NUMBA_CACHE_DIR="$WORK/numba-cache" \
    python -m pytest -p no:cacheprovider "${@:--q}"
echo "debug-build test suite: $((SECONDS - start)) s"
