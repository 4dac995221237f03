"""Issue 16: the C kernels are plain C, one generic body included once per element type.

fc_kernels.h used to define every kernel inside ``#define`` macros, so compiler errors and
debuggers pointed at the line that expanded the macro. These tests read the C sources of a
checkout (they skip where ``src_cython/`` is absent, as in an installed wheel); that the
kernels compute the same results is what the rest of the suite checks.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src_cython"

pytestmark = pytest.mark.skipif(not (SRC / "fc_kernels.h").is_file(),
                                reason="needs a source checkout (src_cython/)")


def _macros(text):
    """(name, lines, replacement text) of every #define, comments removed."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    lines = text.splitlines()
    out, i = [], 0
    while i < len(lines):
        m = re.match(r"\s*#\s*define\s+(\w+)(.*)", lines[i])
        i += 1
        if not m:
            continue
        name, body, n = m.group(1), m.group(2), 1
        while body.rstrip().endswith("\\") and i < len(lines):
            body = body.rstrip()[:-1] + " " + lines[i]
            i, n = i + 1, n + 1
        out.append((name, n, body))
    return out


def test_issue16_no_kernel_inside_a_macro():
    headers = sorted(SRC.glob("*.h"))
    assert any(h.name == "fc_kernels_body.h" for h in headers)
    for h in headers:
        for name, n, body in _macros(h.read_text()):
            # a constant, a type, an attribute or a name: one line, no statement, no block
            assert n == 1 and "{" not in body and ";" not in body, (
                f"{h.name}: macro {name} holds code ({n} lines): write it as a function")


def test_issue16_body_included_once_per_type_and_rebuilt_when_changed():
    head = (SRC / "fc_kernels.h").read_text()
    # each element type defines FC_T, then includes the one body: once in the wide pass
    # (AVX-512's 64-byte vectors, only where FC_HAVE_WIDE) and once in the narrow pass
    order = [t or w or "include" for t, w, _ in
             re.findall(r'#define FC_T (\w+)|#define FC_BODY_WIDE (\d)|'
                        r'(#include "fc_kernels_body\.h")', head)]
    assert order == ["float", "1", "include", "double", "1", "include",
                     "float", "0", "include", "double", "0", "include"]
    wide = head.index("#if FC_HAVE_WIDE\n#define FC_T float")
    assert head.index("#endif", wide) < head.index("#define FC_BODY_WIDE 0")
    # every header is a build dependency of the extensions (a change rebuilds them) and
    # ships in the sdist
    setup = (ROOT / "setup.py").read_text()
    deps = re.search(r"depends=\[([^\]]*)\]", setup)
    assert deps is not None
    manifest = (ROOT / "MANIFEST.in").read_text()
    assert re.search(r"recursive-include src_cython .*\*\.h", manifest)
    for h in SRC.glob("*.h"):
        assert f"{{SRC}}/{h.name}" in deps.group(1), f"setup.py depends= lacks {h.name}"


@pytest.mark.skipif(shutil.which("clang") is None, reason="needs clang")
def test_issue16_headers_compile_with_clang(tmp_path):
    """Apple's compiler is clang: the kernels' headers must compile with it (gcc's
    run-time-mask __builtin_shuffle made every clang build fail)."""
    src = tmp_path / "t.c"
    src.write_text('#include "fc_kernels.h"\nint main(void) { return 0; }\n')
    proc = subprocess.run(["clang", "-fsyntax-only", "-I", str(SRC), str(src)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
