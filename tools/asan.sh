#!/usr/bin/env bash
# The kernel tests under AddressSanitizer: the Cython extensions built with
# -fsanitize=address (gcc's libasan, LD_PRELOAD'ed into an uninstrumented python), in a
# temporary copy of the tree, so the release build here is untouched. Any out-of-bounds read
# or write, use-after-free or double free in a kernel aborts the run with a report.
#
#   tools/asan.sh [pytest args...]     # default: kernel, error, property, thread tests,
#                                      # Numba's deselected
#
# detect_leaks=0: CPython's own allocations look like leaks to LeakSanitizer (tests/test_leaks.py
# covers leaks). Numba's JIT code is not instrumented; its calls still run (through
# instrumented NumPy-facing buffers only), so the Cython and reference kernels are what this
# checks. Takes about 10 minutes on the 2-core dev machine.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/_copy_tree.sh
source "$ROOT/tools/_copy_tree.sh"

LIBASAN=$(gcc -print-file-name=libasan.so)
if [ ! -e "$LIBASAN" ]; then
    echo "asan.sh: gcc's libasan not found (apt-get install libasan8 or gcc)" >&2
    exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastconv-asan.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
copy_tree "$ROOT" "$WORK/src"
cd "$WORK/src"

start=$SECONDS
# CFLAGS/LDFLAGS are appended to setup.py's flags (-O3 -fopenmp); -O1 keeps reports precise.
CFLAGS="-fsanitize=address -fno-omit-frame-pointer -O1 -g" LDFLAGS="-fsanitize=address" \
    python setup.py -q build_ext --inplace 2>&1 | grep -v "^warning\|Warning" || true
echo "ASan build: $((SECONDS - start)) s"
nm -D fastconv/_cy_conv*.so | grep -c __asan_ >/dev/null || { echo "not an ASan build" >&2; exit 1; }

export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:${ASAN_OPTIONS:-}
export NUMBA_CACHE_DIR="$WORK/numba-cache"
LD_PRELOAD="$LIBASAN" check_import "$WORK/src"

start=$SECONDS
if [ $# -eq 0 ]; then
    # Numba's JIT code is not instrumented: its tests add time, not checks
    set -- -q -k "not numba"
    for f in conv pool grad signal errors error_table properties threads; do
        [ -e "tests/test_$f.py" ] && set -- "$@" "tests/test_$f.py"
    done
fi
# torch aborts under an LD_PRELOAD'ed libasan (in its own C++ code, with no ASan report), so
# the comparisons with torch are skipped here: a plugin makes `import torch` raise
# ModuleNotFoundError (importorskip then skips; scipy's array-API probing is unaffected).
mkdir -p "$WORK/plugins"
cat > "$WORK/plugins/no_torch.py" <<'PY'
import sys


class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("torch is disabled under ASan", name=name)
        return None


sys.meta_path.insert(0, _NoTorch())
PY
LD_PRELOAD="$LIBASAN" PYTHONPATH="$WORK/plugins${PYTHONPATH:+:$PYTHONPATH}" \
    python -m pytest -p no:cacheprovider -p no_torch "$@"
echo "ASan test run: $((SECONDS - start)) s, $(date -u +%Y-%m-%dT%H:%MZ)"
