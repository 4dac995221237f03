# Sourced by tools/debug_tests.sh and tools/asan.sh: copy_tree SRC DEST copies the files git
# knows in SRC (tracked, and untracked but not ignored) as they are in the working tree, so a
# special build happens in DEST and the build in SRC is never touched. No .so, no build/.
copy_tree() {
    local src=$1 dest=$2
    mkdir -p "$dest"
    (cd "$src" && git ls-files -z --cached --others --exclude-standard \
        | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$dest"
}

# check_import DIR: from DIR, `python` must import DIR's fastconv (not an installed or editable
# one elsewhere); prints its build info.
check_import() {
    (cd "$1" && python - <<'PY'
import os, sys
import fastconv
here = os.path.realpath(os.getcwd())
where = os.path.realpath(fastconv.__file__)
if not where.startswith(here + os.sep):
    sys.exit(f"fastconv imported from {where}, not from the copy in {here}")
from fastconv import _cy_conv
print("fastconv from", os.path.dirname(where), "build:", _cy_conv.build_info())
PY
    )
}
