"""The ``fastconv`` command: ``fastconv info`` and ``fastconv bench``."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys


def _find_suite(path):
    """The bench/ folder: given, else ./bench, else next to a source checkout's package."""
    candidates = [path] if path else [
        "bench",
        os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"),
    ]
    for c in candidates:
        if c and os.path.isfile(os.path.join(c, "test_peers.py")):
            return c
    raise SystemExit(
        "fastconv bench: no benchmark suite found (looked for "
        f"{', '.join(repr(c) for c in candidates)}); run it from a source checkout or pass "
        "--suite DIR"
    )


def bench(args) -> int:
    suite = _find_suite(args.suite)
    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, "bench.json")
    cmd = [sys.executable, "-P", "-m", "pytest", suite, "--benchmark-only",
           f"--benchmark-json={json_path}", "-p", "no:cacheprovider", "-q",
           f"--benchmark-max-time={args.max_time}"]
    if args.quick:
        cmd += ["-m", "quick"]
    cmd += args.pytest_args
    print("running:", shlex.join(cmd), flush=True)
    rc = subprocess.call(cmd)
    if rc != 0:
        print(f"fastconv bench: the suite failed (pytest exit {rc})", file=sys.stderr)
        return rc
    from ._benchreport import render

    report = render(json_path, args.out, command=shlex.join(["fastconv"] + args.argv))
    print(f"wrote {report} and {json_path}")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="fastconv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print version, backends, threads, BLAS and build flags")
    b = sub.add_parser("bench", help="run the benchmark suite and write the report and plots")
    b.add_argument("--quick", action="store_true", help="run the small subset only")
    b.add_argument("--out", default="fastconv-bench", help="output folder (default: %(default)s)")
    b.add_argument("--suite", default=None, help="the bench/ folder (default: found)")
    b.add_argument("--max-time", default="0.5", help="pytest-benchmark max time per test (s)")
    b.add_argument("pytest_args", nargs="*", help="extra arguments for pytest (after --)")
    args = parser.parse_args(argv)
    args.argv = argv
    if args.command == "info":
        from . import info

        info()
        return 0
    if args.command == "bench":
        return bench(args)
    return 2  # pragma: no cover - argparse rejects unknown commands
