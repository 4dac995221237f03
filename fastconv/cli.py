"""The ``fastconv`` command: ``fastconv info``."""

from __future__ import annotations

import argparse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fastconv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print version, backends, threads, BLAS and build flags")
    args = parser.parse_args(argv)
    if args.command == "info":
        from . import info

        info()
    return 0
